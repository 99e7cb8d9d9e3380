//! What an interface carries for the host besides its addresses: the routes out of it and
//! the policy rules that name it, captured as the kernel's own messages so they can be moved
//! to another interface (a live eth0 converted into bond0) and back exactly as they were,
//! and its resolved neighbours, copied ahead of the traffic.

use std::fmt;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{Emitable, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, Parseable};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::address::Address;
use super::route::out_of;
use super::rtnl::Rtnl;

const RT_TABLE_LOCAL: u32 = 255;

/// A route as the kernel gave it, minus what only a dump carries (cache data, state flags):
/// replayed with another output interface, it is the same route through that interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    netlink: Vec<u8>,
}

/// A policy rule that names an interface (`iif` or `oif`), as the kernel gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    netlink: Vec<u8>,
}

fn emit(m: &impl Emitable) -> Vec<u8> {
    let mut buf = vec![0; m.buffer_len()];
    m.emit(&mut buf);
    buf
}

fn broken(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("saved route or rule: {e}"))
}

fn table(m: &RouteMessage) -> u32 {
    let attr = m.attributes.iter().find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None });
    attr.unwrap_or(u32::from(m.header.table))
}

/// Whether the route is one of the host's own (not the kernel's, which come and go with
/// addresses): a unicast route outside the `local` table.
fn hosts_own(m: &RouteMessage) -> bool {
    m.header.protocol != RouteProtocol::Kernel && m.header.kind == RouteType::Unicast && table(m) != RT_TABLE_LOCAL
}

/// Whether the route goes out of `index` (any next hop of a multipath one).
fn through(m: &RouteMessage, index: u32) -> bool {
    let hop = |a: &RouteAttribute| matches!(a, RouteAttribute::MultiPath(hops) if hops.iter().any(|h| h.interface_index == index));
    out_of(m) == Some(index) || m.attributes.iter().any(hop)
}

fn show_addr(a: &RouteAddress) -> String {
    match a {
        RouteAddress::Inet(v4) => IpAddr::V4(*v4).to_string(),
        RouteAddress::Inet6(v6) => IpAddr::V6(*v6).to_string(),
        other => format!("{other:?}"),
    }
}

impl Route {
    fn from_message(m: &RouteMessage) -> Route {
        let mut m = m.clone();
        // A dump reports state (linkdown, offload) in the header's flags; only onlink is asked.
        m.header.flags &= RouteFlags::Onlink;
        m.attributes.retain(|a| !matches!(a, RouteAttribute::CacheInfo(_) | RouteAttribute::Expires(_)));
        Route { netlink: emit(&m) }
    }

    fn message(&self) -> io::Result<RouteMessage> {
        RouteMessage::parse(&self.netlink[..]).map_err(broken)
    }

    /// The same route out of `to` instead of `from` (every next hop of a multipath one).
    fn through(&self, from: u32, to: u32) -> io::Result<RouteMessage> {
        let mut m = self.message()?;
        for a in &mut m.attributes {
            match a {
                RouteAttribute::Oif(i) if *i == from => *i = to,
                RouteAttribute::MultiPath(hops) => {
                    hops.iter_mut().filter(|h| h.interface_index == from).for_each(|h| h.interface_index = to)
                }
                _ => {}
            }
        }
        Ok(m)
    }

    /// The route in `ip route` words, going out of `dev`.
    pub fn show(&self, dev: &str) -> String {
        let Ok(m) = self.message() else { return "(unreadable route)".into() };
        let mut words = Vec::new();
        let dst = m
            .attributes
            .iter()
            .find_map(|a| if let RouteAttribute::Destination(d) = a { Some(show_addr(d)) } else { None });
        match dst {
            Some(d) => words.push(format!("{d}/{}", m.header.destination_prefix_length)),
            None => words.push("default".into()),
        }
        // In the order `ip route` writes them.
        let find = |want: fn(&RouteAttribute) -> Option<String>| m.attributes.iter().find_map(want);
        words.extend(find(|a| {
            if let RouteAttribute::Gateway(g) = a { Some(format!("via {}", show_addr(g))) } else { None }
        }));
        words.extend(find(|a| {
            if let RouteAttribute::PrefSource(s) = a { Some(format!("src {}", show_addr(s))) } else { None }
        }));
        words.extend(find(|a| if let RouteAttribute::Priority(p) = a { Some(format!("metric {p}")) } else { None }));
        words.push(format!("dev {dev}"));
        let t = table(&m);
        if t != u32::from(RouteHeader::RT_TABLE_MAIN) {
            words.push(format!("table {t}"));
        }
        if m.header.flags.contains(RouteFlags::Onlink) {
            words.push("onlink".into());
        }
        words.join(" ")
    }

