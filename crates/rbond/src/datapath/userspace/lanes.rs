//! The userspace datapath's forwarding threads ("lanes"). Each keeps to a CPU of its own
//! (where there are enough) and reads its own queue of bond0's TAP and its own packet
//! socket on each slave.
//! The kernel gives each flow to one lane, by the hash of its addresses and ports, both ways
//! (bond0's queue selection and each slave's fanout group): a lane forwards in order, so a
//! flow's frames leave in the order they came, as through the kernel's own bond. Frames
//! spread by anything else (their size, the CPU sending them) would overtake each other, and
//! TCP takes frames out of order for losses: it retransmits and slows down.
//!
//! The control side (the daemon's thread) changes what the lanes read under a write lock,
//! which waits for any batch in flight, and hears what the monitors need through `told`.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::batch::{Batch, SLOTS};
use crate::datapath::bond_device::BondDevice;
use crate::datapath::slave_socket::SlaveSocket;
use crate::datapath::{RX_NOTE_EVERY, Seen};
use crate::net::frames::{self, VNET_HDR_LEN};
use crate::sys::cpu;

/// Batches moved per descriptor per wake-up (64 frames), so one busy link cannot starve
/// the rest.
pub const PER_WAKEUP: usize = 64 / SLOTS;
/// Epoll tokens besides slaves' ifindexes (no interface has index 0, or all ones).
const TAP: u64 = 0;
const STOP: u64 = u32::MAX as u64;
/// A lane idle this many milliseconds gives its buffers' memory back.
const IDLE_MS: u16 = 1000;

/// What the lanes read, changed only by the control side.
pub struct Wiring {
    /// Where bond0's frames leave and whose frames reach bond0.
    pub active: Option<u32>,
    /// `all_slaves_active`: backups' frames reach bond0 too.
    pub deliver_backups: bool,
    /// Each slave's sockets, by lane (second descriptors of the control side's).
    pub slaves: BTreeMap<u32, Vec<SlaveSocket>>,
}

struct Shared {
    wiring: RwLock<Wiring>,
    /// bond0's queues, by lane (second descriptors of the control side's).
    taps: Vec<BondDevice>,
    /// What the lanes saw that the monitors look at, and the count that wakes the daemon.
    heard: Mutex<Vec<(u32, Seen)>>,
    told: EventFd,
    /// Readable while the lanes are to stop.
    stop: EventFd,
}

pub struct Lanes {
    shared: Arc<Shared>,
    /// Each lane's wait set and CPU (none when the lanes cannot have a CPU each).
    polls: Vec<Arc<Epoll>>,
    cpus: Vec<Option<usize>>,
    running: Vec<JoinHandle<()>>,
}

impl Lanes {
    /// As many lanes as `taps` (bond0's queues), lane n on the n-th of `cpus` when there are
    /// as many; not started.
    pub fn open(taps: Vec<BondDevice>, cpus: &[usize], deliver_backups: bool) -> io::Result<Lanes> {
        let pinned = cpus.len() == taps.len();
        let cpus = (0..taps.len()).map(|l| cpus.get(l).copied().filter(|_| pinned)).collect();
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let mut polls = Vec::new();
        for tap in &taps {
            let poll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
            poll.add(tap, EpollEvent::new(EpollFlags::EPOLLIN, TAP))?;
            poll.add(stop.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, STOP))?;
            polls.push(Arc::new(poll));
        }
        let wiring = Wiring { active: None, deliver_backups, slaves: BTreeMap::new() };
        let shared = Shared {
            wiring: RwLock::new(wiring),
            taps,
            heard: Mutex::default(),
            told: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            stop,
        };
        Ok(Lanes { shared: Arc::new(shared), polls, cpus, running: Vec::new() })
    }

    pub fn count(&self) -> usize {
        self.polls.len()
    }

    /// Starts the lanes (again, after `pause`).
    pub fn resume(&mut self) -> io::Result<()> {
        if !self.running.is_empty() {
            return Ok(());
        }
        let _ = self.shared.stop.read();
        for (lane, (poll, cpu)) in self.polls.iter().zip(&self.cpus).enumerate() {
            let (shared, poll, cpu) = (self.shared.clone(), poll.clone(), *cpu);
            let run = move || {
                // Unpinned, the lane still forwards; only not always on the CPU it serves.
                let _ = cpu.map(cpu::pin_thread);
                run(lane, &shared, &poll);
            };
            self.running.push(std::thread::Builder::new().name(format!("rbond-lane{lane}")).spawn(run)?);
        }
        Ok(())
    }

    /// Stops the lanes, each after the batch it is moving: nothing read is left unsent.
    pub fn pause(&mut self) {
        let _ = self.shared.stop.write(1);
        for lane in self.running.drain(..) {
            let _ = lane.join();
        }
    }

    /// What the lanes read, for changing; lanes wait while it is held.
    pub fn wiring(&self) -> RwLockWriteGuard<'_, Wiring> {
        self.shared.wiring.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lanes start reading a slave's sockets, one each (a slave with fewer is read by the
    /// first lanes only). Its sockets must be in the wiring first.
    pub fn watch(&self, ifindex: u32, socks: &[SlaveSocket]) -> io::Result<()> {
        for (poll, sock) in self.polls.iter().zip(socks) {
            poll.add(sock, EpollEvent::new(EpollFlags::EPOLLIN, u64::from(ifindex)))?;
        }
        Ok(())
    }

    /// Lanes stop reading these sockets. Explicitly: their descriptors are second ones, so
    /// closing them would not take them out of the wait sets.
    pub fn unwatch(&self, socks: &[SlaveSocket]) {
        for (poll, sock) in self.polls.iter().zip(socks) {
            let _ = poll.delete(sock);
        }
    }

    /// Readable when the lanes have something for the monitors.
    pub fn told(&self) -> BorrowedFd<'_> {
        self.shared.told.as_fd()
    }

    /// Hands what the lanes heard to the monitors.
    pub fn hear(&self, seen: &mut dyn FnMut(u32, Seen)) {
        let _ = self.shared.told.read();
        let heard = std::mem::take(&mut *self.shared.heard.lock().unwrap_or_else(PoisonError::into_inner));
        heard.into_iter().for_each(|(slave, what)| seen(slave, what));
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.pause();
    }
}

