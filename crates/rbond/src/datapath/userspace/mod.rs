//! The userspace datapath: the daemon's forwarding threads (`lanes`) copy
//! frames between bond0's TAP and the active slave's packet sockets, a batch per system
//! call, virtio-net headers and all (so offloaded checksums and 64 KiB GSO frames cross
//! unchanged). A BPF program on each slave's ingress keeps the host stack from also taking
//! the slave's frames; packet sockets see them first. The daemon's own thread changes what
//! the lanes read (slaves, the active one) and drains a slave that leaves.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::bond_device::BondDevice;
use super::hook::{AttachMode, Hook, Hooks};
use super::kernel::programs;
use super::ports::Ports;
use super::slave_socket::{Membership, SlaveSocket};
use super::{Datapath, Kind, Port, Seen, Source, lane_fd_name, slave_fd_name};
use crate::keep::Kept;
use crate::sys::{bpf, cpu};

pub mod batch;
pub mod lanes;

use batch::{Batch, SLOTS};
use lanes::{Lanes, pump, pump_bond};

/// Batches moved from a descriptor about to close: all it holds (8,192 frames, more than a
/// 4 MiB socket buffer keeps of the smallest), yet bounded, so that a flood still arriving
/// cannot hold the daemon there.
const ALL: usize = 8192 / SLOTS;
/// Lanes at most, however many CPUs: each holds a megabyte of buffers.
pub const MAX_LANES: usize = 64;

/// What the userspace datapath is asked for, besides bond0.
#[derive(Clone, Copy, Default)]
pub struct Settings {
    /// `all_slaves_active`: backups' frames reach bond0 too.
    pub deliver_backups: bool,
    /// Forwarding threads; by default half the CPUs we may use (see `lane_cpus`).
    pub threads: Option<usize>,
}

pub struct UserspaceDatapath {
    /// bond0's queues, by lane: the first is the one the daemon opened bond0 with.
    taps: Vec<BondDevice>,
    lanes: Lanes,
    drop_prog: OwnedFd,
    hooks: Hooks,
    /// The slaves (each one's sockets, by lane), the drop program on each one's ingress.
    ports: Ports,
    kept: Kept,
    /// For draining a slave that leaves.
    batch: Batch,
}

impl UserspaceDatapath {
    pub fn open(
        tap: BondDevice,
        settings: Settings,
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
        let (count, cpus) = lane_cpus(&cpu::allowed()?, settings.threads);
        let taps = queues(tap, &mut kept, count)?;
        let clones = taps.iter().map(BondDevice::try_clone).collect::<io::Result<_>>()?;
        let lanes = Lanes::open(clones, &cpus, settings.deliver_backups)?;
        Ok(UserspaceDatapath {
            taps,
            lanes,
            drop_prog,
            hooks: Hooks::new(mode)?,
            ports: Ports::default(),
            kept,
            batch: Batch::default(),
        })
    }

    /// A slave's sockets for the lanes after the first (whose socket is `first`): those a
    /// predecessor left, else new ones, each flow's frames reaching one of them.
    /// Sockets a predecessor with more lanes left are closed: they would take a share.
    fn lane_sockets(&mut self, first: &SlaveSocket) -> io::Result<Vec<SlaveSocket>> {
        let i = first.ifindex();
        let name = |lane| lane_fd_name(&slave_fd_name("socket", i), lane);
        let lanes = self.lanes.count();
        let mut socks = Vec::new();
        if lanes > 1 {
            first.join_lanes()?;
            for lane in 1..lanes {
                let sock = Ports::socket(&mut self.kept, &name(lane), i, SlaveSocket::open)?;
                sock.join_lanes()?;
                socks.push(sock);
            }
        }
        (lanes..).map_while(|lane| self.kept.take(&name(lane))).for_each(drop);
        Ok(socks)
    }
}

/// How many lanes, and the CPUs they keep to (none: they go where the scheduler puts them).
/// By default half the `allowed` CPUs, at least one, on the last of them: every byte a
/// host's bond carries is also written or read by an application on the same host, so a
/// lane on every CPU competes with the applications on each one. On two CPUs, one lane
/// against two (`bench/ab.md`): CPU per GB ×0.86 [0.83, 0.93], four streams ×1.10 out and
/// ×1.14 in, one stream out and the RTT within noise. A count above the CPUs allowed leaves
/// the lanes unpinned.
fn lane_cpus(allowed: &[usize], threads: Option<usize>) -> (usize, Vec<usize>) {
    let count = threads.unwrap_or(allowed.len() / 2).clamp(1, MAX_LANES);
    let cpus = allowed.len().checked_sub(count).map_or(Vec::new(), |first| allowed[first..].to_vec());
    (count, cpus)
}

