//! What the bond has done, counted for monitoring: failovers and how long the last one left
//! the bond without a working slave, peer notifications and ARP probes sent, ARP frames
//! heard. The kernel keeps none of these. They serialize with the bond, so a daemon that
//! adopts it carries the counts on.

use serde::{Deserialize, Serialize};

use crate::bond::{Bond, SlaveId};
use crate::time::Instant;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Changes of the active slave to another one (a failback counts too); the first slave a
    /// bond ever activates is not a failover.
    pub failovers: u64,
    /// For the last failover that followed a loss: from the loss (the active slave's carrier,
    /// or under the ARP monitor its last sign of life) to the new active slave, in ms.
    pub last_outage_ms: Option<u64>,
    pub peer_notifications: u64,
    pub arp_probes: u64,
    /// ARP frames that counted as a sign of life (validated, or not subject to validation).
    pub arp_heard: u64,
    /// ARP probes the standby check sent from the slaves' probe MACs.
    #[serde(default)]
    pub standby_probes: u64,
    /// Changes of a backup's standby verdict.
    #[serde(default)]
    pub standby_changes: u64,
}

/// The bookkeeping behind the counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub(crate) counts: Counters,
    /// A slave has been active before.
    activated: bool,
    /// When the active slave was lost, until another takes over (or it comes back).
    lost_at: Option<Instant>,
}

impl Bond {
    /// The active slave `id` stopped working at `at` (the earliest sign wins).
    pub(crate) fn note_loss(&mut self, id: SlaveId, at: Instant) {
        if self.active == Some(id) {
            self.tally.lost_at.get_or_insert(at);
        }
    }

    /// The active slave works again before anything replaced it: no outage to report.
    pub(crate) fn note_recovery(&mut self, id: SlaveId) {
        if self.active == Some(id) {
            self.tally.lost_at = None;
        }
    }

    pub(crate) fn note_activation(&mut self, now: Instant) {
        let t = &mut self.tally;
        if std::mem::replace(&mut t.activated, true) {
            t.counts.failovers += 1;
        }
        if let Some(lost) = t.lost_at.take() {
            t.counts.last_outage_ms = Some(now.saturating_since(lost).as_millis() as u64);
        }
    }

    /// What the bond has done so far.
    pub fn counters(&self) -> &Counters {
        &self.tally.counts
    }
}
