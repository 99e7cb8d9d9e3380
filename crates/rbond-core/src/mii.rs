//! The MII monitor: each slave's link walks UP → FAIL → DOWN → BACK → UP, with `downdelay`
//! and `updelay` counted in miimon ticks.
//!
//! The kernel polls carrier every tick and counts delays by decrementing a tick counter. We
//! also hear carrier changes as events between ticks, so a countdown is kept as the instant
//! it ends: a loss seen at time t is committed at t + downdelay, exactly what a kernel loss
//! first seen on a tick at t would do, and a loss with no delay is acted on at once.

use core::time::Duration;

use crate::bond::{Bond, SlaveId};
use crate::event::Event;
use crate::options::Delay;
use crate::slave::LinkState;
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proposal {
    Up,
    Down,
}

impl Bond {
    /// One inspection of every slave, then the commit of whatever became definite.
    pub(crate) fn mii_pass(&mut self, now: Instant) {
        let proposals = self.mii_inspect(now);
        if !proposals.is_empty() {
            self.mii_commit(now, proposals);
        }
        self.update_carrier();
    }

    /// Ticks left in a countdown, as the kernel's `delay` field would read after this tick.
    pub(crate) fn ticks_left(&self, until: Option<Instant>, now: Instant) -> u32 {
        let m = self.miimon_interval();
        let left = until.map_or(Duration::ZERO, |t| t.saturating_since(now));
        if m.is_zero() {
            return 0;
        }
        let ticks = left.as_nanos().div_ceil(m.as_nanos());
        u32::try_from(ticks).unwrap_or(u32::MAX).saturating_sub(1)
    }

    /// Milliseconds a countdown of `total` ticks has run, as the kernel reports it.
    fn elapsed_ms(&self, total: u32, until: Option<Instant>, now: Instant) -> u64 {
        let left = self.ticks_left(until, now).saturating_add(1).min(total);
        u64::from(total - left) * u64::from(self.opts.miimon)
    }

    fn mii_inspect(&mut self, now: Instant) -> Vec<(SlaveId, Proposal)> {
        let mut proposals = Vec::new();
        // With no active slave the first returning slave skips its updelay.
        let mut ignore_updelay = self.active.is_none();
        for i in 0..self.slaves.len() {
            if let Some(p) = self.inspect_slave(i, now, &mut ignore_updelay) {
                proposals.push((self.slaves[i].id, p));
            }
        }
        proposals
    }

    fn inspect_slave(&mut self, i: usize, now: Instant, ignore_updelay: &mut bool) -> Option<Proposal> {
        let m = self.miimon_interval();
        let (down_ticks, up_ticks) = (self.opts.downdelay, self.opts.updelay);
        let (id, name) = (self.slaves[i].id, self.slaves[i].name.clone());
        let link_ok = self.slaves[i].hw.carrier;
        self.slaves[i].unseen = false;
        match (self.slaves[i].link, link_ok) {
            (LinkState::Up, true) | (LinkState::Down, false) => None,
            (LinkState::Up, false) => {
                self.slaves[i].link = LinkState::Fail;
                self.slaves[i].delay_until = Some(now + m * down_ticks);
                if down_ticks > 0 {
                    let active = !self.slaves[i].backup;
                    self.log(Event::LinkDownDelayed { slave: name, active, ms: self.opts.delay_ms(Delay::Down) });
                }
                self.countdown_over(i, now).then_some(Proposal::Down)
            }
            (LinkState::Fail, false) => self.countdown_over(i, now).then_some(Proposal::Down),
            (LinkState::Fail, true) => {
                let ms = self.elapsed_ms(down_ticks, self.slaves[i].delay_until, now);
                let s = &mut self.slaves[i];
                s.link = LinkState::Up;
                s.delay_until = None;
                s.last_link_up = Some(now);
                self.log(Event::LinkUpAgain { slave: name, ms });
                if self.up_wants_failover(id) {
                    self.select_active_slave(now);
                }
                None
            }
            (LinkState::Down, true) => {
                self.slaves[i].link = LinkState::Back;
                self.slaves[i].delay_until = Some(now + m * up_ticks);
                if up_ticks > 0 {
                    let ms = if *ignore_updelay { 0 } else { self.opts.delay_ms(Delay::Up) };
                    self.log(Event::LinkUpDelayed { slave: name, ms });
                }
                self.back_countdown(i, now, ignore_updelay)
            }
            (LinkState::Back, true) => self.back_countdown(i, now, ignore_updelay),
            (LinkState::Back, false) => {
                let ms = self.elapsed_ms(up_ticks, self.slaves[i].delay_until, now);
                self.slaves[i].link = LinkState::Down;
                self.slaves[i].delay_until = None;
                self.log(Event::LinkDownAgain { slave: name, ms });
                None
            }
        }
    }

    fn countdown_over(&self, i: usize, now: Instant) -> bool {
        self.slaves[i].delay_until.is_none_or(|t| t <= now)
    }

    fn back_countdown(&mut self, i: usize, now: Instant, ignore_updelay: &mut bool) -> Option<Proposal> {
        if *ignore_updelay {
            self.slaves[i].delay_until = Some(now);
        }
        let due = self.countdown_over(i, now);
        if due {
            // Only the first returning slave is fast-tracked.
            *ignore_updelay = false;
        }
        due.then_some(Proposal::Up)
    }

    fn mii_commit(&mut self, now: Instant, proposals: Vec<(SlaveId, Proposal)>) {
        let mut failover = false;
        for (id, proposal) in proposals {
            let Some(s) = self.slave_mut(id) else { continue };
            s.delay_until = None;
            let name = s.name.clone();
            match proposal {
                Proposal::Up => {
                    s.link = LinkState::Up;
                    s.last_link_up = Some(now);
                    self.log(Event::LinkUp { slave: name });
                    failover |= self.up_wants_failover(id);
                }
                Proposal::Down => {
                    s.link = LinkState::Down;
                    s.backup = true;
                    s.count_failure();
                    self.log(Event::LinkDown { slave: name });
                    failover |= self.is_active(id);
                }
            }
        }
        if failover {
            self.select_active_slave(now);
        }
    }
}
