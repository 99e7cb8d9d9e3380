//! The active-backup ARP monitor: the active slave probes each `arp_ip_target` (with ARP)
//! and each `ns_ip6_target` (with IPv6 neighbour solicitations) every `arp_interval`; a slave
//! is up while it hears (validated) traffic recently enough. With no active slave the
//! candidates are probed in turn, one per interval.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use core::time::Duration;

use crate::address::{ns_probe_source, probe_source, solicited_node};
use crate::bond::{Action, ArpFrame, ArpOp, Bond, Error, Monitor, NdFrame, SlaveId};
use crate::event::Event;
use crate::options::ArpAllTargets;
use crate::slave::{LinkState, Slave};
use crate::time::{Instant, ms};

/// Why a frame on a slave may be validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// On the active slave (or the probe candidate): a target answering us.
    Active,
    /// On a backup while the active hears its targets: our own probe, flooded back in by the
    /// switch, so sender and target swap roles.
    Relayed,
    /// On a backup while a candidate probes: only a reply to that probe.
    Candidate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proposal {
    Up,
    Down,
    Fail,
}

impl Bond {
    fn arp_delta(&self) -> Duration {
        ms(self.opts.arp_interval)
    }

    /// Whether activity at `t` is recent: within `k` intervals plus half an interval of slack.
    fn in_interval(&self, now: Instant, t: Option<Instant>, k: u32) -> bool {
        let delta = self.arp_delta();
        t.is_some_and(|t| now >= t - delta && now <= t + delta * k + delta / 2)
    }

    /// The receive time the monitor judges a slave by: with `arp_all_targets all`, the
    /// oldest answer among the targets, IPv4 and IPv6 alike.
    fn effective_last_rx(&self, s: &Slave) -> Option<Instant> {
        let mut targets = self.opts.monitor_targets().peekable();
        if self.opts.arp_all_targets == ArpAllTargets::Any || targets.peek().is_none() {
            return s.last_rx;
        }
        let rx_of = |t: IpAddr| s.target_rx.iter().find(|(x, _)| *x == t).map(|(_, at)| *at);
        targets.map(rx_of).min().flatten()
    }

    fn arp_rx_counted(&self) -> bool {
        self.up && self.monitor() == Monitor::Arp
    }

    pub(crate) fn rx_seen(&mut self, now: Instant, id: SlaveId) -> Result<(), Error> {
        let backup = self.require(id)?.backup;
        let v = self.opts.arp_validate;
        if self.arp_rx_counted() && !v.applies_to(backup) && !v.filters() {
            self.touch_rx(id, now);
        }
        Ok(())
    }

    pub(crate) fn arp_seen(&mut self, now: Instant, id: SlaveId, f: &ArpFrame) -> Result<(), Error> {
        self.require(id)?;
        if self.standby_arp(now, id, f) {
            return Ok(());
        }
        self.monitor_frame(now, id, f.outgoing, |bond, trust| match trust {
            Trust::Active => bond.validate_arp(now, id, f.sender_ip, f.target_ip),
            Trust::Relayed => bond.validate_arp(now, id, f.target_ip, f.sender_ip),
            Trust::Candidate => f.op == ArpOp::Reply && bond.validate_arp(now, id, f.sender_ip, f.target_ip),
        })
    }

    /// The IPv6 half, as the kernel's `bond_na_rcv`: solicitations and advertisements alike,
    /// judged by the IPv6 header's addresses. As an IPv6 frame it counts under `filter` too.
    pub(crate) fn nd_seen(&mut self, now: Instant, id: SlaveId, f: &NdFrame) -> Result<(), Error> {
        self.require(id)?;
        if self.standby_nd(now, id, f) {
            return Ok(());
        }
        self.monitor_frame(now, id, f.outgoing, |bond, trust| match trust {
            Trust::Relayed => bond.validate_na(now, id, f.destination, f.source),
            Trust::Active | Trust::Candidate => bond.validate_na(now, id, f.source, f.destination),
        })
    }

    /// A monitor frame (ARP, NS or NA) on a slave: traffic where validation does not apply;
    /// else `validate`d under the kernel's reason to trust it, and counted as refused when not.
    fn monitor_frame(
        &mut self,
        now: Instant,
        id: SlaveId,
        outgoing: bool,
        validate: impl FnOnce(&mut Bond, Trust) -> bool,
    ) -> Result<(), Error> {
        let backup = self.require(id)?.backup;
        if !self.arp_rx_counted() || outgoing {
            return Ok(());
        }
        if !self.opts.arp_validate.applies_to(backup) {
            self.touch_rx(id, now);
            self.tally.counts.arp_heard += 1;
            return Ok(());
        }
        let counted = self.trust(now, backup).is_some_and(|t| validate(self, t));
        if let Some(s) = self.slave_mut(id).filter(|_| !counted) {
            s.arp_rejected += 1;
        }
        Ok(())
    }

