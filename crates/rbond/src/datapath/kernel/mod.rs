//! The kernel datapath: frames never leave the kernel. bond0's egress is redirected to the
//! active slave, the active slave's ingress into bond0, and every other slave's ingress is
//! dropped, by two BPF programs reading one map (see `programs`). A failover is one map
//! write. The slaves' packet sockets only watch (ARP and neighbour discovery) and send the
//! frames rbond builds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::bond_device::BondDevice;
use super::hook::{AttachMode, Hook, Hooked, Hooks};
use super::ports::Ports;
use super::slave_socket::{Membership, SlaveSocket};
use super::userspace::batch::Batch;
use super::userspace::lanes::pump_bond;
use super::{Datapath, Kind, Port, Seen, Source, slave_fd_name};
use crate::keep::Kept;
use crate::net::frames;
use crate::sys::bpf;

pub mod programs;

/// The pin of bond0's egress tcx link (the programs and map are pinned by their own names).
const BOND_LINK: &str = "link-bond_out";

pub struct KernelDatapath {
    /// bond0's TAP, for its carrier and for what waits in it while a live slave is hooked in
    /// (`settle`): the programs move its frames.
    tap: BondDevice,
    bond_index: u32,
    map: OwnedFd,
    slave_prog: OwnedFd,
    bond_prog: OwnedFd,
    /// `bond_out` on bond0's egress; gone once the datapath is removed.
    bond_hooked: Option<Hooked>,
    hooks: Hooks,
    /// The slaves, `slave_in` on each one's ingress.
    ports: Ports,
    /// What a predecessor left (handed over or pinned), taken as it is needed.
    kept: Kept,
    buf: Vec<u8>,
}

impl KernelDatapath {
    /// Carries on with the programs and map a predecessor left (handed over or pinned), or
    /// loads both programs; then puts `bond_out` on bond0's egress, hooked in `mode`.
    pub fn open(tap: BondDevice, bond_index: u32, mut kept: Kept, mode: AttachMode) -> io::Result<KernelDatapath> {
        let left = (kept.take_bpf("map"), kept.take_bpf("slave_in"), kept.take_bpf("bond_out"));
        let (map, slave_prog, bond_prog) = match left {
            (Some(map), Some(slave), Some(out))
                if bpf::map_get(map.as_fd(), programs::KEY_BOND as u32).ok() == Some(bond_index) =>
            {
                (map, slave, out)
            }
            _ => {
                // Whatever is left over belongs to another bond0 (or is half made): let it go.
                kept.forget_all();
                Self::load(bond_index, &kept)?
            }
        };
        let mut hooks = Hooks::new(mode)?;
        let bond_hooked = match Self::hook_bond(&mut hooks, &mut kept, bond_prog.as_fd(), bond_index) {
            Ok(h) => h,
            Err(e) => {
                kept.forget_all();
                return Err(e);
            }
        };
        Ok(KernelDatapath {
            tap,
            bond_index,
            map,
            slave_prog,
            bond_prog,
            bond_hooked: Some(bond_hooked),
            hooks,
            ports: Ports::default(),
            kept,
            buf: vec![0; 2048],
        })
    }

    /// `bond_out` on bond0's egress.
    fn hook_bond(hooks: &mut Hooks, kept: &mut Kept, prog: BorrowedFd<'_>, bond_index: u32) -> io::Result<Hooked> {
        hooks.hook(kept, BOND_LINK, "rbond_bond_out", prog, bond_index, Hook::Egress)
    }

    /// `slave_in` on a slave's ingress.
    fn hook_slave(&mut self, ifindex: u32) -> io::Result<Hooked> {
        let pin = slave_fd_name("ingress", ifindex);
        self.hooks.hook(&mut self.kept, &pin, "rbond_slave_in", self.slave_prog.as_fd(), ifindex, Hook::Ingress)
    }

    fn load(bond_index: u32, kept: &Kept) -> io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
        let map = bpf::array_map(2)?;
        bpf::map_set(map.as_fd(), programs::KEY_BOND as u32, bond_index)?;
        bpf::map_set(map.as_fd(), programs::KEY_ACTIVE as u32, 0)?;
        let fd = map.as_raw_fd();
        let slave_prog = bpf::load_tc_program("rbond_slave_in", &programs::slave_in(fd))?;
        let bond_prog = bpf::load_tc_program("rbond_bond_out", &programs::bond_out(fd))?;
        kept.keep_bpf("map", map.as_fd())?;
        kept.keep_bpf("slave_in", slave_prog.as_fd())?;
        kept.keep_bpf("bond_out", bond_prog.as_fd())?;
        Ok((map, slave_prog, bond_prog))
    }
}

