//! Events from rtnetlink: carrier changes, renames, devices that go away, and address
//! changes (which only say "look again").

use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub index: u32,
    pub name: Option<String>,
    pub admin_up: bool,
    pub lower_up: bool,
    /// Deleted, or moved to another namespace.
    pub removed: bool,
}

pub struct LinkWatch {
    sock: Socket,
    buf: Vec<u8>,
}

/// What one read of the socket brought.
#[derive(Debug, Default)]
pub struct Events {
    pub links: Vec<LinkEvent>,
    /// Some interface gained or lost an address.
    pub addresses: bool,
}

fn event(msg: &LinkMessage, removed: bool) -> LinkEvent {
    let name = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    });
    LinkEvent {
        index: msg.header.index,
        name,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
        removed,
    }
}

impl LinkWatch {
    pub fn open() -> io::Result<LinkWatch> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let groups = libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR;
        sock.bind(&SocketAddr::new(0, groups as u32))?;
        sock.set_non_blocking(true)?;
        Ok(LinkWatch { sock, buf: vec![0; 1 << 16] })
    }

    pub fn raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Every event waiting on the socket.
    pub fn drain(&mut self) -> Events {
        let mut out = Events::default();
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) if n > 0 => n,
                _ => return out,
            };
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n]) else { break };
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => out.links.push(event(&l, false)),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => out.links.push(event(&l, true)),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_)) => {
                        out.addresses = true
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
    }
}
