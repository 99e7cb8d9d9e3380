//! Bond options: names, defaults, ranges, value parsing, and how options constrain each other.
//!
//! Values are parsed the way the kernel's option engine parses a sysfs write: a value made of
//! digits is a number that must lie in the option's range or match a table entry; anything
//! else is a word (its first 32 characters) looked up by name, and `default` names the default.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The kernel's `BOND_MAX_ARP_TARGETS`.
pub const MAX_ARP_TARGETS: usize = 16;
/// Longest interface name (`IFNAMSIZ` less its terminating NUL).
pub const MAX_IFNAME: usize = 15;
const INT_MAX: u64 = i32::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option {0}")]
    Unknown(String),
    #[error("option {option}: invalid value ({value})")]
    Invalid { option: &'static str, value: String },
    #[error("option {option}: invalid value ({value}); allowed values {min} - {max}")]
    OutOfRange { option: &'static str, value: String, min: u64, max: u64 },
    #[error("option mode: mode {name} ({number}) is not supported; rbond implements active-backup (1) only")]
    UnsupportedMode { name: &'static str, number: u32 },
    #[error("option {0}: unable to set because the bond device has slaves")]
    HasSlaves(&'static str),
    #[error("option {0}: unable to set because the bond device is up")]
    BondUp(&'static str),
    #[error("Unable to set {0} as MII monitoring is disabled")]
    MiimonDisabled(&'static str),
    #[error("option arp_ip_target: invalid ARP target {0} specified for addition")]
    BadTarget(String),
    #[error("option arp_ip_target: ARP target {0} is already present")]
    TargetExists(Ipv4Addr),
    #[error("option arp_ip_target: ARP target table is full!")]
    TargetTableFull,
    #[error("option arp_ip_target: unable to remove nonexistent ARP target {0}")]
    NoSuchTarget(Ipv4Addr),
}

/// An option whose value is one entry of a fixed table of names and numbers.
pub trait Choice: Copy + PartialEq + 'static {
    const OPTION: &'static str;
    const TABLE: &'static [(&'static str, u32, Self)];
    const DEFAULT: Self;

    fn entry(self) -> (&'static str, u32) {
        Self::TABLE.iter().find(|e| e.2 == self).map_or(("?", 0), |e| (e.0, e.1))
    }
    fn name(self) -> &'static str {
        self.entry().0
    }
    fn number(self) -> u32 {
        self.entry().1
    }
    /// The sysfs form, `name number`, as in `active-backup 1`.
    fn sysfs(self) -> String {
        format!("{} {}", self.name(), self.number())
    }
}

macro_rules! choice {
    ($ty:ident, $option:literal, default $def:ident, { $($variant:ident = $name:literal $num:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($variant),+ }
        impl Choice for $ty {
            const OPTION: &'static str = $option;
            const TABLE: &'static [(&'static str, u32, Self)] = &[$(($name, $num, $ty::$variant)),+];
            const DEFAULT: Self = $ty::$def;
        }
    };
}

choice!(Mode, "mode", default BalanceRr, {
    BalanceRr = "balance-rr" 0, ActiveBackup = "active-backup" 1, BalanceXor = "balance-xor" 2,
    Broadcast = "broadcast" 3, Ieee8023ad = "802.3ad" 4, BalanceTlb = "balance-tlb" 5,
    BalanceAlb = "balance-alb" 6,
});
choice!(ArpValidate, "arp_validate", default None, {
    None = "none" 0, Active = "active" 1, Backup = "backup" 2, All = "all" 3,
    Filter = "filter" 4, FilterActive = "filter_active" 5, FilterBackup = "filter_backup" 6,
});
choice!(ArpAllTargets, "arp_all_targets", default Any, { Any = "any" 0, All = "all" 1 });
choice!(PrimaryReselect, "primary_reselect", default Always, {
    Always = "always" 0, Better = "better" 1, Failure = "failure" 2,
});
choice!(FailOverMac, "fail_over_mac", default None, { None = "none" 0, Active = "active" 1, Follow = "follow" 2 });
choice!(Switch, "switch", default Off, { Off = "off" 0, On = "on" 1 });