impl Datapath for KernelDatapath {
    fn kind(&self) -> Kind {
        Kind::Kernel
    }

    fn describe(&self) -> String {
        format!("kernel (BPF redirects, {})", self.hooks.mode().describe())
    }

    fn attach_mode(&self) -> AttachMode {
        self.hooks.mode()
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.tap.set_carrier(up)
    }

    fn attach(&mut self, port: &Port) -> io::Result<()> {
        let i = port.ifindex;
        let sock = Ports::socket(&mut self.kept, &slave_fd_name("socket", i), i, |i| {
            let sock = SlaveSocket::open(i)?;
            sock.monitor_only()?;
            Ok(sock)
        })?;
        let hooked = if port.live && self.hooks.mode() == AttachMode::Tc { Hooked::Later } else { self.hook_slave(i)? };
        self.ports.insert(i, sock, Vec::new(), hooked);
        Ok(())
    }

    /// On cls_bpf a live slave's filter goes on now, with bond0's own filter off meanwhile.
    /// Making the clsact qdisc grafts it on an interface that is up, and the kernel does that
    /// by swapping the interface's transmit queues for one that drops (dev_deactivate): what
    /// the host sent through the slave just then was lost. Now the host sends through bond0,
    /// whose frames wait in its TAP until the qdisc is there, then leave through the slave's
    /// socket.
    fn settle(&mut self, ifindex: u32) -> io::Result<()> {
        if !self.ports.hook_waits(ifindex) {
            return Ok(());
        }
        if let Some(h) = self.bond_hooked.take() {
            self.hooks.unhook(&self.kept, BOND_LINK, self.bond_index, Hook::Egress, h);
        }
        let slave_hooked = self.hook_slave(ifindex);
        let mut batch = Batch::default();
        let out = self.ports.get(ifindex).map(|s| &s.sock);
        pump_bond(&mut batch, &self.tap, out, usize::MAX);
        let bond_hooked = Self::hook_bond(&mut self.hooks, &mut self.kept, self.bond_prog.as_fd(), self.bond_index);
        // And what came while the filter went back on.
        pump_bond(&mut batch, &self.tap, out, usize::MAX);
        // Whatever went on is kept, to come off with the bond or the slave.
        let bond_hooked = bond_hooked.map(|h| self.bond_hooked = Some(h));
        let slave_hooked = slave_hooked.map(|h| self.ports.set_hooked(ifindex, h));
        bond_hooked.and(slave_hooked)
    }

    fn detach(&mut self, ifindex: u32) {
        drop(self.ports.detach(&mut self.hooks, &self.kept, ifindex));
    }

    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        bpf::map_set(self.map.as_fd(), programs::KEY_ACTIVE as u32, ifindex.unwrap_or(0))?;
        self.ports.follow(ifindex)
    }

    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.ports.send(ifindex, frame)
    }

    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.ports.membership(ifindex, what, add)
    }

    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)> {
        self.ports.sources().collect()
    }

    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen)) {
        let ifindex = match source {
            Source::Slave(i) => i,
            Source::Sent => return self.ports.drain_sent(seen),
            Source::Lanes => return,
        };
        let Some(s) = self.ports.get(ifindex) else { return };
        // Only monitor frames pass the socket's filter; a handful per interval.
        for _ in 0..64 {
            let Ok(Some(n)) = crate::sys::packet::read(s.sock.as_fd(), &mut self.buf) else { break };
            seen(ifindex, frames::inspect(self.buf.get(frames::VNET_HDR_LEN..n).unwrap_or_default()));
        }
    }

    fn handover(&self) -> Vec<(String, BorrowedFd<'_>)> {
        let mut fds = vec![
            ("tap".to_string(), self.tap.as_fd()),
            ("map".to_string(), self.map.as_fd()),
            ("slave_in".to_string(), self.slave_prog.as_fd()),
            ("bond_out".to_string(), self.bond_prog.as_fd()),
        ];
        if let Some(Hooked::Link(link)) = &self.bond_hooked {
            fds.push((BOND_LINK.to_string(), link.as_fd()));
        }
        self.ports.handover(&mut fds);
        fds
    }

    fn remove(&mut self) {
        self.ports.detach_all(&mut self.hooks, &self.kept);
        if let Some(h) = self.bond_hooked.take() {
            self.hooks.unhook(&self.kept, BOND_LINK, self.bond_index, Hook::Egress, h);
        }
        self.kept.forget_all();
    }
}