    /// `ip [-6] route VERB …` for the route going out of `dev`.
    pub fn command(&self, verb: &str, dev: &str) -> String {
        let v6 = self.message().is_ok_and(|m| m.header.address_family == AddressFamily::Inet6);
        format!("ip {}route {verb} {}", if v6 { "-6 " } else { "" }, self.show(dev))
    }
}

impl Rule {
    fn message(&self) -> io::Result<RuleMessage> {
        RuleMessage::parse(&self.netlink[..]).map_err(broken)
    }

    /// The rule with `to` wherever it named `from`.
    fn renamed(&self, from: &str, to: &str) -> io::Result<RuleMessage> {
        let mut m = self.message()?;
        for a in &mut m.attributes {
            if let RuleAttribute::Iifname(n) | RuleAttribute::Oifname(n) = a
                && n == from
            {
                *n = to.to_string();
            }
        }
        Ok(m)
    }

    /// `ip [-6] rule VERB …` for the rule naming `dev` where it named the interface.
    pub fn command(&self, verb: &str, dev: &str) -> String {
        let v6 = self.message().is_ok_and(|m| m.header.family == AddressFamily::Inet6);
        format!("ip {}rule {verb} {}", if v6 { "-6 " } else { "" }, self.show(dev))
    }

    /// The rule in `ip rule` words, naming `dev` where it named the interface.
    pub fn show(&self, dev: &str) -> String {
        let Ok(m) = self.message() else { return "(unreadable rule)".into() };
        // In the order `ip rule` writes them.
        let mut words = Vec::new();
        let find = |want: fn(&RuleAttribute) -> Option<String>| m.attributes.iter().find_map(want);
        words.extend(find(|a| if let RuleAttribute::Priority(p) = a { Some(format!("priority {p}")) } else { None }));
        if m.attributes.iter().any(|a| matches!(a, RuleAttribute::Iifname(_))) {
            words.push(format!("iif {dev}"));
        }
        if m.attributes.iter().any(|a| matches!(a, RuleAttribute::Oifname(_))) {
            words.push(format!("oif {dev}"));
        }
        words.extend(find(|a| if let RuleAttribute::Table(t) = a { Some(format!("lookup {t}")) } else { None }));
        words.join(" ")
    }
}

impl Rtnl {
    /// The host's routes out of the interface, IPv4 then IPv6, in every table but `local`.
    pub fn routes_out_of(&mut self, index: u32) -> io::Result<Vec<Route>> {
        self.own_routes(|m| through(m, index))
    }

    fn own_routes(&mut self, keep: impl Fn(&RouteMessage) -> bool) -> io::Result<Vec<Route>> {
        let routes = self.route_messages(|m| hosts_own(m) && keep(m))?;
        Ok(routes.iter().map(Route::from_message).collect())
    }

