//! The daemon on real links: veth slaves cabled to Linux bridges in throwaway namespaces,
//! with traffic made and checked by the test itself.

mod netns;

use std::io::Write;
use std::time::{Duration, Instant};

use netns::{Cpu, DatapathChoice, Lab, Wiring, begin, get, ip, lab, probe, rbond, settled, start, wait};
use rbond::control::Request;
use rbond::lab::{BOND_IP, PEER_IP};

const GUIDE: &[&str] = &["mode=1", "miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];

fn mac_of(net: &Lab, name: &str) -> String {
    net.link(name).unwrap_or_else(|| panic!("{name} missing")).1
}

#[test]
fn traffic_flows_and_bond_and_slaves_share_one_mac() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    let p = probe(&net, 200, Duration::from_secs(1), Duration::ZERO, || {});
    assert!(p.lost <= 2, "{p:?}");
    assert_eq!(p.duplicated, 0);
    let bond_mac = mac_of(&net, "bond0");
    assert_eq!(mac_of(&net, "eth0"), bond_mac);
    assert_eq!(mac_of(&net, "eth1"), bond_mac);
    assert_eq!(get(&net, "mode"), "active-backup 1");
    assert_eq!(get(&net, "active_slave"), "eth0");
    // The suite runs once per datapath (scripts/test): make sure it runs the one it says.
    let want = match netns::datapath() {
        DatapathChoice::Userspace => "bond0: datapath: userspace",
        DatapathChoice::KernelTc => "bond0: datapath: kernel (BPF redirects, cls_bpf on clsact)",
        _ => "bond0: datapath: kernel (BPF redirects, tcx)",
    };
    assert!(net.log_lines().unwrap().iter().any(|l| l.starts_with(want)), "{want}");
    let status = net.status().unwrap();
    let text = &status.text;
    assert!(text.contains("Currently Active Slave: eth0\nMII Status: up\n"), "{text}");
    assert!(text.contains("Slave Interface: eth1\nMII Status: up\n"), "{text}");
}

/// The NEC step "pull the active's cable": traffic moves after the downdelay, with the
/// kernel's lines in order and nothing duplicated.
#[test]
fn pulling_the_active_cable_fails_over_after_the_downdelay() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    settled(&net);
    let before = net.log_lines().unwrap().len();
    let p = probe(&net, 1000, Duration::from_secs(3), Duration::from_secs(1), || net.cable_of("eth0", false).unwrap());
    let lines = net.log_lines().unwrap()[before..].to_vec();
    assert_eq!(
        lines,
        [
            "bond0: link status down for active interface eth0, disabling it in 200 ms.",
            "bond0: link status definitely down for interface eth0, disabling it",
            "bond0: making interface eth1 the new active one.",
        ]
    );
    // Down is committed downdelay after the loss, give or take one miimon tick.
    let timed = net.timed_log().unwrap();
    let t = |needle: &str| timed.iter().find(|(_, l)| l.contains(needle)).unwrap().0;
    let waited = t("definitely down for interface eth0") - t("link status down for active interface eth0");
    assert!((100..=300).contains(&waited), "downdelay took {waited} ms");
    assert!((150..=320).contains(&p.outage.as_millis()), "outage {:?}", p.outage);
    assert_eq!(p.duplicated, 0);
    assert_eq!(get(&net, "active_slave"), "eth1");
}

/// With no delays, a fixed-rate probe at 10,000 packets/s sees under 2 ms of outage: the
/// median of three failovers, none over 20 ms (a busy 2-core machine may delay one).
#[test]
fn failover_without_delays_is_under_two_milliseconds() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["mode=active-backup", "miimon=100"]);
    let _echo = net.echo().unwrap();
    let p = net.probe(10_000);
    let mut cuts = Vec::new();
    for (pull, replug) in [("eth0", "eth0"), ("eth1", "eth1"), ("eth0", "eth0")] {
        std::thread::sleep(Duration::from_millis(500));
        cuts.push(p.elapsed());
        net.cable_of(pull, false).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        net.cable_of(replug, true).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let rec = p.finish().unwrap();
    let mut outages: Vec<Duration> =
        cuts.iter().map(|c| rec.window(*c, *c + Duration::from_millis(400)).outage).collect();
    eprintln!("10k pps failovers: outages {outages:?}, whole run {:?}", rec.whole());
    assert_eq!(rec.whole().duplicated, 0);
    outages.sort();
    assert!(outages[1] < Duration::from_millis(2), "median outage {:?}", outages[1]);
    assert!(outages[2] < Duration::from_millis(20), "worst outage {:?}", outages[2]);
    assert_eq!(get(&net, "active_slave"), "eth1");
}

