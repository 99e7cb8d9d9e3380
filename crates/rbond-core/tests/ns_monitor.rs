//! The ARP monitor's IPv6 half (`ns_ip6_target`): neighbour solicitations out, validated
//! advertisements (and our own solicitations relayed to backups) in, on the simulated clock.

mod common;

use common::{BOND_IP6, BOND_LL, PEER_IP, PEER_IP6, Sim, id, name_of};
use rbond_core::{Action, Input, NdFrame, NdKind, solicited_node};
use std::net::Ipv6Addr;

const FORGER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x66);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn ns_bond(validate: &str, slaves: &[&str]) -> Sim {
    let mut sim =
        Sim::running(&[("arp_interval", "100"), ("ns_ip6_target", "2001:db8::254"), ("arp_validate", validate)], &[]);
    sim.ns_peer = Some(PEER_IP6);
    sim.addresses();
    for s in slaves {
        sim.enslave(s, true).unwrap();
    }
    sim
}

fn nd(slave: &str, kind: NdKind, source: Ipv6Addr, destination: Ipv6Addr) -> Input {
    let sender_mac = rbond_core::Mac([2, 0, 0, 0, 0, 9]);
    Input::Nd { slave: id(slave), frame: NdFrame { kind, sender_mac, source, destination, outgoing: false } }
}

/// The NS probes sent since the last call, as (slave, target, source).
fn ns_probes(sim: &mut Sim) -> Vec<(String, Ipv6Addr, Ipv6Addr)> {
    let probes = sim.take_actions().into_iter().filter_map(|(_, a)| match a {
        Action::SendNsProbe { slave, target, source } => Some((name_of(slave), target, source)),
        _ => None,
    });
    probes.collect()
}

fn down_at(sim: &Sim, slave: &str) -> Option<u64> {
    let line = format!("link status definitely down for interface {slave}");
    sim.log.iter().find(|(_, l)| l.contains(&line)).map(|(t, _)| *t)
}

#[test]
fn the_active_solicits_each_target_from_the_bonds_address_of_its_scope() {
    let mut sim = Sim::running(
        &[("arp_interval", "100"), ("ns_ip6_target", "2001:db8::254,fe80::fe"), ("arp_ip_target", "192.0.2.254")],
        &["eth0", "eth1"],
    );
    sim.ns_peer = Some(PEER_IP6);
    sim.addresses();
    sim.take_actions();
    sim.after(300);
    let sent = ns_probes(&mut sim);
    let fe = "fe80::fe".parse().unwrap();
    assert_eq!(sent.len(), 6, "two targets every interval: {sent:?}");
    assert!(sent.iter().all(|(s, _, _)| s == "eth0"), "only the active probes: {sent:?}");
    assert!(sent.contains(&("eth0".into(), PEER_IP6, BOND_IP6)));
    assert!(sent.contains(&("eth0".into(), fe, BOND_LL)), "a link-local target, a link-local source");
    // Without an address of its own the bond still probes, from the unspecified address.
    let mut bare = Sim::running(&[("arp_interval", "100"), ("ns_ip6_target", "2001:db8::254")], &["eth0"]);
    bare.after(200);
    assert!(ns_probes(&mut bare).iter().all(|p| p.2 == Ipv6Addr::UNSPECIFIED));
}

#[test]
fn a_target_that_stops_answering_fails_the_active_over_within_its_intervals() {
    for missed in [2u64, 4] {
        let mut sim = ns_bond("active", &[]);
        sim.set("arp_missed_max", &missed.to_string()).unwrap();
        sim.enslave("eth0", true).unwrap();
        sim.enslave("eth1", true).unwrap();
        sim.at(1000);
        assert_eq!(sim.active().as_deref(), Some("eth0"));
        assert_eq!(sim.slave_sysfs("eth1", "mii_status"), "up", "a backup hears our relayed solicitation");
        // The target stops answering through eth0's port only: the switch still relays our
        // solicitations to eth1, but eth0 hears no advertisement.
        sim.ns_peer = None;
        let silent_from = sim.ms();
        sim.at(3000);
        let down = down_at(&sim, "eth0").expect("eth0 goes down");
        assert!(down - silent_from <= (missed + 1) * 100, "missed {missed}: down {} ms after", down - silent_from);
        assert!(down - silent_from > (missed - 1) * 100, "missed {missed}: not before its intervals");
    }
}

