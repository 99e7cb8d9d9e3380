//! A simulated host for the engine: a fake clock, slaves whose carrier the test flips, and
//! optionally a switch with one peer that answers ARP probes and one that answers neighbour
//! solicitations.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use rbond_core::{
    Action, ArpFrame, ArpOp, Bond, Command, Error, Input, Instant, Ipv4Cidr, Ipv6Cidr, LinkInfo, Mac, NdFrame, NdKind,
    Options, SlaveId, SlaveSpec, solicited_node,
};

pub const BOND_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
pub const BOND_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const BOND_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x254);

/// The MAC the selftests give slave number `n` (eth0 is 00:0a:0b:0c:0d:01).
pub fn mac(n: u8) -> Mac {
    Mac([0x00, 0x0a, 0x0b, 0x0c, 0x0d, n])
}

fn number_of(name: &str) -> u8 {
    name.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(0)
}

pub fn mac_of(name: &str) -> Mac {
    mac(number_of(name) + 1)
}

/// The id the simulated host gives a slave (as the daemon would use its interface index).
pub fn id(name: &str) -> SlaveId {
    SlaveId(u32::from(number_of(name)) + 10)
}

/// The slave an id stands for (the host's slaves are all ethN).
pub fn name_of(id: SlaveId) -> String {
    format!("eth{}", id.0 - 10)
}

