//! The userspace datapath: the daemon copies frames between bond0's TAP and the active slave's
//! packet socket, a batch per system call, virtio-net headers and all (so offloaded
//! checksums and 64 KiB GSO frames cross unchanged). A BPF program on each slave's ingress
//! keeps the host stack from also taking the slave's frames; packet sockets see them first.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::bond_device::BondDevice;
use super::hook::{AttachMode, Hook, Hooks};
use super::kernel::programs;
use super::ports::Ports;
use super::slave_socket::{Membership, SlaveSocket};
use super::{Datapath, Kind, Port, Seen, Source, slave_fd_name};
use crate::keep::Kept;
use crate::net::frames::{self, VNET_HDR_LEN};
use crate::sys::bpf;

pub mod batch;

use batch::{Batch, SLOTS};

/// Batches moved per descriptor per wake-up (64 frames), so one busy link cannot starve
/// the rest.
const PER_WAKEUP: usize = 64 / SLOTS;
/// Batches moved from a descriptor about to close: all it holds (8,192 frames, more than a
/// 4 MiB socket buffer keeps of the smallest), yet bounded, so that a flood still arriving
/// cannot hold the daemon there.
const ALL: usize = 8192 / SLOTS;

pub struct UserspaceDatapath {
    /// bond0's TAP: its frames and its carrier.
    tap: BondDevice,
    drop_prog: OwnedFd,
    hooks: Hooks,
    /// The slaves, the drop program on each one's ingress.
    ports: Ports,
    active: Option<u32>,
    /// `all_slaves_active`: backups' frames reach bond0 too.
    deliver_backups: bool,
    kept: Kept,
    batch: Batch,
}

impl UserspaceDatapath {
    pub fn open(
        tap: BondDevice,
        deliver_backups: bool,
        mut kept: Kept,
        mode: AttachMode,
    ) -> io::Result<UserspaceDatapath> {
        let drop_prog = match kept.take_bpf("drop") {
            Some(prog) => prog,
            None => {
                let prog = bpf::load_tc_program("rbond_drop", &programs::drop_all())?;
                kept.keep_bpf("drop", prog.as_fd())?;
                prog
            }
        };
        Ok(UserspaceDatapath {
            tap,
            drop_prog,
            hooks: Hooks::new(mode)?,
            ports: Ports::default(),
            active: None,
            deliver_backups,
            kept,
            batch: Batch::default(),
        })
    }

    /// bond0 → the active slave, up to `batches` batches. With no active slave frames are
    /// dropped.
    fn pump_bond(&mut self, batches: usize) {
        let out = self.active.and_then(|a| self.ports.get(a));
        for _ in 0..batches {
            self.batch.clear();
            while !self.batch.is_full() {
                let Ok(Some(n)) = self.tap.read(self.batch.slot()) else { break };
                self.batch.commit(n);
            }
            if let Some(s) = out.filter(|_| !self.batch.is_empty()) {
                let _ = self.batch.send(s.sock.as_fd());
            }
            if !self.batch.is_full() {
                break; // the TAP is drained
            }
        }
    }

    /// A slave → bond0 if it is the active one; the monitors hear about every frame.
    fn pump_slave(&mut self, ifindex: u32, seen: &mut dyn FnMut(u32, Seen)) {
        let Some(s) = self.ports.get(ifindex) else { return };
        let deliver = self.deliver_backups || self.active == Some(ifindex);
        pump(&mut self.batch, &self.tap, &s.sock, deliver, PER_WAKEUP, seen);
    }
}

impl Datapath for UserspaceDatapath {
    fn kind(&self) -> Kind {
        Kind::Userspace
    }

    fn describe(&self) -> String {
        "userspace (TAP and packet sockets)".into()
    }

    fn attach_mode(&self) -> AttachMode {
        self.hooks.mode()
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.tap.set_carrier(up)
    }

    fn attach(&mut self, port: &Port) -> io::Result<()> {
        let i = port.ifindex;
        let sock = Ports::socket(&mut self.kept, i, SlaveSocket::open)?;
        let pin = slave_fd_name("ingress", i);
        let prog = self.drop_prog.as_fd();
        let hooked = match self.hooks.hook(&mut self.kept, &pin, "rbond_drop", prog, i, Hook::Ingress) {
            // A kernel before tcx (6.6) refuses the attach type: cls_bpf from now on.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.hooks.mode() == AttachMode::Tcx => {
                self.hooks = Hooks::new(AttachMode::Tc)?;
                self.hooks.hook(&mut self.kept, &pin, "rbond_drop", prog, i, Hook::Ingress)?
            }
            other => other?,
        };
        self.ports.insert(i, sock, hooked);
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) {
        // Frames taken off the wire until the hook is off wait in the socket: a slave still
        // active (a converted one handing the host back) delivers them before it closes. And
        // what the host handed bond0 while it was busy giving the host back goes out first.
        let deliver = self.active == Some(ifindex);
        if deliver {
            self.pump_bond(ALL);
        }
        if let Some(sock) = self.ports.detach(&mut self.hooks, &self.kept, ifindex) {
            pump(&mut self.batch, &self.tap, &sock, deliver, ALL, &mut |_, _| {});
        }
        if self.active == Some(ifindex) {
            self.active = None;
        }
    }

    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        self.active = ifindex;
        self.ports.follow(ifindex)
    }

    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.ports.send(ifindex, frame)
    }

    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.ports.membership(ifindex, what, add)
    }

    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)> {
        std::iter::once((Source::Bond, self.tap.as_fd())).chain(self.ports.sources()).collect()
    }

    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen)) {
        match source {
            Source::Bond => {
                self.pump_bond(PER_WAKEUP);
                // Replies and acknowledgements to what just went out are often in by now
                // (always on a veth, whose peer answers within the send): read them in
                // this wake-up rather than after another wait.
                if let Some(active) = self.active {
                    self.pump_slave(active, seen);
                }
            }
            Source::Slave(i) => self.pump_slave(i, seen),
            Source::Sent => self.ports.drain_sent(seen),
        }
    }

    fn handover(&self) -> Vec<(String, BorrowedFd<'_>)> {
        let mut fds = vec![("tap".to_string(), self.tap.as_fd())];
        self.ports.handover(&mut fds);
        fds
    }

    fn remove(&mut self) {
        self.ports.detach_all(&mut self.hooks, &self.kept);
        self.kept.forget_all();
        self.active = None;
    }
}

/// Frames from a slave's socket to bond0 (when `deliver`), up to `batches` batches; the
/// monitors hear about every frame.
fn pump(
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
