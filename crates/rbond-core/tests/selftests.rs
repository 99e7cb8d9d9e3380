//! The kernel's bonding selftests for active-backup (tools/testing/selftests/drivers/net/
//! bonding), reproduced against the engine. "ip link set ethX down/up" on either end of a
//! veth is a carrier change as the bond sees it.

mod common;

use common::{PEER_IP, Sim, id, mac};
use rbond_core::{Action, Command, MacTarget};

/// mode-1-recovery-updelay.sh: when the last usable slave dies, a slave still counting down
/// its updelay must take over at once, whatever the updelay.
#[test]
fn mode_1_recovery_updelay() {
    for updelay in [0, 200, 500, 1000, 2000, 5000, 10000] {
        let u = updelay.to_string();
        let mut sim = Sim::running(&[("mode", "1"), ("miimon", "100"), ("updelay", &u)], &[]);
        sim.enslave("eth0", true).unwrap();
        sim.enslave("eth1", true).unwrap();
        sim.at(20_000);
        assert_eq!(sim.active().as_deref(), Some("eth0"), "updelay {u}");
        sim.take_log();
        sim.carrier("eth0", false);
        sim.after(2000).carrier("eth0", true);
        sim.carrier("eth1", false);
        let t = sim.ms();
        assert_eq!(sim.active().as_deref(), Some("eth0"), "updelay {u}: eth0 must take over at once");
        assert_eq!(sim.sysfs("mii_status"), "up", "updelay {u}");
        let lines: Vec<&str> = sim.log.iter().filter(|(at, _)| *at == t).map(|(_, l)| l.as_str()).collect();
        let expect_earlier = updelay > 0;
        assert_eq!(
            lines.contains(&"bond0: making interface eth0 the new active one 100 ms earlier."),
            expect_earlier,
            "updelay {u}: {lines:#?}"
        );
    }
}

fn prio_setup(reselect: &str, monitor: &[(&'static str, &'static str)]) -> Sim {
    let mut opts = vec![("mode", "active-backup"), ("primary", "eth1"), ("primary_reselect", reselect)];
    opts.extend_from_slice(monitor);
    let mut sim = Sim::running(&opts, &[]);
    sim.arp_peer = Some(PEER_IP);
    sim.addresses();
    for s in ["eth0", "eth1", "eth2"] {
        sim.enslave(s, true).unwrap();
    }
    sim.after(1000);
    sim.set("active_slave", "eth1").unwrap();
    for (s, p) in [("eth0", 0), ("eth1", 10), ("eth2", 11)] {
        sim.cmd(Command::SetPrio { slave: s.into(), prio: p }).unwrap();
        assert_eq!(sim.slave_sysfs(s, "prio"), p.to_string());
    }
    sim
}

/// Waits (up to 5 s, as check_active_slave does) for the expected active slave.
fn check_active(sim: &mut Sim, want: &str, step: &str) {
    for _ in 0..50 {
        if sim.active().as_deref() == Some(want) {
            return;
        }
        sim.after(100);
    }
    panic!("{step}: active is {:?}, expected {want}\n{:#?}", sim.active(), sim.log);
}

fn prio_test(reselect: &str, monitor: &[(&'static str, &'static str)]) {
    let mut sim = prio_setup(reselect, monitor);
    let step = |n: u8| format!("reselect {reselect} {monitor:?} step {n}");
    check_active(&mut sim, "eth1", &step(1));
    sim.carrier("eth1", false);
    check_active(&mut sim, "eth2", &step(2));
    sim.carrier("eth2", false);
    check_active(&mut sim, "eth0", &step(3));
    sim.carrier("eth2", true);
    check_active(&mut sim, if reselect == "0" { "eth2" } else { "eth0" }, &step(4));
    let pre = sim.active().unwrap();
    sim.carrier("eth1", true);
    match reselect {
        "0" => check_active(&mut sim, "eth1", &step(5)),
        "1" => check_active(&mut sim, &pre, &step(5)),
        _ => {
            check_active(&mut sim, &pre, &step(5));
            sim.carrier(&pre, false);
            check_active(&mut sim, "eth1", &step(5));
        }
    }
    if reselect == "0" {
        for (s, p) in [("eth0", 1_000_000), ("eth1", 0), ("eth2", -50)] {
            sim.cmd(Command::SetPrio { slave: s.into(), prio: p }).unwrap();
        }
        check_active(&mut sim, "eth1", &step(6));
        sim.carrier("eth1", false);
        check_active(&mut sim, "eth0", &step(7));
    }
}

