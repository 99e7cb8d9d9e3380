//! The daemon's decisions on a host that exists only in memory (a fake netdev and datapath):
//! what an engine action does, how a failed enslave is undone, what requests answer. No root,
//! no namespaces; the suites in `tests/` check the same on real links.

use rbond_core::{Bond, Command, Input, Level, Mac};

use super::event_loop::Io;
use super::logger::Logger;
use super::{Config, Daemon, DatapathChoice, engine_options, now};
use crate::control::server::Server;
use crate::control::{Reply, Request};
use crate::datapath::fake::FakeDatapath;
use crate::net::fake::FakeNetdev;

const BOND: u32 = 1;
const ETH0: u32 = 2;
const ETH1: u32 = 3;

fn mac(n: u8) -> Mac {
    Mac([2, 0, 0, 0, 0, n])
}

fn config(opts: &[&str]) -> Config {
    let run_dir =
        std::env::temp_dir().join(format!("rbond-unit-{}-{:?}", std::process::id(), std::thread::current().id()));
    Config {
        bond: "bond0".into(),
        datapath: DatapathChoice::Userspace,
        slaves: Vec::new(),
        options: opts.iter().map(|o| o.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect(),
        run_dir: run_dir.clone(),
        foreground: false,
        syslog: run_dir.join("no-syslog"),
        bpffs: run_dir.join("no-bpffs"),
        mtu: None,
        metrics_dir: Some(run_dir.join("metrics")),
        metrics_listen: None,
        threads: None,
    }
}

/// A daemon over fake parts, with nothing enslaved yet.
fn bare(cfg: &Config, engine: Bond, datapath: FakeDatapath, net: FakeNetdev) -> Daemon {
    std::fs::create_dir_all(&cfg.run_dir).unwrap();
    let io = Io::open(Server::bind(cfg.run_dir.join("bond0.sock")).unwrap()).unwrap();
    let log = Logger::new("bond0", false, &cfg.syslog);
    Daemon::assemble(cfg, engine, Box::new(datapath), Box::new(net), io, log, BOND).unwrap()
}

/// A bond0 up with eth0 and eth1 enslaved, on a fake host.
fn daemon(opts: &[&str], datapath: FakeDatapath, net: FakeNetdev) -> Daemon {
    let cfg = config(opts);
    let engine = Bond::new("bond0", engine_options(&cfg.options).unwrap()).unwrap();
    let mut d = bare(&cfg, engine, datapath, net);
    d.apply_actions();
    let _ = d.engine.handle(now(), Input::Command(Command::Up));
    d.enslave("eth0").unwrap();
    d.enslave("eth1").unwrap();
    d.carrier_seen(rbond_core::SlaveId(ETH0), true);
    d.carrier_seen(rbond_core::SlaveId(ETH1), true);
    d.apply_actions();
    d
}

fn host() -> FakeNetdev {
    let mut net = FakeNetdev::default();
    net.add(BOND, "bond0", mac(9));
    net.add(ETH0, "eth0", mac(1));
    net.add(ETH1, "eth1", mac(2));
    net
}

/// The fake parts back, to look at what was done to them.
fn parts(d: &mut Daemon) -> (&mut FakeDatapath, &mut FakeNetdev) {
    let dp = (d.datapath.as_mut() as &mut dyn std::any::Any).downcast_mut::<FakeDatapath>();
    let net = (d.net.as_mut() as &mut dyn std::any::Any).downcast_mut::<FakeNetdev>();
    (dp.expect("a fake datapath"), net.expect("a fake netdev"))
}

fn warnings(d: &Daemon) -> Vec<String> {
    d.log.history().filter(|l| l.level == Level::Warning).map(|l| l.text.clone()).collect()
}

#[test]
fn a_failover_switches_the_datapath_and_announces() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    assert_eq!(parts(&mut d).0.active, Some(ETH0));
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    let (dp, _) = parts(&mut d);
    assert_eq!(dp.active, Some(ETH1), "the datapath moved to eth1");
    assert!(dp.carrier, "bond0 kept its carrier");
}

