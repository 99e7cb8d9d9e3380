//! Bond options: one table says what each option is (its names, flags, values, default and
//! meaning), in the spirit of the kernel's `bond_opts[]`. Parsing, range checks, the order
//! Debian's scripts apply them in, lint's list of known names, the CLI's help and the README's
//! option table all come from [`OPTIONS`]; this module then says how options interact.
//!
//! Values are parsed as the kernel's option engine parses a sysfs write: a value made of
//! digits is a number that must match a table entry or lie in the option's range; anything
//! else is a word (its first 32 characters) looked up by name, and `default` names the
//! entry marked as the default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The kernel's `BOND_MAX_ARP_TARGETS` (and `BOND_MAX_NS_TARGETS`).
pub const MAX_TARGETS: usize = 16;
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
    #[error("option ns_ip6_target: invalid NS target {0} specified for addition")]
    BadNsTarget(String),
    #[error("option ns_ip6_target: NS target {0} is already present")]
    NsTargetExists(Ipv6Addr),
    #[error("option ns_ip6_target: NS target table is full!")]
    NsTargetTableFull,
    #[error("option ns_ip6_target: unable to remove nonexistent NS target {0}")]
    NoSuchNsTarget(Ipv6Addr),
}

/// One entry of an option's value table: a name, its number, and what it marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Val {
    pub name: &'static str,
    pub value: u64,
    pub flags: u8,
}

impl Val {
    /// The lowest value of the option's range.
    pub const MIN: u8 = 1;
    /// The highest value of the option's range (an option without one has no range).
    pub const MAX: u8 = 2;
    /// What `default` selects.
    pub const DEFAULT: u8 = 4;
}

const fn val(name: &'static str, value: u64, flags: u8) -> Val {
    Val { name, value, flags }
}

/// The kernel's value tables, by the kernel's names for them.
const INTMAX: &[Val] = &[val("off", 0, Val::DEFAULT), val("maxval", INT_MAX, Val::MAX)];
const PEER_NOTIF_DELAY: &[Val] = &[val("off", 0, 0), val("maxval", 300_000, Val::MAX)];
const COUNT_255: &[Val] = &[val("off", 0, 0), val("maxval", 255, Val::MAX), val("default", 1, Val::DEFAULT)];
const MISSED_MAX: &[Val] = &[val("minval", 1, Val::MIN), val("maxval", 255, Val::MAX), val("default", 2, Val::DEFAULT)];
const ON_BY_DEFAULT: &[Val] = &[val("off", 0, 0), val("on", 1, Val::DEFAULT)];
const OFF_BY_DEFAULT: &[Val] = &[val("off", 0, Val::DEFAULT), val("on", 1, 0)];
const STANDBY_WINDOW: &[Val] =
    &[val("off", 0, 0), val("maxval", 3_600_000, Val::MAX), val("default", 10_000, Val::DEFAULT)];
const STANDBY_PROBE: &[Val] =
    &[val("off", 0, 0), val("maxval", 3_600_000, Val::MAX), val("default", 2_000, Val::DEFAULT)];
const RATE: &[Val] =
    &[val("minval", 1, Val::MIN), val("maxval", 1_000_000, Val::MAX), val("default", 10_000, Val::DEFAULT)];

/// An option whose value is one entry of a fixed table of names and numbers.
pub trait Choice: Copy + PartialEq + 'static {
    const OPTION: OptionName;
    const TABLE: &'static [(&'static str, u32, Self)];
    const VALUES: &'static [Val];

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
    /// The entry with this number.
    fn from_number(n: u64) -> Option<Self> {
        Self::TABLE.iter().find(|e| u64::from(e.1) == n).map(|e| e.2)
    }
}

macro_rules! choice {
    ($ty:ident, $option:ident, default $def:ident, { $($variant:ident = $name:literal $num:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($variant = $num),+ }
        impl Choice for $ty {
            const OPTION: OptionName = OptionName::$option;
            const TABLE: &'static [(&'static str, u32, Self)] = &[$(($name, $num, $ty::$variant)),+];
            const VALUES: &'static [Val] = &[$(val($name, $num, if $num == $ty::$def as u64 { Val::DEFAULT } else { 0 })),+];
        }
    };
}

