//! Everything the bond says, and the exact words it says it in.
//!
//! The wording is the Debian Squeeze (2.6.32, bonding 3.5.0) driver's, which is what our users'
//! runbooks grep for, minus the `bonding: ` tag that syslog's program name now carries.
//! Messages the kernel prints at module load carry no bond name; all others start `bond0: `.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::options::{Delay, OptionName};
use crate::standby::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    // Selection and carrier.
    MakingActive {
        slave: String,
    },
    MakingActiveEarlier {
        slave: String,
        ms: u64,
    },
    FirstActiveUp,
    NoActive,
    // Membership.
    Enslaved {
        slave: String,
        active: bool,
        link_up: bool,
    },
    Released {
        slave: String,
        was_active: bool,
    },
    ReleasedAll,
    PermHwaddrInUse {
        slave: String,
        mac: String,
    },
    // MII and ARP monitors.
    LinkDownDelayed {
        slave: String,
        active: bool,
        ms: u64,
    },
    LinkUpAgain {
        slave: String,
        ms: u64,
    },
    LinkUpDelayed {
        slave: String,
        ms: u64,
    },
    LinkDownAgain {
        slave: String,
        ms: u64,
    },
    LinkUp {
        slave: String,
    },
    LinkDown {
        slave: String,
    },
    BackupDown {
        slave: String,
    },
    ProbeBad {
        arp_slave: String,
        active: String,
    },
    // Creation (module load in the kernel: no bond name).
    MiiMonitoringSet {
        ms: u32,
    },
    /// The targets are the ARP and the NS ones (the kernel's module parameters have no NS
    /// targets, so its line counts only ARP ones).
    ArpMonitoringSet {
        ms: u32,
        validate: &'static str,
        targets: Vec<IpAddr>,
    },
    NoMonitor,
    ArpIntervalWithoutTargets {
        ms: u32,
    },
    // Runtime option changes.
    DelayRounded {
        delay: Delay,
        given: u32,
        miimon: u32,
        rounded: u64,
    },
    DelaySet {
        delay: Delay,
        ms: u64,
    },
    DelayUpdated {
        delay: Delay,
        ms: u64,
    },
    MiimonSet {
        ms: u32,
    },
    ArpDisabledForMii,
    ArpIntervalSet {
        ms: u32,
    },
    MiiDisabledForArp,
    ArpNoTargets,
    ModeSet,
    PrimarySet {
        slave: String,
    },
    PrimaryNone,
    PrimaryRecorded {
        name: String,
    },
    ArpTargetAdded {
        target: Ipv4Addr,
    },
    ArpTargetRemoved {
        target: Ipv4Addr,
    },
    LastArpTargetRemoved,
    /// An option without interactions took a new value (as its sysfs file now reads).
    OptionSet {
        option: OptionName,
        value: String,
    },
    // Writing `active_slave` (ifenslave -c says none of these).
    ActiveSlaveSet {
        slave: String,
    },
    AlreadyActive {
        slave: String,
    },
    ActiveCleared,
    CannotActivate {
        slave: String,
    },
    // rbond's own: the standby check.
    StandbyVerdict {
        slave: String,
        verdict: Verdict,
        reason: String,
    },
    /// A failover had nothing better than a slave whose standby path is broken.
    ActivatingBroken {
        slave: String,
        reason: String,
    },
}

impl Event {
    pub fn level(&self) -> Level {
        match self {
            Event::PermHwaddrInUse { .. }
            | Event::NoMonitor
            | Event::ArpIntervalWithoutTargets { .. }
            | Event::DelayRounded { .. }
            | Event::LastArpTargetRemoved
            | Event::CannotActivate { .. }
            | Event::ProbeBad { .. }
            | Event::ActivatingBroken { .. }
            | Event::StandbyVerdict { verdict: Verdict::Broken, .. } => Level::Warning,
            _ => Level::Info,
        }
    }

    /// True for the messages the kernel prints without a device name.
    fn is_global(&self) -> bool {
        matches!(
            self,
            Event::MiiMonitoringSet { .. }
                | Event::ArpMonitoringSet { .. }
                | Event::NoMonitor
                | Event::ArpIntervalWithoutTargets { .. }
        )
    }

    /// The log line as the bond named `bond` prints it.
    pub fn render(&self, bond: &str) -> String {
        let text = Message { event: self, bond }.to_string();
        if self.is_global() { text } else { format!("{bond}: {text}") }
    }
}

/// An event's message without its `bond0: ` prefix (a few name the bond mid-sentence).
struct Message<'a> {
    event: &'a Event,
    bond: &'a str,
}