/// The datapath moves first, and once: frames for the dead slave are lost until it does,
/// while the memberships and announcements decided with the failover can wait.
#[test]
fn a_failover_moves_the_datapath_before_anything_else() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    parts(&mut d).0.calls.clear();
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    let calls = &parts(&mut d).0.calls;
    assert_eq!(calls.first().map(String::as_str), Some("set_active Some(3)"), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.starts_with("set_active")).count(), 1, "{calls:?}");
    assert!(calls.contains(&"membership 2".to_string()), "eth0 left all-multicast afterwards: {calls:?}");
}

/// A datapath that cannot take the new active slave says so, naming the slave.
#[test]
fn a_failed_switch_is_a_warning_naming_the_slave() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    parts(&mut d).0.failing.push("set_active");
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    let w = warnings(&d);
    assert!(w.iter().any(|w| w.starts_with("bond0: eth1: activate: ") && w.contains("buffer space")), "{w:?}");
}

/// A side effect that fails does not stop the switch: here the active slave's "receive all
/// multicast" membership cannot be set, and the datapath moves anyway, with a line saying why.
#[test]
fn a_failed_membership_does_not_stop_a_failover() {
    let dp = FakeDatapath { failing: vec!["membership"], ..FakeDatapath::default() };
    let mut d = daemon(&["miimon=100"], dp, host());
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    assert_eq!(parts(&mut d).0.active, Some(ETH1));
    assert_eq!(d.engine.active_slave(), Some("eth1"));
    assert!(warnings(&d).iter().any(|w| w.starts_with("bond0: eth1: receive all multicast:")), "{:?}", warnings(&d));
}

/// A slave whose driver cannot take a new MAC while up is set down for it, and comes back up
/// even when the MAC still cannot be set.
#[test]
fn a_slave_is_never_left_down_by_a_failed_mac_change() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    parts(&mut d).1.failing.push("eth1 mac".into());
    let _ = d.engine.handle(now(), Input::Command(Command::SetBondMac(mac(7))));
    d.apply_actions();
    let (_, net) = parts(&mut d);
    let eth1: Vec<&String> = net.changes.iter().filter(|c| c.starts_with("eth1 up")).collect();
    assert_eq!(eth1.last().map(|s| s.as_str()), Some("eth1 up true"), "{:?}", net.changes);
    assert!(net.links[&ETH1].up);
    assert!(
        warnings(&d).iter().any(|w| w == "bond0: eth1: set MAC: Device or resource busy (os error 16)"),
        "{:?}",
        warnings(&d)
    );
}

/// Carrier comes from netlink; an ethtool query that fails says nothing about the link, so
/// it changes nothing, whether the daemon has run for a while or has just restarted.
#[test]
fn an_ethtool_error_is_not_a_carrier_loss() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    parts(&mut d).1.glink.clear();
    d.poll_links();
    d.catch_up();
    assert_eq!(d.engine.active_slave(), Some("eth0"));
    assert!(!d.log.history().any(|l| l.text.contains("definitely down")), "no failover");
}

/// A slave that cannot join the datapath is put back as it was, and the bond does not know
/// of it.
#[test]
fn a_failed_enslave_puts_the_slave_back() {
    let mut net = host();
    net.links.get_mut(&ETH1).unwrap().up = true;
    net.links.get_mut(&ETH1).unwrap().mtu = 1400;
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), net);
    d.release("eth1").unwrap();
    parts(&mut d).0.failing.push("attach");
    let err = d.enslave("eth1").unwrap_err();
    assert_eq!(format!("{err:#}"), "eth1: attach to the datapath: No buffer space available (os error 105)");
    let (dp, net) = parts(&mut d);
    assert!(!dp.attached.contains(&ETH1));
    let l = &net.links[&ETH1];
    assert_eq!((l.up, l.mtu, l.mac), (true, 1400, Some(mac(2))), "eth1 as it was");
    assert_eq!(d.engine.report().sysfs("slaves").unwrap(), "eth0");
}