choice!(Mode, Mode, default BalanceRr, {
    BalanceRr = "balance-rr" 0, ActiveBackup = "active-backup" 1, BalanceXor = "balance-xor" 2,
    Broadcast = "broadcast" 3, Ieee8023ad = "802.3ad" 4, BalanceTlb = "balance-tlb" 5,
    BalanceAlb = "balance-alb" 6,
});
choice!(ArpValidate, ArpValidate, default None, {
    None = "none" 0, Active = "active" 1, Backup = "backup" 2, All = "all" 3,
    Filter = "filter" 4, FilterActive = "filter_active" 5, FilterBackup = "filter_backup" 6,
});
choice!(ArpAllTargets, ArpAllTargets, default Any, { Any = "any" 0, All = "all" 1 });
choice!(PrimaryReselect, PrimaryReselect, default Always, {
    Always = "always" 0, Better = "better" 1, Failure = "failure" 2,
});
choice!(FailOverMac, FailOverMac, default None, { None = "none" 0, Active = "active" 1, Follow = "follow" 2 });

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
    pub fn option(self) -> OptionName {
        match self {
            Delay::Up => OptionName::Updelay,
            Delay::Down => OptionName::Downdelay,
            Delay::PeerNotif => OptionName::PeerNotifDelay,
        }
    }
}

/// Every option the engine stores. `active_slave` is a command, not a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    NsIp6Target,
    ArpValidate,
    ArpAllTargets,
    ArpMissedMax,
    Primary,
    PrimaryReselect,
    FailOverMac,
    NumGratArp,
    NumUnsolNa,
    ResendIgmp,
    AllSlavesActive,
    MinLinks,
    MacAnnounce,
    MacAnnounceRate,
    StandbyWindow,
    StandbyProbe,
    StandbySelect,
}

/// What an option's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// A number or a name from the table; a table with a `MAX` entry also takes any number in
    /// its range.
    Table(&'static [Val]),
    /// IPv4 addresses: `+addr` adds, `-addr` removes, a list replaces the set.
    Ipv4Targets,
    /// IPv6 addresses, the same way.
    Ipv6Targets,
    /// An interface name (empty clears it).
    Interface,
}

impl Values {
    /// Whether the option is a list of monitor targets (`arp_ip_target`, `ns_ip6_target`).
    pub fn is_targets(self) -> bool {
        matches!(self, Values::Ipv4Targets | Values::Ipv6Targets)
    }
}

/// How an option relates to the bond's state, as the kernel's option flags say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Refused while the bond has slaves (`BOND_OPTFLAG_NOSLAVES`).
    pub const NO_SLAVES: Flags = Flags(1);
    /// Refused while the bond is up (`BOND_OPTFLAG_IFDOWN`).
    pub const BOND_DOWN: Flags = Flags(2);
    /// A delay counted in miimon ticks: refused while miimon is 0.
    pub const MIIMON_TICKS: Flags = Flags(4);

    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub const fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What one option is.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    pub name: OptionName,
    /// The sysfs file and `--opt` name.
    pub sysfs: &'static str,
    /// Its `/etc/network/interfaces` spelling.
    pub debian: &'static str,
    /// Whether Debian's ifenslave scripts read it (else only rbond does).
    pub debian_reads: bool,
    pub flags: Flags,
    pub values: Values,
    /// Whether a successful change is logged (the first kernel that had the option logged it
    /// at info level).
    pub logged: bool,
    /// Milliseconds, where the value is a time.
    pub in_ms: bool,
    /// One line on what it does.
    pub help: &'static str,
}

impl OptionInfo {
    /// An option Debian's scripts read, logged when it changes, not a time.
    const fn new(
        name: OptionName,
        sysfs: &'static str,
        debian: &'static str,
        values: Values,
        help: &'static str,
    ) -> OptionInfo {
        OptionInfo {
            name,
            sysfs,
            debian,
            debian_reads: true,
            flags: Flags::NONE,
            values,
            logged: true,
            in_ms: false,
            help,
        }
    }
    const fn flags(mut self, flags: Flags) -> OptionInfo {
        self.flags = flags;
        self
    }
    /// Debian's scripts do not know it; rbond reads the same spelling.
    const fn rbond_reads(mut self) -> OptionInfo {
        self.debian_reads = false;
        self
    }
    /// The kernel changes it without a log line.
    const fn silent(mut self) -> OptionInfo {
        self.logged = false;
        self
    }
    const fn ms(mut self) -> OptionInfo {
        self.in_ms = true;
        self
    }
}

