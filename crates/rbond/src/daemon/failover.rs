//! What the engine's decisions do to the host: this is where a failover happens. The engine
//! says which slave is active, which MAC goes where, whether bond0 has carrier and what to
//! announce; each action is carried out here, in the order decided, except that the
//! datapath's switch to the new active slave comes before all the rest of its batch.
//!
//! A side effect that fails is logged and does not stop the rest: the switch is never held
//! back by an announcement, a membership or a MAC that could not be set.

use std::net::{IpAddr, Ipv4Addr};

use rbond_core::{Action, Level, Mac, MacTarget, SlaveId};

use super::Daemon;
use crate::datapath::Membership;
use crate::net::frames;
use crate::net::link::Change;

impl Daemon {
    /// Carries out every action the engine has decided, then records the bond's new state
    /// (state file, monitoring files) and hands new log lines to the control socket's
    /// followers. The files are written after the switch, which never waits for a disk: a
    /// daemon killed in between is followed by one that re-reads the links and reaches the
    /// same decision.
    pub(super) fn apply_actions(&mut self) {
        let actions: Vec<Action> = std::iter::from_fn(|| self.engine.poll_action()).collect();
        let (mut changed, mut counted) = (false, false);
        if let Some(problem) = self.switch_datapath(&actions) {
            let line = format!("{}: {problem}", self.name);
            self.note(Level::Warning, line);
        }
        for action in actions {
            changed |= !matches!(
                action,
                Action::SendArpProbe { .. } | Action::SendNsProbe { .. } | Action::SendStandbyProbe { .. }
            );
            counted = true;
            for problem in self.apply(action) {
                let line = format!("{}: {problem}", self.name);
                self.note(Level::Warning, line);
            }
        }
        for problem in self.follow_groups() {
            let line = format!("{}: {problem}", self.name);
            self.note(Level::Warning, line);
        }
        changed |= self.publisher.standby_changed(self.engine.counters().standby_changes);
        if changed {
            self.record();
        } else if counted && self.publisher.counts_due() {
            self.publish();
        }
        for line in self.log.take_pending() {
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.push(b'\n');
            self.io.control.broadcast(&bytes);
        }
    }

    /// Gives the datapath the engine's new active slave (or none) before any other action
    /// of the batch: the log lines, memberships and MAC changes decided with it take 50 to
    /// 150 µs, and every frame meant for the dead slave meanwhile is lost. A batch with
    /// several changes goes straight to the last.
    fn switch_datapath(&mut self, actions: &[Action]) -> Option<String> {
        if !actions.iter().any(|a| matches!(a, Action::Activate { .. } | Action::Deactivate { .. })) {
            return None;
        }
        let active = self.engine.active();
        let e = self.datapath.set_active(active.map(|s| s.0)).err()?;
        Some(match active {
            Some(slave) => format!("{}: activate: {e}", self.slave_name(slave)),
            None => format!("deactivate: {e}"),
        })
    }