/// After a failover the peer hears a gratuitous ARP for the bond's IPv4 address and an
/// unsolicited neighbour advertisement (override set) for its IPv6 address, both from the
/// bond's MAC, and the switch moves that MAC to the new port.
#[test]
fn failover_announces_the_bond_to_the_switch_and_peer() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    ip(&["-n", &net.host(), "addr", "add", "2001:db8:77::1/64", "dev", "bond0", "nodad"]);
    let bond_mac: rbond_core::Mac = mac_of(&net, "bond0").parse().unwrap();
    // The first activation announces itself too (on the next tick, once bond0 has carrier):
    // only what arrives from the cut on is the failover's.
    let epoch = Instant::now();
    let listener = netns::capture(&net, epoch, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    let cut = epoch.elapsed();
    net.cable_of("eth0", false).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let fdb =
        std::process::Command::new("bridge").args(["-n", &net.core(), "fdb", "show", "br", "br0"]).output().unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout).to_string();
    let frames = listener.join().unwrap().unwrap();
    let after_cut = frames.iter().filter(|(at, _)| *at >= cut).map(|(_, f)| f.as_slice());
    let (mut garps, mut nas) = (Vec::new(), Vec::new());
    for f in after_cut {
        let arp = rbond::net::frames::parse_arp(f, false);
        garps.extend(arp.filter(|a| a.sender_ip == BOND_IP && a.target_ip == BOND_IP));
        // Ethernet IPv6, ICMPv6 type 136 (neighbour advertisement)
        if f.len() >= 86 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 136 {
            let target: [u8; 16] = f[62..78].try_into().unwrap();
            nas.push((f[6..12].to_vec(), f[58] & 0x20 != 0, std::net::Ipv6Addr::from(target)));
        }
    }
    assert_eq!(garps.len(), 1, "one gratuitous ARP (num_grat_arp 1): {garps:?}");
    assert_eq!(garps[0].op, rbond_core::ArpOp::Request);
    assert_eq!(garps[0].sender_mac, bond_mac);
    let ours: Vec<_> =
        nas.iter().filter(|(_, _, t)| *t == "2001:db8:77::1".parse::<std::net::Ipv6Addr>().unwrap()).collect();
    assert_eq!(ours.len(), 1, "one unsolicited NA: {nas:?}");
    assert_eq!((ours[0].0.as_slice(), ours[0].1), (&bond_mac.0[..], true), "from the bond's MAC, override set");
    assert!(fdb.lines().any(|l| l.starts_with(&bond_mac.to_string()) && l.contains("dev h1")), "{fdb}");
}

/// A TCP bulk transfer each way through the bond, with every offload left on, arrives intact.
#[test]
fn tcp_bulk_transfer_with_offloads_on_arrives_intact() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    let took = netns::tcp_both_ways(&net, 100 << 20);
    eprintln!("200 MB through the bond (100 MB each way) in {took:?}");
}

type LinkState = ((bool, String, u32), Vec<String>);

fn slaves_as_before(net: &Lab, before: &[LinkState]) {
    for (name, b) in ["eth0", "eth1"].iter().zip(before) {
        assert_eq!(&(net.link(name).unwrap(), net.addrs(name)), b, "{name} restored");
    }
    assert!(net.link("bond0").is_none(), "bond0 is gone");
}

fn prepared(net: &Lab) -> Vec<LinkState> {
    // eth1 starts up with its own MTU and addresses: all must come back.
    let h = net.host();
    ip(&["-n", &h, "link", "set", "eth1", "mtu", "1400", "up"]);
    ip(&["-n", &h, "addr", "add", "10.88.0.5/24", "dev", "eth1"]);
    ip(&["-n", &h, "addr", "add", "2001:db8:88::5/64", "dev", "eth1", "nodad"]);
    let state: Vec<LinkState> = ["eth0", "eth1"].iter().map(|n| (net.link(n).unwrap(), net.addrs(n))).collect();
    assert_eq!(state[1].1.len(), 2, "{state:?}");
    state
}