    /// Every route `keep` wants, IPv4 then IPv6, as the kernel gave it.
    fn route_messages(&mut self, keep: impl Fn(&RouteMessage) -> bool) -> io::Result<Vec<RouteMessage>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut ask = RouteMessage::default();
            ask.header.address_family = family;
            for r in self.dump(RouteNetlinkMessage::GetRoute(ask))? {
                if let RouteNetlinkMessage::NewRoute(m) = r
                    && keep(&m)
                {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// Deletes the on-link routes the kernel made for the interface's addresses (outside the
    /// `local` table), leaving the addresses. A bond that gave a converted interface its host
    /// back keeps its addresses until ifupdown or its end takes them, and its older routes
    /// would win every lookup for the subnet until then, into a bond with no slave.
    pub fn drop_prefix_routes(&mut self, index: u32) -> io::Result<()> {
        let made_for_an_address = |m: &RouteMessage| {
            m.header.protocol == RouteProtocol::Kernel
                && m.header.kind == RouteType::Unicast
                && table(m) != RT_TABLE_LOCAL
                && out_of(m) == Some(index)
        };
        for m in self.route_messages(made_for_an_address)? {
            match self.change(RouteNetlinkMessage::DelRoute(m), 0) {
                Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts the route out of `to` in place of `from`, in one step: the kernel replaces the
    /// route with the same destination and metric, so there is no instant without it.
    pub fn move_route(&mut self, route: &Route, from: u32, to: u32) -> io::Result<()> {
        self.add_route(route.through(from, to)?)
    }

    /// Adds the route, or replaces the one with its destination and metric.
    fn add_route(&mut self, m: RouteMessage) -> io::Result<()> {
        self.change(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Adds the rule unless the very same one is there already.
    fn add_rule(&mut self, m: RuleMessage) -> io::Result<()> {
        match self.change(RouteNetlinkMessage::NewRule(m), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
            _ => Ok(()),
        }
    }

    /// The policy rules that name the interface, IPv4 then IPv6.
    pub fn rules_naming(&mut self, name: &str) -> io::Result<Vec<Rule>> {
        self.rules(|m| {
            m.attributes.iter().any(|a| matches!(a, RuleAttribute::Iifname(n) | RuleAttribute::Oifname(n) if n == name))
        })
    }

    fn rules(&mut self, keep: impl Fn(&RuleMessage) -> bool) -> io::Result<Vec<Rule>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut ask = RuleMessage::default();
            ask.header.family = family;
            for r in self.dump(RouteNetlinkMessage::GetRule(ask))? {
                if let RouteNetlinkMessage::NewRule(m) = r
                    && keep(&m)
                {
                    out.push(Rule { netlink: emit(&m) });
                }
            }
        }
        Ok(out)
    }

    /// Makes the rule name `to` instead of `from`: the new one is added before the old one
    /// goes, so the lookup it steers is never without it.
    pub fn move_rule(&mut self, rule: &Rule, from: &str, to: &str) -> io::Result<()> {
        let old = rule.renamed(to, from)?;
        self.add_rule(rule.renamed(from, to)?)?;
        match self.change(RouteNetlinkMessage::DelRule(old), 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    /// Copies the interface's resolved neighbours (IPv4 and IPv6) to another as stale
    /// entries: traffic moved to `to` goes out at once, with no resolution whose answer
    /// could still be arriving on `from`; the kernel confirms each entry as it is used.
    pub fn copy_neighbours(&mut self, from: u32, to: u32) -> io::Result<()> {
        use NeighbourState::{Delay, Probe, Reachable, Stale};
        let mut ask = NeighbourMessage::default();
        ask.header.family = AddressFamily::Unspec;
        for r in self.dump(RouteNetlinkMessage::GetNeighbour(ask))? {
            let RouteNetlinkMessage::NewNeighbour(mut m) = r else { continue };
            let resolved = matches!(m.header.state, Reachable | Stale | Delay | Probe);
            let has_mac = m.attributes.iter().any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(_)));
            if m.header.ifindex != from || !resolved || !has_mac {
                continue;
            }
            m.header.ifindex = to;
            m.header.state = Stale;
            m.attributes
                .retain(|a| matches!(a, NeighbourAttribute::Destination(_) | NeighbourAttribute::LinkLayerAddress(_)));
            self.change(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE)?;
        }
        Ok(())
    }
}

/// The host's own IP configuration (addresses, routes, policy rules), taken before `rbond
/// try` applies a file, so that a rollback puts back whatever taking the bond down does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConfig {
    pub addresses: Vec<(u32, Address)>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

impl Rtnl {
    pub fn host_config(&mut self) -> io::Result<HostConfig> {
        let addresses = self.all_addresses()?.into_iter().filter(|(_, a)| !a.is_link_local()).collect();
        Ok(HostConfig { addresses, routes: self.own_routes(|_| true)?, rules: self.rules(|_| true)? })
    }

    /// Adds back what `was` had and the host lacks now (addresses first, so the routes' next
    /// hops are reachable again); returns what could not be.
    pub fn put_back(&mut self, was: &HostConfig) -> io::Result<Vec<String>> {
        let now = self.host_config()?;
        let mut failed = Vec::new();
        for (i, a) in was.addresses.iter().filter(|x| !now.addresses.contains(x)) {
            if let Err(e) = self.add_address(*i, a) {
                failed.push(format!("address {a} on interface {i}: {e}"));
            }
        }
        for r in was.routes.iter().filter(|r| !now.routes.contains(r)) {
            if let Err(e) = self.add_route(r.message()?) {
                failed.push(format!("route {}: {e}", r.show("(its interface)")));
            }
        }
        for r in was.rules.iter().filter(|r| !now.rules.contains(r)) {
            if let Err(e) = self.add_rule(r.message()?) {
                failed.push(format!("rule {}: {e}", r.show("…")));
            }
        }
        Ok(failed)
    }
}