    /// One action; returns what went wrong on the way, if anything.
    fn apply(&mut self, action: Action) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |what: String, r: std::io::Result<()>| {
            if let Err(e) = r {
                problems.push(format!("{what}: {e}"));
            }
        };
        match action {
            Action::Activate { slave } => {
                check(
                    format!("{}: receive all multicast", self.slave_name(slave)),
                    self.datapath.membership(slave.0, Membership::AllMulti, true),
                );
                check(format!("{}: promiscuous mode", self.slave_name(slave)), self.promisc_follows(slave, true));
                self.announce_behind(slave);
            }
            Action::Deactivate { slave } => {
                let _ = self.datapath.membership(slave.0, Membership::AllMulti, false);
                let _ = self.promisc_follows(slave, false);
            }
            Action::SetMac { target: MacTarget::Bond, mac } => {
                check(format!("{}: set MAC", self.name), self.net.set_link(self.index, Change::Mac(mac)))
            }
            Action::SetMac { target: MacTarget::Slave(slave), mac } => problems.extend(self.set_slave_mac(slave, mac)),
            Action::SetCarrier { up } => check(format!("{}: set carrier", self.name), self.datapath.set_carrier(up)),
            Action::SendArpProbe { slave, target, source } => {
                problems.extend(self.probe(slave, "ARP", |mac| frames::arp_probe(mac, source, target)))
            }
            Action::SendNsProbe { slave, target, source } => {
                problems.extend(self.probe(slave, "NS", |mac| frames::ns_probe(mac, source, target)))
            }
            Action::SendStandbyProbe { slave, mac, target } => {
                let frame = match target {
                    IpAddr::V4(t) => frames::arp_probe(mac, Ipv4Addr::UNSPECIFIED, t),
                    IpAddr::V6(t) => frames::ns_probe(mac, rbond_core::eui64_link_local(mac), t),
                };
                check(format!("{}: send standby probe", self.slave_name(slave)), self.datapath.send(slave.0, &frame))
            }
            Action::NotifyPeers { slave } => problems.extend(self.notify_peers(slave)),
            Action::ResendIgmp { slave } => problems.extend(self.resend_memberships(slave)),
            Action::Log(e) => self.log.event(e),
        }
        problems
    }

    /// A monitor probe out of the slave, from the MAC the slave has now.
    fn probe(&mut self, slave: SlaveId, kind: &str, frame: impl FnOnce(Mac) -> Vec<u8>) -> Option<String> {
        let mac = self.member(slave)?.mac;
        let sent = self.datapath.send(slave.0, &frame(mac));
        sent.err().map(|e| format!("{}: send {kind} probe: {e}", self.slave_name(slave)))
    }

    pub(super) fn slave_name(&self, id: SlaveId) -> String {
        self.member(id).map_or_else(|| format!("slave {}", id.0), |m| m.name.clone())
    }

    /// Slaves released in the same step are skipped: restoring puts their own MAC back.
    /// Drivers that cannot change a live address take it while down, and come back up
    /// whatever happens.
    fn set_slave_mac(&mut self, slave: SlaveId, mac: Mac) -> Vec<String> {
        let Some(m) = self.members.iter_mut().find(|m| m.id == slave) else { return Vec::new() };
        let (i, name) = (slave.0, m.name.clone());
        if self.net.set_link(i, Change::Mac(mac)).is_ok() {
            m.mac = mac;
            return Vec::new();
        }
        let was_up = self.net.link(i).map(|l| l.up).unwrap_or(false);
        let mut problems = Vec::new();
        if let Err(e) = self.net.set_link(i, Change::Up(false)) {
            problems.push(format!("{name}: set down: {e}"));
        }
        match self.net.set_link(i, Change::Mac(mac)) {
            Ok(()) => m.mac = mac,
            Err(e) => problems.push(format!("{name}: set MAC: {e}")),
        }
        if was_up && let Err(e) = self.net.set_link(i, Change::Up(true)) {
            problems.push(format!("{name}: set up: {e}"));
        }
        problems
    }

    /// Announces bond0's addresses through the slave: a gratuitous ARP for each IPv4 address,
    /// an unsolicited neighbour advertisement for each IPv6 one.
    fn notify_peers(&mut self, slave: SlaveId) -> Vec<String> {
        if self.member(slave).is_none() {
            return Vec::new();
        }
        let mac = match self.net.link(self.index) {
            Ok(l) => l.mac.unwrap_or_default(),
            Err(e) => return vec![format!("{}: read MAC: {e}", self.name)],
        };
        let addrs = self.net.addresses(self.index).unwrap_or_default();
        let ready = addrs.into_iter().filter(|a| a.is_ready());
        let mut problems = Vec::new();
        for a in ready {
            let frame = match a.addr {
                std::net::IpAddr::V4(ip) => frames::gratuitous_arp(mac, ip),
                std::net::IpAddr::V6(ip) => frames::unsolicited_na(mac, ip),
            };
            if let Err(e) = self.datapath.send(slave.0, &frame) {
                problems.push(format!("{}: announce {}: {e}", self.slave_name(slave), a.addr));
            }
        }
        problems
    }
}
