//! Waiting and dispatching: one epoll set holds every descriptor under a token that says
//! whose it is (signals, netlink, the control socket and its clients, the datapath's
//! sockets), so readiness maps straight back to its owner.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rbond_core::{Command, Input, Instant, Ipv4Cidr, Ipv6Cidr, Level};

use super::{Daemon, now};
use crate::control::server::{ClientId, Server};
use crate::datapath::{Datapath, Seen, Source};
use crate::net::watch::{LinkEvent, Watch};
use crate::sys;

/// Whose a ready descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Signals,
    Watch,
    Listener,
    Client(ClientId),
    Datapath(u32),
}

const LANES_SOURCE: u32 = 0;
/// No interface has this index.
const SENT_SOURCE: u32 = u32::MAX;

impl Token {
    fn encode(self) -> u64 {
        match self {
            Token::Signals => 0,
            Token::Watch => 1,
            Token::Listener => 2,
            Token::Client(id) => (1 << 62) | id,
            Token::Datapath(i) => (2 << 62) | u64::from(i),
        }
    }

    fn decode(v: u64) -> Token {
        match v >> 62 {
            1 => Token::Client(v & !(3 << 62)),
            2 => Token::Datapath(v as u32),
            _ => [Token::Signals, Token::Watch, Token::Listener][(v as usize).min(2)],
        }
    }

    fn of_source(s: Source) -> Token {
        match s {
            Source::Lanes => Token::Datapath(LANES_SOURCE),
            Source::Slave(i) => Token::Datapath(i),
            Source::Sent => Token::Datapath(SENT_SOURCE),
        }
    }

    fn source(i: u32) -> Source {
        match i {
            LANES_SOURCE => Source::Lanes,
            SENT_SOURCE => Source::Sent,
            _ => Source::Slave(i),
        }
    }
}

/// The daemon's event sources besides the datapath.
pub(super) struct Io {
    pub(super) control: Server,
    watch: Watch,
    signals: SignalFd,
    /// When the slaves whose carrier events may lag are next read (ETHTOOL_GLINK).
    next_link_poll: Instant,
}

/// The epoll set and what is in it.
pub(super) struct Poller {
    epoll: Epoll,
    /// token → (descriptor, events).
    registered: BTreeMap<Token, (RawFd, EpollFlags)>,
    /// A wait that failed, reported once until one succeeds again.
    wait_failing: bool,
}

/// SIGTERM, SIGINT and SIGHUP as a readable descriptor. Blocked signals stay blocked across
/// exec, so one arriving during a restart in place waits for the successor.
fn signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

impl Io {
    pub(super) fn open(control: Server) -> anyhow::Result<Io> {
        Ok(Io {
            control,
            watch: Watch::open().map_err(|e| anyhow::anyhow!("rtnetlink events: {e}"))?,
            signals: signals()?,
            next_link_poll: Instant::ZERO,
        })
    }

    /// Every descriptor to wait on: ours, the datapath's, and the control socket's clients
    /// (for writing too while they have output waiting).
    fn wanted<'a>(&'a self, datapath: &'a dyn Datapath) -> Vec<(Token, BorrowedFd<'a>, EpollFlags)> {
        let input = EpollFlags::EPOLLIN;
        let mut v = Vec::with_capacity(8);
        v.extend([
            (Token::Signals, self.signals.as_fd(), input),
            (Token::Watch, self.watch.as_fd(), input),
            (Token::Listener, self.control.listener(), input),
        ]);
        v.extend(datapath.sources().into_iter().map(|(s, fd)| (Token::of_source(s), fd, input)));
        for (id, fd, pending) in self.control.clients() {
            v.push((Token::Client(id), fd, if pending { input | EpollFlags::EPOLLOUT } else { input }));
        }
        v
    }
}