impl ArpValidate {
    /// Whether frames on a slave in this role must pass validation (bit 0 active, bit 1 backup).
    pub fn applies_to(self, backup: bool) -> bool {
        self.number() & if backup { 2 } else { 1 } != 0
    }
    /// The `filter` bit: only ARP frames count as traffic when validation does not apply.
    pub fn filters(self) -> bool {
        self.number() & 4 != 0
    }
}

/// The three delays the MII monitor counts in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delay {
    Up,
    Down,
    PeerNotif,
}

impl Delay {
    /// How the kernel's messages name it.
    pub fn phrase(self) -> &'static str {
        match self {
            Delay::Up => "up delay",
            Delay::Down => "down delay",
            Delay::PeerNotif => "peer notification delay",
        }
    }
    /// The word in the squeeze rounding warning ("updelay rounded", "delay rounded").
    pub fn rounded_word(self) -> &'static str {
        match self {
            Delay::Up => "updelay",
            Delay::Down => "delay",
            Delay::PeerNotif => "value",
        }
    }
    pub fn option_name(self) -> &'static str {
        match self {
            Delay::Up => "updelay",
            Delay::Down => "downdelay",
            Delay::PeerNotif => "peer_notif_delay",
        }
    }
}

/// Every option the engine stores. `active_slave` is a command, not a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionName {
    Mode,
    Miimon,
    Updelay,
    Downdelay,
    PeerNotifDelay,
    UseCarrier,
    ArpInterval,
    ArpIpTarget,
    ArpValidate,
    ArpAllTargets,
    ArpMissedMax,
    Primary,
    PrimaryReselect,
    FailOverMac,
    NumGratArp,
    NumUnsolNa,
    AllSlavesActive,
    MinLinks,
}

impl OptionName {
    pub const ALL: [OptionName; 18] = [
        OptionName::Mode,
        OptionName::Miimon,
        OptionName::Updelay,
        OptionName::Downdelay,
        OptionName::PeerNotifDelay,
        OptionName::UseCarrier,
        OptionName::ArpInterval,
        OptionName::ArpIpTarget,
        OptionName::ArpValidate,
        OptionName::ArpAllTargets,
        OptionName::ArpMissedMax,
        OptionName::Primary,
        OptionName::PrimaryReselect,
        OptionName::FailOverMac,
        OptionName::NumGratArp,
        OptionName::NumUnsolNa,
        OptionName::AllSlavesActive,
        OptionName::MinLinks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OptionName::Mode => "mode",
            OptionName::Miimon => "miimon",
            OptionName::Updelay => "updelay",
            OptionName::Downdelay => "downdelay",
            OptionName::PeerNotifDelay => "peer_notif_delay",
            OptionName::UseCarrier => "use_carrier",
            OptionName::ArpInterval => "arp_interval",
            OptionName::ArpIpTarget => "arp_ip_target",
            OptionName::ArpValidate => "arp_validate",
            OptionName::ArpAllTargets => "arp_all_targets",
            OptionName::ArpMissedMax => "arp_missed_max",
            OptionName::Primary => "primary",
            OptionName::PrimaryReselect => "primary_reselect",
            OptionName::FailOverMac => "fail_over_mac",
            OptionName::NumGratArp => "num_grat_arp",
            OptionName::NumUnsolNa => "num_unsol_na",
            OptionName::AllSlavesActive => "all_slaves_active",
            OptionName::MinLinks => "min_links",
        }
    }

    /// Accepts the sysfs name, with `-` for `_` (ifupdown spelling) and iproute2's
    /// `peer_notify_delay`.
    pub fn parse(name: &str) -> Result<OptionName, OptionError> {
        let norm = name.trim().replace('-', "_");
        let norm = if norm == "peer_notify_delay" { "peer_notif_delay" } else { norm.as_str() };
        OptionName::ALL
            .into_iter()
            .find(|o| o.as_str() == norm)
            .ok_or_else(|| OptionError::Unknown(name.to_string()))
    }

    pub(crate) fn needs_no_slaves(self) -> bool {
        matches!(self, OptionName::Mode | OptionName::FailOverMac)
    }

    pub(crate) fn needs_bond_down(self) -> bool {
        self == OptionName::Mode
    }
}

