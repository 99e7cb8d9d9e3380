//! The IPv4 gateways reached through an interface: what the standby check probes for when
//! the bond has no ARP targets.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::rtnl::Rtnl;

/// The interface a route goes out of.
pub fn out_of(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| if let RouteAttribute::Oif(i) = a { Some(*i) } else { None })
}

/// The gateway of an IPv4 route out of `index`, if it has one.
fn gateway_via(m: &RouteMessage, index: u32) -> Option<Ipv4Addr> {
    let gateway = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
        _ => None,
    });
    gateway.filter(|_| out_of(m) == Some(index))
}

impl Rtnl {
    /// Every IPv4 gateway of a route out of the interface, the default route's first.
    pub fn gateways(&mut self, index: u32) -> io::Result<Vec<Ipv4Addr>> {
        let mut ask = RouteMessage::default();
        ask.header.address_family = AddressFamily::Inet;
        let replies = self.dump(RouteNetlinkMessage::GetRoute(ask))?;
        let mut routes: Vec<(u8, Ipv4Addr)> = replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Some((m.header.destination_prefix_length, gateway_via(m, index)?)),
                _ => None,
            })
            .collect();
        routes.sort_by_key(|(prefix, _)| *prefix);
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for (_, g) in routes {
            if !out.contains(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }
}
