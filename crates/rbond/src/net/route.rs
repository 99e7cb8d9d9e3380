//! The IPv4 gateways reached through an interface (what the standby check probes for when
//! the bond has no ARP targets), and the default route a stanza's `gateway` adds.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::rtnl::Rtnl;

/// The interface a route goes out of.
pub fn out_of(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| if let RouteAttribute::Oif(i) = a { Some(*i) } else { None })
}

/// The gateway of a route out of `index`, if it has one.
fn gateway_via(m: &RouteMessage, index: u32) -> Option<IpAddr> {
    let gateway = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
        _ => None,
    });
    gateway.filter(|_| out_of(m) == Some(index))
}

impl Rtnl {
    /// Every gateway of a route out of the interface, IPv4 then IPv6, each family's default
    /// route's first.
    pub fn all_gateways(&mut self, index: u32) -> io::Result<Vec<IpAddr>> {
        let mut out = self.gateways_of(index, AddressFamily::Inet)?;
        out.extend(self.gateways_of(index, AddressFamily::Inet6)?);
        Ok(out)
    }

    fn gateways_of(&mut self, index: u32, family: AddressFamily) -> io::Result<Vec<IpAddr>> {
        let mut ask = RouteMessage::default();
        ask.header.address_family = family;
        let replies = self.dump(RouteNetlinkMessage::GetRoute(ask))?;
        let mut routes: Vec<(u8, IpAddr)> = replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Some((m.header.destination_prefix_length, gateway_via(m, index)?)),
                _ => None,
            })
            .collect();
        routes.sort_by_key(|(prefix, _)| *prefix);
        let mut out: Vec<IpAddr> = Vec::new();
        for (_, g) in routes {
            if !out.contains(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }
}

/// `default via GATEWAY dev INDEX [metric M]`, onlink for IPv4 as ifupdown's `static`
/// method adds it.
fn default_route(index: u32, via: IpAddr, metric: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if via.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    let gateway = match via {
        IpAddr::V4(v4) => {
            m.header.flags = RouteFlags::Onlink;
            RouteAddress::Inet(v4)
        }
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    };
    m.attributes.push(RouteAttribute::Gateway(gateway));
    m.attributes.push(RouteAttribute::Oif(index));
    m.attributes.extend(metric.map(RouteAttribute::Priority));
    m
}

impl Rtnl {
    /// `ip route replace default via GATEWAY dev INDEX [metric M]`.
    pub fn replace_default_route(&mut self, index: u32, via: IpAddr, metric: Option<u32>) -> io::Result<()> {
        self.change(RouteNetlinkMessage::NewRoute(default_route(index, via, metric)), NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// `ip route del default via GATEWAY dev INDEX [metric M]`.
    pub fn delete_default_route(&mut self, index: u32, via: IpAddr, metric: Option<u32>) -> io::Result<()> {
        self.change(RouteNetlinkMessage::DelRoute(default_route(index, via, metric)), 0)
    }
}
