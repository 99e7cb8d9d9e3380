//! The status report in its three forms: /proc text, sysfs values, JSON.

mod common;

use common::{PEER_IP, Sim, id};
use rbond_core::{Duplex, LinkInfo, SlaveSpec};

#[test]
fn proc_text_with_arp_monitor_and_fail_over_mac() {
    let mut sim = Sim::running(
        &[
            ("arp_interval", "1000"),
            ("arp_ip_target", "192.0.2.254,192.0.2.10"),
            ("fail_over_mac", "follow"),
            ("primary", "eth1"),
            ("primary_reselect", "better"),
        ],
        &[],
    );
    sim.arp_peer = Some(PEER_IP);
    sim.addresses();
    let fast = LinkInfo { carrier: true, speed: Some(10000), duplex: Some(Duplex::Full) };
    for (name, last) in [("eth0", 1u8), ("eth1", 2)] {
        let mac = rbond_core::Mac([0, 0x0a, 0x0b, 0x0c, 0x0d, last]);
        sim.enslave_spec(SlaveSpec { id: id(name), name: name.into(), mac, link: fast }).unwrap();
    }
    sim.after(5000);
    let want = "\
Ethernet Channel Bonding Driver: rbond v0.1.0

Bonding Mode: fault-tolerance (active-backup) (fail_over_mac follow)
Primary Slave: eth1 (primary_reselect better)
Currently Active Slave: eth1
MII Status: up
MII Polling Interval (ms): 0
Up Delay (ms): 0
Down Delay (ms): 0
Peer Notification Delay (ms): 0
ARP Polling Interval (ms): 1000
ARP Missed Max: 2
ARP IP target/s (n.n.n.n form): 192.0.2.254, 192.0.2.10
NS IPv6 target/s (xx::xx form):

Slave Interface: eth0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 00:0a:0b:0c:0d:01
Slave queue ID: 0
Standby Path: unverified (nothing seen yet)

Slave Interface: eth1
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 00:0a:0b:0c:0d:02
Slave queue ID: 0
";
    assert_eq!(sim.bond.report().proc_text(), want);
    assert_eq!(sim.sysfs("arp_ip_target"), "192.0.2.254 192.0.2.10");
    assert_eq!(sim.sysfs("fail_over_mac"), "follow 2");
    assert_eq!(sim.sysfs("primary_reselect"), "better 1");
    assert_eq!(sim.sysfs("queue_id"), "eth0:0 eth1:0");
}

#[test]
fn per_slave_files() {
    let mut sim = Sim::running(&[("miimon", "100"), ("updelay", "200")], &["eth0"]);
    sim.after(1000);
    sim.enslave("eth1", true).unwrap();
    assert_eq!(sim.slave_sysfs("eth0", "state"), "active");
    assert_eq!(sim.slave_sysfs("eth1", "state"), "backup");
    assert_eq!(sim.slave_sysfs("eth1", "mii_status"), "going back");
    assert_eq!(sim.slave_sysfs("eth1", "perm_hwaddr"), "00:0a:0b:0c:0d:02");
    assert_eq!(sim.slave_sysfs("eth1", "link_failure_count"), "0");
    assert_eq!(sim.slave_sysfs("eth1", "queue_id"), "0");
    assert_eq!(sim.bond.report().slave_sysfs("eth1", "bogus"), None);
    assert_eq!(sim.bond.report().slave_sysfs("eth7", "state"), None);
    assert_eq!(sim.bond.report().sysfs("bogus"), None);
    assert_eq!(sim.sysfs("mode"), "active-backup 1");
}

#[test]
fn json_carries_the_same_state() {
    let sim = Sim::running(&[("miimon", "100"), ("primary", "eth0")], &["eth0", "eth1"]);
    let v: serde_json::Value = serde_json::to_value(sim.bond.report()).unwrap();
    assert_eq!(v["bond"], "bond0");
    assert_eq!(v["mii_status"], "up");
    assert_eq!(v["active_slave"], "eth0");
    assert_eq!(v["primary_slave"], "eth0");
    assert_eq!(v["mac"], "00:0a:0b:0c:0d:01");
    assert_eq!(v["options"]["mode"], "active-backup 1");
    assert_eq!(v["options"]["miimon"], "100");
    assert_eq!(v["slaves"][1]["name"], "eth1");
    assert_eq!(v["slaves"][1]["state"], "backup");
    assert_eq!(v["slaves"][1]["mii_status"], "up");
    assert_eq!(v["slaves"][1]["perm_hwaddr"], "00:0a:0b:0c:0d:02");
    assert_eq!(v["slaves"][1]["mac"], "00:0a:0b:0c:0d:01");
    assert_eq!(v["slaves"][1]["speed"], serde_json::Value::Null);
}

#[test]
fn events_and_actions_serialize_for_the_event_stream() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0"]);
    let (_, first) = sim.take_actions().into_iter().next().unwrap();
    let v = serde_json::to_value(&first).unwrap();
    assert_eq!(v["action"], "log");
    let line = serde_json::to_value(rbond_core::Event::MakingActive { slave: "eth0".into() }).unwrap();
    assert_eq!(line, serde_json::json!({"event": "making_active", "slave": "eth0"}));
}

/// The counts monitoring reads: failovers (a failback is one, the first activation is not),
/// the outage of the last failover measured from the carrier loss, peer notifications.
#[test]
fn counters_follow_failovers_and_outages() {
    let mut sim = Sim::running(&[("miimon", "100"), ("downdelay", "200"), ("primary", "eth0")], &["eth0", "eth1"]);
    sim.after(1000);
    assert_eq!(sim.bond.counters().failovers, 0, "the first active slave is no failover");
    sim.at(1030).carrier("eth0", false);
    sim.after(1000);
    let c = sim.bond.counters().clone();
    assert_eq!((c.failovers, c.last_outage_ms), (1, Some(200)), "{c:?}");
    // The link comes back within the downdelay: no failover, and no outage to report.
    sim.carrier("eth0", true);
    sim.after(1000);
    assert_eq!(sim.bond.counters().failovers, 2, "the primary took the bond back");
    sim.carrier("eth0", false);
    sim.after(50);
    sim.carrier("eth0", true);
    sim.after(1000);
    let c = sim.bond.counters().clone();
    assert_eq!((c.failovers, c.last_outage_ms), (2, Some(200)), "{c:?}");
    assert_eq!(c.peer_notifications, 3, "one announcement per new active slave, the first too");
    assert_eq!(sim.bond.report().counters, c);
}

/// Under the ARP monitor the outage runs from the active slave's last sign of life; probes
/// sent and replies heard are counted.
#[test]
fn counters_under_the_arp_monitor() {
    let mut sim = Sim::running(&[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254")], &["eth0", "eth1"]);
    sim.addresses();
    sim.arp_peer = Some(PEER_IP);
    sim.after(1000);
    let before = sim.bond.counters().clone();
    assert!(before.arp_probes >= 9 && before.arp_heard >= 9, "{before:?}");
    sim.carrier("eth0", false);
    sim.after(1000);
    let c = sim.bond.counters().clone();
    assert_eq!(c.failovers, 1, "{c:?}");
    let outage = c.last_outage_ms.unwrap();
    assert!((200..=400).contains(&outage), "missed_max 2 intervals and a tick: {outage}");
}