#[test]
fn down_and_signals_restore_every_slave() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    for how in ["down", "SIGTERM", "SIGINT"] {
        let mut net = lab(Wiring::OneSwitch);
        let before = prepared(&net);
        start(&mut net, GUIDE);
        assert_eq!(net.link("eth1").unwrap().2, 1500, "slaves take the bond's MTU");
        assert_eq!(net.addrs("eth1"), Vec::<String>::new(), "slaves keep no address of their own");
        match how {
            "down" => drop(net.request(&Request::Down).unwrap()),
            sig => {
                let s = if sig == "SIGTERM" { libc::SIGTERM } else { libc::SIGINT };
                unsafe { libc::kill(net.daemon_pid().unwrap() as i32, s) };
            }
        }
        assert!(net.wait_daemon().unwrap().success(), "{how}");
        slaves_as_before(&net, &before);
        let stderr = net.daemon_stderr();
        assert!(stderr.contains("bond0: released all slaves"), "{how}: {stderr}");
    }
}

/// The guide's bond on prepared slaves, SIGKILLed: returns what the slaves had before.
fn killed_bond(net: &mut Lab) -> Vec<LinkState> {
    let before = prepared(net);
    start(net, GUIDE);
    unsafe { libc::kill(net.daemon_pid().unwrap() as i32, libc::SIGKILL) };
    net.wait_daemon().unwrap();
    before
}

/// A daemon killed with no supervisor leaves its bond forwarding; the next start adopts it,
/// and `rbond down` then restores the slaves as they were before the first start.
#[test]
fn a_killed_daemon_is_adopted_by_the_next_start() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = killed_bond(&mut net);
    assert_ne!(net.link("eth1").unwrap().1, before[1].0.1, "killed: eth1 still wears the bond's MAC");
    assert!(net.link("bond0").is_some(), "bond0 outlives its daemon");
    start(&mut net, GUIDE);
    let lines = net.log_lines().unwrap();
    assert!(lines.iter().any(|l| l.starts_with("bond0: adopting the bond left by PID ")), "{lines:#?}");
    net.request(&Request::Down).unwrap();
    net.wait_daemon().unwrap();
    slaves_as_before(&net, &before);
}

/// What a dead daemon left never passes for a live one: `rbond down` with no daemon running
/// takes it apart (slaves restored, bond0 deleted, pins and state removed).
#[test]
fn down_takes_apart_what_a_dead_daemon_left() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = killed_bond(&mut net);
    let out = rbond(&net).args(["down", "bond0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("bond0: taking apart the bond left by PID "), "{err}");
    slaves_as_before(&net, &before);
    let left: Vec<_> = std::fs::read_dir(&net.run_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|n| n == "bond0.state" || n == "bond0.sock"), "{left:?}");
    let pins = walk(&net.bpffs.join("rbond"));
    assert!(pins.is_empty(), "pins left: {pins:?}");
    let out = rbond(&net).args(["down", "bond0"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "rbond: bond0: no daemon is running for this bond");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

/// ARP monitoring finds a path that died beyond the switch, where carrier says nothing.
#[test]
fn arp_monitor_detects_a_dead_path_behind_a_live_link() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::AccessSwitches);
    // Validation keeps the isolated eth0 from counting the access switch's own chatter.
    start(&mut net, &["arp_interval=100", &format!("arp_ip_target={PEER_IP}"), "arp_validate=all", "primary=eth0"]);
    // Past the start, where a loaded machine may give bond0 its address only after the first
    // intervals (a slave fails validation until then): eth0 active and both up for a while.
    let steady = |n: &Lab| get(n, "active_slave") == "eth0" && n.slaves_up(2);
    wait(&net, "the bond state", steady);
    std::thread::sleep(Duration::from_millis(600));
    wait(&net, "the bond state", steady);
    let access0 = net.switch_of("eth0");
    let cut = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    ip(&["-n", &access0, "link", "set", "up0", "down"]);
    wait(&net, "the bond state", |n| get(n, "active_slave") == "eth1");
    let p = probe(&net, 100, Duration::from_secs(1), Duration::ZERO, || {});
    assert!(p.lost <= 2, "traffic flows through eth1: {p:?}");
    let lines: Vec<String> = net.timed_log().unwrap().into_iter().filter(|(t, _)| *t >= cut).map(|(_, l)| l).collect();
    let i = lines
        .iter()
        .position(|l| l == "bond0: link status definitely down for interface eth0, disabling it")
        .expect("eth0 declared down");
    // Next, eth1 takes over (on a loaded machine the monitor may first see no slave up).
    let next = lines[i + 1..].iter().find(|l| l.ends_with("the new active one."));
    assert_eq!(next.map(String::as_str), Some("bond0: making interface eth1 the new active one."), "{lines:#?}");
    assert!(net.link("eth0").unwrap().0, "eth0 itself is still up");
}

