//! Telling the network where the bond's addresses now live: `num_grat_arp` notifications per
//! change of active slave, the first at once, the rest `peer_notif_delay` apart.

use crate::bond::{Action, Bond};

impl Bond {
    fn notify_spacing(&self) -> u32 {
        self.opts.peer_notif_delay.max(1)
    }

    /// The kernel's `bond_should_notify_peers`.
    fn may_notify(&self) -> bool {
        self.active.is_some()
            && self.carrier
            && self.peer_notif_left > 0
            && self.peer_notif_left.is_multiple_of(self.notify_spacing())
    }

    fn notify(&mut self) {
        if let Some(slave) = self.active {
            self.tally.counts.peer_notifications += 1;
            self.push(Action::NotifyPeers { slave });
        }
    }

    /// A new active slave was chosen: arm the count, and send the first one now if allowed.
    pub(crate) fn arm_peer_notify(&mut self) {
        if !self.up {
            return;
        }
        self.peer_notif_left = u32::from(self.opts.num_peer_notif) * self.notify_spacing();
        if self.may_notify() {
            self.peer_notif_left -= 1;
            self.notify();
        }
    }

    /// Each MII tick counts one step down, sending when the count is on a spacing boundary.
    pub(crate) fn peer_notify_tick(&mut self) {
        if self.peer_notif_left == 0 {
            return;
        }
        let allowed = self.may_notify();
        self.peer_notif_left -= 1;
        if allowed {
            self.notify();
        }
    }

    /// The ARP monitor has no spacing: one notification per tick while any are owed.
    pub(crate) fn peer_notify_arp_tick(&mut self) {
        if self.may_notify() {
            self.peer_notif_left -= 1;
            self.notify();
        }
    }
}
