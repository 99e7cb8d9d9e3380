//! Frames off the wire: the ARP parser takes any bytes, and what it accepts is an ARP packet
//! whose addresses are where the wire format puts them.
#![no_main]

use std::net::Ipv4Addr;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((first, frame)) = data.split_first() else { return };
    let Some(arp) = rbond::net::frames::parse_arp(frame, first & 1 == 1) else { return };
    assert!(frame.len() >= 42, "accepted a {} byte frame", frame.len());
    let at = |o: usize| Ipv4Addr::new(frame[o], frame[o + 1], frame[o + 2], frame[o + 3]);
    assert_eq!(arp.sender_ip, at(28));
    assert_eq!(arp.target_ip, at(38));
    assert_eq!(arp.outgoing, first & 1 == 1);
});