pub fn options(pairs: &[(&str, &str)]) -> Options {
    let mut o = Options::default();
    for (k, v) in pairs {
        o.apply(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    o
}

pub struct Sim {
    pub bond: Bond,
    pub now: Instant,
    pub log: Vec<(u64, String)>,
    pub actions: Vec<(u64, Action)>,
    carrier: BTreeMap<String, bool>,
    /// When set, a peer with this address answers probes sent through a slave with carrier.
    pub arp_peer: Option<Ipv4Addr>,
    /// The same for neighbour solicitations.
    pub ns_peer: Option<Ipv6Addr>,
}

impl Sim {
    /// A bond created with these options (as the driver is loaded with them), not yet up.
    pub fn new(pairs: &[(&str, &str)]) -> Sim {
        let bond = Bond::new("bond0", options(pairs)).unwrap();
        let mut sim = Sim {
            bond,
            now: Instant::ZERO,
            log: Vec::new(),
            actions: Vec::new(),
            carrier: BTreeMap::new(),
            arp_peer: None,
            ns_peer: None,
        };
        sim.drain();
        sim
    }

    /// A bond brought up at t=0 with `slaves` enslaved in order, each with carrier.
    pub fn running(pairs: &[(&str, &str)], slaves: &[&str]) -> Sim {
        let mut sim = Sim::new(pairs);
        sim.cmd(Command::Up).unwrap();
        for s in slaves {
            sim.enslave(s, true).unwrap();
        }
        sim
    }

    pub fn ms(&self) -> u64 {
        self.now.as_millis()
    }

    /// Runs the clock forward to `ms`, firing every timeout on the way at its own time.
    pub fn at(&mut self, ms: u64) -> &mut Sim {
        let target = Instant::from_millis(ms);
        assert!(target >= self.now, "time runs forward");
        while let Some(t) = self.bond.poll_timeout().filter(|t| *t <= target) {
            assert!(t >= self.now, "timeout {t:?} is in the past (now {:?})", self.now);
            self.now = t;
            self.bond.handle_timeout(t);
            self.drain();
        }
        self.now = target;
        self
    }

    pub fn after(&mut self, ms: u64) -> &mut Sim {
        let t = self.ms() + ms;
        self.at(t)
    }

    pub fn input(&mut self, input: Input) -> Result<(), Error> {
        let r = self.bond.handle(self.now, input);
        self.drain();
        r
    }

    pub fn cmd(&mut self, c: Command) -> Result<(), Error> {
        self.input(Input::Command(c))
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.cmd(Command::SetOption { name: name.into(), value: value.into() })
    }

    pub fn enslave(&mut self, name: &str, carrier: bool) -> Result<(), Error> {
        let link = if carrier { LinkInfo::up() } else { LinkInfo::down() };
        self.enslave_spec(SlaveSpec { id: id(name), name: name.into(), mac: mac_of(name), link })
    }

    pub fn enslave_spec(&mut self, spec: SlaveSpec) -> Result<(), Error> {
        self.carrier.insert(spec.name.clone(), spec.link.carrier);
        self.input(Input::Enslave(spec))
    }

    pub fn release(&mut self, name: &str) -> Result<(), Error> {
        self.input(Input::Release(id(name)))
    }

    pub fn carrier(&mut self, name: &str, up: bool) {
        self.carrier.insert(name.to_string(), up);
        let link = if up { LinkInfo::up() } else { LinkInfo::down() };
        self.input(Input::Link { slave: id(name), link }).unwrap();
    }

    /// bond0 gets 192.0.2.1/24, 2001:db8::1/64 and fe80::1/64.
    pub fn addresses(&mut self) {
        self.input(Input::Addresses(vec![Ipv4Cidr::new(BOND_IP, 24)])).unwrap();
        let v6 = vec![Ipv6Cidr::new(BOND_LL, 64), Ipv6Cidr::new(BOND_IP6, 64)];
        self.input(Input::Ipv6Addresses(v6)).unwrap();
    }

    /// Collects what the bond wants done; the simulated switch answers probes at once.
    fn drain(&mut self) {
        let mut replies = Vec::new();
        while let Some(a) = self.bond.poll_action() {
            match &a {
                Action::Log(e) => self.log.push((self.ms(), e.render(self.bond.name()))),
                Action::SendArpProbe { slave, target, source } => {
                    let arp = self.answer(*slave, *target, *source);
                    replies.extend(arp.into_iter().map(|(slave, frame)| Input::Arp { slave, frame }));
                }
                Action::SendNsProbe { slave, target, source } => {
                    replies.extend(self.answer_ns(*slave, *target, *source))
                }
                _ => {}
            }
            self.actions.push((self.ms(), a));
        }
        for input in replies {
            self.bond.handle(self.now, input).unwrap();
            self.drain();
        }
    }

    /// The switch floods our solicitation to the target's group on the other slaves; the
    /// target advertises back to the sender (to all nodes if we had no address to use).
    fn answer_ns(&self, slave: SlaveId, target: Ipv6Addr, source: Ipv6Addr) -> Vec<Input> {
        let up = |s: SlaveId| self.carrier.iter().any(|(n, on)| *on && id(n) == s);
        if self.ns_peer != Some(target) || !up(slave) {
            return Vec::new();
        }
        let enslaved = |n: &str| self.bond.report().slaves.iter().any(|s| s.name == n);
        let ours = self.bond.mac().unwrap_or_default();
        let solicit = NdFrame {
            kind: NdKind::Solicitation,
            sender_mac: ours,
            source,
            destination: solicited_node(target),
            outgoing: false,
        };
        let to = if source.is_unspecified() { Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1) } else { source };
        let peer = Mac([0x02, 0, 0, 0, 0, 0xfe]);
        let advert =
            NdFrame { kind: NdKind::Advertisement, sender_mac: peer, source: target, destination: to, outgoing: false };
        let others = self.carrier.iter().filter(|(n, on)| **on && id(n) != slave && enslaved(n));
        let mut out: Vec<Input> = others.map(|(n, _)| Input::Nd { slave: id(n), frame: solicit }).collect();
        out.push(Input::Nd { slave, frame: advert });
        out
    }

    /// The switch floods our request to the other slaves; the peer replies to the sender.
    fn answer(&self, slave: SlaveId, target: Ipv4Addr, source: Ipv4Addr) -> Vec<(SlaveId, ArpFrame)> {
        let up = |s: SlaveId| self.carrier.iter().any(|(n, on)| *on && id(n) == s);
        if self.arp_peer != Some(target) || !up(slave) {
            return Vec::new();
        }
        let ours = self.bond.mac().unwrap_or_default();
        let request = ArpFrame {
            op: ArpOp::Request,
            sender_mac: ours,
            sender_ip: source,
            target_mac: Mac::ZERO,
            target_ip: target,
            outgoing: false,
        };
        let reply = ArpFrame {
            op: ArpOp::Reply,
            sender_mac: Mac([0x02, 0, 0, 0, 0, 0xfe]),
            sender_ip: target,
            target_mac: ours,
            target_ip: source,
            outgoing: false,
        };
        let mut out: Vec<(SlaveId, ArpFrame)> = self
            .carrier
            .iter()
            .filter(|(name, on)| {
                **on && id(name) != slave && self.bond.report().slaves.iter().any(|s| &s.name == *name)
            })
            .map(|(name, _)| (id(name), request))
            .collect();
        out.push((slave, reply));
        out
    }

    /// Log lines since the last call, as (milliseconds, line).
    pub fn take_log(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.log)
    }

    pub fn take_actions(&mut self) -> Vec<(u64, Action)> {
        std::mem::take(&mut self.actions)
    }

    pub fn active(&self) -> Option<String> {
        self.bond.active_slave().map(str::to_string)
    }

    pub fn sysfs(&self, file: &str) -> String {
        self.bond.report().sysfs(file).unwrap_or_else(|| panic!("no sysfs file {file}"))
    }

    pub fn slave_sysfs(&self, slave: &str, file: &str) -> String {
        self.bond.report().slave_sysfs(slave, file).unwrap_or_else(|| panic!("no {slave}/{file}"))
    }

    /// The MAC the engine has given the slave (or found on it).
    pub fn slave_mac(&self, slave: &str) -> Mac {
        self.bond.report().slaves.iter().find(|s| s.name == slave).map(|s| s.mac).unwrap()
    }
}

/// Asserts log lines exactly, as (millisecond, line) pairs.
pub fn assert_log(got: &[(u64, String)], want: &[(u64, &str)]) {
    let got: Vec<(u64, &str)> = got.iter().map(|(t, l)| (*t, l.as_str())).collect();
    assert_eq!(got, want, "\n got: {got:#?}\nwant: {want:#?}");
}