/// Converting the live eth0 points the datapath at it before bond0 has an address to draw
/// traffic with; when eth0 then cannot join the datapath, the datapath forwards through
/// nothing again, or bond0's frames would go on leaving through an interface given back.
#[test]
fn a_failed_conversion_leaves_the_datapath_no_active_slave() {
    let mut net = host();
    net.links.get_mut(&ETH0).unwrap().up = true;
    net.addrs.insert(ETH0, vec![crate::net::address::Address::new("10.77.0.1".parse().unwrap(), 24)]);
    let cfg = config(&["miimon=100"]);
    let engine = Bond::new("bond0", engine_options(&cfg.options).unwrap()).unwrap();
    let dp = FakeDatapath { failing: vec!["attach"], ..FakeDatapath::default() };
    let mut d = bare(&cfg, engine, dp, net);
    let _ = d.engine.handle(now(), Input::Command(Command::Up));
    let err = d.enslave("eth0").unwrap_err();
    assert_eq!(format!("{err:#}"), "eth0: attach to the datapath: No buffer space available (os error 105)");
    assert_eq!(parts(&mut d).0.active, None);
}

#[test]
fn requests_get_typed_answers() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    match d.request(0, Request::Get { option: "mode".into() }) {
        Reply::Value { value } => assert_eq!(value, "active-backup 1"),
        other => panic!("{other:?}"),
    }
    match d.request(0, Request::Get { option: "nosuch".into() }) {
        Reply::Error { error } => assert_eq!(error, "unknown option nosuch"),
        other => panic!("{other:?}"),
    }
    match d.request(0, Request::Set { option: "miimon".into(), value: "abc".into() }) {
        Reply::Error { error } => {
            assert_eq!(error, "option miimon: invalid value (abc); allowed values 0 - 2147483647")
        }
        other => panic!("{other:?}"),
    }
    match d.request(0, Request::Status) {
        Reply::Status(s) => {
            assert_eq!(s.report.active_slave.as_deref(), Some("eth0"));
            assert!(s.text.contains("Currently Active Slave: eth0\n"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(d.request(0, Request::SetActive { slave: "eth1".into() }), Reply::Done));
    d.apply_actions();
    assert_eq!(parts(&mut d).0.active, Some(ETH1));
}

#[test]
fn releasing_an_unknown_slave_names_it() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    match d.request(0, Request::Release { slave: "eth9".into() }) {
        Reply::Error { error } => assert_eq!(error, "eth9 is not a slave of bond0"),
        other => panic!("{other:?}"),
    }
}

/// What the daemon `d` leaves when it dies (as PID 1 here, so it reads as another process),
/// and a fresh daemon taking it over on the host `net` as it is now.
fn successor(d: Daemon, net: FakeNetdev) -> Daemon {
    let mut left = d.snapshot(None);
    left.pid = 1;
    left.started = true;
    drop(d);
    let cfg = config(&[]);
    let mut next = bare(&cfg, left.engine.clone(), FakeDatapath::default(), net);
    next.carry_on(left, &[]).unwrap();
    next
}

fn lines(d: &Daemon) -> Vec<String> {
    d.log.history().map(|l| l.text.clone()).collect()
}

/// A new daemon takes the bond over as it was: the same active slave, both slaves back in
/// the datapath, nothing re-enslaved or announced.
#[test]
fn adoption_carries_on_with_the_same_active_slave() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    let _ = d.engine.handle(now(), Input::Command(Command::ChangeActive("eth1".into())));
    d.apply_actions();
    let mut next = successor(d, host());
    assert_eq!(lines(&next), ["bond0: adopting the bond left by PID 1 (userspace datapath)"]);
    let (dp, net) = parts(&mut next);
    assert_eq!((dp.active, dp.attached.len(), dp.carrier), (Some(ETH1), 2, true));
    assert_eq!(net.changes, Vec::<String>::new(), "no slave touched");
    assert_eq!(next.status().adoptions, 1);
}

