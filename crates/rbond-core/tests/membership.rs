//! Enslaving, releasing, forcing the active slave, and the bond going down and up.

mod common;

use common::{Sim, assert_log, id, mac};
use rbond_core::{Action, Command, Mac, MacTarget};

#[test]
fn enslave_refusals() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0"]);
    assert_eq!(sim.enslave("eth0", true).unwrap_err().to_string(), "eth0 is already a slave");
    assert_eq!(sim.enslave("bond0", true).unwrap_err().to_string(), "cannot enslave bond0 to itself");
    for bad in ["", "a/b", "name-longer-than-15", "has space"] {
        assert_eq!(sim.enslave(bad, true).unwrap_err().to_string(), format!("interface name '{bad}' is not valid"));
    }
    assert_eq!(sim.release("eth5").unwrap_err().to_string(), "slave 15 not enslaved");
    assert_eq!(sim.sysfs("slaves"), "eth0");
}

#[test]
fn the_first_slave_brings_the_carrier_up() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0"]);
    assert_log(
        &sim.take_log()[1..],
        &[
            (0, "bond0: making interface eth0 the new active one."),
            (0, "bond0: first active interface up!"),
            (0, "bond0: enslaving eth0 as an active interface with an up link."),
        ],
    );
    let acts: Vec<Action> =
        sim.take_actions().into_iter().map(|(_, a)| a).filter(|a| !matches!(a, Action::Log(_))).collect();
    assert_eq!(
        acts,
        [
            Action::SetMac { target: MacTarget::Bond, mac: mac(1) },
            Action::Activate { slave: id("eth0") },
            Action::ResendIgmp { slave: id("eth0") },
            Action::SetCarrier { up: true },
        ]
    );
}

#[test]
fn both_links_down_then_one_back_skips_its_updelay() {
    let mut sim = Sim::running(&[("miimon", "100"), ("updelay", "5000"), ("downdelay", "0")], &[]);
    sim.enslave("eth0", true).unwrap();
    sim.enslave("eth1", true).unwrap();
    sim.after(20_000);
    sim.take_log();
    sim.take_actions();
    sim.at(30_000).carrier("eth0", false);
    sim.at(30_050).carrier("eth1", false);
    sim.at(31_000).carrier("eth1", true);
    assert_log(
        &sim.take_log(),
        &[
            (30_000, "bond0: link status definitely down for interface eth0, disabling it"),
            (30_000, "bond0: making interface eth1 the new active one."),
            (30_050, "bond0: link status definitely down for interface eth1, disabling it"),
            (30_050, "bond0: now running without any active interface !"),
            (31_000, "bond0: link status up for interface eth1, enabling it in 0 ms."),
            (31_000, "bond0: link status definitely up for interface eth1."),
            (31_000, "bond0: making interface eth1 the new active one."),
            (31_000, "bond0: first active interface up!"),
        ],
    );
    let carrier: Vec<(u64, bool)> = sim
        .take_actions()
        .into_iter()
        .filter_map(|(t, a)| match a {
            Action::SetCarrier { up } => Some((t, up)),
            _ => None,
        })
        .collect();
    assert_eq!(carrier, [(30_050, false), (31_000, true)]);
}

#[test]
fn change_active_rules() {
    let mut sim = Sim::running(&[("miimon", "100"), ("downdelay", "200")], &["eth0", "eth1"]);
    let no = |sim: &mut Sim, name: &str| sim.cmd(Command::ChangeActive(name.into())).unwrap_err().to_string();
    assert_eq!(no(&mut sim, "eth7"), "eth7 not enslaved");
    sim.carrier("eth1", false);
    // eth1 is still "up" in its downdelay, but has no carrier: refused.
    assert_eq!(no(&mut sim, "eth1"), "Could not set eth1 as active slave; either eth1 is down or the link is down");
    sim.after(300);
    assert_eq!(no(&mut sim, "eth1"), "Could not set eth1 as active slave; either eth1 is down or the link is down");
    sim.carrier("eth1", true);
    sim.after(10);
    sim.cmd(Command::ChangeActive("eth1".into())).unwrap();
    assert_eq!(sim.active().as_deref(), Some("eth1"));
    // With no active slave at all, forcing one is refused, as by the kernel.
    let mut lone = Sim::running(&[("miimon", "100")], &[]);
    lone.enslave("eth0", false).unwrap();
    assert!(no(&mut lone, "eth0").starts_with("Could not set eth0"));
}

