//! A slave's AF_PACKET socket: it sees every frame the slave receives (before tc ingress
//! redirects or drops it) and sends the frames rbond builds itself, both with virtio-net
//! headers. Memberships it asks for (all multicast, promiscuous mode, addresses) last as long
//! as the socket: the kernel drops them when it closes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::packet;
pub use crate::sys::packet::Membership;

pub struct SlaveSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl SlaveSocket {
    pub fn open(ifindex: u32) -> io::Result<SlaveSocket> {
        Ok(SlaveSocket { fd: packet::open(ifindex, true)?, ifindex })
    }

    /// A socket a predecessor opened, handed over.
    pub fn from_fd(fd: OwnedFd, ifindex: u32) -> SlaveSocket {
        SlaveSocket { fd, ifindex }
    }

    /// Only the frames the monitors look at reach this socket (ARP and IPv6 neighbour
    /// discovery), for when the kernel forwards the traffic and the daemon only watches.
    pub fn monitor_only(&self) -> io::Result<()> {
        let code = [
            libc::sock_filter { code: 0x28, jt: 0, jf: 0, k: 12 }, // ldh [12]: the ethertype
            libc::sock_filter { code: 0x15, jt: 6, jf: 0, k: 0x0806 }, // ARP: accept
            libc::sock_filter { code: 0x15, jt: 0, jf: 4, k: 0x86dd }, // not IPv6: drop
            libc::sock_filter { code: 0x30, jt: 0, jf: 0, k: 20 }, // ldb [20]: next header
            libc::sock_filter { code: 0x15, jt: 0, jf: 2, k: 58 }, // not ICMPv6: drop
            libc::sock_filter { code: 0x30, jt: 0, jf: 0, k: 54 }, // ldb [54]: ICMPv6 type
            libc::sock_filter { code: 0x35, jt: 1, jf: 0, k: 133 }, // ND and MLD (133+): accept
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 },  // drop
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0004_0000 }, // accept
        ];
        packet::attach_filter(self.fd.as_fd(), &code)
    }

    /// A second descriptor of the same socket.
    pub fn try_clone(&self) -> io::Result<SlaveSocket> {
        Ok(SlaveSocket { fd: self.fd.try_clone()?, ifindex: self.ifindex })
    }

    /// Shares the slave's frames with its other sockets that joined, a flow's frames all
    /// going to one socket (the group is named by the slave's ifindex).
    pub fn join_lanes(&self) -> io::Result<()> {
        packet::join_fanout(self.fd.as_fd(), self.ifindex as u16)
            .map_err(|e| io::Error::new(e.kind(), format!("join the packet fanout group {}: {e}", self.ifindex as u16)))
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        packet::send(self.fd.as_fd(), frame)
    }

    pub fn membership(&self, what: Membership, add: bool) -> io::Result<()> {
        packet::membership(self.fd.as_fd(), self.ifindex, what, add)
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl AsFd for SlaveSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