/// The active slave's cable was pulled while no daemon ran: the successor fails over at
/// once (no downdelay here), and says so as the kernel would.
#[test]
fn adoption_fails_over_from_a_link_lost_meanwhile() {
    let d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    let mut net = host();
    net.links.get_mut(&ETH0).unwrap().lower_up = false;
    let mut next = successor(d, net);
    assert_eq!(next.engine.active_slave(), Some("eth1"));
    assert_eq!(parts(&mut next).0.active, Some(ETH1));
    assert!(lines(&next).iter().any(|l| l == "bond0: making interface eth1 the new active one."), "{:?}", lines(&next));
}

/// With a downdelay, the delay counts from the successor's start.
#[test]
fn adoption_counts_the_downdelay_from_its_start() {
    let d = daemon(&["miimon=100", "downdelay=200"], FakeDatapath::default(), host());
    let mut net = host();
    net.links.get_mut(&ETH0).unwrap().lower_up = false;
    let started = now();
    let next = successor(d, net);
    assert_eq!(next.engine.active_slave(), Some("eth0"), "not yet");
    let due = next.engine.poll_timeout().unwrap().saturating_since(started);
    assert!(due <= std::time::Duration::from_millis(200), "{due:?}");
}

/// Slaves deleted or renamed while nobody watched are released, each with a line; a slave
/// that was being enslaved is put back.
#[test]
fn adoption_releases_what_changed_meanwhile() {
    let d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    let mut left_net = host();
    left_net.links.remove(&ETH0);
    left_net.links.get_mut(&ETH1).unwrap().name = "lan1".into();
    let mut next = successor(d, left_net);
    let l = lines(&next);
    assert!(
        l.contains(&"bond0: eth0 has gone (deleted or moved to another namespace), releasing it".to_string()),
        "{l:?}"
    );
    assert!(l.contains(&"bond0: eth1 was renamed, releasing it".to_string()), "{l:?}");
    assert_eq!(next.engine.report().sysfs("slaves").unwrap(), "");
    let (dp, net) = parts(&mut next);
    assert!(dp.attached.is_empty());
    assert_eq!(net.links[&ETH1].mac, Some(mac(2)), "lan1 has its own MAC back");
}

#[test]
fn adoption_puts_back_a_slave_caught_half_enslaved() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    d.release("eth1").unwrap();
    let mut left = d.snapshot(None);
    left.pending = Some(left.members[0].saved.clone());
    left.pending.as_mut().unwrap().name = "eth1".into();
    left.pending.as_mut().unwrap().ifindex = ETH1;
    left.pid = 1;
    left.started = true;
    drop(d);
    let mut net = host();
    net.links.get_mut(&ETH1).unwrap().mtu = 9000;
    let cfg = config(&[]);
    let mut next = bare(&cfg, left.engine.clone(), FakeDatapath::default(), net);
    next.carry_on(left, &[]).unwrap();
    assert!(lines(&next).contains(&"bond0: putting eth1 back: it was being enslaved".to_string()));
    assert!(parts(&mut next).1.changes.contains(&"eth1 mtu 1500".to_string()));
}

/// bond0's new MTU goes to every slave; a slave that refuses it puts everything back (the
/// slaves changed before it, and bond0), with a line naming it.
#[test]
fn the_bonds_mtu_follows_to_every_slave_or_nowhere() {
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    let mut bond0 = parts(&mut d).1.links[&BOND].clone();
    bond0.mtu = 9000;
    d.bond_changed(bond0.clone());
    let net = parts(&mut d).1;
    assert_eq!((net.links[&ETH0].mtu, net.links[&ETH1].mtu), (9000, 9000));
    net.failing.push("eth1 mtu".into());
    bond0.mtu = 9200;
    net.links.get_mut(&BOND).unwrap().mtu = 9200;
    d.bond_changed(bond0);
    let net = parts(&mut d).1;
    assert_eq!((net.links[&BOND].mtu, net.links[&ETH0].mtu, net.links[&ETH1].mtu), (9000, 9000, 9000));
    let want =
        "bond0: eth1 refused MTU 9200 (Device or resource busy (os error 16)); bond0 and its slaves stay at 9000";
    assert!(warnings(&d).iter().any(|w| w == want), "{:?}", warnings(&d));
}