/// The option values of one bond. Delays are kept in miimon ticks, as the kernel keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub(crate) miimon: u32,
    pub(crate) updelay: u32,
    pub(crate) downdelay: u32,
    pub(crate) peer_notif_delay: u32,
    pub(crate) use_carrier: bool,
    pub(crate) arp_interval: u32,
    pub(crate) arp_targets: Vec<Ipv4Addr>,
    pub(crate) arp_validate: ArpValidate,
    pub(crate) arp_all_targets: ArpAllTargets,
    pub(crate) arp_missed_max: u8,
    pub(crate) primary: String,
    pub(crate) primary_reselect: PrimaryReselect,
    pub(crate) fail_over_mac: FailOverMac,
    pub(crate) num_peer_notif: u8,
    pub(crate) all_slaves_active: bool,
    pub(crate) min_links: u32,
}

impl Default for Options {
    /// The kernel's defaults, except that the mode is active-backup: the only one rbond has.
    fn default() -> Options {
        Options {
            miimon: 0,
            updelay: 0,
            downdelay: 0,
            peer_notif_delay: 0,
            use_carrier: true,
            arp_interval: 0,
            arp_targets: Vec::new(),
            arp_validate: ArpValidate::None,
            arp_all_targets: ArpAllTargets::Any,
            arp_missed_max: 2,
            primary: String::new(),
            primary_reselect: PrimaryReselect::Always,
            fail_over_mac: FailOverMac::None,
            num_peer_notif: 1,
            all_slaves_active: false,
            min_links: 0,
        }
    }
}

enum Raw<'a> {
    Number(u64),
    Word(&'a str),
    Bad,
}

fn classify(raw: &str) -> Raw<'_> {
    let v = raw.trim_end_matches('\n');
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c.is_whitespace()) {
        return v.trim().parse().map_or(Raw::Bad, Raw::Number);
    }
    match v.split_whitespace().next() {
        Some(w) if w.len() <= 32 => Raw::Word(w),
        _ => Raw::Bad,
    }
}

fn parse_number(option: &'static str, raw: &str, min: u64, max: u64, default: u64) -> Result<u64, OptionError> {
    match classify(raw) {
        Raw::Number(n) if (min..=max).contains(&n) => Ok(n),
        Raw::Word("default") => Ok(default),
        _ => Err(OptionError::OutOfRange { option, value: raw.trim_end().to_string(), min, max }),
    }
}

/// A number that fits in `u32` by construction of its range.
fn parse_u32(option: &'static str, raw: &str, min: u32, max: u64, default: u32) -> Result<u32, OptionError> {
    parse_number(option, raw, u64::from(min), max, u64::from(default)).map(|n| n as u32)
}

pub(crate) fn parse_choice<T: Choice>(option: &'static str, raw: &str) -> Result<T, OptionError> {
    let found = match classify(raw) {
        Raw::Number(n) => T::TABLE.iter().find(|e| u64::from(e.1) == n).map(|e| e.2),
        Raw::Word("default") => Some(T::DEFAULT),
        Raw::Word(w) => T::TABLE.iter().find(|e| e.0 == w).map(|e| e.2),
        Raw::Bad => None,
    };
    found.ok_or_else(|| OptionError::Invalid { option, value: raw.trim_end().to_string() })
}

