//! The bond's own IPv4 addresses: the ARP monitor's probe sources and validation targets.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        Ipv4Cidr { addr, prefix: prefix.min(32) }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// The source address for a probe to `target`: the bond's address on the target's subnet,
/// else its first address, else 0.0.0.0 (the kernel's choices for a route through the bond).
pub(crate) fn probe_source(addrs: &[Ipv4Cidr], target: Ipv4Addr) -> Ipv4Addr {
    addrs.iter().find(|a| a.contains(target)).or(addrs.first()).map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_prefers_the_targets_subnet() {
        let a = [Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24), Ipv4Cidr::new(Ipv4Addr::new(198, 51, 100, 1), 24)];
        assert_eq!(probe_source(&a, Ipv4Addr::new(198, 51, 100, 9)), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(probe_source(&a, Ipv4Addr::new(203, 0, 113, 9)), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(probe_source(&[], Ipv4Addr::new(203, 0, 113, 9)), Ipv4Addr::UNSPECIFIED);
        assert!(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 1), 0).contains(Ipv4Addr::new(1, 2, 3, 4)));
    }
}
