//! The bond's timers as data: one deadline per kind of work, so that `poll_timeout` is the
//! earliest of them and `handle_timeout` runs exactly the ones that are due.

use serde::{Deserialize, Serialize};

use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// A run of the MII or ARP monitor. The ARP monitor runs every interval; the MII monitor
    /// runs only while a tick has work (notifications owed, a returning slave to fast-track),
    /// because carrier changes reach it as inputs.
    Monitor,
    /// The earliest end of a slave's `updelay` or `downdelay` countdown.
    LinkDelay,
    /// The next round of multicast membership reports after a failover.
    IgmpResend,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Monitor, Timer::LinkDelay, Timer::IgmpResend];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TimerTable([Option<Instant>; 3]);

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer.index()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer.index()] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer.index()]
    }

    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Deadlines that passed are moved to `now`: what fell due is due now, not in the past.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        for at in self.0.iter_mut().flatten() {
            *at = (*at).max(now);
        }
    }

    /// The earliest deadline of all.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// A timer that is due at `now`, stopped so it runs once.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let due = Timer::ALL.into_iter().find(|t| self.get(*t).is_some_and(|at| at <= now))?;
        self.stop(due);
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_timers_come_out_once_in_table_order() {
        let mut t = TimerTable::default();
        t.set(Timer::LinkDelay, Instant::from_millis(5));
        t.set(Timer::Monitor, Instant::from_millis(10));
        assert_eq!(t.next(), Some(Instant::from_millis(5)));
        assert_eq!(t.take_expired(Instant::from_millis(4)), None);
        assert_eq!(t.take_expired(Instant::from_millis(10)), Some(Timer::Monitor));
        assert_eq!(t.take_expired(Instant::from_millis(10)), Some(Timer::LinkDelay));
        assert_eq!(t.take_expired(Instant::from_millis(10)), None);
        assert_eq!(t.next(), None);
    }
}