/// A slave renamed, moved to another namespace or deleted under the daemon is released with
/// a line saying why, and the bond carries on with what it has left.
#[test]
fn slaves_that_vanish_under_the_daemon_are_released() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    let h = net.host();
    let eth1_mac = net.link("eth1").unwrap().1;
    ip(&["-n", &h, "link", "set", "eth1", "down"]);
    ip(&["-n", &h, "link", "set", "eth1", "name", "spare"]);
    wait(&net, "the bond state", |n| get(n, "slaves") == "eth0");
    assert_ne!(net.link("spare").unwrap().1, eth1_mac, "the renamed slave got its own MAC back");
    let out = rbond(&net).args(["enslave", "bond0", "spare"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ip(&["-n", &h, "link", "set", "spare", "netns", &net.peer()]);
    wait(&net, "the bond state", |n| get(n, "slaves") == "eth0");
    let p = probe(&net, 100, Duration::from_millis(500), Duration::ZERO, || {});
    assert!(p.lost <= 2, "still forwarding on eth0: {p:?}");
    ip(&["-n", &h, "link", "del", "eth0"]);
    wait(&net, "the bond state", |n| get(n, "slaves").is_empty());
    let lines = net.log_lines().unwrap();
    let after = |first: &str| -> Vec<&str> {
        let i = lines.iter().position(|l| l == first).unwrap_or_else(|| panic!("no {first:?} in {lines:#?}"));
        lines[i..].iter().take(2).map(String::as_str).collect()
    };
    assert_eq!(after("bond0: eth1 was renamed, releasing it")[1], "bond0: releasing backup interface eth1");
    assert_eq!(
        after("bond0: spare has gone (deleted or moved to another namespace), releasing it")[1],
        "bond0: releasing backup interface spare"
    );
    // Deleting a veth drops its carrier too; which of the two the kernel reports first varies.
    for l in [
        "bond0: link status definitely down for interface eth0, disabling it",
        "bond0: now running without any active interface !",
        "bond0: eth0 has gone (deleted or moved to another namespace), releasing it",
        "bond0: releasing backup interface eth0",
    ] {
        assert!(lines.iter().any(|x| x == l), "no {l:?} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l.contains("No such device")), "nothing is done to a vanished device: {lines:#?}");
    assert_eq!(get(&net, "mii_status"), "down");
}

/// Bad requests get an error reply; the daemon keeps serving and forwarding.
#[test]
fn the_control_socket_survives_bad_requests() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    let sock = rbond::control::socket_path(&net.run_dir, "bond0");
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    let ask = |bytes: &[u8]| -> serde_json::Value {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(bytes);
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    for bad in [&b"not json\n"[..], b"{\"cmd\":\"fly\"}\n", b"{}\n", b"{\"cmd\":\"get\"}\n"] {
        let r = ask(bad);
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].as_str().unwrap().starts_with("bad request"), "{r}");
    }
    let r = ask(&vec![b'x'; 1 << 20]);
    assert_eq!(r["error"], "request longer than 65536 bytes");
    drop(UnixStream::connect(&sock).unwrap()); // a client that says nothing
    let r = ask(b"{\"cmd\":\"get\",\"option\":\"nosuch\"}\n");
    assert_eq!(r["error"], "unknown option nosuch");
    assert_eq!(get(&net, "mode"), "active-backup 1");
}

/// The CLI: the report in the /proc layout, sysfs values, JSON, and one clear line on error.
#[test]
fn the_cli_reports_and_refuses_clearly() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    settled(&net);
    let run = |args: &[&str]| rbond(&net).args(args).output().unwrap();
    let out = run(&["status", "bond0"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "Ethernet Channel Bonding Driver: rbond v0.1.0\n\nBonding Mode: fault-tolerance (active-backup)\n"
        ),
        "{text}"
    );
    assert_eq!(run(&["get", "bond0", "mode"]).stdout, b"active-backup 1\n");
    assert_eq!(run(&["get", "bond0", "updelay"]).stdout, b"200\n");
    let bad = run(&["set", "bond0", "miimon", "abc"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "rbond: bond0: option miimon: invalid value (abc); allowed values 0 - 2147483647\n"
    );
    assert!(run(&["set-active", "bond0", "eth1"]).status.success());
    let json: serde_json::Value = serde_json::from_slice(&run(&["status", "bond0", "--json"]).stdout).unwrap();
    assert_eq!(json["active_slave"], "eth1");
    assert_eq!(json["options"]["miimon"], "100");
    let events = String::from_utf8(run(&["events", "bond0"]).stdout).unwrap();
    assert!(events.ends_with("bond0: making interface eth1 the new active one.\n"), "{events}");
    let all = String::from_utf8(run(&["status"]).stdout).unwrap();
    assert_eq!(
        all,
        "BOND   MODE           ACTIVE  SLAVES UP  FAILOVERS  LAST OUTAGE\n\
         bond0  active-backup  eth1    2/2        1          -\n",
        "with no name: a line for every bond (here one)"
    );
    let missing = run(&["status", "bond7"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("bond7.sock"), "names the socket it tried");
}

/// Every line also goes to syslog, tagged `bonding: ` as the kernel's were, so
/// `grep bonding /var/log/syslog | sed 's/.*bonding: //'` prints the kernel's text; and a
/// slave released on request gets its MAC, MTU and state back while the bond runs on.
#[test]
fn lines_reach_syslog_and_release_restores_the_slave() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    std::fs::create_dir_all(&net.run_dir).unwrap();
    let syslog = std::os::unix::net::UnixDatagram::bind(net.syslog_path()).unwrap();
    syslog.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let before = prepared(&net);
    start(&mut net, &["miimon=100"]);
    let out = rbond(&net).args(["release", "bond0", "eth1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((net.link("eth1").unwrap(), net.addrs("eth1")), before[1], "eth1 restored");
    assert_eq!(get(&net, "slaves"), "eth0");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = syslog.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    let pid = net.daemon_pid().unwrap();
    let want = [
        format!("<30>rbond[{pid}]: bonding: MII link monitoring set to 100 ms"),
        format!("<30>rbond[{pid}]: bonding: bond0: making interface eth0 the new active one."),
        format!("<30>rbond[{pid}]: bonding: bond0: releasing backup interface eth1"),
    ];
    for w in want {
        assert!(got.contains(&w), "missing {w:?} in {got:#?}");
    }
}

/// A failed start leaves nothing half-configured: the slave it had already taken gets its
/// MAC, MTU, addresses and state back, bond0 is gone, and the error names the culprit.
#[test]
fn a_failed_up_puts_everything_back() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let net = lab(Wiring::OneSwitch);
    let before = prepared(&net);
    let file = net.run_dir.join("interfaces");
    std::fs::write(&file, "iface bond0 inet manual\n    bond-slaves eth1 nosuch0\n    bond-miimon 100\n").unwrap();
    let out = rbond(&net).args(["up", "bond0", "-i"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rbond: bond0: nosuch0: no such interface: No such device (os error 19)\n"
    );
    slaves_as_before(&net, &before);
    assert!(!net.run_dir.join("bond0.sock").exists(), "no daemon left behind");
    // A refused value is reported where it was written, before anything is touched.
    std::fs::write(&file, "iface bond0 inet manual\n    bond-slaves eth1\n    bond-miimon abc\n").unwrap();
    let out = rbond(&net).args(["up", "bond0", "-i"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("rbond: {}:3: option miimon: invalid value (abc); allowed values 0 - 2147483647\n", file.display())
    );
    slaves_as_before(&net, &before);
}

/// `rbond events --follow` prints the history, then each new line as the bond writes it.
#[test]
fn events_follow_prints_lines_as_they_happen() {
    use std::io::BufRead;
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    settled(&net);
    let mut follower =
        rbond(&net).args(["events", "bond0", "--follow"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        std::io::BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l)))
    });
    let next = || rx.recv_timeout(Duration::from_secs(5)).ok();
    assert_eq!(next().as_deref(), Some("MII link monitoring set to 100 ms"), "the history comes first");
    std::thread::sleep(Duration::from_millis(200));
    assert!(rbond(&net).args(["set-active", "bond0", "eth1"]).status().unwrap().success());
    let seen = std::iter::from_fn(next).any(|l| l == "bond0: making interface eth1 the new active one.");
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen, "the follower saw the switch as it happened");
}

/// `all_slaves_active 1` keeps the userspace datapath (the kernel one drops backups' frames)
/// and says so in the log; traffic flows from the first packet.
#[test]
fn all_slaves_active_chooses_the_userspace_datapath() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let opts = ["miimon=100".to_string(), "all_slaves_active=1".to_string()];
    // `auto` whatever the suite's pass asks for: the choice is the point here.
    net.start_supervised(netns::bin(), &["eth0", "eth1"], &opts, &["--datapath", "auto"]).unwrap();
    let lines = net.log_lines().unwrap();
    let want = "bond0: datapath: userspace (TAP and packet sockets, ";
    let why = " forwarding threads; all_slaves_active needs the userspace datapath)";
    let why1 = " forwarding thread; all_slaves_active needs the userspace datapath)";
    assert!(lines.iter().any(|l| l.starts_with(want) && (l.ends_with(why) || l.ends_with(why1))), "{lines:#?}");
    wait(&net, "an active slave", |l| !get(l, "active_slave").is_empty());
    let p = probe(&net, 200, Duration::from_millis(500), Duration::ZERO, || {});
    assert!(p.lost <= 1, "{p:?}");
}

