//! The standby check on a simulated clock: what makes a backup verified, unverified or
//! broken, the probes it sends, and what `standby_select` does with the verdicts.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{Sim, id, mac_of};
use rbond_core::{Action, ArpFrame, ArpOp, Input, Mac, NdFrame, NdKind, Verdict, eui64_link_local, probe_mac};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

fn verdict(sim: &Sim, slave: &str) -> Option<(Verdict, String)> {
    let r = sim.bond.report_at(sim.now);
    let s = r.slaves.into_iter().find(|s| s.name == slave).unwrap();
    s.standby.map(|st| (st.verdict, st.reason_text().to_string()))
}

/// The reply a gateway sends to a slave's RFC 5227 probe: to the probe MAC, target IP 0.
fn reply_to_probe(slave: &str) -> Input {
    let frame = ArpFrame {
        op: ArpOp::Reply,
        sender_mac: Mac([2, 0, 0, 0, 0, 0xfe]),
        sender_ip: GATEWAY,
        target_mac: probe_mac(mac_of(slave)),
        target_ip: Ipv4Addr::UNSPECIFIED,
        outgoing: false,
    };
    Input::Arp { slave: id(slave), frame }
}

fn probes(sim: &mut Sim) -> Vec<(u64, String, Mac, IpAddr)> {
    sim.take_actions()
        .into_iter()
        .filter_map(|(t, a)| match a {
            Action::SendStandbyProbe { slave, mac, target } => Some((t, common::name_of(slave), mac, target)),
            _ => None,
        })
        .collect()
}

fn passive(pairs: &[(&str, &str)]) -> Sim {
    let mut opts = vec![("miimon", "100"), ("standby_window", "2000")];
    opts.extend_from_slice(pairs);
    let mut sim = Sim::running(&opts, &["eth0", "eth1"]);
    sim.take_log();
    sim
}

#[test]
fn a_backup_that_sees_the_bonds_broadcasts_is_verified_and_one_that_does_not_is_broken() {
    let mut sim = passive(&[]);
    assert_eq!(verdict(&sim, "eth0"), Some((Verdict::Unverified, "nothing seen yet".into())), "active: no probe yet");
    assert_eq!(verdict(&sim, "eth1"), Some((Verdict::Unverified, "nothing seen yet".into())));
    sim.after(1000);
    assert_eq!(sim.bond.poll_timeout(), None, "nothing owed, nothing to wake for");

    sim.input(Input::BondBroadcast).unwrap();
    sim.after(1).input(Input::Echo { slave: id("eth1") }).unwrap();
    sim.after(500);
    assert_eq!(verdict(&sim, "eth1"), Some((Verdict::Verified, "bond0's broadcasts come back through it".into())));
    assert!(sim.take_log().is_empty(), "a first verification is routine: not logged");

    // eth1 is moved to a segment where nothing of the bond's reaches it: its link stays up.
    sim.input(Input::BondBroadcast).unwrap();
    sim.after(1000).input(Input::BondBroadcast).unwrap();
    sim.after(999);
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Verified, "not yet a whole window");
    sim.after(1);
    assert_eq!(
        sim.take_log(),
        [(
            3501,
            "bond0: standby path of backup interface eth1 is broken: none of 2 broadcasts bond0 sent came back"
                .to_string()
        )]
    );
    assert_eq!(sim.slave_sysfs("eth1", "mii_status"), "up", "the link itself is fine");
    let text = sim.bond.report_at(sim.now).proc_text();
    assert!(text.contains("MII Status: up\n"), "{text}");
    assert!(text.contains("Standby Path: broken (none of 2 broadcasts bond0 sent came back)\n"), "{text}");

    // Repaired: the next echo verifies it again.
    sim.after(300).input(Input::BondBroadcast).unwrap();
    sim.after(2).input(Input::Echo { slave: id("eth1") }).unwrap();
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Verified);
    assert_eq!(
        sim.take_log(),
        [(
            3803,
            "bond0: standby path of backup interface eth1 is verified: bond0's broadcasts come back through it"
                .to_string()
        )],
        "a mended path is"
    );

    // A quiet bond: after a window with nothing to go by, the verdict is honest about it.
    sim.after(2000);
    assert_eq!(verdict(&sim, "eth1"), Some((Verdict::Unverified, "nothing to judge by for 2000 ms".into())));
}

#[test]
fn verdicts_follow_the_roles() {
    let mut sim = passive(&[]);
    sim.input(Input::BondBroadcast).unwrap();
    sim.after(2000);
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Broken);
    sim.carrier("eth0", false);
    assert_eq!(sim.active().as_deref(), Some("eth1"));
    assert!(
        sim.take_log().iter().any(|(_, l)| l
            == "bond0: Warning: no better backup: making eth1 active although its standby path is broken (none of 1 broadcasts bond0 sent came back)"),
        "a failover into a broken path is said loudly"
    );
    assert_eq!(
        verdict(&sim, "eth1"),
        Some((Verdict::Unverified, "nothing seen yet".into())),
        "now active: judged afresh"
    );
    assert_eq!(verdict(&sim, "eth0"), None, "its link is down");
    sim.carrier("eth0", true);
    sim.after(100);
    assert_eq!(verdict(&sim, "eth0"), Some((Verdict::Unverified, "nothing seen yet".into())), "judged afresh");
}

