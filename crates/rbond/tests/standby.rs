//! Is the backup any good? The standby check on real links: a backup cabled into the wrong
//! segment (its switch port moved to another bridge, its link still up) is found broken by
//! the passive and by the active check and verified again once repaired; `rbond verify`'s
//! table and exit codes; `standby_select` with three slaves; and a long run of probes that
//! loses no packet and teaches neither the switch nor the host anything wrong.

mod netns;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use netns::{Cpu, Lab, Wiring, begin, bin, ip, lab, wait};
use rbond::lab::{BOND_IP, PEER_IP};
use rbond_core::Verdict;

fn opts(o: &[&str]) -> Vec<String> {
    o.iter().map(|s| s.to_string()).collect()
}

/// bond0 on `slaves` under `o`, settled, with its default route through the peer (which the
/// active check probes for).
fn bond(net: &mut Lab, slaves: &[&str], o: &[&str]) {
    net.start_bond(bin(), slaves, &opts(o)).unwrap();
    wait(net, "every slave up", |l| l.slaves_up(slaves.len()));
    ip(&["-n", &net.host(), "route", "add", "default", "via", &PEER_IP.to_string()]);
}

fn verdict(net: &Lab, slave: &str) -> Option<Verdict> {
    let s = net.status().ok()?;
    s.report.slaves.into_iter().find(|s| s.name == slave)?.standby.map(|st| st.verdict)
}

/// Moves the slave's switch port to a bridge of its own (`true`) or back: the wrong VLAN,
/// the wrong switch. Its link never goes down.
fn wrong_segment(net: &Lab, slave: &str, wrong: bool) {
    let (sw, port) = (net.switch_of(slave), format!("h{}", &slave[3..]));
    if wrong {
        let _ = rbond::lab::ip(&["-n", &sw, "link", "add", "br9", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br9", "up"]);
    }
    ip(&["-n", &sw, "link", "set", &port, "master", if wrong { "br9" } else { "br0" }]);
}

/// How long until `slave`'s verdict is `want` (panics after `limit`).
fn until_verdict(net: &Lab, slave: &str, want: Verdict, limit: Duration) -> Duration {
    let t = Instant::now();
    let what = format!("{slave} {}", want.as_str());
    net.wait_until(limit, &what, |l| verdict(l, slave) == Some(want))
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", net.log_lines().unwrap_or_default().join("\n")));
    t.elapsed()
}

fn verify(net: &Lab) -> (i32, String) {
    let out = netns::rbond(net).args(["verify", "bond0", "--wait", "1"]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_backup_in_the_wrong_segment_is_found_broken_by_probes_and_verified_once_repaired() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    bond(&mut net, &["eth0", "eth1"], &["miimon=100", "standby_window=2000", "standby_probe=300"]);
    until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));

    wrong_segment(&net, "eth1", true);
    let took = until_verdict(&net, "eth1", Verdict::Broken, Duration::from_secs(4));
    assert!(took <= Duration::from_millis(2600), "broken after {took:?}, window 2 s");
    let text = net.status().unwrap().text;
    let eth1 = &text[text.find("Slave Interface: eth1").unwrap()..];
    assert!(eth1.contains("MII Status: up\n"), "the link is fine, as the kernel would say:\n{text}");
    assert!(eth1.contains("Standby Path: broken ("), "{text}");
    assert!(eth1.contains("probes for 10.77.0.2 unanswered)"), "{text}");
    let line = net.log_lines().unwrap().into_iter().find(|l| l.contains("is broken")).unwrap();
    assert!(line.starts_with("bond0: standby path of backup interface eth1 is broken: "), "{line}");
    let out = netns::rbond(&net).args(["check", "bond0"]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(
        line.starts_with("RBOND WARNING - bond0: eth0 active, 2 of 2 slaves up; standby path broken: eth1 ("),
        "{line}"
    );

    wrong_segment(&net, "eth1", false);
    let took = until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));
    assert!(took <= Duration::from_millis(2000), "verified again after {took:?}");
}