/// The userspace datapath's forwarding threads' `/proc` status (as `ps -L` reads them), by
/// lane: one field of each.
fn lane_field(pid: u32, field: &str) -> Vec<String> {
    let mut lanes: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let lane =
                std::fs::read_to_string(dir.join("comm")).ok()?.trim().strip_prefix("rbond-lane")?.parse().ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
            Some((lane, value.trim().to_string()))
        })
        .collect();
    lanes.sort();
    lanes.into_iter().map(|(_, v)| v).collect()
}

/// Each forwarding thread's wake-ups so far (the times it went to wait).
fn wakeups(pid: u32) -> Vec<u64> {
    lane_field(pid, "voluntary_ctxt_switches").iter().map(|n| n.parse().unwrap()).collect()
}

/// Datagrams that `to` received from one flow, and how many of them came after a later one:
/// `from` sends `n` as fast as it can, alternating 1,400 and 100 bytes (a bulk transfer's
/// segments and a small one's, which a datapath spreading frames by size or sending CPU
/// reorders).
fn overtaken(net: &Lab, from: &str, to: &str, dst: std::net::Ipv4Addr, n: u32) -> (u32, u32) {
    use std::net::UdpSocket;
    let receiver = net.in_ns(to, || {
        let s = UdpSocket::bind(("0.0.0.0", 5009)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1000))).unwrap();
        let (mut got, mut late, mut highest, mut buf) = (0, 0, None, [0u8; 2048]);
        while let Ok(len) = s.recv(&mut buf) {
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert!(len == 100 || len == 1400, "{len}");
            got += 1;
            match highest {
                Some(h) if seq < h => late += 1,
                _ => highest = Some(seq),
            }
        }
        (got, late)
    });
    std::thread::sleep(Duration::from_millis(200));
    net.in_ns(from, move || {
        let s = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        let mut buf = [7u8; 1400];
        for seq in 0..n {
            buf[..4].copy_from_slice(&seq.to_be_bytes());
            let len = if seq % 2 == 0 { 1400 } else { 100 };
            let _ = s.send_to(&buf[..len], (dst, 5009));
        }
    })
    .join()
    .unwrap()
    .unwrap();
    receiver.join().unwrap().unwrap()
}

