//! Events from rtnetlink: links that change (carrier, MTU, promiscuity, renames), links that
//! go away, and address and IPv4 route changes (which only say "look again").

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use libc::{RTM_DELLINK, RTM_NEWLINK};
use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::link::Link;
use super::rtnl::split;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub link: Link,
    /// Deleted, or moved to another namespace.
    pub removed: bool,
}

/// What one read of the socket brought.
#[derive(Debug, Default)]
pub struct Events {
    pub links: Vec<LinkEvent>,
    /// Interfaces whose addresses changed.
    pub addresses: Vec<u32>,
    /// Interfaces an IPv4 route that changed goes out of.
    pub routes: Vec<u32>,
}

pub struct Watch {
    sock: Socket,
    buf: Vec<u8>,
}

/// A bridge's own messages about its ports (family AF_BRIDGE) speak of the port, not the
/// device: a port leaving its bridge is an RTM_DELLINK of that family, and must not read as
/// the device's deletion.
fn about_the_device(family: AddressFamily) -> bool {
    family != AddressFamily::Bridge
}

impl Watch {
    pub fn open() -> io::Result<Watch> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let groups = libc::RTMGRP_LINK
            | libc::RTMGRP_IPV4_IFADDR
            | libc::RTMGRP_IPV6_IFADDR
            | libc::RTMGRP_IPV4_ROUTE
            | libc::RTMGRP_IPV6_ROUTE;
        sock.bind(&SocketAddr::new(0, groups as u32))?;
        sock.set_non_blocking(true)?;
        sock.set_rx_buf_sz(1 << 20)?;
        Ok(Watch { sock, buf: vec![0; 1 << 16] })
    }

    /// Every event waiting on the socket.
    pub fn drain(&mut self) -> Events {
        let mut out = Events::default();
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) if n > 0 => n,
                _ => return out,
            };
            for msg in split(&self.buf[..n]).filter_map(Result::ok) {
                let Ok(nl) = NetlinkBuffer::new_checked(msg) else { continue };
                match nl.message_type() {
                    // Link notices skip the general parse: see `Link::from_payload`.
                    kind @ (RTM_NEWLINK | RTM_DELLINK) => match Link::from_payload(nl.payload()) {
                        Ok((family, link)) if about_the_device(family) => {
                            out.links.push(LinkEvent { link, removed: kind == RTM_DELLINK })
                        }
                        _ => {}
                    },
                    _ => out.note(msg),
                }
            }
        }
    }
}

impl Events {
    /// An address or route notice: only which interface it concerns is kept.
    fn note(&mut self, msg: &[u8]) {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) else { return };
        let NetlinkPayload::InnerMessage(m) = msg.payload else { return };
        match m {
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
                self.addresses.push(a.header.index)
            }
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                self.routes.extend(super::route::out_of(&r))
            }
            _ => {}
        }
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