fn a_or_an(active: bool) -> &'static str {
    if active { "n active" } else { " backup" }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bond = self.bond;
        match self.event {
            Event::MakingActive { slave } => write!(f, "making interface {slave} the new active one."),
            Event::MakingActiveEarlier { slave, ms } => {
                write!(f, "making interface {slave} the new active one {ms} ms earlier.")
            }
            Event::FirstActiveUp => write!(f, "first active interface up!"),
            Event::NoActive => write!(f, "now running without any active interface !"),
            Event::Enslaved { slave, active, link_up } => write!(
                f,
                "enslaving {slave} as a{} interface with a{} link.",
                a_or_an(*active),
                if *link_up { "n up" } else { " down" }
            ),
            Event::Released { slave, was_active } => {
                write!(f, "releasing {} interface {slave}", if *was_active { "active" } else { "backup" })
            }
            Event::ReleasedAll => write!(f, "released all slaves"),
            Event::PermHwaddrInUse { slave, mac } => write!(
                f,
                "Warning: the permanent HWaddr of {slave} - {mac} - is still in use by {bond}. \
                 Set the HWaddr of {slave} to a different address to avoid conflicts."
            ),
            Event::LinkDownDelayed { slave, active, ms } => write!(
                f,
                "link status down for {}interface {slave}, disabling it in {ms} ms.",
                if *active { "active " } else { "backup " }
            ),
            Event::LinkUpAgain { slave, ms } => {
                write!(f, "link status up again after {ms} ms for interface {slave}.")
            }
            Event::LinkUpDelayed { slave, ms } => {
                write!(f, "link status up for interface {slave}, enabling it in {ms} ms.")
            }
            Event::LinkDownAgain { slave, ms } => {
                write!(f, "link status down again after {ms} ms for interface {slave}.")
            }
            Event::LinkUp { slave } => write!(f, "link status definitely up for interface {slave}."),
            Event::LinkDown { slave } => {
                write!(f, "link status definitely down for interface {slave}, disabling it")
            }
            Event::BackupDown { slave } => write!(f, "backup interface {slave} is now down."),
            Event::ProbeBad { arp_slave, active } => {
                write!(f, "PROBE: c_arp {arp_slave} && cas {active} BAD")
            }
            Event::MiiMonitoringSet { ms } => write!(f, "MII link monitoring set to {ms} ms"),
            Event::ArpMonitoringSet { ms, validate, targets } => {
                write!(f, "ARP monitoring set to {ms} ms, validate {validate}, with {} target(s):", targets.len())?;
                targets.iter().try_for_each(|t| write!(f, " {t}"))
            }
            Event::NoMonitor => write!(
                f,
                "Warning: either miimon or arp_interval and arp_ip_target module parameters must be \
                 specified, otherwise bonding will not detect link failures! see bonding.txt for details."
            ),
            Event::ArpIntervalWithoutTargets { ms } => write!(
                f,
                "Warning: arp_interval module parameter ({ms}) specified without providing an \
                 arp_ip_target parameter, arp_interval was reset to 0"
            ),
            Event::DelayRounded { delay, given, miimon, rounded } => write!(
                f,
                // peer_notif_delay came with the modern wording, which has no "Warning: ".
                "{}{} ({given}) is not a multiple of miimon ({miimon}), {} rounded to {rounded} ms",
                if *delay == Delay::PeerNotif { "" } else { "Warning: " },
                delay.phrase(),
                delay.rounded_word()
            ),
            Event::DelaySet { delay, ms } => write!(f, "Setting {} to {ms}.", delay.phrase()),
            Event::DelayUpdated { delay, ms } => write!(
                f,
                "Note: Updating {} (to {ms}) since it is a multiple of the miimon value.",
                delay.option().as_str()
            ),
            Event::MiimonSet { ms } => write!(f, "Setting MII monitoring interval to {ms}."),
            Event::ArpDisabledForMii => {
                write!(f, "MII monitoring cannot be used with ARP monitoring. Disabling ARP monitoring...")
            }
            Event::ArpIntervalSet { ms } => write!(f, "Setting ARP monitoring interval to {ms}."),
            Event::MiiDisabledForArp => {
                write!(f, "ARP monitoring cannot be used with MII monitoring. {bond} Disabling MII monitoring.")
            }
            Event::ArpNoTargets => {
                write!(f, "ARP monitoring has been set up, but no ARP targets have been specified.")
            }
            Event::ModeSet => write!(f, "setting mode to active-backup (1)."),
            Event::PrimarySet { slave } => write!(f, "Setting {slave} as primary slave."),
            Event::PrimaryNone => write!(f, "Setting primary slave to None."),
            Event::PrimaryRecorded { name } => {
                write!(f, "Recording {name} as primary, but it has not been enslaved to {bond} yet.")
            }
            Event::ArpTargetAdded { target } => write!(f, "adding ARP target {target}."),
            Event::ArpTargetRemoved { target } => write!(f, "removing ARP target {target}."),
            Event::LastArpTargetRemoved => write!(f, "removing last arp target with arp_interval on"),
            Event::OptionSet { option, value } => option_set(f, *option, value),
            Event::ActiveSlaveSet { slave } => write!(f, "Setting {slave} as active slave."),
            Event::AlreadyActive { slave } => write!(f, "{slave} is already the current active slave."),
            Event::ActiveCleared => write!(f, "Clearing current active slave."),
            Event::CannotActivate { slave } => {
                write!(f, "Could not set {slave} as active slave; either {slave} is down or the link is down.")
            }
            Event::StandbyVerdict { slave, verdict, reason } => {
                write!(f, "standby path of backup interface {slave} is {}: {reason}", verdict.as_str())
            }
            Event::ActivatingBroken { slave, reason } => {
                write!(
                    f,
                    "Warning: no better backup: making {slave} active although its standby path is broken ({reason})"
                )
            }
        }
    }
}

/// A plain option's change, as the first kernel with the option worded it: squeeze's sysfs
/// for the options it had, the 3.x option code for the later ones.
fn option_set(f: &mut fmt::Formatter<'_>, option: OptionName, value: &str) -> fmt::Result {
    // Choices read `name number` in sysfs and are logged as `name (number)`.
    let choice = value.rsplit_once(' ').map(|(name, n)| format!("{name} ({n})"));
    let choice = choice.as_deref().unwrap_or(value);
    let name = option.as_str();
    match option {
        OptionName::FailOverMac => write!(f, "Setting {name} to {choice}."),
        OptionName::ArpValidate | OptionName::ArpAllTargets | OptionName::PrimaryReselect => {
            write!(f, "setting {name} to {choice}.")
        }
        OptionName::MinLinks => write!(f, "Setting min links value to {value}"),
        _ => write!(f, "Setting {name} to {value}."),
    }
}