/// The CPUs the daemon `pid` may run on, in order.
fn allowed_cpus(pid: u32) -> Vec<usize> {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(pid as i32)).unwrap();
    (0..nix::sched::CpuSet::count()).filter(|c| allowed.is_set(*c).unwrap_or(false)).collect()
}

/// The log says how many forwarding threads there are, and each keeps to one of the last
/// `n` CPUs, in order.
fn assert_lanes(net: &Lab, n: usize) {
    let pid = net.answering_pid().unwrap();
    let cpus = allowed_cpus(pid);
    let threads = if n == 1 { "1 forwarding thread".to_string() } else { format!("{n} forwarding threads") };
    let logged = net.log_lines().unwrap();
    assert!(logged.iter().any(|l| l.starts_with("bond0: datapath: userspace") && l.contains(&threads)), "{logged:#?}");
    if let Some(first) = cpus.len().checked_sub(n) {
        let pinned: Vec<String> = cpus[first..].iter().map(usize::to_string).collect();
        assert_eq!(lane_field(pid, "Cpus_allowed_list"), pinned, "a thread on each of the last {n} CPUs");
    }
}

/// By default the userspace datapath forwards with half the CPUs the daemon may use (at least
/// one), the last of them: the other half is left to the applications whose bytes it moves.
#[test]
fn the_userspace_datapath_forwards_on_half_the_cpus_by_default() {
    if netns::datapath() != DatapathChoice::Userspace {
        return; // the kernel datapath has no threads
    }
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    let cpus = allowed_cpus(net.answering_pid().unwrap());
    assert_lanes(&net, (cpus.len() / 2).max(1));
}

