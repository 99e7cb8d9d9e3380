//! The bond: what goes in (inputs with the time), what comes out (actions), and the state
//! between them. The monitors, selection, MAC policy and the rest live in their own modules
//! as further `impl Bond` blocks.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::address::Ipv4Cidr;
use crate::event::Event;
use crate::mac::Mac;
use crate::options::{OptionError, Options};
use crate::slave::{LinkInfo, LinkState, Slave, SlaveSpec};
use crate::time::{Instant, ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArpOp {
    Request,
    Reply,
}

/// The fields of an Ethernet/IPv4 ARP frame that the ARP monitor looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArpFrame {
    pub op: ArpOp,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
    /// Seen leaving through the slave (one of ours), not arriving on it.
    pub outgoing: bool,
}

/// An administrative request: ifenslave's verbs, sysfs writes, bond up and down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    /// `ifenslave -c` / writing `active_slave`; an empty name clears the active slave.
    ChangeActive(String),
    SetOption { name: String, value: String },
    SetPrio { slave: String, prio: i32 },
    /// Someone set the bond device's MAC.
    SetBondMac(Mac),
    /// The bond is being deleted: release every slave without reselecting.
    ReleaseAll,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Enslave(SlaveSpec),
    Release(String),
    /// The slave's device reported its link (carrier, speed, duplex).
    Link { slave: String, link: LinkInfo },
    Arp { slave: String, frame: ArpFrame },
    /// Any other frame arrived on the slave.
    Rx { slave: String },
    /// A frame arrived that could not be parsed (too short, or ARP with bogus lengths); it
    /// is only counted.
    BadFrame { slave: String },
    /// The bond's IPv4 addresses changed.
    Addresses(Vec<Ipv4Cidr>),
    Command(Command),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum MacTarget {
    Bond,
    Slave(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The slave becomes the active one: send and receive through it.
    Activate { slave: String },
    /// The slave becomes a backup: send nothing through it, drop what it receives.
    Deactivate { slave: String },
    SetMac { target: MacTarget, mac: Mac },
    SetCarrier { up: bool },
    SendArpProbe { slave: String, target: Ipv4Addr, source: Ipv4Addr },
    /// Announce the bond's addresses (gratuitous ARP, unsolicited NA) through the slave.
    NotifyPeers { slave: String },
    Log(Event),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("interface name '{0}' is not valid")]
    BadName(String),
    #[error("cannot enslave {0} to itself")]
    SelfEnslave(String),
    #[error("{0} is already a slave")]
    AlreadySlave(String),
    #[error("{0} not enslaved")]
    NotSlave(String),
    #[error("Could not set {0} as active slave; either {0} is down or the link is down")]
    CannotActivate(String),
}

/// Where the bond MAC came from, which decides whether the next first slave replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MacOrigin {
    /// Not chosen by anyone yet: the first slave's MAC replaces it.
    Unset,
    /// Taken from a slave.
    Stolen,
    /// Set by the administrator: kept.
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Monitor {
    None,
    Mii,
    Arp,
}

/// One active-backup bond. See the crate documentation for how to drive it.
///
/// It serializes whole (with its pending actions drained): a daemon that re-executes itself
/// hands the bond to its successor, which carries on with the same delays, counts and active
/// slave as long as its clock continues from the same origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bond {
    pub(crate) name: String,
    pub(crate) opts: Options,
    pub(crate) slaves: Vec<Slave>,
    pub(crate) up: bool,
    pub(crate) carrier: bool,
    pub(crate) active: Option<String>,
    /// The ARP monitor's probe candidate while no slave is active.
    pub(crate) arp_slave: Option<String>,
    pub(crate) force_primary: bool,
    pub(crate) peer_notif_left: u32,
    pub(crate) next_tick: Option<Instant>,
    pub(crate) mac: Option<Mac>,
    pub(crate) mac_origin: MacOrigin,
    pub(crate) addrs: Vec<Ipv4Cidr>,
    /// Drained by the caller before it saves a bond, so never carried across.
    #[serde(skip)]
    pub(crate) actions: VecDeque<Action>,
}