use OptionName as O;

/// Every option, in the order Debian's pre-up script writes them (`fail_over_mac` first: it
/// must precede any slave; `miimon` after `arp_interval`, so miimon wins when both are given;
/// `mode` after the monitors). Options Debian's scripts do not know come where they fit.
pub const OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(O::FailOverMac, "fail_over_mac", "bond-fail-over-mac", Values::Table(FailOverMac::VALUES),
        "MAC policy: every slave takes the bond's (none), the bond takes the active's (active), or the active takes the bond's (follow)").flags(Flags::NO_SLAVES),
    OptionInfo::new(O::UseCarrier, "use_carrier", "bond-use-carrier", Values::Table(ON_BY_DEFAULT),
        "kept for compatibility: rbond always reads carrier and ETHTOOL_GLINK"),
    OptionInfo::new(O::NumGratArp, "num_grat_arp", "bond-num-grat-arp", Values::Table(COUNT_255),
        "peer notifications (gratuitous ARP, unsolicited NA) per change of active slave").silent(),
    OptionInfo::new(O::NumUnsolNa, "num_unsol_na", "bond-num-unsol-na", Values::Table(COUNT_255),
        "the same value as num_grat_arp, under its IPv6 name").silent(),
    OptionInfo::new(O::ArpIpTarget, "arp_ip_target", "bond-arp-ip-target", Values::Ipv4Targets,
        "IPv4 addresses the ARP monitor probes (up to 16)"),
    OptionInfo::new(O::NsIp6Target, "ns_ip6_target", "bond-ns-ip6-target", Values::Ipv6Targets,
        "IPv6 addresses the ARP monitor probes with neighbour solicitations (up to 16)").rbond_reads().silent(),
    OptionInfo::new(O::ArpInterval, "arp_interval", "bond-arp-interval", Values::Table(INTMAX),
        "ARP monitor interval; non-zero turns miimon off").ms(),
    OptionInfo::new(O::Miimon, "miimon", "bond-miimon", Values::Table(INTMAX),
        "link check interval; non-zero turns arp_interval off").ms(),
    OptionInfo::new(O::Downdelay, "downdelay", "bond-downdelay", Values::Table(INTMAX),
        "wait before dropping a link that went down (a multiple of miimon)").flags(Flags::MIIMON_TICKS).ms(),
    OptionInfo::new(O::Updelay, "updelay", "bond-updelay", Values::Table(INTMAX),
        "wait before using a link that came back (a multiple of miimon)").flags(Flags::MIIMON_TICKS).ms(),
    OptionInfo::new(O::PeerNotifDelay, "peer_notif_delay", "bond-peer-notif-delay", Values::Table(PEER_NOTIF_DELAY),
        "spacing of the peer notifications after a failover (a multiple of miimon)").flags(Flags::MIIMON_TICKS).rbond_reads().silent().ms(),
    OptionInfo::new(O::Mode, "mode", "bond-mode", Values::Table(Mode::VALUES),
        "bonding mode; rbond implements active-backup (1)").flags(Flags::NO_SLAVES.with(Flags::BOND_DOWN)),
    OptionInfo::new(O::ArpValidate, "arp_validate", "bond-arp-validate", Values::Table(ArpValidate::VALUES),
        "which ARP replies count as proof that a slave works"),
    OptionInfo::new(O::ArpAllTargets, "arp_all_targets", "bond-arp-all-targets", Values::Table(ArpAllTargets::VALUES),
        "whether any ARP target or all of them must answer").rbond_reads(),
    OptionInfo::new(O::ArpMissedMax, "arp_missed_max", "bond-arp-missed-max", Values::Table(MISSED_MAX),
        "ARP intervals without a reply before the active slave is down").rbond_reads().silent(),
    OptionInfo::new(O::ResendIgmp, "resend_igmp", "bond-resend-igmp", Values::Table(COUNT_255),
        "rounds of multicast membership reports after a failover, 200 ms apart").rbond_reads(),
    OptionInfo::new(O::MinLinks, "min_links", "bond-min-links", Values::Table(INTMAX),
        "kept for compatibility: no effect in active-backup").rbond_reads(),
    OptionInfo::new(O::AllSlavesActive, "all_slaves_active", "bond-all-slaves-active", Values::Table(OFF_BY_DEFAULT),
        "deliver frames received on backups too").rbond_reads().silent(),
    OptionInfo::new(O::Primary, "primary", "bond-primary", Values::Interface,
        "the preferred slave"),
    OptionInfo::new(O::PrimaryReselect, "primary_reselect", "bond-primary-reselect", Values::Table(PrimaryReselect::VALUES),
        "when the primary takes back over: always, if better, or only on failure"),
    OptionInfo::new(O::MacAnnounce, "mac_announce", "bond-mac-announce", Values::Table(COUNT_255),
        "rbond's own: learning frames sent for each MAC behind the bond (bridge, macvlan) after a failover").rbond_reads().silent(),
    OptionInfo::new(O::MacAnnounceRate, "mac_announce_rate", "bond-mac-announce-rate", Values::Table(RATE),
        "rbond's own: learning frames per second at most, so thousands of MACs do not burst").rbond_reads().silent(),
    OptionInfo::new(O::StandbyWindow, "standby_window", "bond-standby-window", Values::Table(STANDBY_WINDOW),
        "rbond's own: a backup whose path shows no evidence for this long is broken (0 turns standby checks off)").rbond_reads().ms(),
    OptionInfo::new(O::StandbyProbe, "standby_probe", "bond-standby-probe", Values::Table(STANDBY_PROBE),
        "rbond's own: interval of the ARP probes each slave sends from a MAC of its own to the targets or gateway (0: passive only)").rbond_reads().ms(),
    OptionInfo::new(O::StandbySelect, "standby_select", "bond-standby-select", Values::Table(OFF_BY_DEFAULT),
        "rbond's own: a failover prefers a verified backup to an unverified one, and either to a broken one").rbond_reads(),
];

