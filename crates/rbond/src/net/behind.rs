//! What sits behind bond0 on the host: the MACs a bridge has learned or owns and the extra
//! addresses devices on bond0 gave it (the forwarding database dump, which lists both), and
//! the multicast groups a device has joined (the kernel's `/proc/net/igmp` and
//! `/proc/net/igmp6`, which no netlink call lists).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rbond_core::Mac;

use super::rtnl::Rtnl;

/// One entry of the forwarding database dump: a bridge's (`master` names it), or a device's
/// own address list (`master` none: the MACs a macvlan on it added, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The device it is on: a bridge port, the bridge itself, or the device with the list.
    pub port: u32,
    pub master: Option<u32>,
    pub mac: Mac,
    pub vlan: Option<u16>,
    /// Configured, not learned: a port's own address, or one added by hand.
    pub permanent: bool,
}

impl Rtnl {
    /// Every entry of every forwarding database and device address list.
    pub fn fdb(&mut self) -> io::Result<Vec<FdbEntry>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let replies = self.dump(RouteNetlinkMessage::GetNeighbour(req))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(n) => entry(n),
                _ => None,
            })
            .collect())
    }
}

fn entry(n: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut vlan = None;
    let mut master = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(m) => mac = <[u8; 6]>::try_from(m.as_slice()).ok().map(Mac),
            NeighbourAttribute::Vlan(v) => vlan = Some(*v),
            NeighbourAttribute::Controller(m) => master = Some(*m),
            _ => {}
        }
    }
    let permanent = n.header.state == NeighbourState::Permanent;
    Some(FdbEntry { port: n.header.ifindex, master, mac: mac?, vlan, permanent })
}

/// The IPv4 groups joined on `device`, from `/proc/net/igmp`'s text: a device line (`4 bond0
/// : 2 V3`) followed by its groups in hexadecimal, as the address's bytes in memory order.
pub fn ipv4_groups(proc_igmp: &str, device: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut ours = false;
    for line in proc_igmp.lines().skip(1) {
        if !line.starts_with('\t') {
            ours = line.split_whitespace().nth(1) == Some(device);
            continue;
        }
        let group = line.split_whitespace().next().and_then(|h| u32::from_str_radix(h, 16).ok());
        if let Some(g) = group.filter(|_| ours) {
            out.push(Ipv4Addr::from(g.to_ne_bytes()));
        }
    }
    out
}

/// The IPv6 groups joined on `device`, from `/proc/net/igmp6` (`4 bond0 ff02…01 1 0000000C 0`).
pub fn ipv6_groups(proc_igmp6: &str, device: &str) -> Vec<Ipv6Addr> {
    proc_igmp6
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&device)).then_some(())?;
            u128::from_str_radix(f.get(2)?, 16).ok().map(Ipv6Addr::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_read_as_the_kernel_writes_them() {
        let igmp = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    4\tbond0     :     2      V3\n\
                    \t\t\t\t0A0A00EF     1 0:00000000\t\t0\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let want = if cfg!(target_endian = "little") {
            vec![Ipv4Addr::new(239, 0, 10, 10), Ipv4Addr::new(224, 0, 0, 1)]
        } else {
            vec![Ipv4Addr::new(10, 10, 0, 239), Ipv4Addr::new(1, 0, 0, 224)]
        };
        assert_eq!(ipv4_groups(igmp, "bond0"), want);
        assert_eq!(ipv4_groups(igmp, "eth9"), Vec::<Ipv4Addr>::new());
        let igmp6 = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
                     4    bond0           ff0200000000000000000001ff0abcde     1 00000004 0\n";
        assert_eq!(ipv6_groups(igmp6, "bond0"), vec!["ff02::1:ff0a:bcde".parse::<Ipv6Addr>().unwrap()]);
    }
}