#[test]
fn probes_go_from_every_up_slave_from_a_mac_of_its_own_jittered() {
    let mut sim = passive(&[("standby_probe", "1000")]);
    sim.after(5000);
    assert!(probes(&mut sim).is_empty(), "no target, no gateway: passive only");

    sim.input(Input::Gateways(vec![GATEWAY.into()])).unwrap();
    sim.after(20_000);
    let sent = probes(&mut sim);
    for slave in ["eth0", "eth1"] {
        let times: Vec<u64> = sent.iter().filter(|p| p.1 == slave).map(|p| p.0).collect();
        assert!((17..=26).contains(&times.len()), "{slave}: {times:?}");
        for gap in times.windows(2).map(|w| w[1] - w[0]) {
            assert!((750..=1250).contains(&gap), "{slave}: {gap} ms apart: {times:?}");
        }
    }
    let first = |s: &str| sent.iter().find(|p| p.1 == s).unwrap().0;
    assert_ne!(first("eth0"), first("eth1"), "two slaves do not probe in step");
    let bond_mac = sim.bond.mac().unwrap();
    for (_, slave, mac, target) in &sent {
        assert_eq!((*mac, *target), (probe_mac(mac_of(slave)), IpAddr::V4(GATEWAY)));
        assert_ne!(*mac, bond_mac);
        assert_eq!(mac.0[0] & 3, 2, "locally administered, unicast");
    }
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Broken, "nobody answered");
    assert!(verdict(&sim, "eth1").unwrap().1.ends_with("probes for 192.0.2.254 unanswered"));
    assert_eq!(sim.bond.counters().standby_probes, sent.len() as u64);

    sim.input(reply_to_probe("eth1")).unwrap();
    assert_eq!(verdict(&sim, "eth1").unwrap(), (Verdict::Verified, "a reply from 192.0.2.254".into()));
    sim.input(reply_to_probe("eth0")).unwrap();
    assert_eq!(
        verdict(&sim, "eth0").unwrap(),
        (Verdict::Verified, "a reply from 192.0.2.254".into()),
        "the active slave's own probe"
    );
}