/// On the userspace datapath every flow keeps its order both ways, whatever its frames'
/// sizes, as through the kernel's own bond; and flows spread over the forwarding threads
/// (two asked for with `--threads`).
#[test]
fn the_userspace_datapath_keeps_each_flow_in_order_and_spreads_flows_over_its_threads() {
    if netns::datapath() != DatapathChoice::Userspace {
        return; // the kernel datapath has no threads: the kernel forwards on the sender's CPU
    }
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let opts: Vec<String> = GUIDE.iter().map(|o| o.to_string()).collect();
    net.start_supervised(netns::bin(), &["eth0", "eth1"], &opts, &["--threads", "2"]).unwrap();
    settled(&net);
    assert_lanes(&net, 2);
    let pid = net.answering_pid().unwrap();
    let (host, peer) = (net.host(), net.peer());
    // Both neighbour entries first: frames queued while ARP resolves leave after later ones.
    ip(&["netns", "exec", &host, "ping", "-c", "1", "-W", "1", &PEER_IP.to_string()]);
    for (from, to, dst) in [(&host, &peer, PEER_IP), (&peer, &host, BOND_IP)] {
        let (got, late) = overtaken(&net, from, to, dst, 20_000);
        eprintln!("{from} to {to}: {got} of 20000 received, {late} after a later one");
        assert!(got >= 2_000, "{got} of 20000 passed");
        assert_eq!(late, 0, "{late} of {got} overtaken");
    }
    // 32 flows (as many source ports), 50 datagrams each, 2 ms apart: every thread takes some.
    let before = wakeups(pid);
    let flows: Vec<_> = (0..32)
        .map(|_| {
            net.in_ns(&host, || {
                let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
                for _ in 0..50 {
                    let _ = s.send_to(b"flow", (PEER_IP, 5010));
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    flows.into_iter().for_each(|f| f.join().unwrap().unwrap());
    let woke: Vec<u64> = wakeups(pid).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(woke.iter().all(|w| *w >= 10), "32 flows, wake-ups by thread: {woke:?}");
}

/// `rbond restart` re-executes the daemon in place: the same PID carries on with the same
/// active slave (even one a fresh start would not choose), failure counts and log history,
/// and on the kernel datapath not one probe packet is lost at 10,000 a second.
#[test]
fn restart_in_place_keeps_the_bond_and_its_traffic() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = prepared(&net);
    start(&mut net, GUIDE);
    settled(&net);
    net.cable_of("eth1", false).unwrap();
    wait(&net, "eth1 down", |l| l.status().unwrap().text.contains("Link Failure Count: 1"));
    net.cable_of("eth1", true).unwrap();
    settled(&net);
    let changed = rbond(&net).args(["set-active", "bond0", "eth1"]).status().unwrap();
    assert!(changed.success());
    let report = |n: &Lab| n.status().unwrap().text;
    let text = report(&net);
    assert!(text.contains("Currently Active Slave: eth1"), "{text}");
    let pid = net.daemon_pid().unwrap();
    let mut out = None;
    let p = probe(&net, 10_000, Duration::from_millis(2500), Duration::from_millis(800), || {
        out = Some(rbond(&net).args(["restart", "bond0"]).output().unwrap());
    });
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("10k pps across a restart in place: {p:?}");
    assert_eq!(p.duplicated, 0, "{p:?}");
    match netns::datapath() {
        // Frames wait in the TAP and socket queues while the binary is replaced.
        DatapathChoice::Userspace => assert!(p.lost <= 10, "{p:?}"),
        _ => assert_eq!(p.lost, 0, "{p:?}"),
    }
    assert_eq!(report(&net), text, "the report carries on unchanged");
    assert_eq!(net.status().unwrap().generation, 1);
    let lines = net.log_lines().unwrap();
    let restarted = lines.iter().position(|l| l.starts_with(&format!("bond0: restarted in place (PID {pid})")));
    let earlier = lines.iter().position(|l| l == "bond0: making interface eth1 the new active one.");
    assert!(matches!((earlier, restarted), (Some(a), Some(b)) if a < b), "history kept: {lines:?}");
    assert!(net.daemon_alive(), "the same process carries on");
    net.request(&Request::Down).unwrap();
    assert!(net.wait_daemon().unwrap().success());
    slaves_as_before(&net, &before);
}

/// A state file that cannot be read stops the start with a line naming it, and nothing is
/// touched: without it nobody knows what to put back.
#[test]
fn an_unreadable_state_file_stops_the_start_and_touches_nothing() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    killed_bond(&mut net);
    let state = net.run_dir.join("bond0.state");
    std::fs::write(&state, "{not json").unwrap();
    let links = (net.link("bond0"), net.link("eth0"), net.link("eth1"));
    let out =
        rbond(&net).args(["daemon", "--bond", "bond0", "--slaves", "eth0,eth1", "--foreground"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "rbond: {}: unreadable (key must be a string at line 1 column 2); nothing was touched (move it away to start afresh)\n",
        state.display()
    );
    assert_eq!(err, want);
    assert_eq!((net.link("bond0"), net.link("eth0"), net.link("eth1")), links);
}

/// The restart runs whatever binary is installed at the daemon's path now (an upgrade). If
/// there is none, the daemon says why and carries on as it was.
#[test]
fn restart_runs_the_installed_binary_or_carries_on() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let installed = net.run_dir.join("rbond-installed");
    std::fs::copy(netns::bin(), &installed).unwrap();
    net.start_bond(&installed, &["eth0", "eth1"], &["miimon=100".to_string()]).unwrap();
    settled(&net);
    let pid = net.daemon_pid().unwrap();
    std::fs::remove_file(&installed).unwrap();
    let out = net.rbond(netns::bin()).args(["restart", "bond0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bond0: restart failed, the daemon carries on as it was: exec") && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(get(&net, "active_slave"), "eth0");
    std::fs::copy(netns::bin(), &installed).unwrap();
    let out = net.rbond(netns::bin()).args(["restart", "bond0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(), installed, "runs the new file");
    settled(&net);
    assert_eq!(get(&net, "active_slave"), "eth0");
}

/// On kernels before tcx (6.6) the kernel datapath runs the same programs as cls_bpf filters on
/// clsact (`--datapath kernel-tc` here): it forwards and fails over, and shares the qdisc
/// politely: a filter someone else put there stays, rbond's filters go with the bond, and the
/// qdisc it found is left in place.
#[test]
fn cls_bpf_filters_share_clsact_with_others() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let h = net.host();
    let tc = |args: &[&str]| {
        let out = std::process::Command::new("tc").args(["-n", &h]).args(args).output().unwrap();
        assert!(out.status.success(), "tc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Someone else's classic BPF filter (it matches nothing) on eth0's ingress, at pref 1.
    tc(&["qdisc", "add", "dev", "eth0", "clsact"]);
    tc(&["filter", "add", "dev", "eth0", "ingress", "pref", "1", "protocol", "all", "bpf", "bytecode", "1,6 0 0 0,"]);
    let opts = ["miimon=100".to_string(), "primary=eth0".to_string()];
    net.start_supervised(netns::bin(), &["eth0", "eth1"], &opts, &["--datapath", "kernel-tc"]).unwrap();
    let mut cmd_datapath = net.log_lines().unwrap();
    cmd_datapath.retain(|l| l.starts_with("bond0: datapath: "));
    settled(&net);
    let p =
        probe(&net, 1000, Duration::from_secs(2), Duration::from_millis(700), || net.cable_of("eth0", false).unwrap());
    assert!(p.outage <= Duration::from_millis(150) && p.duplicated == 0, "{p:?}");
    let filters = tc(&["filter", "show", "dev", "eth0", "ingress"]);
    assert!(filters.contains("pref 1 bpf") && filters.contains("pref 2829 bpf"), "{filters}");
    assert!(tc(&["filter", "show", "dev", "bond0", "egress"]).contains("rbond_bond_out"));
    net.request(&Request::Down).unwrap();
    net.wait_daemon().unwrap();
    let filters = tc(&["filter", "show", "dev", "eth0", "ingress"]);
    assert!(filters.contains("pref 1 bpf") && !filters.contains("pref 2829"), "only ours went: {filters}");
    assert!(tc(&["qdisc", "show", "dev", "eth0"]).contains("clsact"), "the qdisc it found is still there");
    assert_eq!(cmd_datapath, ["bond0: datapath: kernel (BPF redirects, cls_bpf on clsact)"]);
}
