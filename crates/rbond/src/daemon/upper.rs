//! What sits on bond0, carried to the slaves as the kernel's bond carries it: bond0's MTU
//! follows to every slave, its promiscuity (a bridge port, a macvlan: bond0 is a TAP with no
//! unicast filter, so any extra address makes it promiscuous) goes to the active slave and
//! moves with it; after a failover every MAC behind bond0 is announced from the new active
//! slave, and the host's multicast memberships are reported again there.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use rbond_core::{Instant, Level, Mac, SlaveId};

use super::{Daemon, now};
use crate::datapath::Membership;
use crate::net::frames;
use crate::net::link::{Change, Link};

/// A switch may not forward on a port for a moment after its link came up (Linux batches
/// such link events for up to a second): a slave whose carrier is that young gets its
/// learning frames again at these times after the link came up, the last when it is surely
/// forwarding.
const PORT_SETTLING: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(1200)];

/// Learning frames waiting to go out of one slave, at the bond's `mac_announce_rate`.
#[derive(Default)]
pub(super) struct Announcer {
    slave: Option<SlaveId>,
    queue: VecDeque<Vec<u8>>,
    every: Duration,
    pub(super) next: Option<Instant>,
    /// When to announce again, for a port that had only just come up (earliest first).
    again: VecDeque<Instant>,
}

impl Announcer {
    /// When it next has something to do.
    pub(super) fn due(&self) -> Option<Instant> {
        [self.next, self.again.front().copied()].into_iter().flatten().min()
    }
}

impl Daemon {
    /// bond0 as the kernel reports it now: what changed is carried to the slaves.
    pub(super) fn bond_changed(&mut self, link: Link) {
        let old = std::mem::replace(&mut self.bond, link);
        if old.mtu != 0 && self.bond.mtu != old.mtu {
            self.follow_mtu(old.mtu);
        }
        let promisc = self.bond.promiscuity > 0;
        if promisc != (old.promiscuity > 0)
            && let Some(active) = self.engine.active()
        {
            let r = self.datapath.membership(active.0, Membership::Promisc, promisc);
            if let Err(e) = r {
                let line = format!("{}: {}: promiscuous mode: {e}", self.name, self.slave_name(active));
                self.note(Level::Warning, line);
            }
        }
    }

    /// Gives every slave bond0's new MTU. If one refuses, those already changed go back, and
    /// so does bond0, with a line naming the slave: nothing is left half-changed.
    fn follow_mtu(&mut self, old: u32) {
        let new = self.bond.mtu;
        let mut changed = Vec::new();
        for m in &self.members {
            match self.net.set_link(m.id.0, Change::Mtu(new)) {
                Ok(()) => changed.push(m.id.0),
                Err(e) => {
                    let why = format!(
                        "{}: {} refused MTU {new} ({e}); bond0 and its slaves stay at {old}",
                        self.name, m.name
                    );
                    for i in changed {
                        let _ = self.net.set_link(i, Change::Mtu(old));
                    }
                    let _ = self.net.set_link(self.index, Change::Mtu(old));
                    self.bond.mtu = old;
                    self.note(Level::Warning, why);
                    return;
                }
            }
        }
    }

    /// A slave became active: bond0's promiscuity goes with it.
    pub(super) fn promisc_follows(&mut self, slave: SlaveId, active: bool) -> std::io::Result<()> {
        if self.bond.promiscuity == 0 {
            return Ok(());
        }
        self.datapath.membership(slave.0, Membership::Promisc, active)
    }

    /// Every MAC behind bond0, each with the VLAN it was learned in: the bridge's own and
    /// those it learned on its other ports, and the addresses devices on bond0 gave it
    /// (macvlans, in whatever namespace they live). VLAN 1, a bridge's default and untagged,
    /// is sent untagged.
    fn macs_behind(&mut self) -> Vec<(Mac, Option<u16>)> {
        let (bond, bridge, own) = (self.index, self.bond.master, self.bond.mac);
        let entries = self.net.fdb().unwrap_or_default();
        let behind = entries.into_iter().filter(|e| {
            let learned =
                bridge.is_some() && e.master == bridge && e.port != bond && (!e.permanent || Some(e.port) == bridge);
            let given = e.port == bond && e.master.is_none() && Some(e.mac) != own;
            (learned || given) && e.mac.0[0] & 1 == 0
        });
        let mut out: Vec<(Mac, Option<u16>)> = behind.map(|e| (e.mac, e.vlan.filter(|v| *v != 1))).collect();
        out.sort_by_key(|(m, v)| (m.0, *v));
        out.dedup();
        out
    }

