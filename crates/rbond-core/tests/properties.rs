//! Invariants over random sequences of events and option sets.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rbond_core::{
    Action, ArpFrame, ArpOp, Bond, Command, Event, Input, Instant, Ipv4Cidr, LinkInfo, LinkState, Mac, OptionName,
    Options, SlaveId, SlaveSpec,
};

const NAMES: [&str; 5] = ["eth0", "eth1", "eth2", "eth3", "bond0"];
const IPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 254),
    Ipv4Addr::new(0, 0, 0, 0),
    Ipv4Addr::new(198, 51, 100, 7),
];

/// Option writes worth trying: valid, borderline and garbage.
const SETTINGS: &[(&str, &[&str])] = &[
    ("miimon", &["0", "10", "100", "garbage", "-1"]),
    ("updelay", &["0", "200", "250", "99999999999"]),
    ("downdelay", &["0", "200", "150"]),
    ("peer_notif_delay", &["0", "100"]),
    ("arp_interval", &["0", "100", "1000"]),
    ("arp_ip_target", &["+192.0.2.254", "-192.0.2.254", "192.0.2.254,198.51.100.7", "", "+0.0.0.0"]),
    ("arp_validate", &["none", "active", "backup", "all", "filter", "filter_active", "filter_backup", "9"]),
    ("arp_all_targets", &["any", "all"]),
    ("arp_missed_max", &["1", "2", "5", "0"]),
    ("primary", &["eth0", "eth1", "eth3", "", "nosuch"]),
    ("primary_reselect", &["always", "better", "failure"]),
    ("fail_over_mac", &["none", "active", "follow"]),
    ("num_grat_arp", &["0", "1", "3", "256"]),
    ("mode", &["active-backup", "balance-rr", "4"]),
    ("active_slave", &["eth0", "eth1", "eth2", "", "eth9"]),
    ("all_slaves_active", &["0", "1"]),
    ("bogus_option", &["1"]),
];

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Enslave(usize, bool),
    Release(usize),
    Carrier(usize, bool),
    Set(usize, usize),
    Prio(usize, i32),
    Up,
    Down,
    Arp { slave: usize, reply: bool, sip: usize, tip: usize, outgoing: bool },
    Rx(usize),
    Addresses(bool),
    BondMac(u8),
    ReleaseAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..700).prop_map(Op::Advance),
        3 => (0..NAMES.len(), any::<bool>()).prop_map(|(i, c)| Op::Enslave(i, c)),
        1 => (0..NAMES.len()).prop_map(Op::Release),
        6 => (0..NAMES.len(), any::<bool>()).prop_map(|(i, c)| Op::Carrier(i, c)),
        3 => (0..SETTINGS.len(), 0usize..10).prop_map(|(o, v)| Op::Set(o, v)),
        1 => (0..NAMES.len(), -3i32..3).prop_map(|(i, p)| Op::Prio(i, p)),
        1 => Just(Op::Up),
        1 => Just(Op::Down),
        4 => (0..NAMES.len(), any::<bool>(), 0..IPS.len(), 0..IPS.len(), any::<bool>())
            .prop_map(|(slave, reply, sip, tip, outgoing)| Op::Arp { slave, reply, sip, tip, outgoing }),
        2 => (0..NAMES.len()).prop_map(Op::Rx),
        1 => any::<bool>().prop_map(Op::Addresses),
        1 => any::<u8>().prop_map(Op::BondMac),
        1 => Just(Op::ReleaseAll),
    ]
}

fn initial_options() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..SETTINGS.len() - 2, 0usize..10), 0..6)
}

fn build(initial: &[(usize, usize)]) -> Bond {
    let mut o = Options::default();
    for (i, v) in initial {
        let (name, values) = SETTINGS[*i];
        if let Ok(n) = OptionName::parse(name) {
            let _ = o.set(n, values[v % values.len()]);
        }
    }
    Bond::new("bond0", o).unwrap()
}

