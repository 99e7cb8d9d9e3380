//! The network as the daemon sees it: interfaces and their addresses (rtnetlink), their link
//! (ethtool), events, and the frames rbond builds itself. [`Netdev`] is the seam: the daemon
//! asks through it, and its unit tests answer with a fake.

use std::io;

pub mod address;
pub mod behind;
pub mod bound_sockets;
pub mod carried;
pub mod frames;
pub mod link;
pub mod reach;
pub mod route;
pub mod rtnl;
pub mod tc;
pub mod watch;

#[cfg(test)]
pub mod fake;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use address::Address;
use behind::FdbEntry;
use bound_sockets::BoundSocket;
use carried::{Route, Rule};
use link::{Change, Link};
use rtnl::Rtnl;

/// What the daemon asks of the host's interfaces, besides moving frames.
pub trait Netdev: std::any::Any {
    fn link(&mut self, index: u32) -> io::Result<Link>;
    fn link_named(&mut self, name: &str) -> io::Result<Link>;
    fn set_link(&mut self, index: u32, change: Change) -> io::Result<()>;
    fn delete_link(&mut self, index: u32) -> io::Result<()>;
    /// ETHTOOL_GLINK: the link as the driver reports it this instant.
    fn link_detected(&mut self, name: &str) -> io::Result<bool>;
    fn addresses(&mut self, index: u32) -> io::Result<Vec<Address>>;
    fn add_address(&mut self, index: u32, a: &Address) -> io::Result<()>;
    fn delete_address(&mut self, index: u32, a: &Address) -> io::Result<()>;
    /// One of the interface's IPv6 settings (`disable_ipv6`, `accept_dad`), if it has IPv6.
    fn ipv6_conf(&mut self, name: &str, key: &str) -> Option<String>;
    fn set_ipv6_conf(&mut self, name: &str, key: &str, value: &str) -> io::Result<()>;
    /// Every interface.
    fn links(&mut self) -> io::Result<Vec<Link>>;
    /// Every bridge's forwarding database and every device's own address list.
    fn fdb(&mut self) -> io::Result<Vec<FdbEntry>>;
    /// The multicast groups the interface has joined.
    fn groups(&mut self, name: &str) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>);
    /// The gateways of routes out of the interface, IPv4 then IPv6.
    fn gateways(&mut self, index: u32) -> io::Result<Vec<IpAddr>>;
    /// The host's own routes out of the interface (not the kernel's prefix routes).
    fn routes_out_of(&mut self, index: u32) -> io::Result<Vec<Route>>;
    /// Puts a route out of `to` in place of `from`, replacing it in one step.
    fn move_route(&mut self, route: &Route, from: u32, to: u32) -> io::Result<()>;
    /// The policy rules that name the interface.
    fn rules_naming(&mut self, name: &str) -> io::Result<Vec<Rule>>;
    /// Makes a rule name `to` instead of `from`.
    fn move_rule(&mut self, rule: &Rule, from: &str, to: &str) -> io::Result<()>;
    /// The TCP and UDP sockets bound to the interface.
    fn bound_sockets(&mut self, index: u32) -> io::Result<Vec<BoundSocket>>;
    /// Copies the resolved neighbours of `from` to `to`, as stale entries.
    fn copy_neighbours(&mut self, from: u32, to: u32) -> io::Result<()>;
    /// Deletes the on-link routes the kernel made for the interface's addresses.
    fn drop_prefix_routes(&mut self, index: u32) -> io::Result<()>;
}

/// Whether the kernel may hold back this device's carrier events (up to a second when they
/// come close together): it does so for devices that are their own link (physical NICs, TAP),
/// not for veth, macvlan or VLANs.
pub fn carrier_events_may_lag(link: &Link) -> bool {
    link.link.is_none_or(|l| l == link.index)
}

/// The host itself.
pub struct System {
    rtnl: Rtnl,
}

impl System {
    pub fn open() -> io::Result<System> {
        Ok(System { rtnl: Rtnl::open()? })
    }
}

fn ipv6_setting(name: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{name}/{key}")
}

impl Netdev for System {
    fn link(&mut self, index: u32) -> io::Result<Link> {
        self.rtnl.link(index)
    }
    fn link_named(&mut self, name: &str) -> io::Result<Link> {
        self.rtnl.link_named(name)
    }
    fn set_link(&mut self, index: u32, change: Change) -> io::Result<()> {
        self.rtnl.set_link(index, change)
    }
    fn delete_link(&mut self, index: u32) -> io::Result<()> {
        self.rtnl.delete_link(index)
    }
    fn link_detected(&mut self, name: &str) -> io::Result<bool> {
        crate::sys::ethtool::link_detected(name)
    }
    fn addresses(&mut self, index: u32) -> io::Result<Vec<Address>> {
        self.rtnl.addresses(index)
    }
    fn add_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        self.rtnl.add_address(index, a)
    }
    fn delete_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        self.rtnl.delete_address(index, a)
    }
    fn ipv6_conf(&mut self, name: &str, key: &str) -> Option<String> {
        std::fs::read_to_string(ipv6_setting(name, key)).ok().map(|s| s.trim().to_string())
    }
    fn set_ipv6_conf(&mut self, name: &str, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(ipv6_setting(name, key), value)
    }
    fn links(&mut self) -> io::Result<Vec<Link>> {
        self.rtnl.links()
    }
    fn fdb(&mut self) -> io::Result<Vec<FdbEntry>> {
        self.rtnl.fdb()
    }
    fn groups(&mut self, name: &str) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        (behind::ipv4_groups(&read("/proc/net/igmp"), name), behind::ipv6_groups(&read("/proc/net/igmp6"), name))
    }
    fn gateways(&mut self, index: u32) -> io::Result<Vec<IpAddr>> {
        self.rtnl.all_gateways(index)
    }
    fn routes_out_of(&mut self, index: u32) -> io::Result<Vec<Route>> {
        self.rtnl.routes_out_of(index)
    }
    fn move_route(&mut self, route: &Route, from: u32, to: u32) -> io::Result<()> {
        self.rtnl.move_route(route, from, to)
    }
    fn rules_naming(&mut self, name: &str) -> io::Result<Vec<Rule>> {
        self.rtnl.rules_naming(name)
    }
    fn move_rule(&mut self, rule: &Rule, from: &str, to: &str) -> io::Result<()> {
        self.rtnl.move_rule(rule, from, to)
    }
    fn bound_sockets(&mut self, index: u32) -> io::Result<Vec<BoundSocket>> {
        bound_sockets::bound_to(index)
    }
    fn copy_neighbours(&mut self, from: u32, to: u32) -> io::Result<()> {
        self.rtnl.copy_neighbours(from, to)
    }
    fn drop_prefix_routes(&mut self, index: u32) -> io::Result<()> {
        self.rtnl.drop_prefix_routes(index)
    }
}

/// Adds the interface name to an error, so users see which device failed and doing what.
pub fn ctx<T>(r: io::Result<T>, what: &str, name: &str) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{name}: {what}: {e}"))
}
