//! Who becomes the active slave, and what changing it involves.

use crate::bond::{Action, Bond};
use crate::event::Event;
use crate::options::{FailOverMac, PrimaryReselect};
use crate::slave::{Duplex, LinkState, Slave};
use crate::time::Instant;

/// Speed as the kernel compares it: unknown (`SPEED_UNKNOWN`, -1 in a u32) beats everything.
fn speed_key(s: &Slave) -> u32 {
    s.hw.speed.unwrap_or(u32::MAX)
}

/// Duplex as the kernel compares it: half 0, full 1, unknown 0xff.
fn duplex_key(s: &Slave) -> u8 {
    match s.hw.duplex {
        Some(Duplex::Half) => 0,
        Some(Duplex::Full) => 1,
        None => 0xff,
    }
}

impl Bond {
    /// Whether a slave that just came up should make the bond reconsider its active slave:
    /// only if there is none, or it is the primary, or it outranks the active one.
    pub(crate) fn up_wants_failover(&self, name: &str) -> bool {
        let Some(active) = self.active.as_deref().and_then(|a| self.slave(a)) else { return true };
        let Some(s) = self.slave(name) else { return false };
        self.primary_slave().is_some_and(|p| p.name == name) || s.prio > active.prio
    }

    pub(crate) fn select_active_slave(&mut self, now: Instant) {
        let best = self.find_best_slave(now);
        if best == self.active {
            return;
        }
        if let Some(name) = best.as_deref() {
            self.note_new_active(name, now);
        }
        self.change_active(best);
        match self.update_carrier() {
            Some(true) => self.log(Event::FirstActiveUp),
            Some(false) => self.log(Event::NoActive),
            None => {}
        }
    }

    /// The modern kernel's `bond_find_best_slave`.
    fn find_best_slave(&mut self, now: Instant) -> Option<String> {
        if let Some(name) = self.choose_primary_or_current() {
            return Some(name);
        }
        if let Some(up) = self.slaves.iter().find(|s| s.link == LinkState::Up) {
            return Some(up.name.clone());
        }
        // A slave still counting down its updelay is better than none at all.
        let updelay = self.opts.updelay;
        let mut best: Option<(&Slave, u32)> = None;
        for s in self.slaves.iter().filter(|s| s.link == LinkState::Back && s.hw.carrier) {
            let left = self.ticks_left(s.delay_until, now);
            if left < updelay && best.is_none_or(|(_, b)| left < b) {
                best = Some((s, left));
            }
        }
        best.map(|(s, _)| s.name.clone())
    }

    fn choose_primary_or_current(&mut self) -> Option<String> {
        let curr = self.active.as_deref().and_then(|a| self.slave(a));
        let curr_up = curr.filter(|c| c.link == LinkState::Up);
        let primary = self.primary_slave().filter(|p| p.link == LinkState::Up);
        let Some(prim) = primary else {
            // No usable primary: the highest prio wins, ties going to the earliest slave.
            let mut hprio: Option<&Slave> = None;
            for s in self.slaves.iter().filter(|s| s.link == LinkState::Up) {
                if hprio.is_none_or(|h| s.prio > h.prio) {
                    hprio = Some(s);
                }
            }
            return match hprio {
                Some(h) if curr.is_none_or(|c| c.name != h.name) => self.reselect(h, curr_up).map(|s| s.name.clone()),
                _ => curr_up.map(|c| c.name.clone()),
            };
        };
        if self.force_primary {
            let name = prim.name.clone();
            self.force_primary = false;
            return Some(name);
        }
        self.reselect(prim, curr_up).map(|s| s.name.clone())
    }

    /// Between an up candidate and the current active, per `primary_reselect`.
    fn reselect<'a>(&'a self, cand: &'a Slave, curr_up: Option<&'a Slave>) -> Option<&'a Slave> {
        let Some(curr) = curr_up else { return Some(cand) };
        Some(match self.opts.primary_reselect {
            PrimaryReselect::Always => cand,
            PrimaryReselect::Better => {
                let (ps, cs) = (speed_key(cand), speed_key(curr));
                if ps < cs || (ps == cs && duplex_key(cand) <= duplex_key(curr)) { curr } else { cand }
            }
            PrimaryReselect::Failure => curr,
        })
    }

    /// Logs the switch to `name`, promoting it at once if it was still counting its updelay.
    fn note_new_active(&mut self, name: &str, now: Instant) {
        let Some(s) = self.slave(name) else { return };
        let left = (s.link == LinkState::Back).then(|| self.ticks_left(s.delay_until, now));
        let event = match left {
            Some(left) => {
                let ms = u64::from(self.opts.updelay.saturating_sub(left)) * u64::from(self.opts.miimon);
                Event::MakingActiveEarlier { slave: name.to_string(), ms }
            }
            None => Event::MakingActive { slave: name.to_string() },
        };
        if let Some(s) = self.slave_mut(name) {
            s.last_link_up = Some(now);
            s.link = LinkState::Up;
            s.delay_until = None;
        }
        self.log(event);
    }

    /// Moves the active role; `note_new_active` has already logged it when there is a new one.
    pub(crate) fn change_active(&mut self, new: Option<String>) {
        if new == self.active {
            return;
        }
        let old = self.active.take();
        if let Some(o) = old.as_deref() {
            if let Some(s) = self.slave_mut(o) {
                s.backup = true;
            }
            self.push(Action::Deactivate { slave: o.to_string() });
        }
        let Some(name) = new else { return };
        // A probe candidate stops being one once there is a real active slave (the kernel
        // waits for its next ARP tick; until then two slaves would claim the active state).
        self.retire_arp_candidate();
        if let Some(s) = self.slave_mut(&name) {
            s.backup = false;
        }
        self.active = Some(name.clone());
        self.push_activate(&name);
        if self.opts.fail_over_mac != FailOverMac::None {
            self.failover_mac(old.as_deref(), &name);
        }
        self.arm_peer_notify();
    }
}