impl Poller {
    pub(super) fn open() -> anyhow::Result<Poller> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        Ok(Poller { epoll, registered: BTreeMap::new(), wait_failing: false })
    }

    /// Waits for events. A failing wait pauses instead of returning at once (which would
    /// spin the loop), and says why the first time only.
    fn wait(&mut self, events: &mut [EpollEvent], timeout: EpollTimeout) -> (usize, Option<nix::errno::Errno>) {
        match self.epoll.wait(events, timeout) {
            Ok(n) => {
                self.wait_failing = false;
                (n, None)
            }
            Err(nix::errno::Errno::EINTR) => (0, None),
            Err(e) => {
                std::thread::sleep(Duration::from_millis(10));
                (0, (!std::mem::replace(&mut self.wait_failing, true)).then_some(e))
            }
        }
    }

    /// Makes the epoll set hold exactly `wanted`. Gone entries go before new ones come: a
    /// closed descriptor's number may already belong to a new one, which is not in the set
    /// yet, so removing the old number cannot touch it.
    fn sync(&mut self, wanted: Vec<(Token, BorrowedFd<'_>, EpollFlags)>) {
        // The usual wake-up changes nothing: found out without building anything.
        let same = wanted.len() == self.registered.len()
            && wanted.iter().all(|(t, fd, f)| self.registered.get(t) == Some(&(fd.as_raw_fd(), *f)));
        if same {
            return;
        }
        let want: BTreeMap<Token, (RawFd, EpollFlags)> =
            wanted.iter().map(|(t, fd, f)| (*t, (fd.as_raw_fd(), *f))).collect();
        let gone: Vec<(Token, RawFd)> =
            self.registered.iter().filter(|(t, v)| want.get(t) != Some(v)).map(|(t, (fd, _))| (*t, *fd)).collect();
        for (t, fd) in gone {
            sys::epoll_forget(self.epoll.0.as_fd(), fd);
            self.registered.remove(&t);
        }
        for (t, fd, flags) in wanted {
            if !self.registered.contains_key(&t) && self.epoll.add(fd, EpollEvent::new(flags, t.encode())).is_ok() {
                self.registered.insert(t, (fd.as_raw_fd(), flags));
            }
        }
    }
}

impl Daemon {
    /// Milliseconds until something is due: the engine's next deadline, the next link read
    /// or the supervisor's next ping, a second at most.
    fn timeout(&self) -> Duration {
        let now = now();
        let polling = self.members.iter().any(|m| m.poll_link);
        let next = [
            self.engine.poll_timeout(),
            Some(self.io.next_link_poll).filter(|_| polling),
            self.life.next_ping,
            self.announcer.due(),
        ];
        let Some(at) = next.into_iter().flatten().min() else { return Duration::from_secs(1) };
        // Rounded up to whole milliseconds: a deadline less than one away must not become a
        // zero wait, which would spin until it arrives.
        let ms = at.saturating_since(now).as_micros().div_ceil(1000).min(1000);
        Duration::from_millis(ms as u64)
    }

    /// One wake-up: wait for something, then serve everything that is ready.
    pub(super) fn turn(&mut self) {
        let timeout = EpollTimeout::try_from(self.timeout()).unwrap_or(EpollTimeout::NONE);
        let Daemon { poller, io, datapath, .. } = self;
        poller.sync(io.wanted(datapath.as_ref()));
        let mut events = [EpollEvent::empty(); 32];
        let (n, failure) = self.poller.wait(&mut events, timeout);
        if let Some(e) = failure {
            self.note(Level::Warning, format!("{}: waiting for events failed: {e}", self.name));
        }
        for ev in &events[..n] {
            self.dispatch(Token::decode(ev.data()));
        }
        self.io.control.reap();
        self.timers();
        self.apply_actions();
    }

