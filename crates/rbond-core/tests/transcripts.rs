//! The seed document's two transcripts, replayed through the engine on a simulated clock:
//! the guide's configuration and ifenslave sequence, then the NEC cable-pull procedure.
//! Slaves are real NICs here: after being opened their carrier takes a moment to come up.

mod common;

use common::{Sim, assert_log, id, mac};
use rbond_core::{Action, Command};

const GUIDE: &[(&str, &str)] =
    &[("mode", "1"), ("miimon", "100"), ("downdelay", "200"), ("updelay", "200"), ("primary", "eth0")];

/// Boots the guide's bond: created with its options, brought up, eth0 and eth1 enslaved with
/// no carrier yet, carrier arriving 50 and 60 ms later.
fn boot() -> Sim {
    let mut sim = Sim::new(GUIDE);
    sim.cmd(Command::Up).unwrap();
    sim.enslave("eth0", false).unwrap();
    sim.enslave("eth1", false).unwrap();
    sim.at(50).carrier("eth0", true);
    sim.at(60).carrier("eth1", true);
    sim.at(1000);
    sim
}

#[test]
fn boot_log_matches_the_guide() {
    let mut sim = boot();
    assert_log(
        &sim.take_log(),
        &[
            (0, "MII link monitoring set to 100 ms"),
            (0, "bond0: enslaving eth0 as a backup interface with a down link."),
            (0, "bond0: enslaving eth1 as a backup interface with a down link."),
            (50, "bond0: link status up for interface eth0, enabling it in 0 ms."),
            (50, "bond0: link status definitely up for interface eth0."),
            (50, "bond0: making interface eth0 the new active one."),
            (50, "bond0: first active interface up!"),
            (60, "bond0: link status up for interface eth1, enabling it in 200 ms."),
            (260, "bond0: link status definitely up for interface eth1."),
        ],
    );
}

/// The kernel's layout, plus rbond's one line for each backup that is up (`Standby Path:`),
/// which parsers of the kernel's layout pass over as they pass over 802.3ad's extra lines.
const REPORT_AFTER_BOOT: &str = "\
Ethernet Channel Bonding Driver: rbond v0.1.0

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: eth0 (primary_reselect always)
Currently Active Slave: eth0
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 200
Down Delay (ms): 200
Peer Notification Delay (ms): 0

Slave Interface: eth0
MII Status: up
Speed: Unknown
Duplex: Unknown
Link Failure Count: 0
Permanent HW addr: 00:0a:0b:0c:0d:01
Slave queue ID: 0

Slave Interface: eth1
MII Status: up
Speed: Unknown
Duplex: Unknown
Link Failure Count: 0
Permanent HW addr: 00:0a:0b:0c:0d:02
Slave queue ID: 0
Standby Path: unverified (nothing seen yet)
";

#[test]
fn status_report_after_boot_matches_the_proc_layout() {
    let sim = boot();
    assert_eq!(sim.bond.report().proc_text(), REPORT_AFTER_BOOT);
    assert_eq!(sim.sysfs("mode"), "active-backup 1");
    assert_eq!(sim.sysfs("miimon"), "100");
    assert_eq!(sim.sysfs("active_slave"), "eth0");
    assert_eq!(sim.sysfs("slaves"), "eth0 eth1");
    // One MAC for the bond and both slaves: the first slave's.
    assert_eq!(sim.bond.mac(), Some(mac(1)));
    assert_eq!(sim.slave_mac("eth0"), mac(1));
    assert_eq!(sim.slave_mac("eth1"), mac(1));
}

#[test]
fn transcript_1_the_guides_ifenslave_sequence() {
    let mut sim = boot();
    sim.take_log();

    // ifenslave -c bond0 eth0: it is already active, nothing happens.
    sim.at(10_000).cmd(Command::ChangeActive("eth0".into())).unwrap();
    // ifenslave -d bond0 eth0
    sim.at(11_000).release("eth0").unwrap();
    // ifenslave bond0 eth0: the NIC is opened again and finds its carrier 50 ms later.
    sim.at(12_000).enslave("eth0", false).unwrap();
    sim.at(12_050).carrier("eth0", true);
    // ifenslave -c bond0 eth0: the primary has already been taken back.
    sim.at(13_000).cmd(Command::ChangeActive("eth0".into())).unwrap();
    // ifenslave -d bond0 eth1, then enslave it again.
    sim.at(14_000).release("eth1").unwrap();
    sim.at(15_000).enslave("eth1", false).unwrap();
    sim.at(15_050).carrier("eth1", true);
    // ifenslave -c bond0 eth1, then -c bond0 eth0.
    sim.at(16_000).cmd(Command::ChangeActive("eth1".into())).unwrap();
    sim.at(17_000).cmd(Command::ChangeActive("eth0".into())).unwrap();
    sim.at(18_000);

    assert_log(
        &sim.take_log(),
        &[
            (
                11_000,
                "bond0: Warning: the permanent HWaddr of eth0 - 00:0a:0b:0c:0d:01 - is still in use by bond0. \
                 Set the HWaddr of eth0 to a different address to avoid conflicts.",
            ),
            (11_000, "bond0: releasing active interface eth0"),
            (11_000, "bond0: making interface eth1 the new active one."),
            (12_000, "bond0: enslaving eth0 as a backup interface with a down link."),
            (12_050, "bond0: link status up for interface eth0, enabling it in 200 ms."),
            (12_250, "bond0: link status definitely up for interface eth0."),
            (12_250, "bond0: making interface eth0 the new active one."),
            (14_000, "bond0: releasing backup interface eth1"),
            (15_000, "bond0: enslaving eth1 as a backup interface with a down link."),
            (15_050, "bond0: link status up for interface eth1, enabling it in 200 ms."),
            (15_250, "bond0: link status definitely up for interface eth1."),
            (16_000, "bond0: making interface eth1 the new active one."),
            (17_000, "bond0: making interface eth0 the new active one."),
        ],
    );
    assert_eq!(sim.bond.report().proc_text(), REPORT_AFTER_BOOT);
}

