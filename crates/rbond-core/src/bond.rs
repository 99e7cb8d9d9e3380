//! The bond: what goes in (inputs with the time), what comes out (actions), and the state
//! between them. The monitors, selection, MAC policy and the rest live in their own modules
//! as further `impl Bond` blocks.

use crate::counters::Tally;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::address::{Ipv4Cidr, Ipv6Cidr};
use crate::event::Event;
use crate::mac::Mac;
use crate::options::{OptionError, Options};
use crate::slave::{LinkInfo, LinkState, Slave, SlaveSpec};
use crate::time::{Instant, ms};
use crate::timer::{Timer, TimerTable};

/// The caller's handle for a slave, chosen when it is enslaved (the daemon uses the interface
/// index). Names are for people: log lines and reports; ids are for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlaveId(pub u32);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NdKind {
    Solicitation,
    Advertisement,
}

/// The fields of an IPv6 neighbour solicitation or advertisement that the NS monitor (the
/// ARP monitor's IPv6 half) looks at: the IPv6 header's addresses, as the kernel reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NdFrame {
    pub kind: NdKind,
    /// The Ethernet source.
    pub sender_mac: Mac,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    /// Seen leaving through the slave (one of ours), not arriving on it.
    pub outgoing: bool,
}

/// An administrative request: ifenslave's verbs, sysfs writes, bond up and down. Slaves are
/// named here, as administrators name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    /// `ifenslave -c`: make this slave the active one; an empty name clears the active slave.
    ChangeActive(String),
    SetOption {
        name: String,
        value: String,
    },
    SetPrio {
        slave: String,
        prio: i32,
    },
    /// Someone set the bond device's MAC.
    SetBondMac(Mac),
    /// The bond is being deleted: release every slave without reselecting.
    ReleaseAll,
    /// The caller was away for a while (a new daemon took the bond over): the ARP monitor
    /// gives every slave the grace it gives a slave just enslaved, instead of reading the gap
    /// as silence.
    Resume,
    /// `rbond verify`: every up slave probes its path now.
    Verify,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Enslave(SlaveSpec),
    Release(SlaveId),
    /// The slave's device reported its link (carrier, speed, duplex).
    Link {
        slave: SlaveId,
        link: LinkInfo,
    },
    Arp {
        slave: SlaveId,
        frame: ArpFrame,
    },
    /// A neighbour solicitation or advertisement arrived on the slave.
    Nd {
        slave: SlaveId,
        frame: NdFrame,
    },
    /// Any other frame arrived on the slave.
    Rx {
        slave: SlaveId,
    },
    /// A frame arrived that could not be parsed (too short, or ARP with bogus lengths); it
    /// is only counted.
    BadFrame {
        slave: SlaveId,
    },
    /// The bond's IPv4 addresses changed.
    Addresses(Vec<Ipv4Cidr>),
    /// The bond's IPv6 addresses that are ready (past duplicate address detection) changed.
    Ipv6Addresses(Vec<Ipv6Cidr>),
    /// The bond's gateways changed, IPv4 and IPv6 (what the standby probes ask for without
    /// ARP or NS targets).
    Gateways(Vec<IpAddr>),
    /// The bond sent a broadcast (ARP, neighbour discovery) through the active slave: the
    /// switch should flood it back in through every backup in the same segment.
    BondBroadcast,
    /// A frame from the bond's MAC came in through the slave.
    Echo {
        slave: SlaveId,
    },
    Command(Command),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "slave", rename_all = "lowercase")]