impl Bond {
    /// A bond that is down and has no slaves, as the driver creates it. Logs what the kernel
    /// logs when loaded with these options (and drops an ARP interval that has no target).
    pub fn new(name: &str, mut opts: Options) -> Result<Bond, Error> {
        if !valid_ifname(name) {
            return Err(Error::BadName(name.to_string()));
        }
        let created = opts.creation_events();
        let mut bond = Bond {
            name: name.to_string(),
            opts,
            slaves: Vec::new(),
            up: false,
            carrier: false,
            active: None,
            arp_slave: None,
            force_primary: false,
            peer_notif_left: 0,
            next_tick: None,
            mac: None,
            mac_origin: MacOrigin::Unset,
            addrs: Vec::new(),
            actions: VecDeque::new(),
        };
        created.into_iter().for_each(|e| bond.log(e));
        Ok(bond)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn active_slave(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Feeds one input that happened at `now`. On error nothing has changed.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        let result = self.dispatch(now, input);
        self.skip_idle_ticks(now);
        result
    }

    /// Ticks nobody was woken for (see `poll_timeout`) had nothing to do: the next one keeps
    /// its phase but lies ahead of `now`.
    fn skip_idle_ticks(&mut self, now: Instant) {
        let period = self.miimon_interval();
        if let Some(t) = self.next_tick.filter(|t| *t <= now && self.monitor() == Monitor::Mii && !period.is_zero()) {
            let behind = now.saturating_since(t).as_nanos() / period.as_nanos() + 1;
            self.next_tick = Some(t + period * u32::try_from(behind).unwrap_or(u32::MAX));
        }
    }

    fn dispatch(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        match input {
            Input::Enslave(spec) => self.enslave(now, spec),
            Input::Release(slave) => self.release(now, &slave),
            Input::Link { slave, link } => self.link_changed(now, &slave, link),
            Input::Arp { slave, frame } => self.arp_seen(now, &slave, &frame),
            Input::Rx { slave } => self.rx_seen(now, &slave),
            Input::BadFrame { slave } => self.bad_frame(&slave),
            Input::Addresses(addrs) => {
                self.addrs = addrs;
                Ok(())
            }
            Input::Command(cmd) => self.command(now, cmd),
        }
    }

    /// Runs whatever was due at or before `now`: a monitor tick, an expiring up/down delay.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_tick.is_some_and(|t| t <= now) {
            self.tick(now);
        } else if self.delay_due(now) {
            self.mii_pass(now);
        }
    }

    /// When `handle_timeout` should be called next; `None` while nothing is scheduled.
    ///
    /// An MII tick with no delay counting down and no peer notification owed would find
    /// nothing to do (carrier changes arrive as inputs and are inspected at once), so an idle
    /// MII bond asks for no wake-up at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let delays = self.slaves.iter().filter_map(|s| s.delay_until);
        let delays = delays.filter(|_| self.up && self.monitor() == Monitor::Mii);
        let idle_mii = self.monitor() == Monitor::Mii && self.peer_notif_left == 0;
        self.next_tick.filter(|_| !idle_mii).into_iter().chain(delays).min()
    }

    /// The next thing the bond wants done, in the order it decided them.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(crate) fn monitor(&self) -> Monitor {
        if self.opts.miimon > 0 {
            Monitor::Mii
        } else if self.opts.arp_interval > 0 {
            Monitor::Arp
        } else {
            Monitor::None
        }
    }

    pub(crate) fn log(&mut self, event: Event) {
        self.actions.push_back(Action::Log(event));
    }

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn slave(&self, name: &str) -> Option<&Slave> {
        self.slaves.iter().find(|s| s.name == name)
    }

    pub(crate) fn slave_mut(&mut self, name: &str) -> Option<&mut Slave> {
        self.slaves.iter_mut().find(|s| s.name == name)
    }

    pub(crate) fn require_slave(&self, name: &str) -> Result<&Slave, Error> {
        self.slave(name).ok_or_else(|| Error::NotSlave(name.to_string()))
    }

    pub(crate) fn is_active(&self, name: &str) -> bool {
        self.active.as_deref() == Some(name)
    }

    /// The enslaved interface named by the `primary` option, if any.
    pub(crate) fn primary_slave(&self) -> Option<&Slave> {
        let want = self.opts.primary.as_str();
        self.slaves.iter().find(|s| !want.is_empty() && s.name == want)
    }

    pub(crate) fn miimon_interval(&self) -> core::time::Duration {
        ms(self.opts.miimon)
    }

    /// One scheduled run of whichever monitor is enabled.
    pub(crate) fn tick(&mut self, now: Instant) {
        match self.monitor() {
            Monitor::Mii => {
                self.mii_pass(now);
                self.peer_notify_tick();
                self.next_tick = Some(now + ms(self.opts.miimon));
            }
            Monitor::Arp => {
                self.arp_tick(now);
                self.next_tick = Some(now + ms(self.opts.arp_interval));
            }
            Monitor::None => self.next_tick = None,
        }
    }

    /// (Re)starts monitoring after bond up or a monitor change: the first run is immediate.
    pub(crate) fn restart_monitor(&mut self, now: Instant) {
        self.next_tick = None;
        if self.up {
            self.tick(now);
        }
    }

    /// Recomputes the bond's carrier, returning the new value if it changed.
    ///
    /// On while any slave is up. The active slave also keeps it on while it counts down its
    /// `downdelay`: that delay exists to keep using the link, so traffic must not stop.
    pub(crate) fn update_carrier(&mut self) -> Option<bool> {
        let active_failing = self
            .active
            .as_deref()
            .and_then(|a| self.slave(a))
            .is_some_and(|s| s.link == LinkState::Fail);
        let on = active_failing || self.slaves.iter().any(|s| s.link == LinkState::Up);
        if on == self.carrier {
            return None;
        }
        self.carrier = on;
        self.push(Action::SetCarrier { up: on });
        Some(on)
    }
}

pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= crate::options::MAX_IFNAME
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}