/// One lane: waits on its queue and sockets and forwards what comes, until told to stop.
fn run(lane: usize, shared: &Shared, poll: &Epoll) {
    let tap = &shared.taps[lane];
    let mut batch = Batch::default();
    let mut events = [EpollEvent::empty(); 8];
    let mut heard = Heard::default();
    let mut timeout = EpollTimeout::NONE;
    loop {
        let n = match poll.wait(&mut events, timeout) {
            Ok(0) => {
                batch.release();
                timeout = EpollTimeout::NONE;
                continue;
            }
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        timeout = EpollTimeout::from(IDLE_MS);
        let wiring = shared.wiring.read().unwrap_or_else(PoisonError::into_inner);
        let active = wiring.active;
        let hear = &mut |slave, what| heard.hear(active, slave, what);
        for ev in &events[..n] {
            match ev.data() {
                STOP => return,
                TAP => {
                    let out = active.and_then(|a| wiring.slaves.get(&a));
                    pump_bond(&mut batch, tap, out.and_then(|s| s.get(lane).or(s.first())), PER_WAKEUP);
                    // Replies and acknowledgements to what just went out are often in by now
                    // (always on a veth, whose peer answers within the send): read them in
                    // this wake-up rather than after another wait.
                    if let Some(sock) = out.and_then(|s| s.get(lane)) {
                        pump(&mut batch, tap, sock, true, PER_WAKEUP, hear);
                    }
                }
                i => {
                    let i = i as u32;
                    let Some(sock) = wiring.slaves.get(&i).and_then(|s| s.get(lane)) else { continue };
                    let deliver = wiring.deliver_backups || active == Some(i);
                    pump(&mut batch, tap, sock, deliver, PER_WAKEUP, hear);
                }
            }
        }
        drop(wiring);
        heard.tell(shared);
    }
}

/// What a lane saw for the monitors, until it tells the daemon.
#[derive(Default)]
struct Heard {
    frames: Vec<(u32, Seen)>,
    /// When traffic on the active slave was last noted.
    noted: Option<Instant>,
}

impl Heard {
    fn hear(&mut self, active: Option<u32>, slave: u32, what: Seen) {
        if matches!(what, Seen::Other { .. }) && active == Some(slave) {
            let now = Instant::now();
            // Traffic on the active slave tells the monitors only that it receives.
            if self.noted.is_some_and(|t| now.duration_since(t) < RX_NOTE_EVERY) {
                return;
            }
            self.noted = Some(now);
        }
        self.frames.push((slave, what));
    }

    fn tell(&mut self, shared: &Shared) {
        if self.frames.is_empty() {
            return;
        }
        shared.heard.lock().unwrap_or_else(PoisonError::into_inner).append(&mut self.frames);
        let _ = shared.told.write(1);
    }
}

/// One of bond0's queues → `out`, up to `batches` batches; with no `out` frames are dropped.
pub fn pump_bond(batch: &mut Batch, tap: &BondDevice, out: Option<&SlaveSocket>, batches: usize) {
    for _ in 0..batches {
        batch.clear();
        while !batch.is_full() {
            let Ok(Some(n)) = tap.read(batch.slot()) else { break };
            batch.commit(n);
        }
        if let Some(s) = out.filter(|_| !batch.is_empty()) {
            let _ = batch.send(s.as_fd());
        }
        if !batch.is_full() {
            break; // the queue is drained
        }
    }
}

/// Frames from a slave's socket to bond0 (when `deliver`), up to `batches` batches; the
/// monitors hear about every frame.
pub fn pump(
    batch: &mut Batch,
    tap: &BondDevice,
    sock: &SlaveSocket,
    deliver: bool,
    batches: usize,
    seen: &mut dyn FnMut(u32, Seen),
) {
    for _ in 0..batches {
        let Ok(n) = batch.receive(sock.as_fd()) else { break };
        for frame in batch.frames() {
            let what = frames::inspect(frame.get(VNET_HDR_LEN..).unwrap_or_default());
            if deliver && what != Seen::Malformed {
                let _ = tap.write(frame);
            }
            seen(sock.ifindex(), what);
        }
        if n < SLOTS {
            break; // the socket is drained
        }
    }
}