#[test]
fn validation_counts_advertisements_from_a_target_to_us_and_nothing_else() {
    let cases = [
        (nd("eth0", NdKind::Advertisement, PEER_IP6, BOND_IP6), true),
        (nd("eth0", NdKind::Advertisement, PEER_IP6, ALL_NODES), true),
        (nd("eth0", NdKind::Advertisement, PEER_IP6, BOND_LL), true),
        (nd("eth0", NdKind::Advertisement, FORGER6, BOND_IP6), false), // not a target
        (nd("eth0", NdKind::Advertisement, PEER_IP6, FORGER6), false), // not to us
        (nd("eth0", NdKind::Advertisement, Ipv6Addr::UNSPECIFIED, BOND_IP6), false),
    ];
    for (frame, counts) in cases {
        let mut sim = ns_bond("active", &["eth0"]);
        sim.ns_peer = None;
        for _ in 0..40 {
            sim.after(50);
            sim.input(frame.clone()).unwrap();
        }
        assert_eq!(sim.slave_sysfs("eth0", "mii_status") == "up", counts, "{frame:?}");
    }
}

/// A backup validates our own solicitation relayed to the target's solicited-node group (the
/// roles swapped), as the kernel has since it matched the group too; a relayed solicitation
/// for another address does not count.
#[test]
fn a_validating_backup_lives_on_our_relayed_solicitations() {
    let mut sim = ns_bond("all", &["eth0", "eth1"]);
    sim.after(2000);
    assert_eq!(sim.slave_sysfs("eth1", "mii_status"), "up");
    let mut sim = ns_bond("all", &["eth0", "eth1"]);
    sim.after(500);
    sim.ns_peer = None;
    let other = nd("eth1", NdKind::Solicitation, BOND_IP6, solicited_node(FORGER6));
    let genuine = nd("eth0", NdKind::Advertisement, PEER_IP6, BOND_IP6);
    for _ in 0..40 {
        sim.after(50);
        sim.input(other.clone()).unwrap();
        sim.input(genuine.clone()).unwrap();
    }
    assert_eq!(sim.active().as_deref(), Some("eth0"));
    assert_eq!(sim.slave_sysfs("eth1", "mii_status"), "down", "a backup whose NS path is dead is shown down");
}

#[test]
fn without_validation_any_ipv6_neighbour_frame_counts() {
    for validate in ["none", "filter"] {
        let mut sim = ns_bond(validate, &["eth0"]);
        sim.ns_peer = None;
        for _ in 0..40 {
            sim.after(50);
            sim.input(nd("eth0", NdKind::Solicitation, FORGER6, solicited_node(FORGER6))).unwrap();
        }
        assert_eq!(sim.slave_sysfs("eth0", "mii_status"), "up", "arp_validate {validate}");
    }
}

/// IPv4 and IPv6 targets together: with `arp_all_targets all` each must answer.
#[test]
fn mixed_targets_with_all_targets_need_both_families() {
    for (arp_peer, ns_peer, up) in [(true, true, true), (true, false, false), (false, true, false)] {
        let mut sim = Sim::running(
            &[
                ("arp_interval", "100"),
                ("arp_ip_target", "192.0.2.254"),
                ("ns_ip6_target", "2001:db8::254"),
                ("arp_validate", "active"),
                ("arp_all_targets", "all"),
            ],
            &[],
        );
        sim.arp_peer = arp_peer.then_some(PEER_IP);
        sim.ns_peer = ns_peer.then_some(PEER_IP6);
        sim.addresses();
        sim.enslave("eth0", true).unwrap();
        sim.after(3000);
        assert_eq!(sim.slave_sysfs("eth0", "mii_status") == "up", up, "ARP answers {arp_peer}, NS {ns_peer}");
    }
}

#[test]
fn with_no_active_the_candidates_solicit_in_turn_until_one_is_answered() {
    let mut sim = ns_bond("none", &["eth0", "eth1", "eth2"]);
    sim.ns_peer = None;
    sim.after(2000);
    assert_eq!(sim.active(), None);
    sim.take_actions();
    sim.after(600);
    let order: Vec<String> = ns_probes(&mut sim).into_iter().map(|p| p.0).collect();
    let first = order.iter().position(|s| s == "eth0").unwrap();
    assert_eq!(order[first..first + 3], ["eth0", "eth1", "eth2"], "{order:?}");
    sim.ns_peer = Some(PEER_IP6);
    sim.after(500);
    assert!(sim.active().is_some());
}

