//! What counts as traffic for the ARP monitor, per `arp_validate`.

mod common;

use common::{BOND_IP, PEER_IP, Sim, id};
use rbond_core::{ArpFrame, ArpOp, Input, Mac};
use std::net::Ipv4Addr;

const FORGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);

fn frame(op: ArpOp, sip: Ipv4Addr, tip: Ipv4Addr, outgoing: bool) -> ArpFrame {
    ArpFrame {
        op,
        sender_mac: Mac([2, 0, 0, 0, 0, 9]),
        sender_ip: sip,
        target_mac: Mac::ZERO,
        target_ip: tip,
        outgoing,
    }
}

/// eth0 active and eth1 backup with the real peer silent: only `feed` keeps a slave alive.
fn silent_peer(validate: &str) -> Sim {
    let mut sim = Sim::running(
        &[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254"), ("arp_validate", validate)],
        &["eth0", "eth1"],
    );
    sim.addresses();
    sim
}

/// Feeds `f` on `slave` every 50 ms for two seconds, and genuine replies on the active eth0
/// too unless `slave` is eth0; returns whether `slave` stayed up.
fn survives(sim: &mut Sim, slave: &str, f: Input) -> bool {
    let genuine = arp("eth0", frame(ArpOp::Reply, PEER_IP, BOND_IP, false));
    for _ in 0..40 {
        sim.after(50);
        sim.input(f.clone()).unwrap();
        if slave != "eth0" {
            sim.input(genuine.clone()).unwrap();
        }
    }
    if slave != "eth0" {
        assert_eq!(sim.active().as_deref(), Some("eth0"), "genuine replies keep the active up");
    }
    sim.slave_sysfs(slave, "mii_status") == "up"
}

fn arp(slave: &str, f: ArpFrame) -> Input {
    Input::Arp { slave: id(slave), frame: f }
}

#[test]
fn a_validating_active_needs_replies_from_a_target_to_our_address() {
    let cases = [
        (frame(ArpOp::Reply, PEER_IP, BOND_IP, false), true),
        (frame(ArpOp::Reply, FORGER, BOND_IP, false), false), // not a target: forged
        (frame(ArpOp::Reply, PEER_IP, Ipv4Addr::new(192, 0, 2, 77), false), false), // not to us
        (frame(ArpOp::Reply, Ipv4Addr::UNSPECIFIED, BOND_IP, false), false),
        (frame(ArpOp::Reply, PEER_IP, BOND_IP, true), false), // our own transmission
    ];
    for (f, up) in cases {
        let mut sim = silent_peer("all");
        assert_eq!(survives(&mut sim, "eth0", arp("eth0", f)), up, "{f:?}");
    }
}

#[test]
fn without_validation_any_frame_counts_and_filter_counts_only_arp() {
    let mut sim = silent_peer("none");
    assert!(survives(&mut sim, "eth1", Input::Rx { slave: id("eth1") }));
    let mut sim = silent_peer("filter");
    assert!(!survives(&mut sim, "eth1", Input::Rx { slave: id("eth1") }));
    let mut sim = silent_peer("filter");
    assert!(survives(&mut sim, "eth1", arp("eth1", frame(ArpOp::Request, FORGER, FORGER, false))));
}

#[test]
fn a_validating_backup_checks_our_relayed_request_with_the_roles_swapped() {
    // The backup hears our own request (sender us, target the peer) flooded by the switch.
    let relayed = frame(ArpOp::Request, BOND_IP, PEER_IP, false);
    let mut sim = silent_peer("all");
    assert!(survives(&mut sim, "eth1", arp("eth1", relayed)));
    let mut sim = silent_peer("all");
    let forged = frame(ArpOp::Request, FORGER, PEER_IP, false);
    assert!(!survives(&mut sim, "eth1", arp("eth1", forged)));
}

#[test]
fn frames_on_unknown_slaves_are_refused() {
    let mut sim = silent_peer("all");
    let err = sim.input(arp("eth9", frame(ArpOp::Reply, PEER_IP, BOND_IP, false))).unwrap_err();
    assert_eq!(err.to_string(), "slave 19 not enslaved");
    assert_eq!(sim.input(Input::Rx { slave: id("eth9") }).unwrap_err().to_string(), "slave 19 not enslaved");
}

/// The ARP probes among the actions taken since the last call, as (slave, target, source).
fn probes(sim: &mut Sim) -> Vec<(String, Ipv4Addr, Ipv4Addr)> {
    sim.take_actions()
        .into_iter()
        .filter_map(|(_, a)| match a {
            rbond_core::Action::SendArpProbe { slave, target, source } => {
                Some((common::name_of(slave), target, source))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn probes_go_from_the_active_only_with_the_bonds_address() {
    let mut sim = silent_peer("none");
    sim.arp_peer = Some(PEER_IP);
    sim.take_actions();
    sim.after(1000);
    let sent = probes(&mut sim);
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|p| *p == ("eth0".to_string(), PEER_IP, BOND_IP)), "{sent:?}");
}

#[test]
fn with_no_active_the_candidates_are_probed_in_turn() {
    let mut sim = Sim::running(&[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254")], &["eth0", "eth1", "eth2"]);
    sim.after(2000); // the peer never answers: every slave goes down
    sim.take_actions();
    sim.after(600);
    let order: Vec<String> = probes(&mut sim).into_iter().map(|(slave, _, _)| slave).collect();
    let first = order.iter().position(|s| s == "eth0").unwrap();
    assert_eq!(order[first..first + 3], ["eth0", "eth1", "eth2"], "{order:?}");
    // The peer wakes up: the current candidate answers and becomes the active one.
    sim.arp_peer = Some(PEER_IP);
    sim.addresses();
    sim.after(500);
    assert!(sim.active().is_some());
    assert!(sim.log.iter().any(|(_, l)| l.ends_with("the new active one.")));
}

/// Frames validation looks at and refuses, and frames that do not parse, are counted per
/// slave in the JSON report; genuine replies and unvalidated traffic are not.
#[test]
fn refused_and_unparseable_frames_are_counted() {
    let counts = |sim: &Sim, slave: &str| {
        let r = serde_json::to_value(sim.bond.report()).unwrap();
        let s = r["slaves"].as_array().unwrap().iter().find(|s| s["name"] == slave).unwrap().clone();
        (s["arp_rejected"].as_u64().unwrap(), s["bad_frames"].as_u64().unwrap())
    };
    let mut sim = silent_peer("active");
    for _ in 0..3 {
        sim.input(arp("eth0", frame(ArpOp::Reply, FORGER, BOND_IP, false))).unwrap();
        sim.input(arp("eth0", frame(ArpOp::Reply, PEER_IP, BOND_IP, false))).unwrap();
        sim.input(arp("eth1", frame(ArpOp::Reply, FORGER, BOND_IP, false))).unwrap(); // backup: not validated
        sim.input(Input::BadFrame { slave: id("eth1") }).unwrap();
    }
    assert_eq!(counts(&sim, "eth0"), (3, 0));
    assert_eq!(counts(&sim, "eth1"), (0, 3));
    assert_eq!(sim.input(Input::BadFrame { slave: id("eth9") }).unwrap_err().to_string(), "slave 19 not enslaved");
}

/// After a gap in which nobody fed the engine (a daemon that died and was replaced), `Resume`
/// gives the slaves the grace of a fresh start instead of reading the gap as silence.
#[test]
fn resume_after_a_gap_is_not_read_as_silence() {
    let mut sim = Sim::running(&[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254")], &["eth0", "eth1"]);
    sim.addresses();
    sim.arp_peer = Some(PEER_IP);
    sim.after(1000);
    assert_eq!(sim.active().as_deref(), Some("eth0"));
    sim.take_log();
    // Nobody runs the engine for three seconds; then a new daemon resumes it.
    sim.arp_peer = None;
    sim.now = rbond_core::Instant::from_millis(sim.ms() + 3000);
    sim.cmd(rbond_core::Command::Resume).unwrap();
    sim.arp_peer = Some(PEER_IP);
    sim.after(1000);
    assert!(sim.take_log().iter().all(|(_, l)| !l.contains("definitely down")), "no slave read as down");
    assert_eq!(sim.active().as_deref(), Some("eth0"));
}