fn input(op: &Op) -> Option<Input> {
    let name = |i: usize| NAMES[i].to_string();
    // The ids differ from the names' order, so a mix-up of the two cannot go unnoticed.
    let id = |i: usize| SlaveId(100 - i as u32);
    let link = |c: bool| if c { LinkInfo::up() } else { LinkInfo::down() };
    Some(match op {
        Op::Advance(_) => return None,
        Op::Enslave(i, c) => Input::Enslave(SlaveSpec {
            id: id(*i),
            name: name(*i),
            mac: Mac([2, 0, 0, 0, 0, *i as u8]),
            link: link(*c),
        }),
        Op::Release(i) => Input::Release(id(*i)),
        Op::Carrier(i, c) => Input::Link { slave: id(*i), link: link(*c) },
        Op::Set(o, v) => {
            let (n, values) = SETTINGS[*o];
            Input::Command(Command::SetOption { name: n.into(), value: values[v % values.len()].into() })
        }
        Op::Prio(i, p) => Input::Command(Command::SetPrio { slave: name(*i), prio: *p }),
        Op::Up => Input::Command(Command::Up),
        Op::Down => Input::Command(Command::Down),
        Op::Arp { slave, reply, sip, tip, outgoing } => Input::Arp {
            slave: id(*slave),
            frame: ArpFrame {
                op: if *reply { ArpOp::Reply } else { ArpOp::Request },
                sender_mac: Mac([2, 0, 0, 0, 0, 0xfe]),
                sender_ip: IPS[*sip],
                target_mac: Mac::ZERO,
                target_ip: IPS[*tip],
                outgoing: *outgoing,
            },
        },
        Op::Rx(i) => Input::Rx { slave: id(*i) },
        Op::Addresses(some) => Input::Addresses(if *some { vec![Ipv4Cidr::new(IPS[0], 24)] } else { vec![] }),
        Op::BondMac(b) => Input::Command(Command::SetBondMac(Mac([2, 0, 0, 0, 1, *b]))),
        Op::ReleaseAll => Input::Command(Command::ReleaseAll),
    })
}

/// Whether the step had a reason to change the active slave.
fn may_change_active(op: &Op, events: &[Event]) -> bool {
    let link_event = events.iter().any(|e| {
        matches!(
            e,
            Event::LinkUp { .. } | Event::LinkDown { .. } | Event::BackupDown { .. } | Event::LinkUpAgain { .. }
        )
    });
    let admin = matches!(op, Op::Enslave(..) | Op::Release(_) | Op::Set(..) | Op::Prio(..) | Op::ReleaseAll);
    admin || link_event
}

struct Checker {
    failures: BTreeMap<String, u32>,
}

impl Checker {
    fn check(&mut self, bond: &Bond, now: Instant, op: &Op, before: Option<String>, events: &[Event]) {
        let r = bond.report();
        let actives: Vec<_> = r.slaves.iter().filter(|s| s.state == "active").collect();
        assert!(actives.len() <= 1, "more than one active slave: {actives:?}");
        if let Some(a) = &r.active_slave {
            assert_eq!(actives.first().map(|s| &s.name), Some(a), "the active slave is in the active state");
        }
        if r.slaves.iter().any(|s| s.link == LinkState::Up) {
            let a = r.active_slave.as_ref().and_then(|a| r.slaves.iter().find(|s| &s.name == a));
            let ok = a.is_some_and(|a| matches!(a.link, LinkState::Up | LinkState::Fail));
            assert!(ok, "a slave is up, so the active must be usable: {r:#?}");
        }
        let carrier = r.slaves.iter().any(|s| s.link == LinkState::Up)
            || r.active_slave
                .as_ref()
                .is_some_and(|a| r.slaves.iter().any(|s| &s.name == a && s.link == LinkState::Fail));
        assert_eq!(r.mii_status == "up", carrier, "carrier follows the slaves");
        if before != r.active_slave {
            assert!(
                may_change_active(op, events),
                "active moved {before:?} -> {:?} without cause on {op:?}",
                r.active_slave
            );
        }
        let enslaved: BTreeMap<String, u32> = r.slaves.iter().map(|s| (s.name.clone(), s.link_failure_count)).collect();
        for (name, count) in &enslaved {
            if let Some(prev) = self.failures.get(name) {
                assert!(count >= prev, "{name}'s failure count went down");
            }
        }
        self.failures = enslaved;
        if let Some(t) = bond.poll_timeout() {
            assert!(t > now, "deadline {t:?} is not in the future (now {now:?})");
        }
        assert!(r.proc_text().starts_with("Ethernet Channel Bonding Driver: rbond v"));
        serde_json::to_string(&r).unwrap();
    }
}

