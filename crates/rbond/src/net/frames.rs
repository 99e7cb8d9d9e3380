//! The frames rbond builds and reads itself: ARP probes and replies, gratuitous ARP, IPv6
//! neighbour solicitations and advertisements, learning frames for the MACs behind the bond,
//! and IGMP/MLD membership reports. Each carries a zeroed virtio-net header in front, as
//! every frame on our sockets does.

use std::net::{Ipv4Addr, Ipv6Addr};

use rbond_core::{ArpFrame, ArpOp, Mac, NdFrame, NdKind, solicited_node};

/// The virtio-net header that precedes every frame on the TAP and on the packet sockets.
pub const VNET_HDR_LEN: usize = 10;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_RARP: u16 = 0x8035;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: Mac = Mac([0xff; 6]);

fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp(op: u16, src: Mac, sender_ip: Ipv4Addr, target_mac: Mac, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 0x08, 0, 6, 4]); // Ethernet, IPv4, address lengths
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&src.0);
    p.extend_from_slice(&sender_ip.octets());
    p.extend_from_slice(&target_mac.0);
    p.extend_from_slice(&target_ip.octets());
    ethernet(BROADCAST, src, ETH_P_ARP, &p)
}

/// The ARP monitor's probe: who-has `target`, tell `source`, broadcast from `src`.
pub fn arp_probe(src: Mac, source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp(1, src, source, Mac::ZERO, target)
}

/// A gratuitous ARP request announcing `ip` at `src` (sender and target IP both `ip`).
pub fn gratuitous_arp(src: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp(1, src, ip, Mac::ZERO, ip)
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMPv6 message from `src` at `from` to `to` (hop limit 255, as neighbour discovery
/// requires), its checksum filled in over the pseudo-header, to the Ethernet `dst`.
fn icmpv6(dst: Mac, src: Mac, from: Ipv6Addr, to: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let len = (icmp.len() as u32).to_be_bytes();
    let sum = checksum(&[&from.octets(), &to.octets(), &len, &[0, 0, 0, 58], &icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip6 = vec![0x60, 0, 0, 0];
    ip6.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip6.extend_from_slice(&[58, 255]); // ICMPv6, hop limit 255
    ip6.extend_from_slice(&from.octets());
    ip6.extend_from_slice(&to.octets());
    ip6.extend_from_slice(&icmp);
    ethernet(dst, src, ETH_P_IPV6, &ip6)
}

/// The Ethernet group an IPv6 multicast address maps to (33:33 and its last four bytes).
pub fn ipv6_group_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An unsolicited neighbour advertisement for `ip` at `src` to all nodes, with the override
/// flag set, so neighbours replace whatever they had cached.
pub fn unsolicited_na(src: Mac, ip: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0]; // type NA, code 0, checksum, O flag
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]); // target link-layer address option, 8 bytes
    icmp.extend_from_slice(&src.0);
    icmpv6(ipv6_group_mac(all_nodes), src, ip, all_nodes, icmp)
}

/// The NS monitor's probe, as the kernel's `ndisc_ns_create` makes it: a neighbour
/// solicitation for `target` from `source` to the target's solicited-node group, carrying our
/// link-layer address unless the source is unspecified (RFC 4861 forbids it then).
pub fn ns_probe(src: Mac, source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0]; // type NS, code 0, checksum, reserved
    icmp.extend_from_slice(&target.octets());
    if !source.is_unspecified() {
        icmp.extend_from_slice(&[1, 1]); // source link-layer address option, 8 bytes
        icmp.extend_from_slice(&src.0);
    }
    icmpv6(ipv6_group_mac(group), src, source, group, icmp)
}

/// A learning frame for a MAC behind the bond, as Open vSwitch sends them: a RARP request
/// broadcast from `mac` (tagged with `vlan` where given), so that every switch on the way
/// learns the MAC on the port it now arrives by.
pub fn learning_frame(mac: Mac, vlan: Option<u16>) -> Vec<u8> {
    let mut rarp = vec![0, 1, 0x08, 0, 6, 4, 0, 3]; // Ethernet, IPv4, lengths, reverse request
    for _ in 0..2 {
        rarp.extend_from_slice(&mac.0);
        rarp.extend_from_slice(&[0; 4]);
    }
    match vlan {
        Some(v) => {
            let mut tagged = (v & 0x0fff).to_be_bytes().to_vec();
            tagged.extend_from_slice(&ETH_P_RARP.to_be_bytes());
            tagged.extend_from_slice(&rarp);
            ethernet(BROADCAST, mac, ETH_P_8021Q, &tagged)
        }
        None => ethernet(BROADCAST, mac, ETH_P_RARP, &rarp),
    }
}

