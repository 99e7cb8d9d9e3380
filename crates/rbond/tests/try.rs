//! `rbond try` on a live remote host: kept when confirmed, rolled back exactly (the session
//! alive) when not confirmed, when the terminal that typed it is gone, or when the new bond
//! cannot reach its gateway; a running bond's changed options and slaves undone the same way;
//! refused before anything changes on bad input or while another try is pending.

mod netns;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netns::remote::{STANZA, Session, remote_host, same_as, snapshot};
use netns::{Cpu, Lab, Wiring, begin, lab, rbond};

/// Starts `rbond try bond0` on `file` and returns once it says the file is applied.
fn start_try(net: &Lab, file: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = rbond(net)
        .args(["try", "bond0", "-i"])
        .arg(file)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    (child, first)
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_with(net: &Lab, text: &str) -> std::path::PathBuf {
    let file = net.run_dir.join("interfaces");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn a_confirmed_try_stays_and_a_second_one_waits_its_turn() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let file = file_with(&net, STANZA);
    let (first, said) = start_try(&net, &file, &["--timeout", "30"]);
    assert!(
        said.starts_with("bond0: applied; keep it with `rbond try --confirm bond0` (or Enter here) within 30 s"),
        "{said}"
    );
    let again = rbond(&net).args(["try", "bond0", "-i"]).arg(&file).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "rbond: bond0: a try is pending; keep it with `rbond try --confirm bond0`, or wait for it to roll back\n"
    );
    let ok = rbond(&net).args(["try", "--confirm", "bond0"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "bond0: confirmed; the configuration stays\n");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bond0: rbond try: confirmed; the configuration stays\n");
    assert_eq!(net.addrs("bond0"), ["10.77.0.1/24", "2001:db8:77::1/64"], "the bond stays");
}

/// Nobody confirms, and the terminal that typed `rbond try` is killed: the detached watcher
/// rolls back when the time is up, the session lives, and the host is as it was.
#[test]
fn an_unconfirmed_try_is_rolled_back_even_when_its_terminal_is_gone() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    let session = Session::v4(&net);
    let file = file_with(&net, STANZA);
    let (mut first, _) = start_try(&net, &file, &["--timeout", "3"]);
    assert!(net.link("bond0").is_some());
    first.kill().unwrap();
    let _ = first.wait();
    let said = "bond0: rbond try: rolled back (not confirmed in time); the host is configured as before";
    let log = || std::fs::read_to_string(net.run_dir.join("bond0.try.log")).unwrap_or_default();
    wait_for("the rollback", Duration::from_secs(10), || log().lines().any(|l| l == said));
    assert!(net.link("bond0").is_none(), "the bond is gone");
    std::thread::sleep(Duration::from_millis(300));
    let trips = session.close();
    eprintln!("{} messages, longest round trip {:?}", trips.len(), trips.iter().map(|t| t.1).max());
    same_as(&before, &snapshot(&net));
}

/// A stanza whose only slave has no cable (and whose gateway replaces eth0's): the bond cannot
/// reach its gateway, so the watcher rolls back within the grace period, not at the timeout.
#[test]
fn a_try_that_cuts_the_host_off_is_rolled_back_within_the_grace_period() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    net.cable_of("eth1", false).unwrap();
    let session = Session::v4(&net);
    let file = file_with(&net, &STANZA.replace("bond-slaves eth0 eth1", "bond-slaves eth1"));
    let started = Instant::now();
    let (first, _) = start_try(&net, &file, &["--timeout", "60", "--grace", "2"]);
    let out = first.wait_with_output().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rbond: bond0: rbond try: rolled back (10.77.0.2 did not answer through bond0 within 2 s); the host is configured as before\n"
    );
    assert!(took < Duration::from_secs(10), "rolled back after {took:?}, not at the 60 s timeout");
    let trips = session.close();
    // A link-local address comes back with the carrier, not before.
    net.cable_of("eth1", true).unwrap();
    eprintln!("{} messages, longest round trip {:?}", trips.len(), trips.iter().map(|t| t.1).max());
    same_as(&before, &snapshot(&net));
}

/// An NS target nobody answers for counts as a gateway that does not answer: the watcher rolls
/// back within the grace period and names it.
#[test]
fn a_try_whose_ns_target_does_not_answer_is_rolled_back() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    let stanza =
        STANZA.replace("    bond-primary eth0\n", "    bond-primary eth0\n    bond-ns-ip6-target 2001:db8:77::99\n");
    let (first, _) = start_try(&net, &file_with(&net, &stanza), &["--timeout", "60", "--grace", "2"]);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rbond: bond0: rbond try: rolled back (2001:db8:77::99 did not answer through bond0 within 2 s); the host is configured as before\n"
    );
    same_as(&before, &snapshot(&net));
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    let refused = |text: &str| {
        let file = file_with(&net, text);
        let out = rbond(&net).args(["try", "bond0", "-i"]).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(net.link("bond0").is_none(), "nothing was applied");
        String::from_utf8_lossy(&out.stderr).replace(&file.display().to_string(), "FILE")
    };
    let typo = refused(&STANZA.replace("bond-miimon 100", "bond-miimonn 100"));
    assert!(typo.starts_with("rbond: FILE:6: unknown option bond-miimonn (did you mean bond-miimon?)"), "{typo}");
    assert_eq!(refused(&STANZA.replace("eth0 eth1", "eth0 eth9")), "rbond: FILE:1: eth9: no such interface\n");
    same_as(&before, &snapshot(&net));
}