fn run(initial: &[(usize, usize)], ops: &[Op]) {
    let mut bond = build(initial);
    let mut now = Instant::ZERO;
    let mut checker = Checker { failures: BTreeMap::new() };
    let drain = |bond: &mut Bond| {
        let mut events = Vec::new();
        while let Some(a) = bond.poll_action() {
            if let Action::Log(e) = a {
                e.render("bond0");
                events.push(e);
            }
        }
        events
    };
    drain(&mut bond);
    for op in ops {
        let before = bond.active_slave().map(str::to_string);
        match input(op) {
            Some(i) => {
                let _ = bond.handle(now, i);
                let events = drain(&mut bond);
                checker.check(&bond, now, op, before, &events);
            }
            None => {
                let Op::Advance(ms) = op else { unreachable!() };
                let end = now + core::time::Duration::from_millis(*ms);
                while let Some(t) = bond.poll_timeout().filter(|t| *t <= end) {
                    now = t;
                    let before = bond.active_slave().map(str::to_string);
                    bond.handle_timeout(t);
                    let events = drain(&mut bond);
                    checker.check(&bond, now, op, before, &events);
                }
                now = end;
            }
        }
    }
}

/// Everything the bond does for one op: its actions, in order.
fn step(bond: &mut Bond, now: &mut Instant, op: &Op) -> Vec<Action> {
    match input(op) {
        Some(i) => drop(bond.handle(*now, i)),
        None => {
            let Op::Advance(ms) = op else { unreachable!() };
            let end = *now + core::time::Duration::from_millis(*ms);
            while let Some(t) = bond.poll_timeout().filter(|t| *t <= end) {
                bond.handle_timeout(t);
            }
            *now = end;
        }
    }
    std::iter::from_fn(|| bond.poll_action()).collect()
}

/// A bond carried through serde after every op (a daemon handing over to its successor)
/// acts exactly as one that never left memory.
fn handover(initial: &[(usize, usize)], ops: &[Op]) {
    let mut stayed = build(initial);
    let mut moved = build(initial);
    // The creation lines are applied before any handover can happen.
    while stayed.poll_action().is_some() | moved.poll_action().is_some() {}
    let (mut t1, mut t2) = (Instant::ZERO, Instant::ZERO);
    for op in ops {
        let a = step(&mut stayed, &mut t1, op);
        moved = serde_json::from_str(&serde_json::to_string(&moved).unwrap()).unwrap();
        let b = step(&mut moved, &mut t2, op);
        assert_eq!(a, b, "after {op:?}");
        assert_eq!(stayed.report().proc_text(), moved.report().proc_text());
        assert_eq!(stayed.poll_timeout(), moved.poll_timeout());
    }
}

proptest! {
    // 512 cases by default; PROPTEST_CASES asks for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_on_any_sequence(initial in initial_options(), ops in prop::collection::vec(op(), 1..80)) {
        run(&initial, &ops);
    }

    #[test]
    fn a_handed_over_bond_acts_the_same(initial in initial_options(), ops in prop::collection::vec(op(), 1..80)) {
        handover(&initial, &ops);
    }
}

// Minimal cases the random search found; each was a real defect, kept so it stays fixed.

/// A probe candidate kept its active flag when another slave was enslaved and chosen.
#[test]
fn regression_candidate_and_new_active_both_active() {
    let arp_interval_100 = Op::Set(4, 1);
    run(&[], &[arp_interval_100, Op::Enslave(0, true), Op::Up, Op::Advance(300), Op::Enslave(1, true)]);
}

/// Releasing a slave cleared the probe candidate without returning it to backup.
#[test]
fn regression_release_leaves_candidate_flagged_active() {
    let ops = [
        Op::Set(4, 1),
        Op::Enslave(2, false),
        Op::Carrier(2, true),
        Op::Enslave(1, false),
        Op::Up,
        Op::Release(1),
        Op::Enslave(0, true),
    ];
    run(&[], &ops);
}

/// Clearing active_slave while the active counted down its downdelay left the carrier on.
#[test]
fn regression_clearing_a_failing_active_keeps_carrier() {
    let (miimon_10, downdelay_200, clear_active) = (Op::Set(0, 6), Op::Set(2, 1), Op::Set(14, 3));
    run(&[], &[miimon_10, Op::Enslave(2, true), Op::Up, downdelay_200, Op::Carrier(2, false), clear_active]);
}

/// An idle MII bond asks for no tick; a stale tick time must not resurface in the past when
/// a change (here a notification armed before the carrier came on) gives ticks work again.
#[test]
fn regression_skipped_idle_ticks_stay_skipped() {
    let miimon_10 = Op::Set(0, 6);
    run(&[], &[miimon_10, Op::Enslave(2, false), Op::Up, Op::Advance(10), Op::Advance(0), Op::Carrier(2, true)]);
}