    /// Why a validated frame on a slave in this role may count at all (the kernel's three
    /// cases), if it may.
    fn trust(&self, now: Instant, backup: bool) -> Option<Trust> {
        if !backup {
            Some(Trust::Active)
        } else if self.active_heard_since_up() {
            Some(Trust::Relayed)
        } else {
            self.arp_slave_probed_lately(now).then_some(Trust::Candidate)
        }
    }

    pub(crate) fn bad_frame(&mut self, id: SlaveId) -> Result<(), Error> {
        self.slave_mut(id).ok_or(Error::NoSuchSlave(id.0))?.bad_frames += 1;
        Ok(())
    }

    fn touch_rx(&mut self, id: SlaveId, now: Instant) {
        if let Some(s) = self.slave_mut(id) {
            s.last_rx = Some(now);
        }
    }

    fn active_heard_since_up(&self) -> bool {
        let Some(a) = self.active.and_then(|a| self.slave(a)) else { return false };
        match (self.effective_last_rx(a), a.last_link_up) {
            (Some(rx), Some(up)) => rx > up,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn arp_slave_probed_lately(&self, now: Instant) -> bool {
        let Some(c) = self.arp_slave.and_then(|c| self.slave(c)) else { return false };
        self.in_interval(now, c.last_tx, 1)
    }

    /// Counts the frame if it is from a target (`sip`) to one of the bond's own addresses;
    /// says whether it did.
    fn validate_arp(&mut self, now: Instant, id: SlaveId, sip: Ipv4Addr, tip: Ipv4Addr) -> bool {
        let ours = self.addrs.iter().any(|a| a.addr == tip);
        if sip.is_unspecified() || !ours || !self.opts.arp_targets.contains(&sip) {
            return false;
        }
        if let Some(s) = self.slave_mut(id) {
            s.last_rx = Some(now);
            s.note_target_rx(IpAddr::V4(sip), now);
        }
        self.tally.counts.arp_heard += 1;
        true
    }

    /// Counts the frame if it is from a target, or from a target's solicited-node group
    /// (`sip`), to one of the bond's own addresses or to all nodes (`dip`).
    fn validate_na(&mut self, now: Instant, id: SlaveId, sip: Ipv6Addr, dip: Ipv6Addr) -> bool {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let ours = dip == all_nodes || self.addrs6.iter().any(|a| a.addr == dip);
        let target = self.opts.ns_targets.iter().find(|t| **t == sip || solicited_node(**t) == sip).copied();
        let Some(target) = target.filter(|_| ours && !sip.is_unspecified()) else { return false };
        if let Some(s) = self.slave_mut(id) {
            s.last_rx = Some(now);
            s.note_target_rx(IpAddr::V6(target), now);
        }
        self.tally.counts.arp_heard += 1;
        true
    }

    /// Marks every target as just heard on every slave, so adding one cannot fail a slave.
    pub(crate) fn targets_added(&mut self, now: Instant, added: &[IpAddr]) {
        for s in &mut self.slaves {
            added.iter().for_each(|t| s.note_target_rx(*t, now));
        }
    }

    pub(crate) fn arp_tick(&mut self, now: Instant) {
        if self.slaves.is_empty() {
            return;
        }
        let proposals = self.arp_inspect(now);
        if !proposals.is_empty() {
            self.arp_commit(now, proposals);
        }
        self.arp_probe(now);
        self.update_carrier();
        self.peer_notify_arp_tick();
    }

    fn arp_inspect(&self, now: Instant) -> Vec<(SlaveId, Proposal)> {
        let missed = u32::from(self.opts.arp_missed_max);
        let mut out = Vec::new();
        for s in &self.slaves {
            let last_rx = self.effective_last_rx(s);
            let proposal = if s.link != LinkState::Up {
                if self.in_interval(now, last_rx, 1) {
                    Some(Proposal::Up)
                } else {
                    (s.link == LinkState::Back).then_some(Proposal::Fail)
                }
            } else if self.in_interval(now, s.last_link_up, 2) {
                None // grace after enslave or activation
            } else {
                // Backups are judged only while no candidate is being probed, and get one
                // interval more; the active must both send and hear.
                let backup_silent = s.backup && self.arp_slave.is_none() && !self.in_interval(now, last_rx, missed + 1);
                let active_silent =
                    !s.backup && (!self.in_interval(now, s.last_tx, missed) || !self.in_interval(now, last_rx, missed));
                (backup_silent || active_silent).then_some(Proposal::Down)
            };
            out.extend(proposal.map(|p| (s.id, p)));
        }
        out
    }

    fn arp_commit(&mut self, now: Instant, proposals: Vec<(SlaveId, Proposal)>) {
        let mut failover = false;
        for (id, p) in proposals {
            match p {
                Proposal::Up if !self.is_active(id) => failover |= self.arp_commit_up(id),
                Proposal::Up => {}
                Proposal::Down => {
                    self.note_loss(id, self.last_sign_of_life(id, now));
                    if let Some(s) = self.slave_mut(id) {
                        s.count_failure();
                        s.link = LinkState::Down;
                        s.backup = true;
                    }
                    self.log(Event::LinkDown { slave: self.name_of(id) });
                    if self.is_active(id) {
                        self.retire_arp_candidate();
                        failover = true;
                    }
                }
                Proposal::Fail => {
                    self.note_loss(id, self.last_sign_of_life(id, now));
                    if let Some(s) = self.slave_mut(id) {
                        s.link = LinkState::Fail;
                        s.backup = true;
                    }
                    if self.active.is_some() {
                        self.retire_arp_candidate();
                    }
                }
            }
        }
        if failover {
            self.select_active_slave(now);
        }
    }

    /// Ends the current probe candidate's turn: it goes back to being a backup.
    pub(crate) fn retire_arp_candidate(&mut self) {
        if let Some(s) = self.arp_slave.take().and_then(|c| self.slave_mut(c)) {
            s.backup = true;
        }
    }

    /// Returns whether the slave coming up should trigger a reselection.
    fn arp_commit_up(&mut self, id: SlaveId) -> bool {
        self.retire_arp_candidate();
        if let Some(s) = self.slave_mut(id) {
            s.link = LinkState::Up;
        }
        self.log(Event::LinkUp { slave: self.name_of(id) });
        self.up_wants_failover(id)
    }

    fn arp_probe(&mut self, now: Instant) {
        if let (Some(c), Some(a)) = (self.arp_slave, self.active) {
            self.log(Event::ProbeBad { arp_slave: self.name_of(c), active: self.name_of(a) });
        }
        if let Some(a) = self.active {
            self.send_probes(now, a);
            return;
        }
        self.rotate_candidate(now);
    }

    /// With no active slave, probe the next usable slave after the current candidate.
    fn rotate_candidate(&mut self, now: Instant) {
        let Some(current) = self.arp_slave.or_else(|| self.slaves.first().map(|s| s.id)) else {
            return;
        };
        let (mut found, mut before, mut next) = (false, None, None);
        for i in 0..self.slaves.len() {
            let usable = self.slaves[i].hw.carrier;
            let id = self.slaves[i].id;
            if !found && before.is_none() && usable {
                before = Some(id);
            }
            if found && next.is_none() && usable {
                next = Some(id);
            }
            if !usable && self.slaves[i].link == LinkState::Up {
                let s = &mut self.slaves[i];
                s.link = LinkState::Down;
                s.count_failure();
                s.backup = true;
                let slave = s.name.clone();
                self.log(Event::BackupDown { slave });
            }
            found |= id == current;
        }
        let Some(cand) = next.or(before) else { return };
        if let Some(s) = self.slave_mut(cand) {
            s.link = LinkState::Back;
            s.backup = false;
        }
        self.send_probes(now, cand);
        if let Some(s) = self.slave_mut(cand) {
            s.last_link_up = Some(now);
        }
        self.arp_slave = Some(cand);
    }

    /// When a slave last heard anything, for dating its loss (now if it never did).
    fn last_sign_of_life(&self, id: SlaveId, now: Instant) -> Instant {
        self.slave(id).and_then(|s| s.last_rx).unwrap_or(now)
    }

    fn send_probes(&mut self, now: Instant, slave: SlaveId) {
        let targets: Vec<IpAddr> = self.opts.monitor_targets().collect();
        for target in targets {
            let probe = match target {
                IpAddr::V4(target) => Action::SendArpProbe { slave, target, source: probe_source(&self.addrs, target) },
                IpAddr::V6(target) => {
                    Action::SendNsProbe { slave, target, source: ns_probe_source(&self.addrs6, target) }
                }
            };
            self.tally.counts.arp_probes += 1;
            self.push(probe);
            if let Some(s) = self.slave_mut(slave) {
                s.last_tx = Some(now);
            }
        }
    }

    /// The solicited-node groups the slave must be in to hear what validates it: a backup's,
    /// with `arp_validate` on, are the NS targets' (a real NIC filters other multicast out);
    /// the active hears all multicast anyway, and without validation any frame counts.
    pub fn solicited_groups(&self, id: SlaveId) -> Vec<Ipv6Addr> {
        let backup = self.slave(id).is_some_and(|s| s.backup);
        if !backup || self.opts.arp_validate == crate::options::ArpValidate::None {
            return Vec::new();
        }
        self.opts.ns_targets.iter().map(|t| solicited_node(*t)).collect()
    }
}