/// bond0's queues: `first`, then one more for each other lane, up to `lanes`
/// (those a predecessor left, else new ones). The kernel puts each frame the host sends on
/// the queue of its flow: the one that last carried the flow's other way, else one by hash,
/// as the slaves' fanout groups do, so a flow's two ways meet on one lane and each way keeps
/// its order. A device made by an older rbond has one queue only, and gets one lane.
fn queues(first: BondDevice, kept: &mut Kept, lanes: usize) -> io::Result<Vec<BondDevice>> {
    let name = |lane| lane_fd_name("tap", lane);
    let want = if first.multi_queue()? { lanes } else { 1 };
    let mut taps = vec![first];
    for lane in 1..want {
        taps.push(match kept.take(&name(lane)) {
            Some(fd) => BondDevice::from_fd(fd)?,
            None => taps[0].another_queue()?,
        });
    }
    // A queue no lane reads would hold every frame of the flows given to it.
    (want..).map_while(|lane| kept.take(&name(lane))).for_each(drop);
    Ok(taps)
}

impl Datapath for UserspaceDatapath {
    fn kind(&self) -> Kind {
        Kind::Userspace
    }

    fn describe(&self) -> String {
        match self.lanes.count() {
            1 => "userspace (TAP and packet sockets, 1 forwarding thread)".into(),
            n => format!("userspace (TAP and packet sockets, {n} forwarding threads)"),
        }
    }

    fn attach_mode(&self) -> AttachMode {
        self.hooks.mode()
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.taps[0].set_carrier(up)
    }

    fn attach(&mut self, port: &Port) -> io::Result<()> {
        let i = port.ifindex;
        let sock = Ports::socket(&mut self.kept, &slave_fd_name("socket", i), i, SlaveSocket::open)?;
        let more = self.lane_sockets(&sock)?;
        let lanes: Vec<SlaveSocket> =
            std::iter::once(&sock).chain(&more).map(SlaveSocket::try_clone).collect::<io::Result<_>>()?;
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
        self.ports.insert(i, sock, more, hooked);
        let mut wiring = self.lanes.wiring();
        wiring.slaves.insert(i, lanes);
        self.lanes.watch(i, &wiring.slaves[&i])
    }

    fn detach(&mut self, ifindex: u32) {
        let mut wiring = self.lanes.wiring();
        // Frames taken off the wire until the hook is off wait in the sockets: a slave still
        // active (a converted one handing the host back) delivers them before they close. And
        // what the host handed bond0 while it was busy giving the host back goes out first.
        let deliver = wiring.active == Some(ifindex);
        let socks = wiring.slaves.remove(&ifindex).unwrap_or_default();
        self.lanes.unwatch(&socks);
        if deliver {
            for tap in &self.taps {
                pump_bond(&mut self.batch, tap, socks.first(), ALL);
            }
            wiring.active = None;
        }
        drop(self.ports.detach(&mut self.hooks, &self.kept, ifindex));
        for sock in &socks {
            pump(&mut self.batch, &self.taps[0], sock, deliver, ALL, &mut |_, _| {});
        }
        self.batch.release();
    }

    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        self.lanes.wiring().active = ifindex;
        self.ports.follow(ifindex)
    }

    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.ports.send(ifindex, frame)
    }

    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.ports.membership(ifindex, what, add)
    }

    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)> {
        std::iter::once((Source::Lanes, self.lanes.told())).chain(self.ports.sent_source()).collect()
    }

    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen)) {
        match source {
            Source::Lanes => self.lanes.hear(seen),
            Source::Sent => self.ports.drain_sent(seen),
            // The lanes read the slaves' sockets.
            Source::Slave(_) => {}
        }
    }

    fn pause(&mut self) {
        self.lanes.pause();
    }

    fn resume(&mut self) -> io::Result<()> {
        self.lanes.resume()
    }

    fn handover(&self) -> Vec<(String, BorrowedFd<'_>)> {
        let taps = self.taps.iter().enumerate().map(|(lane, tap)| (lane_fd_name("tap", lane), tap.as_fd()));
        let mut fds = taps.collect();
        self.ports.handover(&mut fds);
        fds
    }

    fn remove(&mut self) {
        let mut wiring = self.lanes.wiring();
        wiring.active = None;
        for socks in std::mem::take(&mut wiring.slaves).values() {
            self.lanes.unwatch(socks);
        }
        drop(wiring);
        self.ports.detach_all(&mut self.hooks, &self.kept);
        self.kept.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::lane_cpus;

    #[test]
    fn by_default_half_the_cpus_forward_on_the_last_of_them() {
        assert_eq!(lane_cpus(&[0, 1], None), (1, vec![1]));
        assert_eq!(lane_cpus(&[0], None), (1, vec![0]));
        assert_eq!(lane_cpus(&[0, 1, 2, 3, 4, 5, 6, 7], None), (4, vec![4, 5, 6, 7]));
        // Only the CPUs the daemon may run on (taskset), in their order.
        assert_eq!(lane_cpus(&[2, 5, 9], None), (1, vec![9]));
    }

    #[test]
    fn threads_asked_for_are_pinned_while_there_are_cpus_enough() {
        assert_eq!(lane_cpus(&[0, 1], Some(2)), (2, vec![0, 1]));
        assert_eq!(lane_cpus(&[0, 1, 2, 3], Some(1)), (1, vec![3]));
        assert_eq!(lane_cpus(&[0, 1], Some(3)), (3, vec![]));
        assert_eq!(lane_cpus(&[0, 1], Some(500)).0, 64);
    }
}
