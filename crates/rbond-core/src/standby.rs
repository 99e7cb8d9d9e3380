//! Standby verification: would each backup carry the host if the active slave died now?
//!
//! A backup with link can still go nowhere (a port in the wrong VLAN, a cable to the wrong
//! switch). Two kinds of evidence answer for it without disturbing anything:
//! - passive: the bond's own broadcasts (ARP, neighbour discovery) leave through the active
//!   slave and the switch floods them back in through every backup in the same segment; a
//!   backup that sees none of those the bond sent within `standby_window` is broken;
//! - active (every `standby_probe` ms, jittered, while a target or gateway is known): each up
//!   slave sends an RFC 5227 ARP probe (sender IP 0.0.0.0) for a target from a MAC of its own,
//!   never the bond's, so the switch never moves the bond's address; a reply to that MAC
//!   proves the path to the target, and the active slave's probe, flooded back in through the
//!   backups, proves them in its segment too. An IPv6 target gets a neighbour solicitation
//!   instead, from the probe MAC's own link-local address (which no node has), so the answer
//!   comes back to that slave alone. Never from `::`: that is duplicate address detection,
//!   and a target still checking its own address would take it for a rival and give it up.
//!
//! Evidence clears whatever was owed; whatever stays owed for a whole window makes the backup
//! broken. The verdict never blocks a failover; with `standby_select` it only orders the
//! candidates.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::address::eui64_link_local;
use crate::bond::{Action, ArpFrame, ArpOp, Bond, NdFrame, NdKind, SlaveId};
use crate::event::Event;
use crate::mac::Mac;
use crate::slave::{LinkState, Slave};
use crate::time::{Instant, ms};

/// What is known of a backup's path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Evidence failed to come for a whole window.
    Broken,
    /// Nothing to go by yet (or for a whole window).
    #[default]
    Unverified,
    /// Evidence came within the window.
    Verified,
}

impl Verdict {
    /// As a gauge reads it: 1 verified, 0 unverified, -1 broken.
    pub fn score(self) -> i8 {
        match self {
            Verdict::Broken => -1,
            Verdict::Unverified => 0,
            Verdict::Verified => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Broken => "broken",
            Verdict::Unverified => "unverified",
            Verdict::Verified => "verified",
        }
    }
}

/// A backup's standby verdict as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyReport {
    pub verdict: Verdict,
    pub reason: String,
    /// How long ago the last evidence came (known when the report was made at a given time).
    pub last_ok_ms_ago: Option<u64>,
}

impl StandbyReport {
    /// The reason as the report prints it (without the age, so the text changes only when
    /// the verdict or its reason does).
    pub fn reason_text(&self) -> &str {
        if self.reason.is_empty() { "nothing seen yet" } else { self.reason.as_str() }
    }
}

/// One slave's standby bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Standby {
    /// Judged: a backup whose link is up, on a bond that is up.
    judged: bool,
    pub(crate) verdict: Verdict,
    /// Why, in a few words ("a reply from 10.0.0.1", "none of 3 broadcasts came back").
    pub(crate) reason: String,
    /// The last evidence, and what it was.
    pub(crate) last_ok: Option<Instant>,
    /// The oldest thing still owed (a broadcast that should have come back, a probe that
    /// should have been answered).
    owed_since: Option<Instant>,
    broadcasts_owed: u32,
    probes_owed: u32,
    next_probe: Option<Instant>,
    probes_sent: u64,
}

/// The MAC a slave probes from: its own with the locally administered bit set and bit 2 of
/// the first octet flipped, so it is neither the bond's nor any slave's (veth MACs are
/// already locally administered).
pub fn probe_mac(slave_mac: Mac) -> Mac {
    let mut m = slave_mac.0;
    m[0] = ((m[0] ^ 0x04) | 0x02) & !0x01;
    Mac(m)
}