    fn dispatch(&mut self, token: Token) {
        match token {
            Token::Signals => {
                if let Ok(Some(sig)) = self.io.signals.read_signal() {
                    self.life.stop = Some(format!("{}: stopping on signal {}", self.name, sig.ssi_signo));
                }
            }
            Token::Watch => {
                let events = self.io.watch.drain();
                for ev in &events.links {
                    self.link_event(ev);
                }
                if events.addresses.contains(&self.index) {
                    self.read_addresses();
                }
                // Only routes through bond0: a host with a full routing table changes others
                // all the time, and each look is a dump of the table.
                if events.routes.contains(&self.index) {
                    self.read_gateways();
                }
            }
            Token::Listener => self.io.control.accept(),
            Token::Client(id) => self.serve(id),
            Token::Datapath(i) => {
                let mut seen: Vec<(u32, Seen)> = Vec::new();
                // Other traffic matters to the ARP monitor, and to the standby check when it
                // comes from the bond (flooded back in through a backup).
                let arp_monitor = self.engine.options().arp_interval() > 0;
                let bond_mac = self.engine.mac();
                self.datapath.on_readable(Token::source(i), &mut |slave, what| match what {
                    Seen::Other { from } if !arp_monitor && Some(from) != bond_mac => {}
                    _ => seen.push((slave, what)),
                });
                for (slave, what) in seen {
                    self.frame_seen(slave, what);
                }
            }
        }
    }

    fn link_event(&mut self, ev: &LinkEvent) {
        if ev.link.index != self.index {
            return self.slave_link_event(ev);
        }
        if ev.removed {
            self.life.stop = Some(format!("{}: the bond device was deleted; restoring slaves and exiting", self.name));
            return;
        }
        let cmd = if ev.link.up { Command::Up } else { Command::Down };
        let _ = self.engine.handle(now(), Input::Command(cmd));
        self.bond_changed(ev.link.clone());
    }

    fn timers(&mut self) {
        let now = now();
        // Links are read when the engine has work due (so its pass sees the truth) and at
        // least every miimon: one wake-up serves both.
        let engine_due = self.engine.poll_timeout().is_some_and(|t| t <= now);
        if engine_due || now >= self.io.next_link_poll {
            self.poll_links();
            let miimon = self.engine.options().miimon();
            let every = if miimon > 0 { u64::from(miimon) } else { 100 };
            self.io.next_link_poll = now + Duration::from_millis(every);
        }
        self.engine.handle_timeout(now);
        self.announce_due(now);
        if let Some(at) = self.life.next_ping.filter(|at| *at <= now) {
            self.notify.watchdog();
            self.life.next_ping = self.notify.watchdog_every.map(|every| at.max(now) + every);
        }
    }

    /// bond0's addresses, for the ARP and NS monitors' probe sources and validation. An IPv6
    /// address counts once it is ready: the kernel never sends from a tentative one.
    pub(super) fn read_addresses(&mut self) {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for a in self.net.addresses(self.index).unwrap_or_default() {
            match a.addr {
                IpAddr::V4(ip) => v4.push(Ipv4Cidr::new(ip, a.prefix)),
                IpAddr::V6(ip) if a.is_ready() => v6.push(Ipv6Cidr::new(ip, a.prefix)),
                IpAddr::V6(_) => {}
            }
        }
        let _ = self.engine.handle(now(), Input::Addresses(v4));
        let _ = self.engine.handle(now(), Input::Ipv6Addresses(v6));
    }

    /// bond0's gateways, which the standby probes ask for when there is no ARP or NS target.
    pub(super) fn read_gateways(&mut self) {
        let gateways = self.net.gateways(self.index).unwrap_or_default();
        let _ = self.engine.handle(now(), Input::Gateways(gateways));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait that fails (here: on something that is no epoll set) pauses, and says so once.
    #[test]
    fn a_failing_wait_does_not_spin() {
        let fd: std::os::fd::OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let mut p = Poller { epoll: Epoll(fd), registered: BTreeMap::new(), wait_failing: false };
        let mut events = [EpollEvent::empty(); 4];
        let start = std::time::Instant::now();
        let (_, first) = p.wait(&mut events, EpollTimeout::ZERO);
        let (_, second) = p.wait(&mut events, EpollTimeout::ZERO);
        assert!(start.elapsed() >= Duration::from_millis(20), "paused each time: {:?}", start.elapsed());
        assert_eq!((first, second), (Some(nix::errno::Errno::EINVAL), None), "said once");
    }

    #[test]
    fn tokens_round_trip() {
        for t in [
            Token::Signals,
            Token::Watch,
            Token::Listener,
            Token::Client(0),
            Token::Client(77),
            Token::Datapath(0),
            Token::Datapath(4_000_000),
        ] {
            assert_eq!(Token::decode(t.encode()), t);
        }
    }
}