impl OptionName {
    pub fn info(self) -> &'static OptionInfo {
        OPTIONS.iter().find(|o| o.name == self).expect("every option is in the table")
    }

    pub fn as_str(self) -> &'static str {
        self.info().sysfs
    }

    /// Every option, in table order.
    pub fn all() -> impl Iterator<Item = OptionName> {
        OPTIONS.iter().map(|o| o.name)
    }

    /// Accepts the sysfs name, with `-` for `_` (ifupdown spelling) and iproute2's
    /// `peer_notify_delay`.
    pub fn parse(name: &str) -> Result<OptionName, OptionError> {
        let norm = name.trim().replace('-', "_");
        let norm = if norm == "peer_notify_delay" { "peer_notif_delay" } else { norm.as_str() };
        OPTIONS.iter().find(|o| o.sysfs == norm).map(|o| o.name).ok_or_else(|| OptionError::Unknown(name.to_string()))
    }
}

impl OptionInfo {
    /// The range a number must lie in, when the table has one.
    pub fn range(&self) -> Option<(u64, u64)> {
        let Values::Table(t) = self.values else { return None };
        let max = t.iter().find(|v| v.flags & Val::MAX != 0)?.value;
        let min = t.iter().find(|v| v.flags & Val::MIN != 0).map_or(0, |v| v.value);
        Some((min, max))
    }

    /// The default, as sysfs shows it.
    pub fn default_text(&self) -> String {
        Options::default().sysfs(self.name)
    }

    /// The kernel's `bond_opt_parse`: a number matching an entry or in range, or a name.
    fn parse_number(&self, raw: &str) -> Result<u64, OptionError> {
        let Values::Table(table) = self.values else { unreachable!("only table options are numbers") };
        let found = match classify(raw) {
            Raw::Number(n) => table.iter().find(|v| v.value == n).map(|v| v.value).or_else(|| {
                let (min, max) = self.range()?;
                (min..=max).contains(&n).then_some(n)
            }),
            Raw::Word(w) => {
                table.iter().find(|v| v.name == w || (w == "default" && v.flags & Val::DEFAULT != 0)).map(|v| v.value)
            }
            Raw::Bad => None,
        };
        let value = raw.trim_end_matches('\n').to_string();
        found.ok_or_else(|| match self.range() {
            Some((min, max)) => OptionError::OutOfRange { option: self.sysfs, value, min, max },
            None => OptionError::Invalid { option: self.sysfs, value },
        })
    }
}