/// bond0 made promiscuous (a bridge port, a macvlan) makes the active slave so, and the mode
/// moves with the active role on a failover.
#[test]
fn promiscuity_follows_the_active_slave() {
    use crate::datapath::Membership::Promisc;
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), host());
    let mut bond0 = parts(&mut d).1.links[&BOND].clone();
    bond0.promiscuity = 1;
    d.bond_changed(bond0);
    assert_eq!(parts(&mut d).0.memberships.last(), Some(&(ETH0, Promisc, true)));
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    let promisc: Vec<_> = parts(&mut d).0.memberships.iter().filter(|m| m.1 == Promisc).cloned().collect();
    assert_eq!(promisc, [(ETH0, Promisc, true), (ETH0, Promisc, false), (ETH1, Promisc, true)]);
}

/// After a failover, a learning frame goes out of the new active slave for every MAC behind
/// bond0 (the bridge's own and those it learned elsewhere, a macvlan's), paced by
/// `mac_announce_rate`; nothing for MACs learned through bond0 itself.
#[test]
fn the_macs_behind_the_bond_are_announced_after_a_failover() {
    use crate::net::behind::FdbEntry;
    const BR: u32 = 10;
    let mut net = host();
    net.add(BR, "br0", mac(10));
    net.links.get_mut(&BOND).unwrap().master = Some(BR);
    let entry = |port, master, m, permanent| FdbEntry { port, master, mac: mac(m), vlan: None, permanent };
    net.fdb = vec![
        entry(BR, Some(BR), 10, true),    // the bridge's own
        entry(11, Some(BR), 20, false),   // a VM, learned on its port
        entry(11, Some(BR), 11, true),    // that port's own address
        entry(BOND, Some(BR), 30, false), // a host out on the switch, learned through bond0
        entry(BOND, None, 40, true),      // a macvlan's address on bond0's list
        entry(BOND, None, 9, true),       // bond0's own
    ];
    let mut d = daemon(&["miimon=100", "mac_announce_rate=1000"], FakeDatapath::default(), net);
    parts(&mut d).0.sent.clear();
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    d.announce_due(now() + std::time::Duration::from_millis(10));
    let learned: Vec<(u32, u8)> = parts(&mut d)
        .0
        .sent
        .iter()
        .filter(|(_, f)| f[VNET + 12..VNET + 14] == [0x80, 0x35])
        .map(|(slave, f)| (*slave, f[VNET + 11]))
        .collect();
    assert_eq!(learned, [(ETH1, 10), (ETH1, 20), (ETH1, 40)], "br0, the VM, the macvlan; from eth1");
    // eth1's link came up moments ago: a switch may not have been forwarding on its port yet,
    // so the round goes out again, up to the time it surely is.
    let start = now();
    for ms in (0..3000).step_by(5) {
        d.announce_due(start + std::time::Duration::from_millis(ms));
    }
    let rarp = |f: &Vec<u8>| f[VNET + 12..VNET + 14] == [0x80, 0x35];
    let sent = parts(&mut d).0.sent.iter().filter(|(_, f)| rarp(f)).count();
    assert!(sent > 3 && sent <= 12, "{sent}");
    assert!(d.announcer.due().is_none(), "done by then");
}

const VNET: usize = crate::net::frames::VNET_HDR_LEN;

