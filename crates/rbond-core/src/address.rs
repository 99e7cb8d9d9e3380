//! The bond's own addresses: the ARP and NS monitors' probe sources and validation targets.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::mac::Mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        Ipv4Cidr { addr, prefix: prefix.min(32) }
    }

    /// The address with its host bits cleared: 10.77.0.0 for 10.77.0.1/24.
    pub fn network(&self) -> Ipv4Addr {
        (u32::from(self.addr) & u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)).into()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        Ipv4Cidr::new(ip, self.prefix).network() == self.network()
    }
}

/// The source address for a probe to `target`: the bond's address on the target's subnet,
/// else its first address, else 0.0.0.0 (the kernel's choices for a route through the bond).
pub(crate) fn probe_source(addrs: &[Ipv4Cidr], target: Ipv4Addr) -> Ipv4Addr {
    addrs.iter().find(|a| a.contains(target)).or(addrs.first()).map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Cidr {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Cidr {
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Ipv6Cidr {
        Ipv6Cidr { addr, prefix: prefix.min(128) }
    }

    /// The address with its host bits cleared: 2001:db8:77:: for 2001:db8:77::1/64.
    pub fn network(&self) -> Ipv6Addr {
        (u128::from(self.addr) & u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0)).into()
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        Ipv6Cidr::new(ip, self.prefix).network() == self.network()
    }
}

/// Whether an IPv6 address is link-local (fe80::/10), the one scope source selection tells
/// apart here.
pub fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX), where neighbour
/// solicitations for it are sent.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The link-local address a MAC makes by its modified EUI-64 (RFC 4291): the standby check's
/// IPv6 probes come from their probe MAC's, an address no node has, so answers reach that
/// MAC alone.
pub fn eui64_link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// The source for a neighbour solicitation to `target`, as the kernel's source address
/// selection picks it among the bond's ready addresses: one of the target's scope (link-local
/// for a link-local target), on the target's prefix if one is, else any, else `::`.
pub(crate) fn ns_probe_source(addrs: &[Ipv6Cidr], target: Ipv6Addr) -> Ipv6Addr {
    let same_scope: Vec<&Ipv6Cidr> = addrs.iter().filter(|a| is_link_local(a.addr) == is_link_local(target)).collect();
    same_scope
        .iter()
        .find(|a| a.contains(target))
        .or(same_scope.first())
        .map(|a| a.addr)
        .or(addrs.first().map(|a| a.addr))
        .unwrap_or(Ipv6Addr::UNSPECIFIED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_source_follows_the_targets_scope_and_prefix() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let a = [
            Ipv6Cidr::new(v6("fe80::1"), 64),
            Ipv6Cidr::new(v6("2001:db8:1::1"), 64),
            Ipv6Cidr::new(v6("2001:db8:2::1"), 64),
        ];
        assert_eq!(ns_probe_source(&a, v6("fe80::fe")), v6("fe80::1"));
        assert_eq!(ns_probe_source(&a, v6("2001:db8:2::fe")), v6("2001:db8:2::1"));
        assert_eq!(ns_probe_source(&a, v6("2001:db8:9::fe")), v6("2001:db8:1::1"));
        assert_eq!(ns_probe_source(&a[..1], v6("2001:db8:9::fe")), v6("fe80::1"), "only a link-local: that one");
        assert_eq!(ns_probe_source(&[], v6("2001:db8:9::fe")), Ipv6Addr::UNSPECIFIED);
        assert_eq!(solicited_node(v6("2001:db8::254")), v6("ff02::1:ff00:254"));
        assert_eq!(solicited_node(v6("fe80::aabb:ccdd:eeff")), v6("ff02::1:ffdd:eeff"));
        assert_eq!(eui64_link_local(Mac([0x06, 0x0a, 0x0b, 0x0c, 0x0d, 0x01])), v6("fe80::40a:bff:fe0c:d01"));
    }

    #[test]
    fn source_prefers_the_targets_subnet() {
        let a = [Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24), Ipv4Cidr::new(Ipv4Addr::new(198, 51, 100, 1), 24)];
        assert_eq!(probe_source(&a, Ipv4Addr::new(198, 51, 100, 9)), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(probe_source(&a, Ipv4Addr::new(203, 0, 113, 9)), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(probe_source(&[], Ipv4Addr::new(203, 0, 113, 9)), Ipv4Addr::UNSPECIFIED);
        assert!(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 1), 0).contains(Ipv4Addr::new(1, 2, 3, 4)));
    }

    /// Host bits cleared at every prefix length, the two ends included.
    #[test]
    fn networks_clear_the_host_bits() {
        let v4 = Ipv4Addr::new(10, 77, 200, 1);
        assert_eq!(Ipv4Cidr::new(v4, 24).network(), Ipv4Addr::new(10, 77, 200, 0));
        assert_eq!(Ipv4Cidr::new(v4, 17).network(), Ipv4Addr::new(10, 77, 128, 0));
        assert_eq!(Ipv4Cidr::new(v4, 0).network(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(Ipv4Cidr::new(v4, 32).network(), v4);
        assert!(!Ipv4Cidr::new(v4, 24).contains(Ipv4Addr::new(10, 77, 201, 1)));
        let v6 = "2001:db8:77::1".parse::<Ipv6Addr>().unwrap();
        assert_eq!(Ipv6Cidr::new(v6, 64).network(), "2001:db8:77::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Ipv6Cidr::new(v6, 0).network(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(Ipv6Cidr::new(v6, 128).network(), v6);
        assert!(Ipv6Cidr::new(v6, 64).contains("2001:db8:77::fe".parse().unwrap()));
        assert!(!Ipv6Cidr::new(v6, 64).contains("2001:db8:78::1".parse().unwrap()));
    }
}