fn parse_switch(option: &'static str, raw: &str) -> Result<bool, OptionError> {
    parse_choice::<Switch>(option, raw).map(|s| s == Switch::On)
}

fn parse_target(raw: &str) -> Result<Ipv4Addr, OptionError> {
    let ip: Ipv4Addr = raw.trim().parse().map_err(|_| OptionError::BadTarget(raw.trim().to_string()))?;
    if ip.is_unspecified() || ip.is_broadcast() {
        return Err(OptionError::BadTarget(ip.to_string()));
    }
    Ok(ip)
}

impl Options {
    pub fn miimon(&self) -> u32 {
        self.miimon
    }
    pub fn arp_interval(&self) -> u32 {
        self.arp_interval
    }
    pub fn arp_targets(&self) -> &[Ipv4Addr] {
        &self.arp_targets
    }
    pub fn primary(&self) -> &str {
        &self.primary
    }
    pub fn all_slaves_active(&self) -> bool {
        self.all_slaves_active
    }

    /// A delay in milliseconds as reports show it: ticks times the current miimon.
    pub fn delay_ms(&self, d: Delay) -> u64 {
        u64::from(self.delay_ticks(d)) * u64::from(self.miimon)
    }

    pub(crate) fn delay_ticks(&self, d: Delay) -> u32 {
        match d {
            Delay::Up => self.updelay,
            Delay::Down => self.downdelay,
            Delay::PeerNotif => self.peer_notif_delay,
        }
    }

    fn delay_ticks_mut(&mut self, d: Delay) -> &mut u32 {
        match d {
            Delay::Up => &mut self.updelay,
            Delay::Down => &mut self.downdelay,
            Delay::PeerNotif => &mut self.peer_notif_delay,
        }
    }

    /// The value as the sysfs file of that name reads (without the trailing newline).
    pub fn sysfs(&self, name: OptionName) -> String {
        match name {
            OptionName::Mode => Mode::ActiveBackup.sysfs(),
            OptionName::Miimon => self.miimon.to_string(),
            OptionName::Updelay => self.delay_ms(Delay::Up).to_string(),
            OptionName::Downdelay => self.delay_ms(Delay::Down).to_string(),
            OptionName::PeerNotifDelay => self.delay_ms(Delay::PeerNotif).to_string(),
            OptionName::UseCarrier => u8::from(self.use_carrier).to_string(),
            OptionName::ArpInterval => self.arp_interval.to_string(),
            OptionName::ArpIpTarget => {
                self.arp_targets.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(" ")
            }
            OptionName::ArpValidate => self.arp_validate.sysfs(),
            OptionName::ArpAllTargets => self.arp_all_targets.sysfs(),
            OptionName::ArpMissedMax => self.arp_missed_max.to_string(),
            OptionName::Primary => self.primary.clone(),
            OptionName::PrimaryReselect => self.primary_reselect.sysfs(),
            OptionName::FailOverMac => self.fail_over_mac.sysfs(),
            OptionName::NumGratArp | OptionName::NumUnsolNa => self.num_peer_notif.to_string(),
            OptionName::AllSlavesActive => u8::from(self.all_slaves_active).to_string(),
            OptionName::MinLinks => self.min_links.to_string(),
        }
    }

    /// Sets an option given by name, as `set` does.
    pub fn apply(&mut self, name: &str, raw: &str) -> Result<Vec<Event>, OptionError> {
        self.set(OptionName::parse(name)?, raw)
    }