#[test]
fn a_forced_active_stays_until_the_next_reselection() {
    let mut sim = Sim::running(&[("miimon", "100"), ("primary", "eth0")], &["eth0", "eth1"]);
    sim.cmd(Command::ChangeActive("eth1".into())).unwrap();
    sim.after(1000);
    assert_eq!(sim.active().as_deref(), Some("eth1"), "no reselection happened");
    sim.carrier("eth0", false);
    sim.carrier("eth0", true);
    assert_eq!(sim.active().as_deref(), Some("eth0"), "the primary coming back reclaims it");
}

#[test]
fn a_down_bond_freezes_its_monitor() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0", "eth1"]);
    sim.cmd(Command::Down).unwrap();
    assert_eq!(sim.bond.poll_timeout(), None);
    sim.carrier("eth0", false);
    sim.after(1000);
    assert_eq!(sim.slave_sysfs("eth0", "mii_status"), "up", "nothing is inspected while down");
    sim.take_log();
    sim.cmd(Command::Up).unwrap();
    assert_log(
        &sim.take_log(),
        &[
            (1000, "bond0: link status definitely down for interface eth0, disabling it"),
            (1000, "bond0: making interface eth1 the new active one."),
        ],
    );
}

#[test]
fn peer_notifications_need_a_running_bond() {
    let mut sim = Sim::running(&[("miimon", "100"), ("num_grat_arp", "3")], &["eth0", "eth1"]);
    sim.cmd(Command::Down).unwrap();
    sim.release("eth0").unwrap();
    sim.cmd(Command::Up).unwrap();
    sim.after(2000);
    assert!(!sim.actions.iter().any(|(_, a)| matches!(a, Action::NotifyPeers { .. })));
}

#[test]
fn an_administrator_set_bond_mac_reaches_every_slave() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0", "eth1"]);
    let m = Mac([2, 0x11, 0x22, 0x33, 0x44, 0x55]);
    sim.cmd(Command::SetBondMac(m)).unwrap();
    assert_eq!(sim.bond.mac(), Some(m));
    assert_eq!((sim.slave_mac("eth0"), sim.slave_mac("eth1")), (m, m));
    // A later first slave does not replace a MAC the administrator chose.
    sim.release("eth0").unwrap();
    sim.release("eth1").unwrap();
    sim.enslave("eth2", true).unwrap();
    assert_eq!(sim.bond.mac(), Some(m));
    // Under fail_over_mac active the kernel accepts and ignores it.
    let mut fom = Sim::running(&[("miimon", "100"), ("fail_over_mac", "active")], &["eth0"]);
    fom.cmd(Command::SetBondMac(m)).unwrap();
    assert_eq!(fom.bond.mac(), Some(mac(1)));
}

#[test]
fn release_all_releases_without_reselecting() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0", "eth1"]);
    sim.take_log();
    sim.cmd(Command::ReleaseAll).unwrap();
    // Squeeze's bond_release_all says one line for the lot (no "releasing ..." per slave).
    assert_log(&sim.take_log(), &[(0, "bond0: released all slaves")]);
    assert_eq!(sim.sysfs("mii_status"), "down");
    assert_eq!(sim.active(), None);
}

/// A slave that already has carrier when enslaved with an updelay starts its countdown like
/// any other; with nothing active, the next monitor tick lets it skip the rest (the kernel's
/// `ignore_updelay`), with the lines a kernel writes.
#[test]
fn a_slave_enslaved_with_carrier_waits_for_the_next_tick() {
    let mut sim = Sim::running(&[("miimon", "100"), ("updelay", "200")], &[]);
    sim.take_log();
    sim.enslave("eth0", true).unwrap();
    assert_eq!(sim.active(), None, "not active before the monitor has seen it");
    sim.after(100);
    assert_log(
        &sim.take_log(),
        &[
            (0, "bond0: enslaving eth0 as a backup interface with an up link."),
            (100, "bond0: link status definitely up for interface eth0."),
            (100, "bond0: making interface eth0 the new active one."),
            (100, "bond0: first active interface up!"),
        ],
    );
    assert_eq!(sim.active().as_deref(), Some("eth0"));
}