/// A spread of ±25 % around `every`, the same for the same slave and count: probes from
/// many hosts must not fall into step, and the engine must stay deterministic.
fn jittered(every: core::time::Duration, slave: SlaveId, n: u64) -> core::time::Duration {
    let mut x = (u64::from(slave.0) << 32 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    let quarter = every / 4;
    every - quarter + quarter.mul_f64((x % 1000) as f64 / 500.0)
}

impl Bond {
    fn standby_on(&self) -> bool {
        self.up && self.opts.standby_window > 0
    }

    /// What the standby probes ask for: the ARP and NS targets, else the gateways the caller
    /// found.
    pub fn probe_targets(&self) -> Vec<IpAddr> {
        self.each_probe_target().collect()
    }

    /// Whether there is any probe target, without building the list: this is asked on every
    /// input.
    fn has_probe_targets(&self) -> bool {
        self.each_probe_target().next().is_some()
    }

    fn each_probe_target(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let mut targets = self.opts.monitor_targets().peekable();
        let gateways: &[IpAddr] = if targets.peek().is_none() { &self.gateways } else { &[] };
        targets.chain(gateways.iter().copied())
    }

    fn probing(&self) -> bool {
        self.standby_on() && self.opts.standby_probe > 0 && self.has_probe_targets()
    }

    /// Follows the roles: a slave that starts or stops being a judged backup starts afresh,
    /// and every up slave gets a probe schedule while probing is on.
    pub(crate) fn standby_refresh(&mut self, now: Instant) {
        let (on, probing, every) = (self.standby_on(), self.probing(), ms(self.opts.standby_probe));
        for s in &mut self.slaves {
            let judged = on && s.backup && s.link == LinkState::Up;
            if judged != s.standby.judged {
                s.standby = Standby { judged, ..Standby::default() };
            }
            let probes = probing && s.link == LinkState::Up;
            match (probes, s.standby.next_probe) {
                (true, None) => s.standby.next_probe = Some(now + jittered(every, s.id, s.standby.probes_sent) / 4),
                (false, Some(_)) => s.standby.next_probe = None,
                _ => {}
            }
        }
    }

    /// When the standby check next has something to do.
    pub(crate) fn standby_deadline(&self) -> Option<Instant> {
        let window = ms(self.opts.standby_window);
        let s = self.slaves.iter().map(|s| &s.standby);
        let verdicts = s.clone().filter(|s| s.judged).filter_map(|s| match (s.owed_since, s.verdict) {
            (Some(t), Verdict::Verified | Verdict::Unverified) => Some(t + window),
            (None, Verdict::Verified) => s.last_ok.map(|t| t + window),
            _ => None,
        });
        verdicts.chain(s.filter_map(|s| s.next_probe)).min()
    }

    /// Sends the probes that are due and judges what stayed owed for a whole window.
    pub(crate) fn standby_tick(&mut self, now: Instant) {
        let due: Vec<SlaveId> =
            self.slaves.iter().filter(|s| s.standby.next_probe.is_some_and(|t| t <= now)).map(|s| s.id).collect();
        for id in due {
            self.send_standby_probe(now, id);
        }
        let window = ms(self.opts.standby_window);
        let ids: Vec<SlaveId> = self.slaves.iter().filter(|s| s.standby.judged).map(|s| s.id).collect();
        for id in ids {
            let Some(s) = self.slave(id) else { continue };
            let st = &s.standby;
            if st.owed_since.is_some_and(|t| now.saturating_since(t) >= window) && st.verdict != Verdict::Broken {
                let reason = owed_reason(st, &self.probe_targets(), &self.name);
                self.standby_verdict(id, Verdict::Broken, reason);
            } else if st.owed_since.is_none()
                && st.verdict == Verdict::Verified
                && st.last_ok.is_some_and(|t| now.saturating_since(t) >= window)
            {
                let reason = format!("nothing to judge by for {} ms", self.opts.standby_window);
                self.standby_verdict(id, Verdict::Unverified, reason);
            }
        }
    }

    fn send_standby_probe(&mut self, now: Instant, id: SlaveId) {
        let targets = self.probe_targets();
        // `rbond verify` probes with the regular probes off: no next one then.
        let every = self.probing().then(|| ms(self.opts.standby_probe));
        let Some(s) = self.slave(id) else { return };
        let n = s.standby.probes_sent;
        let target = targets[(n % targets.len() as u64) as usize];
        let (mac, judged) = (probe_mac(s.perm_mac), s.standby.judged);
        if let Some(s) = self.slave_mut(id) {
            s.standby.probes_sent += 1;
            s.standby.next_probe = every.map(|every| now + jittered(every, id, n + 1));
            if judged {
                s.standby.probes_owed += 1;
                s.standby.owed_since.get_or_insert(now);
            }
        }
        self.tally.counts.standby_probes += 1;
        self.push(Action::SendStandbyProbe { slave: id, mac, target });
    }

    /// `rbond verify`: a probe from every up slave at once, as if each were due now.
    pub(crate) fn verify_now(&mut self, now: Instant) {
        if !self.has_probe_targets() {
            return;
        }
        let up: Vec<SlaveId> = self.slaves.iter().filter(|s| s.link == LinkState::Up).map(|s| s.id).collect();
        for id in up {
            self.send_standby_probe(now, id);
        }
    }

    /// The bond sent a broadcast through the active slave: every judged backup owes its echo.
    pub(crate) fn bond_broadcast_sent(&mut self, now: Instant) {
        for s in self.slaves.iter_mut().filter(|s| s.standby.judged) {
            s.standby.broadcasts_owed += 1;
            s.standby.owed_since.get_or_insert(now);
        }
    }

    /// Takes the neighbour discovery frames that concern the standby check: a target's
    /// advertisement to the slave's probe address, and the active's probes flooded back in
    /// through a backup. Returns whether the frame was ours, a probe or its answer (no sign
    /// of life for the monitors then, as for ARP).
    pub(crate) fn standby_nd(&mut self, now: Instant, id: SlaveId, f: &NdFrame) -> bool {
        let Some(s) = self.slave(id) else { return false };
        let (judged, probe_from) = (s.standby.judged, eui64_link_local(probe_mac(s.perm_mac)));
        let own = self.slaves.iter().any(|o| probe_mac(o.perm_mac) == f.sender_mac);
        let answer = f.kind == NdKind::Advertisement
            && f.destination == probe_from
            && self.probe_targets().contains(&IpAddr::V6(f.source));
        let from_active =
            self.active.and_then(|a| self.slave(a)).is_some_and(|a| probe_mac(a.perm_mac) == f.sender_mac);
        if answer {
            self.standby_proof(now, id, format!("a reply from {}", f.source));
        } else if from_active && judged {
            self.standby_proof(now, id, format!("{}'s probes come back through it", self.name));
        }
        own || answer
    }

    /// A frame from the bond's MAC came in through the slave: it is in the active's segment.
    pub(crate) fn echo_seen(&mut self, now: Instant, id: SlaveId) {
        if self.slave(id).is_some_and(|s| s.standby.judged) {
            let reason = format!("{}'s broadcasts come back through it", self.name);
            self.standby_proof(now, id, reason);
        }
    }

    /// Takes the ARP frames that concern the standby check: replies to a slave's probe MAC,
    /// and probes of the active slave flooded back in through a backup. Returns whether the
    /// frame was ours (then no monitor may count it: our own probes are no sign of life).
    pub(crate) fn standby_arp(&mut self, now: Instant, id: SlaveId, f: &ArpFrame) -> bool {
        let Some(s) = self.slave(id) else { return false };
        let own = self.slaves.iter().any(|o| probe_mac(o.perm_mac) == f.sender_mac);
        if f.op == ArpOp::Reply && f.target_mac == probe_mac(s.perm_mac) {
            let reason = format!("a reply from {}", f.sender_ip);
            self.standby_proof(now, id, reason);
            return true;
        }
        let from_active =
            self.active.and_then(|a| self.slave(a)).is_some_and(|a| probe_mac(a.perm_mac) == f.sender_mac);
        if from_active && s.standby.judged {
            let reason = format!("{}'s probes come back through it", self.name);
            self.standby_proof(now, id, reason);
        }
        own
    }

    fn standby_proof(&mut self, now: Instant, id: SlaveId, reason: String) {
        let Some(s) = self.slave_mut(id) else { return };
        let st = &mut s.standby;
        st.last_ok = Some(now);
        (st.owed_since, st.broadcasts_owed, st.probes_owed) = (None, 0, 0);
        if st.judged && st.verdict != Verdict::Verified {
            self.standby_verdict(id, Verdict::Verified, reason);
        } else if let Some(s) = self.slave_mut(id) {
            s.standby.reason = reason;
        }
    }

    /// Records a new verdict. Only a path that breaks or mends is logged: a backup verified
    /// for the first time, or unverified for a quiet while, is routine.
    fn standby_verdict(&mut self, id: SlaveId, verdict: Verdict, reason: String) {
        let Some(s) = self.slave_mut(id) else { return };
        let was = std::mem::replace(&mut s.standby.verdict, verdict);
        s.standby.reason = reason.clone();
        let slave = s.name.clone();
        self.tally.counts.standby_changes += 1;
        if was == Verdict::Broken || verdict == Verdict::Broken {
            self.log(Event::StandbyVerdict { slave, verdict, reason });
        }
    }

    /// Back after an absence (a new daemon): nothing seen meanwhile can be held against anyone.
    pub(crate) fn standby_resume(&mut self) {
        for s in &mut self.slaves {
            (s.standby.owed_since, s.standby.broadcasts_owed, s.standby.probes_owed) = (None, 0, 0);
        }
    }

    /// `standby_select`: how a candidate ranks (higher is better); without it all rank alike.
    pub(crate) fn standby_rank(&self, s: &Slave) -> Verdict {
        if self.opts.standby_select && s.standby.judged { s.standby.verdict } else { Verdict::Unverified }
    }

    /// A failover into a broken path still beats none, but it is said loudly.
    pub(crate) fn warn_if_broken(&mut self, id: SlaveId) {
        let Some(s) = self.slave(id).filter(|s| s.standby.judged && s.standby.verdict == Verdict::Broken) else {
            return;
        };
        let (slave, reason) = (s.name.clone(), s.standby.reason.clone());
        self.log(Event::ActivatingBroken { slave, reason });
    }

    /// The standby check of a slave as reports show it: backups that are up are judged; the
    /// active slave shows what its own probes found (verified while a reply is recent).
    pub(crate) fn standby_report(&self, s: &Slave, now: Option<Instant>) -> Option<StandbyReport> {
        let ago = s.standby.last_ok.zip(now).map(|(t, now)| now.saturating_since(t).as_millis() as u64);
        let verdict = match (s.standby.judged, self.active == Some(s.id)) {
            (true, _) => s.standby.verdict,
            (false, true) if ago.is_some_and(|ms| ms < u64::from(self.opts.standby_window)) => Verdict::Verified,
            (false, true) if self.standby_on() => Verdict::Unverified,
            _ => return None,
        };
        Some(StandbyReport { verdict, reason: s.standby.reason.clone(), last_ok_ms_ago: ago })
    }
}

/// Why a backup is broken, from what it still owes.
fn owed_reason(st: &Standby, targets: &[IpAddr], bond: &str) -> String {
    let mut parts = Vec::new();
    if st.broadcasts_owed > 0 {
        parts.push(format!("none of {} broadcasts {bond} sent came back", st.broadcasts_owed));
    }
    if st.probes_owed > 0 {
        let to: Vec<String> = targets.iter().map(IpAddr::to_string).collect();
        parts.push(format!("{} probes for {} unanswered", st.probes_owed, to.join(", ")));
    }
    parts.join("; ")
}
