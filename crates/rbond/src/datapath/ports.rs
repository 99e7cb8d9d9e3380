//! The slaves as both datapaths hold them: each slave's packet sockets and its ingress hook,
//! and the watch on what leaves the active one. Taking a slave in differs (which program,
//! which socket filter); keeping, using, handing over and letting go of it does not.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::hook::{Hook, Hooked, Hooks};
use super::sent_watch::SentWatch;
use super::slave_socket::{Membership, SlaveSocket};
use super::{Seen, Source, lane_fd_name, slave_fd_name};
use crate::keep::Kept;

pub struct Slave {
    pub sock: SlaveSocket,
    /// The userspace datapath's other forwarding threads' sockets, by lane after the first.
    lanes: Vec<SlaveSocket>,
    /// The datapath's program on its ingress.
    hooked: Hooked,
}

#[derive(Default)]
pub struct Ports {
    slaves: BTreeMap<u32, Slave>,
    sent: SentWatch,
}

impl Ports {
    /// The slave's socket a predecessor left under `name`, else a new one made by `open`.
    pub fn socket(
        kept: &mut Kept,
        name: &str,
        ifindex: u32,
        open: fn(u32) -> io::Result<SlaveSocket>,
    ) -> io::Result<SlaveSocket> {
        match kept.take(name) {
            Some(fd) => Ok(SlaveSocket::from_fd(fd, ifindex)),
            None => open(ifindex),
        }
    }

    pub fn insert(&mut self, ifindex: u32, sock: SlaveSocket, lanes: Vec<SlaveSocket>, hooked: Hooked) {
        self.slaves.insert(ifindex, Slave { sock, lanes, hooked });
    }

    pub fn get(&self, ifindex: u32) -> Option<&Slave> {
        self.slaves.get(&ifindex)
    }

    /// Whether the slave's ingress hook is still to be made.
    pub fn hook_waits(&self, ifindex: u32) -> bool {
        self.slaves.get(&ifindex).is_some_and(|s| matches!(s.hooked, Hooked::Later))
    }

    pub fn set_hooked(&mut self, ifindex: u32, hooked: Hooked) {
        if let Some(s) = self.slaves.get_mut(&ifindex) {
            s.hooked = hooked;
        }
    }

    /// Lets a slave go: its ingress hook comes off (or its pin is forgotten, when it was never
    /// taken back), and its socket is handed back, to be read once more or closed.
    pub fn detach(&mut self, hooks: &mut Hooks, kept: &Kept, ifindex: u32) -> Option<SlaveSocket> {
        self.sent.forget(ifindex);
        let pin = slave_fd_name("ingress", ifindex);
        match self.slaves.remove(&ifindex) {
            Some(s) => {
                hooks.unhook(kept, &pin, ifindex, Hook::Ingress, s.hooked);
                Some(s.sock)
            }
            None => {
                kept.forget_bpf(&pin);
                None
            }
        }
    }

    /// Lets every slave go.
    pub fn detach_all(&mut self, hooks: &mut Hooks, kept: &Kept) {
        let all: Vec<u32> = self.slaves.keys().copied().collect();
        all.into_iter().for_each(|i| drop(self.detach(hooks, kept, i)));
    }

    /// Watches what leaves the new active slave.
    pub fn follow(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        self.sent.follow(ifindex)
    }

    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.slaves.get(&ifindex).map_or(Ok(()), |s| s.sock.send(frame))
    }

    pub fn membership(&self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.slaves.get(&ifindex).map_or(Ok(()), |s| s.sock.membership(what, add))
    }

    /// Every slave's socket, then the watch.
    pub fn sources(&self) -> impl Iterator<Item = (Source, BorrowedFd<'_>)> {
        let slaves = self.slaves.iter().map(|(i, s)| (Source::Slave(*i), s.sock.as_fd()));
        slaves.chain(self.sent_source())
    }

    /// The watch on what leaves the active slave, while there is one.
    pub fn sent_source(&self) -> Option<(Source, BorrowedFd<'_>)> {
        self.sent.source()
    }

    /// Serves the watch when it is readable.
    pub fn drain_sent(&mut self, seen: &mut dyn FnMut(u32, Seen)) {
        self.sent.drain(seen)
    }

    /// Each slave's socket and ingress link, by the names a successor takes them back under.
    pub fn handover<'a>(&'a self, fds: &mut Vec<(String, BorrowedFd<'a>)>) {
        for (i, s) in &self.slaves {
            let socket = slave_fd_name("socket", *i);
            let lanes = std::iter::once(&s.sock).chain(&s.lanes).enumerate();
            fds.extend(lanes.map(|(lane, sock)| (lane_fd_name(&socket, lane), sock.as_fd())));
            if let Hooked::Link(link) = &s.hooked {
                fds.push((slave_fd_name("ingress", *i), link.as_fd()));
            }
        }
    }
}