/// `--dry-run` says, as `ip` commands, what `rbond up` and `rbond try` would do to the host
/// (here: convert eth0 in place, enslave eth1, apply the stanza's addresses) and does none of it.
#[test]
fn a_dry_run_prints_the_commands_and_changes_nothing() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    let mac = net.link("eth0").unwrap().1;
    let file = file_with(&net, STANZA);
    let expected = format!(
        "# bond0: rbond's TAP device; rbond's BPF programs forward between it and the active slave
ip tuntap add dev bond0 mode tap vnet_hdr
# eth0: converted in place (it carries the host's addresses); it stays up
ip link set dev bond0 address {mac} up
ip addr add 10.77.0.1/24 dev bond0
ip -6 addr add 2001:db8:77::1/64 dev bond0 nodad
ip route replace default via 10.77.0.2 dev bond0
ip -6 route replace default via 2001:db8:77::2 metric 1024 dev bond0
ip rule add priority 1000 oif bond0 lookup 254
ip rule del priority 1000 oif eth0 lookup 254
ip addr del 10.77.0.1/24 dev eth0
ip -6 addr del 2001:db8:77::1/64 dev eth0
sysctl -w net.ipv6.conf.eth0.disable_ipv6=1
# eth1: enslaved
ip link set dev eth1 down
sysctl -w net.ipv6.conf.eth1.disable_ipv6=1
ip link set dev eth1 up
# bond0: the stanza's addresses and gateways; other addresses of those families go
ip addr replace 10.77.0.1/24 dev bond0
ip -6 addr replace 2001:db8:77::1/64 dev bond0
ip route replace default via 10.77.0.2 dev bond0
ip -6 route replace default via 2001:db8:77::2 dev bond0
"
    );
    for cmd in ["up", "try"] {
        let out = rbond(&net).args([cmd, "bond0", "--dry-run", "-i"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "rbond {cmd} --dry-run");
    }
    assert!(net.link("bond0").is_none(), "nothing was applied");
    same_as(&before, &snapshot(&net));
}

/// A running bond tried with other options and fewer slaves, not confirmed: it gets exactly
/// its own options and slaves back, and the session through it never notices. An NS target
/// the bond has already is left alone (each target option is read for its own targets).
#[test]
fn a_running_bonds_changes_are_undone_without_confirmation() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let with_target = |text: &str| text.replace("bond-miimon", "bond-ns-ip6-target 2001:db8:77::2\n    bond-miimon");
    let file = file_with(&net, &with_target(STANZA));
    let up = rbond(&net).args(["up", "bond0", "-i"]).arg(&file).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let before = snapshot(&net);
    let get = |o: &str| net.get(o).unwrap();
    let was = [get("miimon"), get("updelay"), get("slaves")];
    let session = Session::v4(&net);
    let changed = with_target(STANZA)
        .replace("bond-miimon 100", "bond-miimon 50\n    bond-updelay 100")
        .replace("bond-slaves eth0 eth1", "bond-slaves eth0");
    let file = file_with(&net, &changed);
    let (first, said) = start_try(&net, &file, &["--timeout", "3"]);
    assert!(said.starts_with("bond0: applied;"), "{said}");
    assert_eq!([get("miimon"), get("updelay"), get("slaves")], ["50", "100", "eth0"]);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rbond: bond0: rbond try: rolled back (not confirmed in time); the host is configured as before\n"
    );
    assert_eq!([get("miimon"), get("updelay"), get("slaves")], was, "the bond's own options and slaves");
    assert_eq!(get("ns_ip6_target"), "2001:db8:77::2");
    let trips = session.close();
    let worst = trips.iter().map(|t| t.1).max().unwrap_or_default();
    eprintln!("{} messages, longest round trip {worst:?}", trips.len());
    assert!(worst < Duration::from_millis(100), "the session stalled for {worst:?}");
    same_as(&before, &snapshot(&net));
}

/// Enter on the terminal that typed `rbond try` keeps the configuration (the terminal here is
/// a pseudo-terminal from util-linux's `script`).
#[test]
fn enter_on_the_terminal_confirms() {
    use std::io::{Read, Write};
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let file = file_with(&net, STANZA);
    let typed = format!(
        "ip netns exec {} {} --run-dir {} --bpffs {} try bond0 -i {} --timeout 30",
        net.host(),
        netns::bin().display(),
        net.run_dir.display(),
        net.bpffs.display(),
        file.display()
    );
    let mut term = std::process::Command::new("script")
        .args(["-qec", &typed, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut out = term.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !seen.contains("bond0: applied;") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "rbond try ended first: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    term.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let status = term.wait().unwrap();
    out.read_to_string(&mut seen).unwrap();
    assert!(status.success(), "{seen}");
    assert!(seen.contains("bond0: rbond try: confirmed; the configuration stays"), "{seen}");
    assert_eq!(net.addrs("bond0"), ["10.77.0.1/24", "2001:db8:77::1/64"], "the bond stays");
}
