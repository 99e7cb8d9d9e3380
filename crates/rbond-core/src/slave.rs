//! One enslaved interface as the bond sees it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::standby::Standby;

use crate::bond::SlaveId;
use crate::mac::Mac;
use crate::time::Instant;

/// The monitor's view of a slave's link (the kernel's `BOND_LINK_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    /// Link lost, counting down `downdelay`; still in use.
    Fail,
    Down,
    /// Link back, counting down `updelay`; not yet in use.
    Back,
}

impl LinkState {
    /// As `/proc/net/bonding` and sysfs `mii_status` print it.
    pub fn mii_status(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Fail => "going down",
            LinkState::Down => "down",
            LinkState::Back => "going back",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Duplex {
    Half,
    Full,
}

/// What the device itself reports: carrier, and speed and duplex where the driver knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkInfo {
    pub carrier: bool,
    pub speed: Option<u32>,
    pub duplex: Option<Duplex>,
}

impl LinkInfo {
    pub fn up() -> LinkInfo {
        LinkInfo { carrier: true, ..LinkInfo::default() }
    }
    pub fn down() -> LinkInfo {
        LinkInfo::default()
    }
}

/// An interface offered for enslaving: the caller's id for it, its name, its MAC as it is
/// now, and its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveSpec {
    pub id: SlaveId,
    pub name: String,
    pub mac: Mac,
    pub link: LinkInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Slave {
    pub(crate) id: SlaveId,
    pub(crate) name: String,
    /// The MAC it had when enslaved; what release puts back.
    pub(crate) perm_mac: Mac,
    /// The MAC the engine last gave it (or found on it).
    pub(crate) mac: Mac,
    pub(crate) link: LinkState,
    /// When a FAIL or BACK countdown ends.
    pub(crate) delay_until: Option<Instant>,
    /// Enslaved but not yet inspected by the MII monitor, so its countdown has not begun.
    #[serde(default)]
    pub(crate) unseen: bool,
    pub(crate) hw: LinkInfo,
    /// The kernel's `backup` state: false for the active slave and for the ARP candidate.
    pub(crate) backup: bool,
    pub(crate) failures: u32,
    pub(crate) prio: i32,
    pub(crate) last_link_up: Option<Instant>,
    pub(crate) last_rx: Option<Instant>,
    pub(crate) last_tx: Option<Instant>,
    /// Last validated ARP or NA from each target (a missing target has never answered).
    pub(crate) target_rx: Vec<(IpAddr, Instant)>,
    /// ARP frames that `arp_validate` looked at and did not count.
    #[serde(default)]
    pub(crate) arp_rejected: u64,
    /// Frames that could not be parsed.
    #[serde(default)]
    pub(crate) bad_frames: u64,
    #[serde(default)]
    pub(crate) standby: Standby,
}

impl Slave {
    pub(crate) fn new(spec: SlaveSpec, link: LinkState) -> Slave {
        Slave {
            id: spec.id,
            name: spec.name,
            perm_mac: spec.mac,
            mac: spec.mac,
            link,
            delay_until: None,
            unseen: true,
            hw: spec.link,
            backup: true,
            failures: 0,
            prio: 0,
            last_link_up: None,
            last_rx: None,
            last_tx: None,
            target_rx: Vec::new(),
            arp_rejected: 0,
            bad_frames: 0,
            standby: Standby::default(),
        }
    }

    /// A committed link failure; the count saturates like the kernel's u32.
    pub(crate) fn count_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    pub(crate) fn note_target_rx(&mut self, target: IpAddr, now: Instant) {
        match self.target_rx.iter_mut().find(|(t, _)| *t == target) {
            Some(entry) => entry.1 = now,
            None => self.target_rx.push((target, now)),
        }
    }
}