#[test]
fn the_passive_check_alone_judges_by_the_bonds_own_broadcasts() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    bond(&mut net, &["eth0", "eth1"], &["miimon=100", "standby_window=2000", "standby_probe=0"]);
    // The host sends to addresses nobody has: ARP requests to the broadcast address through
    // the active slave, a few a second (each address is asked for once a second).
    let asking: Vec<_> = [97, 98, 99].map(|k| net.probe_from(&net.host(), Ipv4Addr::new(10, 77, 0, k), 50)).into();
    until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));
    let reason = net.status().unwrap().report.slaves[1].standby.clone().unwrap().reason;
    assert_eq!(reason, "bond0's broadcasts come back through it");
    wrong_segment(&net, "eth1", true);
    until_verdict(&net, "eth1", Verdict::Broken, Duration::from_secs(4));
    let st = net.status().unwrap().report.slaves[1].standby.clone().unwrap();
    assert!(st.reason.contains("broadcasts bond0 sent came back"), "{}", st.reason);
    assert_eq!(net.status().unwrap().report.counters.standby_probes, 0, "nothing sent");
    asking.into_iter().for_each(|p| drop(p.finish()));
}

#[test]
fn verify_prints_every_path_and_says_so_in_its_exit_code() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    bond(&mut net, &["eth0", "eth1"], &["miimon=100", "standby_probe=0"]);
    let before = net.status().unwrap();
    let (code, out) = verify(&net);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["SLAVE", "ROLE", "LINK", "PATH", "EVIDENCE"]);
    assert!(lines[1].starts_with("eth0") && lines[1].contains(" active ") && lines[1].contains(" verified "), "{out}");
    assert!(lines[1].ends_with("a reply from 10.77.0.2"), "{out}");
    assert!(lines[2].starts_with("eth1") && lines[2].contains(" backup ") && lines[2].contains(" verified "), "{out}");
    assert_eq!(lines[3], "RBOND OK - every path of bond0 verified (2 slaves)");
    let after = net.status().unwrap();
    assert_eq!(after.report.active_slave, before.report.active_slave, "nothing changed");
    assert_eq!(after.report.counters.failovers, before.report.counters.failovers);

    wrong_segment(&net, "eth1", true);
    let (code, out) = verify(&net);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(" broken      no reply from 10.77.0.2 within 1."), "{out}");
    assert!(out.ends_with("RBOND CRITICAL - bond0: eth1 broken\n"), "{out}");

    ip(&["-n", &net.host(), "route", "del", "default"]);
    wrong_segment(&net, "eth1", false);
    std::thread::sleep(Duration::from_millis(300)); // the daemon hears of the route
    let (code, out) = verify(&net);
    assert_eq!(code, 1, "no gateway, no target, a quiet host: nothing to go by\n{out}");
    assert!(out.contains("no gateway or target to probe"), "{out}");
}

#[test]
fn with_standby_select_a_failover_skips_the_broken_backup() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = Lab::with_slaves("rbt", Wiring::OneSwitch, 3).unwrap();
    let o = ["miimon=100", "standby_window=1500", "standby_probe=200", "standby_select=1"];
    bond(&mut net, &["eth0", "eth1", "eth2"], &o);
    wrong_segment(&net, "eth1", true);
    until_verdict(&net, "eth1", Verdict::Broken, Duration::from_secs(4));
    until_verdict(&net, "eth2", Verdict::Verified, Duration::from_secs(2));
    net.cable_of("eth0", false).unwrap();
    wait(&net, "a new active slave", |l| l.get("active_slave").is_ok_and(|a| a != "eth0" && !a.is_empty()));
    assert_eq!(net.get("active_slave").unwrap(), "eth2", "eth1 comes first, but goes nowhere");
}

