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

/// A bond0 up with eth0 and eth1 enslaved, on a fake host.
fn daemon(opts: &[&str], datapath: FakeDatapath, net: FakeNetdev) -> Daemon {
    let run_dir =
        std::env::temp_dir().join(format!("rbond-unit-{}-{:?}", std::process::id(), std::thread::current().id()));
    let cfg = Config {
        bond: "bond0".into(),
        datapath: DatapathChoice::Userspace,
        slaves: Vec::new(),
        options: opts.iter().map(|o| o.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect(),
        run_dir: run_dir.clone(),
        foreground: false,
        syslog: run_dir.join("no-syslog"),
    };
    std::fs::create_dir_all(&run_dir).unwrap();
    let engine = Bond::new("bond0", engine_options(&cfg.options).unwrap()).unwrap();
    let io = Io::open(Server::bind(run_dir.join("bond0.sock")).unwrap()).unwrap();
    let log = Logger::new("bond0", false, &cfg.syslog);
    let mut d = Daemon::assemble(&cfg, engine, Box::new(datapath), Box::new(net), io, log, BOND).unwrap();
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