    /// After a failover: `mac_announce` learning frames per MAC behind bond0, from the new
    /// active slave, at most `mac_announce_rate` a second, and once more if its link has only
    /// just come up. A later failover replaces them.
    pub(super) fn announce_behind(&mut self, slave: SlaveId) {
        let now = now();
        let up_at = self.member(slave).and_then(|m| m.carrier_since);
        let again = up_at.into_iter().flat_map(|t| PORT_SETTLING.map(|d| t + d)).filter(|at| *at > now).collect();
        self.announcer = Announcer { again, ..self.learning_frames(slave, now) };
        self.announce_due(now);
    }

    fn learning_frames(&mut self, slave: SlaveId, now: Instant) -> Announcer {
        let (count, rate) = self.engine.options().mac_announce();
        let macs = if count > 0 { self.macs_behind() } else { Vec::new() };
        let frames =
            macs.iter().flat_map(|(m, vlan)| std::iter::repeat_n(frames::learning_frame(*m, *vlan), count.into()));
        Announcer {
            slave: Some(slave),
            queue: frames.collect(),
            every: Duration::from_secs(1) / rate.max(1),
            next: Some(now),
            again: VecDeque::new(),
        }
    }

    /// Sends the learning frames whose time has come.
    pub(super) fn announce_due(&mut self, now: Instant) {
        let Some(slave) = self.announcer.slave else { return };
        if self.announcer.queue.is_empty() && self.announcer.again.front().is_some_and(|at| *at <= now) {
            let again = std::mem::take(&mut self.announcer.again).into_iter().skip(1).collect();
            self.announcer = Announcer { again, ..self.learning_frames(slave, now) };
        }
        while let Some(at) = self.announcer.next.filter(|at| *at <= now) {
            let Some(frame) = self.announcer.queue.pop_front() else { break };
            if let Err(e) = self.datapath.send(slave.0, &frame) {
                let line = format!("{}: {}: learning frame: {e}", self.name, self.slave_name(slave));
                self.note(Level::Warning, line);
                self.announcer.queue.clear();
            }
            self.announcer.next = Some(at + self.announcer.every);
        }
        if self.announcer.queue.is_empty() {
            self.announcer.next = None;
        }
    }

    /// One round of `resend_igmp`: IGMPv3 and MLDv2 reports from `slave` for every group
    /// joined on bond0 and the devices on it, so multicast snooping switches send the
    /// streams to the new active port.
    pub(super) fn resend_memberships(&mut self, slave: SlaveId) -> Vec<String> {
        let Some(mac) = self.bond.mac else { return Vec::new() };
        let links = self.net.links().unwrap_or_default();
        let on_bond =
            |l: &&Link| l.index == self.index || Some(l.index) == self.bond.master || l.link == Some(self.index);
        let mut problems = Vec::new();
        for dev in links.iter().filter(on_bond) {
            let (v4, v6) = self.net.groups(&dev.name);
            let v4: Vec<_> = v4.into_iter().filter(|g| g.octets() != [224, 0, 0, 1]).collect();
            let v6: Vec<_> = v6.into_iter().filter(|g| g.segments() != [0xff02, 0, 0, 0, 0, 0, 0, 1]).collect();
            let addrs = self.net.addresses(dev.index).unwrap_or_default();
            let ip4 = addrs.iter().find_map(|a| match a.addr {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            });
            let ip6 = addrs.iter().find_map(|a| match a.addr {
                IpAddr::V6(ip) if a.is_link_local() => Some(ip),
                _ => None,
            });
            let src = dev.mac.unwrap_or(mac);
            let mut reports = Vec::new();
            if !v4.is_empty() {
                reports.push(frames::igmp_report(src, ip4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED), &v4));
            }
            if let Some(ip6) = ip6.filter(|_| !v6.is_empty()) {
                reports.push(frames::mld_report(src, ip6, &v6));
            }
            for r in reports {
                if let Err(e) = self.datapath.send(slave.0, &r) {
                    problems.push(format!("{}: membership report for {}: {e}", self.slave_name(slave), dev.name));
                }
            }
        }
        problems
    }
}
