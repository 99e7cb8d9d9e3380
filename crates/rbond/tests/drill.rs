//! `rbond drill` end to end: its verdicts, its cleanup, and its refusals.

mod netns;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netns::{Cpu, begin, bin};
use serde_json::Value;

fn leftovers(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("rbd{pid}x");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(&prefix)).map(str::to_string).collect()
}

fn drill_json(extra: &[&std::ffi::OsStr]) -> (u32, Output) {
    let child = Command::new(bin())
        .args(["drill", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// Where `drill_stanza` writes its file.
fn stanza_file() -> std::path::PathBuf {
    let dir = format!("rbond-drill-cfg-{}-{:?}", std::process::id(), std::thread::current().id());
    std::env::temp_dir().join(dir).join("interfaces")
}

/// `rbond drill --json --config` on a file holding `stanza`.
fn drill_stanza(stanza: &str) -> Output {
    let cfg = stanza_file();
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, stanza).unwrap();
    let out = Command::new(bin()).args(["drill", "--json", "--config"]).arg(&cfg).output().unwrap();
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
    out
}

fn parsed(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn check_report(out: &Output) -> Value {
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    let steps = r["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "guide checks",
            "ifenslave -c bond0 eth0",
            "ifenslave -d bond0 eth0",
            "ifenslave bond0 eth0",
            "ifenslave -c bond0 eth0",
            "ifenslave -d bond0 eth1",
            "ifenslave bond0 eth1",
            "ifenslave -c bond0 eth1",
            "ifenslave -c bond0 eth0",
            "pull eth1",
            "replug eth1",
            "pull eth0",
            "replug eth0",
            "kill -9 the daemon",
        ]
    );
    for s in steps {
        assert_eq!(s["passed"], true, "{s:#}");
        assert_eq!(s["duplicated"], 0, "{s:#}");
        assert_eq!(s["active_after"], s["expected_active"], "{s:#}");
        assert!(s["outage_ms"].as_f64().unwrap() <= s["expected_outage_ms"].as_f64().unwrap(), "{s:#}");
        assert!(s["sent"].as_u64().unwrap() > 300, "traffic ran through every step: {s:#}");
    }
    let pull = &steps[11];
    assert_eq!((pull["active_before"].as_str(), pull["active_after"].as_str()), (Some("eth0"), Some("eth1")));
    let log = pull["log"].as_array().unwrap();
    assert_eq!(log.last().unwrap(), "bond0: making interface eth1 the new active one.");
    let kill = &steps[13];
    assert_eq!((kill["active_before"].as_str(), kill["active_after"].as_str()), (Some("eth0"), Some("eth0")));
    let adopted = kill["log"].as_array().unwrap().iter().filter_map(|l| l.as_str());
    assert!(adopted.into_iter().any(|l| l.starts_with("bond0: adopting the bond left by PID ")), "{kill:#}");
    assert_eq!(r["passed"], true);
    assert_eq!(out.status.code(), Some(0));
    r
}

/// The drill passes, leaves nothing behind, and draws itself: a self-contained SVG with every
/// step, the pull's outage, and a mark per log line.
#[test]
fn the_drill_passes_every_step_and_leaves_nothing_behind() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let svg = std::env::temp_dir().join(format!("rbond-drill-{}.svg", std::process::id()));
    let (pid, out) = drill_json(&["--svg".as_ref(), svg.as_os_str()]);
    let r = check_report(&out);
    assert_eq!(leftovers(pid), Vec::<String>::new());
    assert_eq!(r["peer"], "10.77.0.2");
    let outage = r["steps"][11]["outage_ms"].as_f64().unwrap();
    assert!((150.0..=320.0).contains(&outage), "pulling the active costs the 200 ms downdelay: {outage}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{picture}");
    assert!(picture.ends_with("</svg>\n"));
    assert_eq!(picture.matches("http").count(), 1, "nothing fetched: only the namespace names a URL");
    assert_eq!(picture.matches("<g").count(), picture.matches("</g>").count(), "groups closed");
    let steps = r["steps"].as_array().unwrap();
    for (i, s) in steps.iter().enumerate() {
        let step = s["step"].as_str().unwrap();
        assert!(picture.contains(&format!("<title>{}. {step}</title>", i + 1)), "step {step} drawn");
    }
    let outage = steps[11]["outage_ms"].as_f64().unwrap();
    assert!(picture.contains(&format!(">{outage:.0} ms</text>")), "the pull's outage is written on the chart");
    let lines: usize = steps.iter().map(|s| s["log"].as_array().unwrap().len()).sum();
    assert_eq!(picture.matches("<circle").count(), lines, "a mark per log line of the steps");
}

#[test]
fn two_drills_at_once_do_not_collide() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let a = std::thread::spawn(|| drill_json(&[]));
    let b = std::thread::spawn(|| drill_json(&[]));
    for (pid, out) in [a.join().unwrap(), b.join().unwrap()] {
        check_report(&out);
        assert_eq!(leftovers(pid), Vec::<String>::new());
    }
}