/// The option's value as a choice type.
fn parse_choice<T: Choice>(raw: &str) -> Result<T, OptionError> {
    let n = T::OPTION.info().parse_number(raw)?;
    T::from_number(n).ok_or_else(|| OptionError::Invalid { option: T::OPTION.as_str(), value: raw.to_string() })
}

/// The mode a value names, for checks before a mode write.
pub(crate) fn parse_mode(raw: &str) -> Result<Mode, OptionError> {
    parse_choice(raw)
}

/// A number option's value; the table bounds it to `u32`.
fn parse_u32(name: OptionName, raw: &str) -> Result<u32, OptionError> {
    name.info().parse_number(raw).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
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

fn parse_target(raw: &str) -> Result<Ipv4Addr, OptionError> {
    let ip: Ipv4Addr = raw.trim().parse().map_err(|_| OptionError::BadTarget(raw.trim().to_string()))?;
    if ip.is_unspecified() || ip.is_broadcast() {
        return Err(OptionError::BadTarget(ip.to_string()));
    }
    Ok(ip)
}

/// The kernel's `bond_is_ip6_target_ok`: not unspecified, loopback or multicast.
fn parse_ns_target(raw: &str) -> Result<Ipv6Addr, OptionError> {
    let ip: Ipv6Addr = raw.trim().parse().map_err(|_| OptionError::BadNsTarget(raw.trim().to_string()))?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(OptionError::BadNsTarget(ip.to_string()));
    }
    Ok(ip)
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
    #[serde(default)]
    pub(crate) ns_targets: Vec<Ipv6Addr>,
    pub(crate) arp_validate: ArpValidate,
    pub(crate) arp_all_targets: ArpAllTargets,
    pub(crate) arp_missed_max: u8,
    pub(crate) primary: String,
    pub(crate) primary_reselect: PrimaryReselect,
    pub(crate) fail_over_mac: FailOverMac,
    pub(crate) num_peer_notif: u8,
    #[serde(default = "one")]
    pub(crate) resend_igmp: u8,
    pub(crate) all_slaves_active: bool,
    pub(crate) min_links: u32,
    #[serde(default = "one")]
    pub(crate) mac_announce: u8,
    #[serde(default = "default_rate")]
    pub(crate) mac_announce_rate: u32,
    #[serde(default = "default_standby_window")]
    pub(crate) standby_window: u32,
    #[serde(default = "default_standby_probe")]
    pub(crate) standby_probe: u32,
    #[serde(default)]
    pub(crate) standby_select: bool,
}

fn default_standby_window() -> u32 {
    10_000
}

fn default_standby_probe() -> u32 {
    2_000
}

fn default_rate() -> u32 {
    10_000
}

fn one() -> u8 {
    1
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
            ns_targets: Vec::new(),
            arp_validate: ArpValidate::None,
            arp_all_targets: ArpAllTargets::Any,
            arp_missed_max: 2,
            primary: String::new(),
            primary_reselect: PrimaryReselect::Always,
            fail_over_mac: FailOverMac::None,
            num_peer_notif: 1,
            resend_igmp: 1,
            all_slaves_active: false,
            min_links: 0,
            mac_announce: 1,
            mac_announce_rate: default_rate(),
            standby_window: default_standby_window(),
            standby_probe: default_standby_probe(),
            standby_select: false,
        }
    }
}