#[test]
fn arp_targets_are_probed_in_turn_instead_of_the_gateways_and_replies_to_probes_are_no_sign_of_life() {
    let mut sim =
        Sim::new(&[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254,192.0.2.10"), ("standby_probe", "500")]);
    sim.arp_peer = Some(GATEWAY);
    sim.cmd(rbond_core::Command::Up).unwrap();
    sim.enslave("eth0", true).unwrap();
    sim.enslave("eth1", true).unwrap();
    let router = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    sim.input(Input::Gateways(vec![router])).unwrap();
    sim.after(3000);
    let targets: Vec<IpAddr> = probes(&mut sim).into_iter().filter(|p| p.1 == "eth1").map(|p| p.3).collect();
    let (gw, other) = (IpAddr::V4(GATEWAY), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(targets[..4], [gw, other, gw, other]);
    assert!(!targets.contains(&router), "the gateway is asked only when there is no target: {targets:?}");
    let heard = sim.bond.counters().arp_heard;
    sim.input(reply_to_probe("eth1")).unwrap();
    assert_eq!(sim.bond.counters().arp_heard, heard, "a reply to our probe MAC is ours alone");
}

#[test]
fn the_active_slaves_probe_flooded_back_verifies_the_backups() {
    let mut sim = passive(&[("standby_probe", "1000")]);
    sim.input(Input::Gateways(vec![GATEWAY.into()])).unwrap();
    let flooded = ArpFrame {
        op: ArpOp::Request,
        sender_mac: probe_mac(mac_of("eth0")),
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_mac: Mac::ZERO,
        target_ip: GATEWAY,
        outgoing: false,
    };
    sim.after(100).input(Input::Arp { slave: id("eth1"), frame: flooded }).unwrap();
    assert_eq!(verdict(&sim, "eth1").unwrap().1, "bond0's probes come back through it");
}

#[test]
fn verify_probes_every_up_slave_at_once() {
    // With the regular probes off too: one probe a slave, and none after.
    let mut quiet = passive(&[("standby_probe", "0")]);
    quiet.input(Input::Gateways(vec![GATEWAY.into()])).unwrap();
    quiet.cmd(rbond_core::Command::Verify).unwrap();
    quiet.after(10_000);
    let sent: Vec<(u64, String)> = probes(&mut quiet).into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(sent, [(0, "eth0".to_string()), (0, "eth1".to_string())]);

    let mut sim = passive(&[]);
    sim.input(Input::Gateways(vec![GATEWAY.into()])).unwrap();
    sim.after(10);
    probes(&mut sim);
    sim.cmd(rbond_core::Command::Verify).unwrap();
    let now: Vec<(u64, String)> = probes(&mut sim).into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(now, [(10, "eth0".to_string()), (10, "eth1".to_string())]);
}

#[test]
fn standby_select_skips_a_broken_backup_and_prefers_a_verified_one() {
    for (select, want) in [("1", "eth2"), ("0", "eth1")] {
        let mut sim = Sim::running(
            &[("miimon", "100"), ("standby_window", "2000"), ("standby_select", select)],
            &["eth0", "eth1", "eth2"],
        );
        sim.after(100).input(Input::BondBroadcast).unwrap();
        sim.after(1800).input(Input::Echo { slave: id("eth2") }).unwrap();
        sim.after(200);
        assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Broken);
        assert_eq!(verdict(&sim, "eth2").unwrap().0, Verdict::Verified);
        sim.carrier("eth0", false);
        assert_eq!(sim.active().as_deref(), Some(want), "standby_select {select}");
    }
}

#[test]
fn standby_select_never_blocks_a_failover_nor_moves_a_working_active_slave() {
    let mut sim =
        Sim::running(&[("miimon", "100"), ("standby_window", "2000"), ("standby_select", "1")], &["eth0", "eth1"]);
    sim.input(Input::BondBroadcast).unwrap();
    sim.after(2000);
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Broken);
    sim.carrier("eth0", false);
    assert_eq!(sim.active().as_deref(), Some("eth1"), "a broken path beats none");
    sim.carrier("eth0", true);
    sim.after(100);
    assert_eq!(sim.active().as_deref(), Some("eth1"), "no reason to move");
}

#[test]
fn window_zero_turns_the_check_off() {
    let mut sim = passive(&[("standby_window", "0")]);
    sim.input(Input::Gateways(vec![GATEWAY.into()])).unwrap();
    sim.input(Input::BondBroadcast).unwrap();
    sim.after(60_000);
    assert_eq!(verdict(&sim, "eth1"), None);
    assert!(probes(&mut sim).is_empty());
    assert_eq!(sim.bond.poll_timeout(), None);
}

#[test]
fn a_resumed_bond_holds_nothing_missed_meanwhile_against_a_backup() {
    let mut sim = passive(&[]);
    sim.input(Input::BondBroadcast).unwrap();
    sim.after(1500);
    let json = serde_json::to_string(&sim.bond).unwrap();
    sim.bond = serde_json::from_str(&json).unwrap();
    // Five seconds without a daemon: no timeout ran.
    sim.now = sim.now + std::time::Duration::from_millis(5000);
    sim.cmd(rbond_core::Command::Resume).unwrap();
    sim.after(1999);
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Unverified);
}

/// An IPv6 gateway (a router's link-local address, as RA gives it): each slave solicits it
/// from its probe MAC's own link-local address (never `::`, which a router still checking its
/// address would take for a rival), and the router's answer to that address verifies the
/// slave; a backup that hears none for a window is broken, naming the address.
#[test]
fn ipv6_gateways_are_probed_from_each_probe_macs_own_link_local_address() {
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut sim = passive(&[("standby_probe", "500")]);
    sim.input(Input::Gateways(vec![IpAddr::V6(router)])).unwrap();
    sim.after(1000);
    let sent = probes(&mut sim);
    assert!(sent.iter().any(|p| p.1 == "eth1" && p.2 == probe_mac(mac_of("eth1")) && p.3 == IpAddr::V6(router)));
    let nd = |kind, sender_mac, source, destination| NdFrame { kind, sender_mac, source, destination, outgoing: false };
    let router_mac = Mac([2, 0, 0, 0, 0, 0xfe]);
    let to_probe = |slave: &str| eui64_link_local(probe_mac(mac_of(slave)));
    let answer = |slave: &str| Input::Nd {
        slave: id(slave),
        frame: nd(NdKind::Advertisement, router_mac, router, to_probe(slave)),
    };
    sim.input(answer("eth1")).unwrap();
    assert_eq!(verdict(&sim, "eth1"), Some((Verdict::Verified, "a reply from fe80::1".into())));
    // An answer to eth0's probe proves nothing of eth1's path, nor do our own probes.
    sim.after(2500);
    sim.input(Input::Nd { slave: id("eth1"), frame: nd(NdKind::Advertisement, router_mac, router, to_probe("eth0")) })
        .unwrap();
    let own = nd(NdKind::Solicitation, probe_mac(mac_of("eth1")), to_probe("eth1"), "ff02::1:ff00:1".parse().unwrap());
    sim.input(Input::Nd { slave: id("eth1"), frame: own }).unwrap();
    let (v, reason) = verdict(&sim, "eth1").unwrap();
    assert_eq!(v, Verdict::Broken, "{reason}");
    assert!(reason.ends_with("probes for fe80::1 unanswered"), "{reason}");
    sim.input(answer("eth1")).unwrap();
    assert_eq!(verdict(&sim, "eth1").unwrap().0, Verdict::Verified);
}