#[test]
fn an_interrupted_drill_removes_its_network() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let child = Command::new(bin()).arg("drill").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // Wait until it is in the middle of its steps.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while leftovers(pid).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(!leftovers(pid).is_empty(), "the drill built its network");
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "rbond drill: interrupted; the test network has been removed\n");
    assert_eq!(leftovers(pid), Vec::<String>::new());
    let stale = Command::new("pgrep").args(["-f", &format!("rbd{pid}x")]).output().unwrap();
    assert!(stale.stdout.is_empty(), "no daemon left running: {}", String::from_utf8_lossy(&stale.stdout));
}

#[test]
fn the_drill_refuses_to_run_without_root() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .arg("drill")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "rbond drill: must run as root (it creates network namespaces)\n");
}

/// Another stanza: no primary, no delays, slaves listed eth1 first. The expectations follow
/// the configuration: eth1 starts active, nothing takes it back, a pull costs ~nothing.
#[test]
fn the_drill_judges_another_stanza_by_its_own_settings() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let r = parsed(&drill_stanza(
        "auto bond0\niface bond0 inet manual\n    bond-slaves eth1 eth0\n    bond-mode active-backup\n    bond-miimon 50\n",
    ));
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(r["options"], serde_json::json!(["miimon=50", "mode=active-backup"]));
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[0]["active_after"], "eth1");
    assert_eq!(steps[12]["expected_active"], "eth1", "no primary takes the bond back");
    assert_eq!(steps[11]["expected_outage_ms"], 100, "miimon 50 + 50 ms slack");
    let out = drill_stanza("iface bond0 inet manual\n    bond-slaves eth2\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "rbond drill: {}:1: the drill's host has eth0 and eth1; bond0 has [\"eth2\"]\n",
            stanza_file().display()
        )
    );
}

/// A stanza that puts the bond in a bridge (`bridge_ports bond0`): the drill builds the bridge
/// with a VM behind it and judges the VM's reachability from the peer at every step too.
#[test]
fn the_drill_drills_a_vm_behind_a_bridge_on_the_bond() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let r = parsed(&drill_stanza(
        "auto bond0\niface bond0 inet manual\n    bond-slaves eth0 eth1\n    bond-mode active-backup\n    \
         bond-miimon 100\n    bond-primary eth0\n\n\
         auto br0\niface br0 inet static\n    address 10.77.0.1/24\n    bridge_ports bond0\n    bridge_stp off\n",
    ));
    assert_eq!(r["passed"], true, "{r:#}");
    let steps = r["steps"].as_array().unwrap();
    for s in steps {
        let (lost, outage) = (s["vm_lost"].as_u64(), s["vm_outage_ms"].as_f64());
        assert!(lost.is_some() && outage.unwrap() <= s["expected_vm_outage_ms"].as_f64().unwrap(), "{s:#}");
    }
    assert_eq!(steps[2]["active_after"], "eth1", "ifenslave -d of the active: the VM follows to eth1");
}

/// An `inet6 static` stanza with the NS monitor: the drill runs over IPv6 alone (no IPv4
/// address on bond0 or the peer), and the pull of the active costs what the monitor's
/// intervals allow, detected by neighbour solicitations.
#[test]
fn the_drill_passes_on_an_ipv6_only_stanza_with_the_ns_monitor() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let out = drill_stanza(
        "auto bond0\niface bond0 inet6 static\n    address 2001:db8:77::1/64\n    bond-slaves eth0 eth1\n    \
         bond-mode active-backup\n    bond-arp-interval 100\n    bond-ns-ip6-target 2001:db8:77::2\n    \
         bond-arp-validate all\n    bond-primary eth0\n",
    );
    let r = check_report(&out);
    assert_eq!(r["peer"], "2001:db8:77::2", "probed over IPv6");
    let pull = &r["steps"][11];
    assert_eq!(pull["expected_outage_ms"], 450, "(arp_missed_max 2 + 2) intervals of 100 ms + 50 ms slack");
    let outage = pull["outage_ms"].as_f64().unwrap();
    assert!(outage >= 150.0, "the NS monitor, not carrier, found the pull: {outage} ms");
    let log = r["log"].as_array().unwrap();
    assert_eq!(log[0], "ARP monitoring set to 100 ms, validate all, with 1 target(s): 2001:db8:77::2");
}