fn list<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
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
    pub fn ns_targets(&self) -> &[Ipv6Addr] {
        &self.ns_targets
    }
    /// Every target the ARP monitor probes: the ARP targets, then the NS targets.
    pub fn monitor_targets(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.arp_targets.iter().map(|t| IpAddr::V4(*t));
        v4.chain(self.ns_targets.iter().map(|t| IpAddr::V6(*t)))
    }
    pub fn primary(&self) -> &str {
        &self.primary
    }
    pub fn all_slaves_active(&self) -> bool {
        self.all_slaves_active
    }
    /// Learning frames per MAC behind the bond after a failover, and how many a second.
    pub fn mac_announce(&self) -> (u8, u32) {
        (self.mac_announce, self.mac_announce_rate)
    }
    pub fn resend_igmp(&self) -> u8 {
        self.resend_igmp
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
            O::Mode => Mode::ActiveBackup.sysfs(),
            O::Miimon => self.miimon.to_string(),
            O::Updelay => self.delay_ms(Delay::Up).to_string(),
            O::Downdelay => self.delay_ms(Delay::Down).to_string(),
            O::PeerNotifDelay => self.delay_ms(Delay::PeerNotif).to_string(),
            O::UseCarrier => u8::from(self.use_carrier).to_string(),
            O::ArpInterval => self.arp_interval.to_string(),
            O::ArpIpTarget => list(&self.arp_targets),
            O::NsIp6Target => list(&self.ns_targets),
            O::ArpValidate => self.arp_validate.sysfs(),
            O::ArpAllTargets => self.arp_all_targets.sysfs(),
            O::ArpMissedMax => self.arp_missed_max.to_string(),
            O::Primary => self.primary.clone(),
            O::PrimaryReselect => self.primary_reselect.sysfs(),
            O::FailOverMac => self.fail_over_mac.sysfs(),
            O::NumGratArp | O::NumUnsolNa => self.num_peer_notif.to_string(),
            O::ResendIgmp => self.resend_igmp.to_string(),
            O::AllSlavesActive => u8::from(self.all_slaves_active).to_string(),
            O::MinLinks => self.min_links.to_string(),
            O::MacAnnounce => self.mac_announce.to_string(),
            O::MacAnnounceRate => self.mac_announce_rate.to_string(),
            O::StandbyWindow => self.standby_window.to_string(),
            O::StandbyProbe => self.standby_probe.to_string(),
            O::StandbySelect => u8::from(self.standby_select).to_string(),
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
        match name {
            O::Mode => self.set_mode(raw),
            O::Miimon => Ok(self.set_miimon(parse_u32(name, raw)?)),
            O::Updelay => self.set_delay(Delay::Up, raw),
            O::Downdelay => self.set_delay(Delay::Down, raw),
            O::PeerNotifDelay => self.set_delay(Delay::PeerNotif, raw),
            O::ArpInterval => Ok(self.set_arp_interval(parse_u32(name, raw)?)),
            O::ArpIpTarget => self.set_targets(raw),
            O::NsIp6Target => self.set_ns_targets(raw),
            O::Primary => self.set_primary(raw),
            _ => {
                self.set_plain(name, raw)?;
                let said = name.info().logged.then(|| Event::OptionSet { option: name, value: self.sysfs(name) });
                Ok(said.into_iter().collect())
            }
        }
    }

    /// Options with no interaction: store the value.
    fn set_plain(&mut self, name: OptionName, raw: &str) -> Result<(), OptionError> {
        let number = |raw| parse_u32(name, raw);
        match name {
            O::UseCarrier => self.use_carrier = number(raw)? == 1,
            O::ArpValidate => self.arp_validate = parse_choice(raw)?,
            O::ArpAllTargets => self.arp_all_targets = parse_choice(raw)?,
            O::ArpMissedMax => self.arp_missed_max = number(raw)? as u8,
            O::PrimaryReselect => self.primary_reselect = parse_choice(raw)?,
            O::FailOverMac => self.fail_over_mac = parse_choice(raw)?,
            O::NumGratArp | O::NumUnsolNa => self.num_peer_notif = number(raw)? as u8,
            O::ResendIgmp => self.resend_igmp = number(raw)? as u8,
            O::AllSlavesActive => self.all_slaves_active = number(raw)? == 1,
            O::MinLinks => self.min_links = number(raw)?,
            O::MacAnnounce => self.mac_announce = number(raw)? as u8,
            O::MacAnnounceRate => self.mac_announce_rate = number(raw)?,
            O::StandbyWindow => self.standby_window = number(raw)?,
            O::StandbyProbe => self.standby_probe = number(raw)?,
            O::StandbySelect => self.standby_select = number(raw)? == 1,
            _ => return Err(OptionError::Unknown(name.as_str().to_string())),
        }
        Ok(())
    }

    fn set_mode(&mut self, raw: &str) -> Result<Vec<Event>, OptionError> {
        let mode = parse_mode(raw)?;
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
        let given = parse_u32(d.option(), raw)?;
        let miimon = self.miimon;
        *self.delay_ticks_mut(d) = given / miimon;
        let ms = self.delay_ms(d);
        let mut events = Vec::new();
        if given % miimon != 0 {
            events.push(Event::DelayRounded { delay: d, given, miimon, rounded: ms });
        }
        if d.option().info().logged {
            events.push(Event::DelaySet { delay: d, ms });
        }
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
        let wanted = split_list(v).map(parse_target).collect::<Result<Vec<_>, _>>()?;
        if let Some(dup) = first_duplicate(&wanted) {
            return Err(OptionError::TargetExists(dup));
        }
        if wanted.len() > MAX_TARGETS {
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
        if self.arp_targets.len() >= MAX_TARGETS {
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

    /// The same forms for IPv6 targets. The kernel logs additions only at debug level.
    fn set_ns_targets(&mut self, raw: &str) -> Result<Vec<Event>, OptionError> {
        let v = raw.trim();
        if let Some(del) = v.strip_prefix('-') {
            let ip = parse_ns_target(del)?;
            let pos = self.ns_targets.iter().position(|t| *t == ip).ok_or(OptionError::NoSuchNsTarget(ip))?;
            self.ns_targets.remove(pos);
            return Ok(Vec::new());
        }
        let (mut targets, adding) = match v.strip_prefix('+') {
            Some(add) => (self.ns_targets.clone(), vec![parse_ns_target(add)?]),
            None => (Vec::new(), split_list(v).map(parse_ns_target).collect::<Result<Vec<_>, _>>()?),
        };
        for ip in adding {
            if targets.contains(&ip) {
                return Err(OptionError::NsTargetExists(ip));
            }
            if targets.len() >= MAX_TARGETS {
                return Err(OptionError::NsTargetTableFull);
            }
            targets.push(ip);
        }
        self.ns_targets = targets;
        Ok(Vec::new())
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
        let targets = self.arp_targets.len() + self.ns_targets.len();
        if self.arp_interval > 0 && targets == 0 {
            events.push(Event::ArpIntervalWithoutTargets { ms: self.arp_interval });
            self.arp_interval = 0;
        }
        if self.miimon > 0 {
            events.push(Event::MiiMonitoringSet { ms: self.miimon });
        } else if self.arp_interval > 0 {
            events.push(Event::ArpMonitoringSet {
                ms: self.arp_interval,
                validate: self.arp_validate.name(),
                targets: self.monitor_targets().collect(),
            });
        } else {
            events.push(Event::NoMonitor);
        }
        events
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty())
}

fn first_duplicate<T: PartialEq + Copy>(items: &[T]) -> Option<T> {
    items.iter().enumerate().find(|(i, t)| items[..*i].contains(t)).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_in_the_table_once() {
        let mut names: Vec<&str> = OPTIONS.iter().map(|o| o.sysfs).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPTIONS.len());
        for o in OPTIONS {
            assert_eq!(o.debian, format!("bond-{}", o.sysfs.replace('_', "-")), "Debian spells every option bond-NAME");
            assert!(!o.help.is_empty() && !o.help.contains('\n'), "{}: one line of help", o.sysfs);
        }
    }

    #[test]
    fn table_names_are_values_as_the_kernel_takes_them() {
        let mut o = Options::default();
        o.apply("miimon", "maxval").unwrap();
        assert_eq!(o.miimon, i32::MAX as u32);
        o.apply("miimon", "off").unwrap();
        assert_eq!(o.miimon, 0);
        o.apply("arp_missed_max", "minval").unwrap();
        assert_eq!(o.arp_missed_max, 1);
        o.apply("arp_missed_max", "default").unwrap();
        assert_eq!(o.arp_missed_max, 2);
        o.apply("use_carrier", "off").unwrap();
        assert!(!o.use_carrier);
        o.apply("all_slaves_active", "on").unwrap();
        assert!(o.all_slaves_active);
        o.apply("num_grat_arp", "off").unwrap();
        assert_eq!(o.num_peer_notif, 0);
        assert!(o.apply("arp_missed_max", "0").is_err(), "below minval");
        assert!(o.apply("arp_missed_max", "off").is_err(), "no such name for it");
    }
}