/// Who the switch thinks is behind each port, for the bond's MAC.
fn ports_of(net: &Lab, mac: &str) -> BTreeSet<String> {
    let out = Command::new("bridge").args(["-n", &net.core(), "-j", "fdb", "show", "br", "br0"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let entries = v.as_array().cloned().unwrap_or_default();
    entries.iter().filter(|e| e["mac"] == mac).filter_map(|e| e["ifname"].as_str().map(str::to_string)).collect()
}

fn neighbours(ns: &str) -> BTreeSet<String> {
    let out = Command::new("ip").args(["-n", ns, "neigh", "show"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter(|w| !matches!(*w, "REACHABLE" | "STALE" | "DELAY" | "PROBE"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Probes every 100 ms from both slaves under a 1,000 packets/s probe to the host, for
/// `RBOND_SOAK_SECS` (180 s: some 1,800 probes a slave, an hour's worth at the default 2 s):
/// nothing lost, the bond's MAC only ever on the active slave's port, the host's and the
/// peer's neighbour tables as they were.
#[test]
fn a_long_run_of_probes_loses_nothing_and_misleads_nobody() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let secs: u64 = std::env::var("RBOND_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    let mut net = lab(Wiring::OneSwitch);
    bond(&mut net, &["eth0", "eth1"], &["miimon=100", "standby_window=2000", "standby_probe=100"]);
    until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));
    let bond_mac = net.link("bond0").unwrap().1;
    let _echo = net.echo_in(&net.host()).unwrap();
    let probe = net.probe_from(&net.peer(), BOND_IP, 1000);
    std::thread::sleep(Duration::from_secs(1));
    let (host_before, peer_before) = (neighbours(&net.host()), neighbours(&net.peer()));
    let mut seen_on = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        seen_on.extend(ports_of(&net, &bond_mac));
        assert_eq!(verdict(&net, "eth1"), Some(Verdict::Verified));
        std::thread::sleep(Duration::from_millis(500));
    }
    let record = probe.finish().unwrap().whole();
    let sent_probes = net.status().unwrap().report.counters.standby_probes;
    eprintln!("{secs} s: {sent_probes} standby probes; {} of {} datagrams lost", record.lost, record.sent);
    assert_eq!(record.lost, 0);
    assert!(sent_probes as f64 >= secs as f64 * 2.0 * 10.0 * 0.7, "{sent_probes} probes");
    assert_eq!(seen_on, BTreeSet::from(["h0".to_string()]), "the bond's MAC was only ever behind eth0's port");
    assert_eq!(neighbours(&net.host()), host_before);
    assert_eq!(neighbours(&net.peer()), peer_before);
}

/// On a bond with no IPv4 at all, the active check asks the IPv6 default router (its
/// link-local address, as router advertisements give it) from each probe MAC's own link-local
/// address: the router's answers verify the slaves, and a backup moved to the wrong segment is
/// found broken, naming the router. The router checking its address again (re-added, so
/// duplicate address detection runs) while every slave probes it every 300 ms keeps it: a
/// probe from `::` would be a rival's, and the router would give its address up.
#[test]
fn an_ipv6_only_bond_verifies_its_backups_through_its_router() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    net.peer_ipv6_only().unwrap();
    net.start_bond(bin(), &["eth0", "eth1"], &opts(&["miimon=100", "standby_window=2000", "standby_probe=300"]))
        .unwrap();
    wait(&net, "every slave up", |l| l.slaves_up(2));
    net.bond_ipv6_only(false).unwrap();
    let peer_ll = |net: &Lab| {
        let show = ["-n", &net.peer(), "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link"];
        let out = Command::new("ip").args(show).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let infos = v[0]["addr_info"].as_array().cloned().unwrap_or_default();
        infos.into_iter().find(|a| a["local"].is_string()).expect("the peer's link-local address")
    };
    let router = peer_ll(&net)["local"].as_str().unwrap().to_string();
    ip(&["-n", &net.host(), "-6", "route", "add", "default", "via", &router, "dev", "bond0"]);
    until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));
    let (code, out) = verify(&net);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().nth(1).unwrap().ends_with(&format!("a reply from {router}")), "{out}");
    ip(&["-n", &net.peer(), "addr", "del", &format!("{router}/64"), "dev", "eth0"]);
    ip(&["-n", &net.peer(), "addr", "add", &format!("{router}/64"), "dev", "eth0"]);
    let back = |n: &Lab| peer_ll(n)["tentative"].is_null();
    net.wait_until(Duration::from_secs(5), "the router's DAD", back).unwrap();
    assert!(peer_ll(&net)["dadfailed"].is_null(), "the router kept its address: {}", peer_ll(&net));
    wrong_segment(&net, "eth1", true);
    until_verdict(&net, "eth1", Verdict::Broken, Duration::from_secs(4));
    let reason = net.status().unwrap().report.slaves[1].standby.clone().unwrap().reason;
    assert!(reason.ends_with(&format!("probes for {router} unanswered")), "{reason}");
    wrong_segment(&net, "eth1", false);
    until_verdict(&net, "eth1", Verdict::Verified, Duration::from_secs(3));
}