/// An IGMPv3 membership report (RFC 3376) saying `src` at `ip` is in each of `groups`, to
/// 224.0.0.22 with the router alert option, as the host's stack sends it.
pub fn igmp_report(src: Mac, ip: Ipv4Addr, groups: &[Ipv4Addr]) -> Vec<u8> {
    let mut igmp = vec![0x22, 0, 0, 0, 0, 0];
    igmp.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in groups {
        igmp.extend_from_slice(&[2, 0, 0, 0]); // MODE_IS_EXCLUDE, no sources: joined
        igmp.extend_from_slice(&g.octets());
    }
    let sum = checksum(&[&igmp]);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let dst = Ipv4Addr::new(224, 0, 0, 22);
    let mut ip4 = vec![0x46, 0xc0]; // IPv4, 24-byte header (router alert), precedence 6
    ip4.extend_from_slice(&((24 + igmp.len()) as u16).to_be_bytes());
    ip4.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]); // no id, DF, TTL 1, IGMP, checksum
    ip4.extend_from_slice(&ip.octets());
    ip4.extend_from_slice(&dst.octets());
    ip4.extend_from_slice(&[0x94, 0x04, 0, 0]); // router alert
    let sum = checksum(&[&ip4]);
    ip4[10..12].copy_from_slice(&sum.to_be_bytes());
    ip4.extend_from_slice(&igmp);
    ethernet(Mac([0x01, 0x00, 0x5e, 0, 0, 0x16]), src, ETH_P_IP, &ip4)
}

/// An MLDv2 listener report (RFC 3810) for `groups` from `src` at the link-local `ip`, to
/// ff02::16 behind a hop-by-hop router alert.
pub fn mld_report(src: Mac, ip: Ipv6Addr, groups: &[Ipv6Addr]) -> Vec<u8> {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
    let mut icmp = vec![143, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in groups {
        icmp.extend_from_slice(&[2, 0, 0, 0]); // MODE_IS_EXCLUDE, no sources
        icmp.extend_from_slice(&g.octets());
    }
    let len = (icmp.len() as u32).to_be_bytes();
    let sum = checksum(&[&ip.octets(), &dst.octets(), &len, &[0, 0, 0, 58], &icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let hop_by_hop = [58, 0, 5, 2, 0, 0, 1, 0]; // next ICMPv6; router alert (MLD); PadN
    let mut ip6 = vec![0x60, 0, 0, 0];
    ip6.extend_from_slice(&((hop_by_hop.len() + icmp.len()) as u16).to_be_bytes());
    ip6.extend_from_slice(&[0, 1]); // hop-by-hop options follow, hop limit 1
    ip6.extend_from_slice(&ip.octets());
    ip6.extend_from_slice(&dst.octets());
    ip6.extend_from_slice(&hop_by_hop);
    ip6.extend_from_slice(&icmp);
    ethernet(Mac([0x33, 0x33, 0, 0, 0, 0x16]), src, ETH_P_IPV6, &ip6)
}

/// What a received Ethernet frame (no vnet header) means to the bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Arp(ArpFrame),
    /// An IPv6 neighbour solicitation or advertisement.
    Nd(NdFrame),
    /// Any other well-formed frame, by its source MAC.
    Other {
        from: Mac,
    },
    /// Shorter than an Ethernet header, or ARP that does not parse.
    Malformed,
    /// The bond sent a broadcast through the slave (watched leaving, not received).
    Sent,
}

pub fn inspect(frame: &[u8]) -> Seen {
    let from = || Mac(frame[6..12].try_into().unwrap_or_default());
    match (frame.get(12..14), parse_arp(frame, false)) {
        (_, Some(arp)) => Seen::Arp(arp),
        (Some([0x08, 0x06]), None) | (None, _) => Seen::Malformed,
        (Some(_), None) => match parse_nd(frame, false) {
            Some(nd) => Seen::Nd(nd),
            None => Seen::Other { from: from() },
        },
    }
}

/// The neighbour discovery fields of an Ethernet frame (no vnet header): IPv6 whose next
/// header is ICMPv6 (no extension headers, as the kernel's monitor reads it) of type NS or NA.
pub fn parse_nd(frame: &[u8], outgoing: bool) -> Option<NdFrame> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip6 = frame.get(14..14 + 40 + 4)?;
    if ethertype != ETH_P_IPV6 || ip6[0] >> 4 != 6 || ip6[6] != 58 {
        return None;
    }
    let kind = match ip6[40] {
        135 => NdKind::Solicitation,
        136 => NdKind::Advertisement,
        _ => return None,
    };
    let addr = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip6[o..o + 16]).unwrap_or_default());
    let sender_mac = Mac(frame[6..12].try_into().unwrap_or_default());
    Some(NdFrame { kind, sender_mac, source: addr(8), destination: addr(24), outgoing })
}

