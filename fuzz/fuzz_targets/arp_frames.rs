//! Frames off the wire: the ARP and neighbour discovery parsers take any bytes, and what they
//! accept is a packet whose addresses are where the wire format puts them.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((first, frame)) = data.split_first() else { return };
    let outgoing = first & 1 == 1;
    if let Some(arp) = rbond::net::frames::parse_arp(frame, outgoing) {
        assert!(frame.len() >= 42, "accepted a {} byte frame as ARP", frame.len());
        let at = |o: usize| Ipv4Addr::new(frame[o], frame[o + 1], frame[o + 2], frame[o + 3]);
        assert_eq!(arp.sender_ip, at(28));
        assert_eq!(arp.target_ip, at(38));
        assert_eq!(arp.outgoing, outgoing);
    }
    if let Some(nd) = rbond::net::frames::parse_nd(frame, outgoing) {
        assert!(frame.len() >= 58, "accepted a {} byte frame as neighbour discovery", frame.len());
        let at = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&frame[o..o + 16]).unwrap());
        assert_eq!((nd.source, nd.destination), (at(22), at(38)));
        assert!(matches!(frame[54], 135 | 136));
        assert_eq!(nd.outgoing, outgoing);
    }
});
