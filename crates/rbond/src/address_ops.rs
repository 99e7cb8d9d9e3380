//! Adding and removing interface addresses over rtnetlink: a slave's own addresses are taken
//! off while it serves the bond and given back when it leaves.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// An address with its prefix length, written `addr/prefix` in the state file.
pub fn parse(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

pub fn add(ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    change(ifindex, addr, prefix, true)
}

pub fn delete(ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    change(ifindex, addr, prefix, false)
}

fn change(ifindex: u32, addr: IpAddr, prefix: u8, add: bool) -> io::Result<()> {
    let mut msg = AddressMessage::default();
    msg.header.family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    msg.header.prefix_len = prefix;
    msg.header.index = ifindex;
    msg.attributes.push(AddressAttribute::Local(addr));
    msg.attributes.push(AddressAttribute::Address(addr));
    let (inner, extra) = if add {
        (RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (RouteNetlinkMessage::DelAddress(msg), 0)
    };
    let mut nl = NetlinkMessage::from(inner);
    nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | extra;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&buf, 0)?;
    let mut reply = vec![0u8; 8192];
    let n = sock.recv(&mut &mut reply[..], 0)?;
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[..n]).map(|m| m.payload) {
        Ok(NetlinkPayload::Error(e)) => match e.code {
            None => Ok(()),
            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
        },
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}
