//! Who becomes the active slave, and what changing it involves.

use crate::bond::{Action, Bond, SlaveId};
use crate::event::Event;
use crate::options::{FailOverMac, PrimaryReselect};
use crate::slave::{Duplex, LinkState, Slave};
use crate::time::Instant;
use crate::timer::Timer;

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

/// Spacing of the rounds of membership reports after a failover (the kernel's `HZ / 5`).
const IGMP_INTERVAL: core::time::Duration = core::time::Duration::from_millis(200);

impl Bond {
    /// Whether a slave that just came up should make the bond reconsider its active slave:
    /// only if there is none, or it is the primary, or it outranks the active one.
    pub(crate) fn up_wants_failover(&self, id: SlaveId) -> bool {
        let Some(active) = self.active.and_then(|a| self.slave(a)) else { return true };
        let Some(s) = self.slave(id) else { return false };
        self.primary_slave().is_some_and(|p| p.id == id) || s.prio > active.prio
    }

    pub(crate) fn select_active_slave(&mut self, now: Instant) {
        let best = self.find_best_slave(now);
        if best == self.active {
            return;
        }
        if let Some(id) = best {
            self.note_new_active(id, now);
        }
        self.change_active(now, best);
        match self.update_carrier() {
            Some(true) => self.log(Event::FirstActiveUp),
            Some(false) => self.log(Event::NoActive),
            None => {}
        }
    }

    /// The modern kernel's `bond_find_best_slave`.
    fn find_best_slave(&mut self, now: Instant) -> Option<SlaveId> {
        if let Some(id) = self.choose_primary_or_current() {
            return Some(id);
        }
        if let Some(up) = self.slaves.iter().find(|s| s.link == LinkState::Up) {
            return Some(up.id);
        }
        // A slave still counting down its updelay is better than none at all, once the monitor
        // has seen it (one enslaved a moment ago still has its whole updelay to go).
        let updelay = self.opts.updelay;
        let mut best: Option<(SlaveId, u32)> = None;
        for s in self.slaves.iter().filter(|s| s.link == LinkState::Back && s.hw.carrier && !s.unseen) {
            let left = self.ticks_left(s.delay_until, now);
            if left < updelay && best.is_none_or(|(_, b)| left < b) {
                best = Some((s.id, left));
            }
        }
        best.map(|(id, _)| id)
    }

    fn choose_primary_or_current(&mut self) -> Option<SlaveId> {
        let curr = self.active.and_then(|a| self.slave(a));
        let curr_up = curr.filter(|c| c.link == LinkState::Up);
        // With `standby_select`, a failover considers only the best-verified of the slaves
        // that are up; a working active slave is never displaced for its standby verdict.
        let best = self.slaves.iter().filter(|s| s.link == LinkState::Up).map(|s| self.standby_rank(s)).max();
        let eligible = |s: &Slave| s.link == LinkState::Up && (curr_up.is_some() || Some(self.standby_rank(s)) == best);
        let primary = self.primary_slave().filter(|p| eligible(p));
        let Some(prim) = primary else {
            // No usable primary: the highest prio wins, ties going to the earliest slave. A
            // healthy active slave is only displaced by a strictly higher prio (kernels from
            // 6.0 also move to an earlier slave of equal prio: a needless failover).
            let mut hprio: Option<&Slave> = None;
            for s in self.slaves.iter().filter(|s| eligible(s)) {
                if hprio.is_none_or(|h| s.prio > h.prio) {
                    hprio = Some(s);
                }
            }
            return match (hprio, curr_up) {
                (Some(h), Some(c)) if h.prio > c.prio => self.reselect(h, curr_up).map(|s| s.id),
                (Some(h), None) => Some(h.id),
                _ => curr_up.map(|c| c.id),
            };
        };
        if self.force_primary {
            let id = prim.id;
            self.force_primary = false;
            return Some(id);
        }
        self.reselect(prim, curr_up).map(|s| s.id)
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

    /// Logs the switch to `id`, promoting it at once if it was still counting its updelay.
    fn note_new_active(&mut self, id: SlaveId, now: Instant) {
        let Some(s) = self.slave(id) else { return };
        let left = (s.link == LinkState::Back).then(|| self.ticks_left(s.delay_until, now));
        let slave = s.name.clone();
        let event = match left {
            Some(left) => {
                let ms = u64::from(self.opts.updelay.saturating_sub(left)) * u64::from(self.opts.miimon);
                Event::MakingActiveEarlier { slave, ms }
            }
            None => Event::MakingActive { slave },
        };
        if let Some(s) = self.slave_mut(id) {
            s.last_link_up = Some(now);
            s.link = LinkState::Up;
            s.delay_until = None;
        }
        self.log(event);
    }

    /// Moves the active role; `note_new_active` has already logged it when there is a new one.
    pub(crate) fn change_active(&mut self, now: Instant, new: Option<SlaveId>) {
        if new == self.active {
            return;
        }
        let old = self.active.take();
        if let Some(o) = old {
            if let Some(s) = self.slave_mut(o) {
                s.backup = true;
            }
            self.push(Action::Deactivate { slave: o });
        }
        let Some(id) = new else { return };
        self.warn_if_broken(id);
        // A probe candidate stops being one once there is a real active slave (the kernel
        // waits for its next ARP tick; until then two slaves would claim the active state).
        self.retire_arp_candidate();
        if let Some(s) = self.slave_mut(id) {
            s.backup = false;
        }
        self.active = Some(id);
        self.note_activation(now);
        self.push(Action::Activate { slave: id });
        if self.opts.fail_over_mac != FailOverMac::None {
            self.failover_mac(old, id);
        }
        self.arm_peer_notify();
        self.arm_igmp_resend(now);
    }

    /// The kernel re-sends the host's multicast memberships after every change to a new
    /// active slave: `resend_igmp` rounds, the first at once, the rest 200 ms apart.
    fn arm_igmp_resend(&mut self, now: Instant) {
        self.igmp_left = if self.up { u32::from(self.opts.resend_igmp) } else { 0 };
        self.timers.stop(Timer::IgmpResend);
        self.igmp_round(now);
    }

    pub(crate) fn igmp_round(&mut self, now: Instant) {
        let Some(slave) = self.active.filter(|_| self.igmp_left > 0) else { return };
        self.igmp_left -= 1;
        self.push(Action::ResendIgmp { slave });
        if self.igmp_left > 0 {
            self.timers.set(Timer::IgmpResend, now + IGMP_INTERVAL);
        }
    }
}