/// The ARP fields of an Ethernet frame (no vnet header), if it is an Ethernet/IPv4 ARP
/// with sane lengths. Anything else, however malformed, is simply not ARP.
pub fn parse_arp(frame: &[u8], outgoing: bool) -> Option<ArpFrame> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let p = frame.get(14..14 + 28)?;
    if ethertype != ETH_P_ARP || p[0..6] != [0, 1, 0x08, 0, 6, 4] {
        return None;
    }
    let mac = |r: std::ops::Range<usize>| Mac(p[r].try_into().unwrap_or([0; 6]));
    let ip = |o: usize| Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3]);
    let op = match u16::from_be_bytes([p[6], p[7]]) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        _ => return None,
    };
    Some(ArpFrame {
        op,
        sender_mac: mac(8..14),
        sender_ip: ip(14),
        target_mac: mac(18..24),
        target_ip: ip(24),
        outgoing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Mac = Mac([0x02, 0, 0, 0, 0, 1]);

    #[test]
    fn probes_parse_back() {
        let f = arp_probe(US, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 254));
        assert_eq!(&f[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        assert_eq!(&f[VNET_HDR_LEN..VNET_HDR_LEN + 6], &[0xff; 6]);
        let a = parse_arp(&f[VNET_HDR_LEN..], false).unwrap();
        assert_eq!(
            (a.op, a.sender_mac, a.sender_ip, a.target_ip),
            (ArpOp::Request, US, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 254))
        );
        let g = parse_arp(&gratuitous_arp(US, Ipv4Addr::new(10, 0, 0, 1))[VNET_HDR_LEN..], false).unwrap();
        assert_eq!(g.sender_ip, g.target_ip);
    }

    #[test]
    fn frames_are_told_apart() {
        let probe = arp_probe(US, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let eth = &probe[VNET_HDR_LEN..];
        assert!(matches!(inspect(eth), Seen::Arp(_)));
        assert_eq!(inspect(&eth[..20]), Seen::Malformed, "truncated ARP");
        assert_eq!(inspect(&eth[..10]), Seen::Malformed, "no Ethernet header");
        let mut ipv4 = eth.to_vec();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(inspect(&ipv4), Seen::Other { from: Mac(ipv4[6..12].try_into().unwrap()) });
    }

    #[test]
    fn garbage_is_not_arp() {
        let good = arp_probe(US, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let eth = &good[VNET_HDR_LEN..];
        for n in 0..eth.len() {
            assert!(parse_arp(&eth[..n], false).is_none(), "truncated to {n}");
        }
        let mut bad_len = eth.to_vec();
        bad_len[18] = 8; // hardware address length
        assert!(parse_arp(&bad_len, false).is_none());
        let mut bad_op = eth.to_vec();
        bad_op[21] = 9;
        assert!(parse_arp(&bad_op, false).is_none());
    }

    #[test]
    fn learning_frames_are_rarp_from_the_mac() {
        let f = &learning_frame(US, None)[VNET_HDR_LEN..];
        assert_eq!((&f[..6], &f[6..12], &f[12..14]), (&[0xff; 6][..], &US.0[..], &[0x80, 0x35][..]));
        assert_eq!((f.len(), &f[20..22], &f[22..28], &f[32..38]), (42, &[0, 3][..], &US.0[..], &US.0[..]));
        let t = &learning_frame(US, Some(100))[VNET_HDR_LEN..];
        assert_eq!((&t[12..18], t.len()), (&[0x81, 0x00, 0, 100, 0x80, 0x35][..], 46));
    }

    /// Each checksum verifies (sums to zero over what it covers), as the receiving stack
    /// checks it.
    #[test]
    fn membership_reports_carry_good_checksums() {
        let g = [Ipv4Addr::new(239, 1, 2, 3)];
        let f = &igmp_report(US, Ipv4Addr::new(10, 0, 0, 1), &g)[VNET_HDR_LEN..];
        assert_eq!((&f[..6], &f[12..14]), (&[0x01, 0x00, 0x5e, 0, 0, 0x16][..], &[0x08, 0x00][..]));
        let (ip, igmp) = f[14..].split_at(24);
        assert_eq!((checksum(&[ip]), checksum(&[igmp])), (0, 0));
        assert_eq!((igmp[0], &igmp[6..8], &igmp[12..16]), (0x22, &[0, 1][..], &g[0].octets()[..]));
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let group: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
        let f = &mld_report(US, src, &[group])[VNET_HDR_LEN..];
        let icmp = &f[14 + 40 + 8..];
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
        let len = (icmp.len() as u32).to_be_bytes();
        assert_eq!(checksum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, 58], icmp]), 0);
        assert_eq!((icmp[0], &icmp[12..28]), (143, &group.octets()[..]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// Any bytes at all: an ARP frame or not, never a panic. Frames that start like ARP
        /// are the interesting ones, so half the cases do.
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80), arp_like: bool) {
            if arp_like && bytes.len() > 20 {
                bytes[12..20].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
            }
            if let Some(a) = parse_arp(&bytes, false) {
                proptest::prop_assert!(bytes.len() >= 42);
                proptest::prop_assert!(matches!(a.op, ArpOp::Request | ArpOp::Reply));
            }
        }
    }

    /// The probe as a peer's stack reads it: to the target's solicited-node group at the
    /// link and IP layers, a good checksum, our MAC in the option only when we have a source.
    #[test]
    fn neighbour_solicitations_are_well_formed_and_parse_back() {
        let (source, target): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::254".parse().unwrap());
        let f = &ns_probe(US, source, target)[VNET_HDR_LEN..];
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0x02, 0x54]);
        let (ip6, icmp) = f[14..].split_at(40);
        assert_eq!(
            (ip6[6], ip6[7], &ip6[24..40]),
            (58, 255, &"ff02::1:ff00:254".parse::<Ipv6Addr>().unwrap().octets()[..])
        );
        let len = (icmp.len() as u32).to_be_bytes();
        assert_eq!(checksum(&[&ip6[8..24], &ip6[24..40], &len, &[0, 0, 0, 58], icmp]), 0);
        assert_eq!(
            (icmp[0], &icmp[8..24], &icmp[24..26], &icmp[26..32]),
            (135, &target.octets()[..], &[1, 1][..], &US.0[..])
        );
        let nd = parse_nd(f, false).unwrap();
        assert_eq!((nd.kind, nd.source, nd.destination), (NdKind::Solicitation, source, solicited_node(target)));
        assert_eq!(ns_probe(US, Ipv6Addr::UNSPECIFIED, target).len(), VNET_HDR_LEN + 14 + 40 + 24, "no option from ::");
        assert!(matches!(inspect(f), Seen::Nd(NdFrame { sender_mac: US, .. })));
        let na = &unsolicited_na(US, source)[VNET_HDR_LEN..];
        assert_eq!(parse_nd(na, false).map(|n| n.kind), Some(NdKind::Advertisement));
        for n in 0..f.len() {
            assert!(n >= 58 || parse_nd(&f[..n], false).is_none(), "truncated to {n}");
        }
    }

    #[test]
    fn neighbour_advertisement_checksum_verifies() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let f = unsolicited_na(US, ip);
        let ip6 = &f[VNET_HDR_LEN + 14..];
        assert_eq!(ip6[6], 58);
        let icmp = &ip6[40..];
        assert_eq!((icmp[0], icmp[4]), (136, 0x20));
        let len = (icmp.len() as u32).to_be_bytes();
        // A correct checksum makes the sum over pseudo-header and message come out as zero.
        assert_eq!(checksum(&[&ip6[8..24], &ip6[24..40], &len, &[0, 0, 0, 58], icmp]), 0);
        assert_eq!(&icmp[26..32], &US.0);
    }
}