pub enum MacTarget {
    Bond,
    Slave(SlaveId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The slave becomes the active one: send and receive through it.
    Activate {
        slave: SlaveId,
    },
    /// The slave becomes a backup: send nothing through it, drop what it receives.
    Deactivate {
        slave: SlaveId,
    },
    SetMac {
        target: MacTarget,
        mac: Mac,
    },
    SetCarrier {
        up: bool,
    },
    SendArpProbe {
        slave: SlaveId,
        target: Ipv4Addr,
        source: Ipv4Addr,
    },
    /// Send a neighbour solicitation for `target` from `source` (`::` when the bond has no
    /// address to use) out of the slave, to the target's solicited-node group.
    SendNsProbe {
        slave: SlaveId,
        target: Ipv6Addr,
        source: Ipv6Addr,
    },
    /// Announce the bond's addresses (gratuitous ARP, unsolicited NA) through the slave.
    NotifyPeers {
        slave: SlaveId,
    },
    /// Send the host's multicast membership reports (IGMP, MLD) through the slave.
    ResendIgmp {
        slave: SlaveId,
    },
    /// Send a probe for `target` out of the slave from `mac` (the slave's probe MAC, never the
    /// bond's) that claims none of the bond's addresses: an ARP probe (sender IP 0.0.0.0) to
    /// the broadcast address, or for IPv6 a neighbour solicitation from the probe MAC's own
    /// link-local address ([`eui64_link_local`](crate::eui64_link_local) of `mac`).
    SendStandbyProbe {
        slave: SlaveId,
        mac: Mac,
        target: IpAddr,
    },
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
    #[error("slave {0} not enslaved")]
    NoSuchSlave(u32),
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

/// One active-backup bond.
///
/// # How to drive it
///
/// 1. Feed each [`Input`] with [`Bond::handle`], stamped with the time it happened; on error
///    nothing has changed.
/// 2. Whenever [`Bond::poll_timeout`] says, call [`Bond::handle_timeout`] with the time then.
/// 3. After either, drain [`Bond::poll_action`] until `None` and carry the actions out in that
///    order: they are the bond's decisions, and the next input may depend on them having
///    happened (a slave that was activated is the one whose ARP replies count).
/// 4. Ask `poll_timeout` again: an input can move the deadline earlier or cancel it.
///
/// Time only moves forward, and `now` must come from one monotonic clock; the engine reads
/// none itself. The bond serializes whole (after its actions are drained): a successor that
/// resumes it on the same clock carries on with the same delays, counts and active slave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bond {
    pub(crate) name: String,
    pub(crate) opts: Options,
    pub(crate) slaves: Vec<Slave>,
    pub(crate) up: bool,
    pub(crate) carrier: bool,
    pub(crate) active: Option<SlaveId>,
    /// The ARP monitor's probe candidate while no slave is active.
    pub(crate) arp_slave: Option<SlaveId>,
    pub(crate) force_primary: bool,
    pub(crate) peer_notif_left: u32,
    #[serde(default)]
    pub(crate) igmp_left: u32,
    pub(crate) timers: TimerTable,
    #[serde(default)]
    pub(crate) tally: Tally,
    pub(crate) mac: Option<Mac>,
    pub(crate) mac_origin: MacOrigin,
    pub(crate) addrs: Vec<Ipv4Cidr>,
    #[serde(default)]
    pub(crate) addrs6: Vec<Ipv6Cidr>,
    #[serde(default)]
    pub(crate) gateways: Vec<IpAddr>,
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
            igmp_left: 0,
            timers: TimerTable::default(),
            tally: Tally::default(),
            mac: None,
            mac_origin: MacOrigin::Unset,
            addrs: Vec::new(),
            addrs6: Vec::new(),
            gateways: Vec::new(),
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

    /// The active slave's id.
    pub fn active(&self) -> Option<SlaveId> {
        self.active
    }

    /// The bond's carrier as last decided (a `SetCarrier` action announces each change).
    pub fn carrier(&self) -> bool {
        self.carrier
    }

    /// The active slave's name.
    pub fn active_slave(&self) -> Option<&str> {
        self.active.and_then(|id| self.slave(id)).map(|s| s.name.as_str())
    }

    /// The id of the slave with this name.
    pub fn slave_id(&self, name: &str) -> Option<SlaveId> {
        self.slave_by_name(name).map(|s| s.id)
    }

    /// Feeds one input that happened at `now`. On error nothing has changed.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        let result = self.dispatch(now, input);
        self.schedule(now);
        result
    }

    fn dispatch(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        match input {
            Input::Enslave(spec) => self.enslave(now, spec),
            Input::Release(slave) => self.release(now, slave),
            Input::Link { slave, link } => self.link_changed(now, slave, link),
            Input::Arp { slave, frame } => self.arp_seen(now, slave, &frame),
            Input::Nd { slave, frame } => self.nd_seen(now, slave, &frame),
            Input::Rx { slave } => self.rx_seen(now, slave),
            Input::BadFrame { slave } => self.bad_frame(slave),
            Input::Addresses(addrs) => {
                self.addrs = addrs;
                Ok(())
            }
            Input::Ipv6Addresses(addrs) => {
                self.addrs6 = addrs;
                Ok(())
            }
            Input::Gateways(gateways) => {
                self.gateways = gateways;
                Ok(())
            }
            Input::BondBroadcast => {
                self.bond_broadcast_sent(now);
                Ok(())
            }
            Input::Echo { slave } => {
                self.echo_seen(now, slave);
                Ok(())
            }
            Input::Command(cmd) => self.command(now, cmd),
        }
    }