    /// Sets one option with the kernel's rules for how options interact, returning what the
    /// bond logs about it. Dependencies on the bond's state (slaves present, device up) are
    /// the caller's to check first: see `Bond::set_option`.
    pub fn set(&mut self, name: OptionName, raw: &str) -> Result<Vec<Event>, OptionError> {
        let option = name.as_str();
        match name {
            OptionName::Mode => self.set_mode(raw),
            OptionName::Miimon => Ok(self.set_miimon(parse_u32(option, raw, 0, INT_MAX, 0)?)),
            OptionName::Updelay => self.set_delay(Delay::Up, raw),
            OptionName::Downdelay => self.set_delay(Delay::Down, raw),
            OptionName::PeerNotifDelay => self.set_delay(Delay::PeerNotif, raw),
            OptionName::ArpInterval => Ok(self.set_arp_interval(parse_u32(option, raw, 0, INT_MAX, 0)?)),
            OptionName::ArpIpTarget => self.set_targets(raw),
            OptionName::Primary => self.set_primary(raw),
            _ => self.set_plain(name, raw).map(|value| vec![Event::ValueSet { option, value }]),
        }
    }

    /// Options with no interaction: store the value and return how it reads back.
    fn set_plain(&mut self, name: OptionName, raw: &str) -> Result<String, OptionError> {
        let option = name.as_str();
        match name {
            OptionName::UseCarrier => self.use_carrier = parse_switch(option, raw)?,
            OptionName::ArpValidate => self.arp_validate = parse_choice(option, raw)?,
            OptionName::ArpAllTargets => self.arp_all_targets = parse_choice(option, raw)?,
            OptionName::ArpMissedMax => self.arp_missed_max = parse_u32(option, raw, 1, 255, 2)? as u8,
            OptionName::PrimaryReselect => self.primary_reselect = parse_choice(option, raw)?,
            OptionName::FailOverMac => self.fail_over_mac = parse_choice(option, raw)?,
            OptionName::NumGratArp | OptionName::NumUnsolNa => {
                self.num_peer_notif = parse_u32(option, raw, 0, 255, 1)? as u8
            }
            OptionName::AllSlavesActive => self.all_slaves_active = parse_switch(option, raw)?,
            OptionName::MinLinks => self.min_links = parse_u32(option, raw, 0, INT_MAX, 0)?,
            _ => return Err(OptionError::Unknown(option.to_string())),
        }
        Ok(self.sysfs(name))
    }

    fn set_mode(&mut self, raw: &str) -> Result<Vec<Event>, OptionError> {
        let mode: Mode = parse_choice("mode", raw)?;
        if mode != Mode::ActiveBackup {
            return Err(OptionError::UnsupportedMode { name: mode.name(), number: mode.number() });
        }
        // The kernel never carries arp_validate across a mode change.
        self.arp_validate = ArpValidate::None;
        Ok(vec![Event::ModeSet])
    }

    fn set_miimon(&mut self, ms: u32) -> Vec<Event> {
        self.miimon = ms;
        let mut events = vec![Event::MiimonSet { ms }];
        for d in [Delay::Up, Delay::Down] {
            if self.delay_ticks(d) > 0 {
                events.push(Event::DelayUpdated { delay: d, ms: self.delay_ms(d) });
            }
        }
        if ms > 0 && self.arp_interval > 0 {
            events.push(Event::ArpDisabledForMii);
            self.arp_interval = 0;
            self.arp_validate = ArpValidate::None;
        }
        events
    }

    fn set_delay(&mut self, d: Delay, raw: &str) -> Result<Vec<Event>, OptionError> {
        if self.miimon == 0 {
            return Err(OptionError::MiimonDisabled(d.phrase()));
        }
        let given = parse_u32(d.option_name(), raw, 0, INT_MAX, 0)?;
        let miimon = self.miimon;
        *self.delay_ticks_mut(d) = given / miimon;
        let ms = self.delay_ms(d);
        let mut events = Vec::new();
        if given % miimon != 0 {
            events.push(Event::DelayRounded { delay: d, given, miimon, rounded: ms });
        }
        events.push(Event::DelaySet { delay: d, ms });
        Ok(events)
    }