/// A slave belongs to one master: one that is a bridge's port, or another bond's slave, is
/// refused with the owner's name.
#[test]
fn a_slave_of_another_master_is_refused() {
    let mut net = host();
    net.add(7, "eth2", mac(7));
    net.add(8, "br0", mac(8));
    net.links.get_mut(&7).unwrap().master = Some(8);
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), net);
    assert_eq!(format!("{:#}", d.enslave("eth2").unwrap_err()), "eth2 is already enslaved to br0");
    let other = d.snapshot(None);
    let path = config(&[]).run_dir.join("bond1.state");
    std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
    d.release("eth1").unwrap();
    let refused = format!("{:#}", d.enslave("eth1").unwrap_err());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(refused, "eth1 is already a slave of bond1");
}

/// `resend_igmp`: the new active slave reports the groups joined on bond0 (IGMPv3), from
/// bond0's address.
#[test]
fn memberships_are_reported_again_from_the_new_active_slave() {
    let mut net = host();
    let group = std::net::Ipv4Addr::new(239, 1, 1, 1);
    net.groups.insert("bond0".into(), (vec![std::net::Ipv4Addr::new(224, 0, 0, 1), group], Vec::new()));
    let addr = crate::net::address::Address::new("10.0.0.1".parse().unwrap(), 24);
    net.addrs.insert(BOND, vec![addr]);
    let mut d = daemon(&["miimon=100"], FakeDatapath::default(), net);
    parts(&mut d).0.sent.clear();
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    let reports: Vec<&(u32, Vec<u8>)> =
        parts(&mut d).0.sent.iter().filter(|(_, f)| f[VNET..VNET + 6] == [0x01, 0x00, 0x5e, 0, 0, 0x16]).collect();
    assert_eq!(reports.len(), 1, "one round (resend_igmp 1)");
    let (slave, f) = reports[0];
    let ip = &f[VNET + 14..];
    assert_eq!(
        (*slave, &ip[12..16], &ip[24 + 6..24 + 8], &ip[24 + 12..24 + 16]),
        (ETH1, &[10, 0, 0, 1][..], &[0, 1][..], &group.octets()[..])
    );
}

/// With `ns_ip6_target` and validation, the backup's socket joins the target's solicited-node
/// group (33:33:ff + its last three bytes) and the active's does not; a failover swaps them.
/// (The kernel does this whichever monitor runs; here miimon makes the failover.)
#[test]
fn backups_join_the_ns_targets_groups() {
    use crate::datapath::Membership::Multicast;
    let group = [0x33, 0x33, 0xff, 0x00, 0x02, 0x54];
    let opts = ["miimon=100", "ns_ip6_target=2001:db8::254", "arp_validate=backup"];
    let mut d = daemon(&opts, FakeDatapath::default(), host());
    // Which slaves' sockets are in the group now, after every join and leave so far.
    let in_group = |d: &mut Daemon| {
        let mut now_in = std::collections::BTreeSet::new();
        for (slave, _, add) in parts(d).0.memberships.iter().cloned() {
            if add {
                assert!(now_in.insert(slave), "joined twice")
            } else {
                assert!(now_in.remove(&slave), "left unjoined")
            }
        }
        now_in.into_iter().collect::<Vec<u32>>()
    };
    parts(&mut d).0.memberships.retain(|m| m.1 == Multicast(group));
    assert_eq!(d.engine.active_slave(), Some("eth0"));
    assert_eq!(in_group(&mut d), [ETH1]);
    d.carrier_seen(rbond_core::SlaveId(ETH0), false);
    d.apply_actions();
    parts(&mut d).0.memberships.retain(|m| m.1 == Multicast(group));
    assert_eq!(d.engine.active_slave(), Some("eth1"));
    assert_eq!(in_group(&mut d), [ETH0]);
    d.engine
        .handle(now(), Input::Command(Command::SetOption { name: "arp_validate".into(), value: "none".into() }))
        .unwrap();
    d.apply_actions();
    parts(&mut d).0.memberships.retain(|m| m.1 == Multicast(group));
    assert_eq!(in_group(&mut d), Vec::<u32>::new(), "without validation no slave is in the group");
}