    /// Runs whatever was due at or before `now`: a monitor run, an expiring up/down delay, a
    /// round of membership reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::Monitor => self.tick(now),
                Timer::LinkDelay => self.mii_pass(now),
                Timer::IgmpResend => self.igmp_round(now),
            }
        }
        self.schedule(now);
    }

    /// When `handle_timeout` should be called next; `None` while nothing is scheduled. An
    /// idle MII bond asks for no wake-up at all: carrier changes arrive as inputs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timers.next(), self.standby_deadline()].into_iter().flatten().min()
    }

    /// The next thing the bond wants done, in the order it decided them.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Re-arms the timers that follow from the state: delays counting down, and an MII tick
    /// only while one has work.
    fn schedule(&mut self, now: Instant) {
        let mii = self.up && self.monitor() == Monitor::Mii;
        match self.slaves.iter().filter_map(|s| s.delay_until).min().filter(|_| mii) {
            Some(at) => self.timers.set(Timer::LinkDelay, at),
            None => self.timers.stop(Timer::LinkDelay),
        }
        if mii {
            let returning = self.active.is_none() && self.slaves.iter().any(|s| s.link == LinkState::Back);
            let wanted = self.peer_notif_left > 0 || returning;
            match (wanted, self.timers.is_set(Timer::Monitor)) {
                (true, false) => self.timers.set(Timer::Monitor, now + self.miimon_interval()),
                (false, _) => self.timers.stop(Timer::Monitor),
                (true, true) => {}
            }
        }
        // Standby work that fell due (also while inputs kept the caller busy) is done now.
        if self.standby_deadline().is_some_and(|at| at <= now) {
            self.standby_tick(now);
        }
        self.standby_refresh(now);
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

    pub(crate) fn slave(&self, id: SlaveId) -> Option<&Slave> {
        self.slaves.iter().find(|s| s.id == id)
    }

    pub(crate) fn slave_mut(&mut self, id: SlaveId) -> Option<&mut Slave> {
        self.slaves.iter_mut().find(|s| s.id == id)
    }

    pub(crate) fn slave_by_name(&self, name: &str) -> Option<&Slave> {
        self.slaves.iter().find(|s| s.name == name)
    }

    pub(crate) fn require(&self, id: SlaveId) -> Result<&Slave, Error> {
        self.slave(id).ok_or(Error::NoSuchSlave(id.0))
    }

    /// A slave named by an administrator.
    pub(crate) fn require_named(&self, name: &str) -> Result<&Slave, Error> {
        self.slave_by_name(name).ok_or_else(|| Error::NotSlave(name.to_string()))
    }

    pub(crate) fn name_of(&self, id: SlaveId) -> String {
        self.slave(id).map(|s| s.name.clone()).unwrap_or_default()
    }

    pub(crate) fn is_active(&self, id: SlaveId) -> bool {
        self.active == Some(id)
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
            }
            Monitor::Arp => {
                self.arp_tick(now);
                self.timers.set(Timer::Monitor, now + ms(self.opts.arp_interval));
            }
            Monitor::None => self.timers.stop(Timer::Monitor),
        }
    }

    /// (Re)starts monitoring after bond up or a monitor change: the first run is immediate.
    pub(crate) fn restart_monitor(&mut self, now: Instant) {
        self.timers.stop(Timer::Monitor);
        if self.up {
            self.tick(now);
        }
    }

    /// Recomputes the bond's carrier, returning the new value if it changed.
    ///
    /// On while any slave is up. The active slave also keeps it on while it counts down its
    /// `downdelay`: that delay exists to keep using the link, so traffic must not stop.
    pub(crate) fn update_carrier(&mut self) -> Option<bool> {
        let active_failing = self.active.and_then(|a| self.slave(a)).is_some_and(|s| s.link == LinkState::Fail);
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