    fn set_arp_interval(&mut self, ms: u32) -> Vec<Event> {
        self.arp_interval = ms;
        let mut events = vec![Event::ArpIntervalSet { ms }];
        if ms > 0 {
            if self.miimon > 0 {
                events.push(Event::MiiDisabledForArp);
                self.miimon = 0;
            }
            if self.arp_targets.is_empty() {
                events.push(Event::ArpNoTargets);
            }
        }
        events
    }

    /// `+addr` adds, `-addr` removes (the sysfs forms); a list of addresses separated by
    /// commas or spaces replaces the set (the netlink and ifupdown forms).
    fn set_targets(&mut self, raw: &str) -> Result<Vec<Event>, OptionError> {
        let v = raw.trim();
        if let Some(add) = v.strip_prefix('+') {
            return self.add_target(parse_target(add)?).map(|e| vec![e]);
        }
        if let Some(del) = v.strip_prefix('-') {
            return self.remove_target(parse_target(del)?);
        }
        let wanted = v
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(parse_target)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dup) = wanted.iter().enumerate().find(|(i, t)| wanted[..*i].contains(t)) {
            return Err(OptionError::TargetExists(*dup.1));
        }
        if wanted.len() > MAX_ARP_TARGETS {
            return Err(OptionError::TargetTableFull);
        }
        let mut events = Vec::new();
        if wanted.is_empty() && !self.arp_targets.is_empty() && self.arp_interval > 0 {
            events.push(Event::LastArpTargetRemoved);
        }
        let gone = self.arp_targets.iter().filter(|t| !wanted.contains(t));
        events.extend(gone.map(|t| Event::ArpTargetRemoved { target: *t }));
        let new = wanted.iter().filter(|t| !self.arp_targets.contains(t));
        events.extend(new.map(|t| Event::ArpTargetAdded { target: *t }));
        self.arp_targets = wanted;
        Ok(events)
    }

    fn add_target(&mut self, ip: Ipv4Addr) -> Result<Event, OptionError> {
        if self.arp_targets.contains(&ip) {
            return Err(OptionError::TargetExists(ip));
        }
        if self.arp_targets.len() >= MAX_ARP_TARGETS {
            return Err(OptionError::TargetTableFull);
        }
        self.arp_targets.push(ip);
        Ok(Event::ArpTargetAdded { target: ip })
    }

    fn remove_target(&mut self, ip: Ipv4Addr) -> Result<Vec<Event>, OptionError> {
        let pos = self.arp_targets.iter().position(|t| *t == ip).ok_or(OptionError::NoSuchTarget(ip))?;
        self.arp_targets.remove(pos);
        let mut events = Vec::new();
        if self.arp_targets.is_empty() && self.arp_interval > 0 {
            events.push(Event::LastArpTargetRemoved);
        }
        events.push(Event::ArpTargetRemoved { target: ip });
        Ok(events)
    }

    fn set_primary(&mut self, raw: &str) -> Result<Vec<Event>, OptionError> {
        let name = raw.trim();
        if name.len() > MAX_IFNAME || name.contains(['/', ':']) {
            return Err(OptionError::Invalid { option: "primary", value: name.to_string() });
        }
        self.primary = name.to_string();
        // What the bond logs depends on its slaves: Bond::set_option says it.
        Ok(Vec::new())
    }

    /// What the kernel checks and says when the driver is loaded with these values: an ARP
    /// interval without a target is dropped, and a bond with no monitor is warned about.
    pub(crate) fn creation_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.arp_interval > 0 && self.arp_targets.is_empty() {
            events.push(Event::ArpIntervalWithoutTargets { ms: self.arp_interval });
            self.arp_interval = 0;
        }
        if self.miimon > 0 {
            events.push(Event::MiiMonitoringSet { ms: self.miimon });
        } else if self.arp_interval > 0 {
            events.push(Event::ArpMonitoringSet {
                ms: self.arp_interval,
                validate: self.arp_validate.name(),
                targets: self.arp_targets.clone(),
            });
        } else {
            events.push(Event::NoMonitor);
        }
        events
    }
}