#[test]
fn transcript_1_restores_macs_and_announces_each_new_active() {
    let mut sim = boot();
    sim.take_actions();
    sim.at(11_000).release("eth0").unwrap();
    sim.at(14_000).release("eth1").unwrap();
    let acts: Vec<Action> =
        sim.take_actions().into_iter().map(|(_, a)| a).filter(|a| !matches!(a, Action::Log(_))).collect();
    assert_eq!(
        acts,
        vec![
            Action::Deactivate { slave: id("eth0") },
            Action::Activate { slave: id("eth1") },
            Action::NotifyPeers { slave: id("eth1") },
            Action::ResendIgmp { slave: id("eth1") },
            // eth1 leaves last: it gets its own MAC back, the bond stops using eth0's.
            Action::Deactivate { slave: id("eth1") },
            Action::SetMac { target: rbond_core::MacTarget::Slave(id("eth1")), mac: mac(2) },
            Action::SetMac { target: rbond_core::MacTarget::Bond, mac: rbond_core::Mac::derived(mac(1), "bond0") },
            Action::SetCarrier { up: false },
        ]
    );
}

#[test]
fn transcript_2_the_nec_cable_pull() {
    let mut sim = boot();
    sim.take_log();
    sim.at(20_000).carrier("eth1", false); // pull eth1 (the backup)
    sim.at(25_000).carrier("eth1", true); // replug eth1
    sim.at(30_000).carrier("eth0", false); // pull eth0 (the active)
    sim.at(35_000).carrier("eth0", true); // replug eth0
    sim.at(40_000);
    assert_log(
        &sim.take_log(),
        &[
            (20_000, "bond0: link status down for backup interface eth1, disabling it in 200 ms."),
            (20_200, "bond0: link status definitely down for interface eth1, disabling it"),
            (25_000, "bond0: link status up for interface eth1, enabling it in 200 ms."),
            (25_200, "bond0: link status definitely up for interface eth1."),
            (30_000, "bond0: link status down for active interface eth0, disabling it in 200 ms."),
            (30_200, "bond0: link status definitely down for interface eth0, disabling it"),
            (30_200, "bond0: making interface eth1 the new active one."),
            (35_000, "bond0: link status up for interface eth0, enabling it in 200 ms."),
            (35_200, "bond0: link status definitely up for interface eth0."),
            (35_200, "bond0: making interface eth0 the new active one."),
        ],
    );
    assert_eq!(sim.slave_sysfs("eth0", "link_failure_count"), "1");
    assert_eq!(sim.slave_sysfs("eth1", "link_failure_count"), "1");
    assert_eq!(sim.active().as_deref(), Some("eth0"));
}

#[test]
fn cable_pull_keeps_the_failing_active_in_use_during_downdelay() {
    let mut sim = boot();
    sim.at(30_000).carrier("eth0", false);
    sim.at(30_199);
    assert_eq!(sim.active().as_deref(), Some("eth0"));
    assert_eq!(sim.slave_sysfs("eth0", "mii_status"), "going down");
    assert_eq!(sim.sysfs("mii_status"), "up");
    sim.at(30_200);
    assert_eq!(sim.active().as_deref(), Some("eth1"));
    assert_eq!(sim.slave_sysfs("eth0", "mii_status"), "down");
}

#[test]
fn cable_replugged_within_downdelay_is_not_a_failure() {
    let mut sim = boot();
    sim.take_log();
    sim.at(30_000).carrier("eth0", false);
    sim.at(30_150).carrier("eth0", true);
    sim.at(31_000);
    assert_log(
        &sim.take_log(),
        &[
            (30_000, "bond0: link status down for active interface eth0, disabling it in 200 ms."),
            (30_150, "bond0: link status up again after 100 ms for interface eth0."),
        ],
    );
    assert_eq!(sim.slave_sysfs("eth0", "link_failure_count"), "0");
    assert_eq!(sim.active().as_deref(), Some("eth0"));
}
