//! The kernel datapath: frames never leave the kernel. bond0's egress is redirected to the
//! active slave, the active slave's ingress into bond0, and every other slave's ingress is
//! dropped, by two BPF programs reading one map (see `programs`). A failover is one map
//! write. The slaves' packet sockets only watch (ARP and neighbour discovery) and send the
//! frames rbond builds.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::bond_device::BondDevice;
use super::slave_socket::{Membership, SlaveSocket};
use super::{Datapath, Kind, Port, Seen, Source, slave_fd_name};
use crate::keep::Kept;
use crate::net::frames;
use crate::sys::bpf;

pub mod programs;

struct Slave {
    sock: SlaveSocket,
    /// The tcx link holding `slave_in` on its ingress; dropping it detaches the program.
    ingress: OwnedFd,
}

pub struct KernelDatapath {
    /// bond0's TAP, for its carrier only: the programs move its frames.
    tap: BondDevice,
    map: OwnedFd,
    slave_prog: OwnedFd,
    bond_out: OwnedFd,
    slaves: BTreeMap<u32, Slave>,
    /// Slaves' descriptors a predecessor handed over, taken as the slaves are attached again.
    kept: Kept,
    buf: Vec<u8>,
}

impl KernelDatapath {
    /// Loads both programs and puts `bond_out` on bond0's egress, or carries on with the ones
    /// a predecessor handed over.
    pub fn open(tap: BondDevice, bond_index: u32, mut kept: Kept) -> io::Result<KernelDatapath> {
        let handed = (kept.take("map"), kept.take("slave_in"), kept.take("bond_out"));
        let (map, slave_prog, bond_out) = match handed {
            (Some(map), Some(slave_prog), Some(bond_out)) => (map, slave_prog, bond_out),
            _ => {
                let map = bpf::array_map(2)?;
                bpf::map_set(map.as_fd(), programs::KEY_BOND as u32, bond_index)?;
                bpf::map_set(map.as_fd(), programs::KEY_ACTIVE as u32, 0)?;
                let fd = map.as_raw_fd();
                let slave_prog = bpf::load_tc_program("rbond_slave_in", &programs::slave_in(fd))?;
                let out = bpf::load_tc_program("rbond_bond_out", &programs::bond_out(fd))?;
                let bond_out = bpf::tcx_attach(out.as_fd(), bond_index, bpf::BPF_TCX_EGRESS)?;
                (map, slave_prog, bond_out)
            }
        };
        Ok(KernelDatapath { tap, map, slave_prog, bond_out, slaves: BTreeMap::new(), kept, buf: vec![0; 2048] })
    }

    fn new_slave(&self, port: &Port) -> io::Result<Slave> {
        let sock = SlaveSocket::open(port.ifindex)?;
        sock.monitor_only()?;
        let ingress = bpf::tcx_attach(self.slave_prog.as_fd(), port.ifindex, bpf::BPF_TCX_INGRESS)?;
        Ok(Slave { sock, ingress })
    }
}

impl Datapath for KernelDatapath {
    fn kind(&self) -> Kind {
        Kind::Kernel
    }

    fn describe(&self) -> String {
        "kernel (tc/BPF redirect)".into()
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.tap.set_carrier(up)
    }

    fn attach(&mut self, port: &Port) -> io::Result<()> {
        let i = port.ifindex;
        let slave = match (self.kept.take(&slave_fd_name("socket", i)), self.kept.take(&slave_fd_name("ingress", i))) {
            (Some(sock), Some(ingress)) => Slave { sock: SlaveSocket::from_fd(sock, i), ingress },
            _ => self.new_slave(port)?,
        };
        self.slaves.insert(i, slave);
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) {
        self.slaves.remove(&ifindex);
    }

    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        bpf::map_set(self.map.as_fd(), programs::KEY_ACTIVE as u32, ifindex.unwrap_or(0))
    }

    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.slaves.get(&ifindex).map_or(Ok(()), |s| s.sock.send(frame))
    }

    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.slaves.get(&ifindex).map_or(Ok(()), |s| s.sock.membership(what, add))
    }

    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)> {
        self.slaves.iter().map(|(i, s)| (Source::Slave(*i), s.sock.as_fd())).collect()
    }

    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen)) {
        let Source::Slave(ifindex) = source else { return };
        let Some(s) = self.slaves.get(&ifindex) else { return };
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
            ("bond_out".to_string(), self.bond_out.as_fd()),
        ];
        for (i, s) in &self.slaves {
            fds.push((slave_fd_name("socket", *i), s.sock.as_fd()));
            fds.push((slave_fd_name("ingress", *i), s.ingress.as_fd()));
        }
        fds
    }
}
