//! Watching the bond's broadcasts leave through the active slave, for the standby check:
//! each should come back in through every backup in the same segment. A packet socket on the
//! active slave sees what leaves it (the kernel datapath's redirects and the userspace
//! datapath's writes alike, as taps see every transmit), filtered down to the broadcasts a
//! switch floods without exception: ARP to ff:ff:ff:ff:ff:ff and ICMPv6 to all-nodes.
//! (Neighbour solicitations go to groups a snooping switch may deliver to their member
//! only, so they are no evidence either way.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Seen, Source};
use crate::sys::packet;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of the frame's packet type.
const LOAD_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`.
const OUTGOING: u32 = 4;

#[derive(Default)]
pub struct SentWatch {
    sock: Option<(u32, OwnedFd)>,
    /// The previous slave's socket, closed once the failover is done: closing a packet
    /// socket waits for an RCU grace period (milliseconds), which a switch must not.
    retired: Option<OwnedFd>,
}

impl SentWatch {
    /// Watches `ifindex` from now on (nothing for `None`).
    pub fn follow(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        if self.sock.as_ref().map(|(i, _)| *i) == ifindex {
            return Ok(());
        }
        self.retired = self.sock.take().map(|(_, fd)| fd);
        let Some(i) = ifindex else { return Ok(()) };
        let fd = packet::open_filtered(i, &FILTER)
            .map_err(|e| io::Error::new(e.kind(), format!("watching the bond's broadcasts leave: {e}")))?;
        self.sock = Some((i, fd));
        Ok(())
    }

    /// Stops watching a slave that is let go.
    pub fn forget(&mut self, ifindex: u32) {
        if self.sock.as_ref().is_some_and(|(i, _)| *i == ifindex) {
            self.sock = None;
        }
    }

    /// The descriptor to wait on, as a datapath source.
    pub fn source(&self) -> Option<(Source, BorrowedFd<'_>)> {
        self.sock.as_ref().map(|(_, fd)| (Source::Sent, fd.as_fd()))
    }

    /// Reads what left since the last call; tells `seen` once if any broadcast did.
    pub fn drain(&mut self, seen: &mut dyn FnMut(u32, Seen)) {
        self.retired = None;
        let Some((i, fd)) = self.sock.as_ref() else { return };
        let mut buf = [0u8; 64];
        let mut any = false;
        while let Ok(Some(_)) = packet::read(fd.as_fd(), &mut buf) {
            any = true;
        }
        if any {
            seen(*i, Seen::Sent);
        }
    }
}

/// Outgoing ARP to the broadcast address, or ICMPv6 to 33:33:00:00:00:01; 64 bytes of it.
const FILTER: [libc::sock_filter; 17] = [
    op(0x20, 0, 0, LOAD_PKTTYPE), // 0: A = packet type
    op(0x15, 0, 13, OUTGOING),    // 1: not leaving: drop
    op(0x28, 0, 0, 4),            // 2: A = destination bytes 4-5
    op(0x15, 0, 4, 0xffff),       // 3: not ..:ff:ff: try all-nodes (8)
    op(0x20, 0, 0, 0),            // 4: A = destination bytes 0-3
    op(0x15, 0, 9, 0xffff_ffff),  // 5: not broadcast: drop
    op(0x28, 0, 0, 12),           // 6: A = ethertype
    op(0x15, 8, 7, 0x0806),       // 7: ARP: accept, else drop
    op(0x15, 0, 6, 0x0001),       // 8: not ..:00:01: drop
    op(0x20, 0, 0, 0),            // 9: A = destination bytes 0-3
    op(0x15, 0, 4, 0x3333_0000),  // 10: not 33:33:00:00: drop
    op(0x28, 0, 0, 12),           // 11: A = ethertype
    op(0x15, 0, 2, 0x86dd),       // 12: not IPv6: drop
    op(0x30, 0, 0, 20),           // 13: A = next header
    op(0x15, 1, 0, 58),           // 14: ICMPv6: accept, else drop
    op(0x06, 0, 0, 0),            // 15: drop
    op(0x06, 0, 0, 64),           // 16: accept 64 bytes
];

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}