/// bond_options.sh `prio`, MII monitor, for each primary_reselect.
#[test]
fn prio_with_miimon() {
    for r in ["0", "1", "2"] {
        prio_test(r, &[("miimon", "100")]);
    }
}

/// bond_options.sh `prio`, ARP monitor, for each primary_reselect.
#[test]
fn prio_with_arp_monitor() {
    for r in ["0", "1", "2"] {
        prio_test(r, &[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254")]);
    }
}

/// bond_options.sh `arp_validate`: for every value, all three slaves come up within 5 s,
/// the backups included.
#[test]
fn arp_validate_brings_every_slave_up() {
    for v in 0..=6 {
        let v = v.to_string();
        let mut sim = Sim::running(
            &[
                ("mode", "active-backup"),
                ("arp_interval", "100"),
                ("arp_ip_target", "192.0.2.254"),
                ("arp_validate", &v),
            ],
            &[],
        );
        sim.arp_peer = Some(PEER_IP);
        sim.addresses();
        for s in ["eth0", "eth1", "eth2"] {
            sim.enslave(s, true).unwrap();
        }
        sim.after(5000);
        for s in ["eth0", "eth1", "eth2"] {
            assert_eq!(sim.slave_sysfs(s, "mii_status"), "up", "arp_validate {v}: {s}\n{:#?}", sim.log);
        }
        assert_eq!(sim.active().as_deref(), Some("eth0"), "arp_validate {v}");
        assert!(sim.log.iter().all(|(_, l)| !l.contains("definitely down")), "arp_validate {v}: {:#?}", sim.log);
    }
}

/// bond_options.sh `num_grat_arp`: exactly N notifications through the new active, spaced
/// by peer_notif_delay.
#[test]
fn num_grat_arp_sends_exactly_n_spaced_notifications() {
    for n in [10u32, 20, 30] {
        let n_s = n.to_string();
        let mut sim = Sim::running(
            &[("mode", "active-backup"), ("miimon", "10"), ("num_grat_arp", &n_s), ("peer_notif_delay", "100")],
            &["eth0", "eth1", "eth2"],
        );
        sim.after(1000);
        sim.take_actions();
        sim.carrier("eth0", false);
        let failover = sim.ms();
        sim.after(u64::from(n) * 100 + 5000);
        let sent: Vec<u64> = sim
            .take_actions()
            .into_iter()
            .filter_map(|(t, a)| matches!(a, Action::NotifyPeers { slave } if slave == id("eth1")).then_some(t))
            .collect();
        assert_eq!(sent.len(), n as usize, "num_grat_arp {n}: {sent:?}");
        assert_eq!(sent[0], failover, "the first goes out with the failover");
        assert!(sent.windows(2).skip(1).all(|w| w[1] - w[0] == 100), "num_grat_arp {n}: {sent:?}");
        assert!(sent[1] - sent[0] <= 100);
    }
}

fn fom_setup(fom: &str) -> Sim {
    let mut sim = Sim::running(&[("mode", "active-backup"), ("miimon", "100"), ("fail_over_mac", fom)], &[]);
    // The switch port of eth0 is down, so eth0 is never the first active.
    sim.enslave("eth0", false).unwrap();
    sim.enslave("eth1", true).unwrap();
    sim.enslave("eth2", true).unwrap();
    sim.after(1000);
    sim
}

fn fom_failover(sim: &mut Sim) {
    let a = sim.active().unwrap();
    sim.carrier(&a, false);
    sim.after(500);
    sim.carrier(&a, true);
    sim.after(500);
}

/// bond_options.sh `fail_over_mac` 0: bond and every slave carry the first slave's MAC.
#[test]
fn fail_over_mac_none() {
    let mut sim = fom_setup("0");
    for round in 0..2 {
        assert_eq!(sim.bond.mac(), Some(mac(1)));
        for s in ["eth0", "eth1", "eth2"] {
            assert_eq!(sim.slave_mac(s), mac(1), "round {round} {s}");
        }
        fom_failover(&mut sim);
    }
}

/// fail_over_mac 1: the bond takes the active's MAC; backups keep their own.
#[test]
fn fail_over_mac_active() {
    let mut sim = fom_setup("active");
    for round in 0..2 {
        let active = sim.active().unwrap();
        assert_eq!(sim.bond.mac(), Some(sim.slave_mac(&active)), "round {round}");
        for s in ["eth0", "eth1", "eth2"].into_iter().filter(|s| *s != active) {
            assert_eq!(sim.slave_sysfs(s, "state"), "backup");
            assert_eq!(sim.slave_mac(s).to_string(), sim.slave_sysfs(s, "perm_hwaddr"), "round {round} {s}");
        }
        fom_failover(&mut sim);
    }
}

/// fail_over_mac 2 (follow): the active carries the bond's MAC (the first slave's); the
/// backups carry the others; a re-enslaved former first slave must not duplicate it, and
/// gets its own back when released.
#[test]
fn fail_over_mac_follow() {
    let mut sim = fom_setup("follow");
    for round in 0..2 {
        let active = sim.active().unwrap();
        assert_eq!(sim.bond.mac(), Some(mac(1)), "round {round}");
        assert_eq!(sim.slave_mac(&active), mac(1), "round {round}");
        for s in ["eth0", "eth1", "eth2"].into_iter().filter(|s| *s != active) {
            let m = sim.slave_mac(s);
            assert!(m == mac(2) || m == mac(3), "round {round} {s} has {m}");
        }
        fom_failover(&mut sim);
    }
    sim.release("eth0").unwrap();
    sim.enslave_spec(rbond_core::SlaveSpec {
        id: id("eth0"),
        name: "eth0".into(),
        mac: mac(1),
        link: rbond_core::LinkInfo::up(),
    })
    .unwrap();
    assert_ne!(sim.slave_mac("eth0"), mac(1));
    sim.take_actions();
    sim.release("eth0").unwrap();
    let restored = sim
        .take_actions()
        .into_iter()
        .any(|(_, a)| a == Action::SetMac { target: MacTarget::Slave(id("eth0")), mac: mac(1) });
    assert!(restored, "eth0 gets mac[0] back on release");
}

/// bond-arp-interval-causes-panic.sh: reconfiguring a released, downed bond in place. rbond
/// refuses the round-robin mode with a clear message and keeps working.
#[test]
fn mode_change_in_place_is_refused_cleanly() {
    let mut sim = Sim::running(&[("mode", "1"), ("miimon", "100"), ("all_slaves_active", "1")], &["eth0"]);
    sim.release("eth0").unwrap();
    sim.cmd(Command::Down).unwrap();
    let err = sim.set("mode", "0").unwrap_err();
    assert_eq!(
        err.to_string(),
        "option mode: mode balance-rr (0) is not supported; rbond implements active-backup (1) only"
    );
    sim.set("arp_interval", "1000").unwrap();
    sim.set("arp_ip_target", "+192.0.2.254").unwrap();
    sim.enslave("eth0", true).unwrap();
    sim.cmd(Command::Up).unwrap();
    sim.after(5000);
    assert_eq!(sim.sysfs("arp_interval"), "1000");
    assert_eq!(sim.sysfs("miimon"), "0");
}