/// Backups with validation on join the targets' solicited-node groups; the active never
/// does, and without validation nobody does (the kernel selftest's multicast check).
#[test]
fn backups_join_the_targets_solicited_node_groups_when_validating() {
    let groups = |sim: &Sim, s: &str| sim.bond.solicited_groups(id(s));
    let sn: Ipv6Addr = "ff02::1:ff00:254".parse().unwrap();
    let mut sim = ns_bond("none", &["eth0", "eth1"]);
    sim.after(500);
    assert!(groups(&sim, "eth0").is_empty() && groups(&sim, "eth1").is_empty());
    sim.set("arp_validate", "backup").unwrap();
    assert_eq!((groups(&sim, "eth0"), groups(&sim, "eth1")), (vec![], vec![sn]));
    sim.carrier("eth0", false);
    sim.ns_peer = Some(PEER_IP6);
    sim.after(1000);
    assert_eq!(sim.active().as_deref(), Some("eth1"));
    assert_eq!((groups(&sim, "eth0"), groups(&sim, "eth1")), (vec![sn], vec![]), "the roles swap after a failover");
}

#[test]
fn ns_targets_are_refused_as_the_kernel_refuses_them() {
    let mut sim = Sim::new(&[]);
    let err = |sim: &mut Sim, v: &str| sim.set("ns_ip6_target", v).unwrap_err().to_string();
    for bad in ["::", "ff02::1", "::1", "not-an-address"] {
        assert_eq!(err(&mut sim, bad), format!("option ns_ip6_target: invalid NS target {bad} specified for addition"));
    }
    sim.set("ns_ip6_target", "+2001:db8::1").unwrap();
    assert_eq!(err(&mut sim, "+2001:db8::1"), "option ns_ip6_target: NS target 2001:db8::1 is already present");
    for i in 2..=16 {
        sim.set("ns_ip6_target", &format!("+2001:db8::{i:x}")).unwrap();
    }
    assert_eq!(err(&mut sim, "+2001:db8::99"), "option ns_ip6_target: NS target table is full!");
    assert_eq!(
        err(&mut sim, "-2001:db8::99"),
        "option ns_ip6_target: unable to remove nonexistent NS target 2001:db8::99"
    );
    sim.set("ns_ip6_target", "2001:db8::5 2001:db8::6").unwrap();
    assert_eq!(sim.sysfs("ns_ip6_target"), "2001:db8::5 2001:db8::6");
    sim.set("ns_ip6_target", "").unwrap();
    assert_eq!(sim.sysfs("ns_ip6_target"), "");
    // miimon turns the shared ARP monitor off, NS targets and all.
    let mut sim = Sim::running(&[("arp_interval", "100"), ("ns_ip6_target", "2001:db8::254")], &["eth0"]);
    sim.set("miimon", "100").unwrap();
    assert_eq!((sim.sysfs("arp_interval"), sim.sysfs("miimon")), ("0".into(), "100".into()));
    sim.take_actions();
    sim.after(500);
    assert!(ns_probes(&mut sim).is_empty(), "no probes under miimon");
}

/// An interval with only NS targets is kept at creation (the kernel drops one with neither).
#[test]
fn an_arp_interval_with_ns_targets_only_is_a_monitor() {
    let sim = Sim::new(&[("arp_interval", "100"), ("ns_ip6_target", "2001:db8::254")]);
    assert_eq!(sim.sysfs("arp_interval"), "100");
    let said: Vec<&str> = sim.log.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(said, ["ARP monitoring set to 100 ms, validate none, with 1 target(s): 2001:db8::254"]);
    let sim = Sim::new(&[("arp_interval", "100")]);
    assert_eq!(sim.sysfs("arp_interval"), "0");
}

#[test]
fn the_report_lists_ns_targets() {
    let sim = ns_bond("none", &["eth0"]);
    let text = sim.bond.report().proc_text();
    assert!(text.contains("NS IPv6 target/s (xx::xx form): 2001:db8::254\n"), "{text}");
    let json = serde_json::to_value(sim.bond.report()).unwrap();
    assert_eq!(json["options"]["ns_ip6_target"], "2001:db8::254", "{json}");
}
