//! What real networks and operators do to a bond: flapping links, both links lost, bond0
//! removed from under the daemon, abusive clients and hostile frames (the daemon killed at
//! random moments is `outlive.rs`). Each scenario checks traffic (loss, duplicates) and the bond's state.

mod netns;

use std::time::Duration;

use netns::{Cpu, Lab, Rng, Wiring, begin, get, lab, probe, settled, slaves_state, start, wait};
use rbond::control::Request;

const GUIDE: &[&str] = &["mode=1", "miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn slave<'a>(s: &'a rbond::control::Status, name: &str) -> &'a rbond_core::SlaveReport {
    s.report.slaves.iter().find(|s| s.name == name).unwrap()
}

/// The active slave's cable flaps 300 times at random intervals (1–30 ms here; `FLAPS` and
/// `FLAP_MAX_MS` ask for a longer soak) under traffic, with no delays so that every flap is a
/// real failover and back. Afterwards the bond is consistent, every committed down was
/// counted, nothing was duplicated, and memory stayed flat.
#[test]
fn flapping_leaves_the_bond_consistent() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let flaps: u64 = std::env::var("FLAPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let max_ms: u64 = std::env::var("FLAP_MAX_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["mode=1", "miimon=100", "primary=eth0"]);
    settled(&net);
    let pid = net.answering_pid().expect("daemon pid");
    let rss_before = rss_kb(pid);
    let mut rng = Rng(0x5eed_cafe);
    let p = probe(&net, 1000, Duration::ZERO, Duration::ZERO, || {
        for i in 0..flaps {
            net.cable_of("eth0", i % 2 == 1).unwrap();
            std::thread::sleep(Duration::from_millis(1 + rng.below(max_ms)));
        }
        net.cable_of("eth0", true).unwrap();
        std::thread::sleep(Duration::from_millis(800));
    });
    settled(&net);
    // Read before the history is asked for below: serving 1,500 log lines at once is a
    // moment's heap the allocator keeps, which says nothing of what the flapping left.
    let rss_after = rss_kb(pid);
    let r = net.status().unwrap();
    assert_eq!(r.report.active_slave.as_deref(), Some("eth0"), "the primary is back in charge");
    let downs = net
        .log_lines()
        .unwrap()
        .iter()
        .filter(|l| *l == "bond0: link status definitely down for interface eth0, disabling it")
        .count();
    assert_eq!(slave(&r, "eth0").link_failure_count, downs as u32, "every committed down counted once");
    assert!(downs as u64 >= flaps / 4, "flaps became failovers: {downs}");
    assert_eq!(p.duplicated, 0, "{p:?}");
    assert!(rss_after <= rss_before + 1024, "memory flat: {rss_before} kB before, {rss_after} kB after");
    eprintln!("flapping: {flaps} toggles, {downs} committed downs, {p:?}, RSS {rss_before} → {rss_after} kB");
}

/// Both links lost: no active interface and no carrier; one back: it skips its updelay.
#[test]
fn both_down_then_one_back() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, GUIDE);
    settled(&net);
    net.cable_of("eth0", false).unwrap();
    net.cable_of("eth1", false).unwrap();
    wait(&net, "no carrier", |n| get(n, "mii_status") == "down");
    assert!(net.log_lines().unwrap().contains(&"bond0: now running without any active interface !".to_string()));
    assert!(!has_carrier(&net), "bond0 has no carrier");
    net.cable_of("eth1", true).unwrap();
    wait(&net, "eth1 active", |n| get(n, "active_slave") == "eth1");
    let lines = net.log_lines().unwrap();
    let tail: Vec<&str> = lines.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "bond0: link status up for interface eth1, enabling it in 0 ms.",
            "bond0: link status definitely up for interface eth1.",
            "bond0: making interface eth1 the new active one.",
            "bond0: first active interface up!",
        ]
    );
    let p = probe(&net, 200, Duration::from_millis(500), Duration::ZERO, || {});
    assert!(p.lost <= 1, "traffic resumed: {p:?}");
}

/// Whether bond0 reports a carrier (LOWER_UP) to the host.
fn has_carrier(net: &Lab) -> bool {
    let out =
        std::process::Command::new("ip").args(["-n", &net.host(), "-j", "link", "show", "bond0"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("LOWER_UP")
}

/// Someone else sets bond0 down (traffic stops) and up (it resumes), then deletes it: the
/// daemon restores the slaves and exits with a line saying why.
#[test]
fn bond0_set_down_or_deleted_by_someone_else() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = slaves_state(&net);
    start(&mut net, GUIDE);
    settled(&net);
    netns::ip(&["-n", &net.host(), "link", "set", "bond0", "down"]);
    let p = probe(&net, 200, Duration::from_millis(500), Duration::ZERO, || {});
    assert_eq!(p.lost, p.sent, "bond0 down: nothing passes");
    netns::ip(&["-n", &net.host(), "link", "set", "bond0", "up"]);
    netns::ip(&["-n", &net.host(), "addr", "replace", "10.77.0.1/24", "dev", "bond0"]);
    let p = probe(&net, 200, Duration::from_millis(500), Duration::from_millis(300), || {});
    assert!(p.lost < p.sent / 2, "bond0 up again: traffic resumes: {p:?}");
    netns::ip(&["-n", &net.host(), "link", "del", "bond0"]);
    let status = net.wait_daemon().unwrap();
    assert!(status.success());
    assert!(
        net.daemon_stderr().contains("bond0: the bond device was deleted; restoring slaves and exiting"),
        "{}",
        net.daemon_stderr()
    );
    let after = slaves_state(&net);
    assert_eq!(after, before, "slaves restored");
}

/// The control socket: root only (a non-root client is refused), and 1,000 clients at once,
/// some hanging up without a word, all get an answer while traffic keeps flowing.
#[test]
fn the_control_socket_serves_a_crowd_and_refuses_strangers() {
    use std::io::{BufRead, Write};
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    let sock = rbond::control::socket_path(&net.run_dir, "bond0");
    let stranger = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(netns::bin())
        .arg("--run-dir")
        .arg(&net.run_dir)
        .args(["status", "bond0"])
        .output()
        .unwrap();
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let sock2 = sock.clone();
    let p = probe(&net, 500, Duration::from_secs(3), Duration::ZERO, move || {
        let clients: Vec<_> = (0..1000)
            .map(|i| {
                let sock = sock2.clone();
                std::thread::spawn(move || {
                    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    if i % 10 == 0 {
                        return true; // hangs up without asking
                    }
                    s.write_all(b"{\"cmd\":\"get\",\"option\":\"mode\"}\n").unwrap();
                    let mut line = String::new();
                    std::io::BufReader::new(s).read_line(&mut line).unwrap();
                    line.contains("active-backup 1")
                })
            })
            .collect();
        let answered = clients.into_iter().map(|c| c.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(answered, 1000);
    });
    assert!(p.lost <= 2 && p.duplicated == 0, "forwarding went on: {p:?}");
    assert_eq!(get(&net, "mode"), "active-backup 1");
}

/// Frames no one should send: truncated and garbage frames, ARP with bogus lengths or
/// opcodes, forged replies from a stranger, and a flood of ARP on the backup. Nothing
/// crashes, the validating ARP monitor is not fooled, no failover happens, and the status
/// report counts what was refused and what did not parse.
#[test]
fn hostile_frames_change_nothing() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["arp_interval=100", "arp_ip_target=10.77.0.2", "arp_validate=all", "primary=eth0"]);
    settled(&net);
    let lines_before = net.log_lines().unwrap().len();
    // The peer is silenced: only forged frames arrive now. eth0 must go down, and nothing
    // forged may bring it (or eth1) back.
    netns::ip(&["-n", &net.peer(), "link", "set", "eth0", "down"]);
    let switch = net.switch_of("eth0");
    let inject = net.in_ns(&switch, move || {
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0);
        let send = |port: &str, frame: &[u8]| {
            let idx = nix::net::if_::if_nametoindex(port).unwrap();
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = idx as i32;
            sll.sll_halen = 6;
            unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const sll).cast(),
                    std::mem::size_of_val(&sll) as u32,
                )
            };
        };
        let stranger = rbond_core::Mac([2, 0, 0, 0, 0x66, 0x66]);
        let mut rng = Rng(7);
        for i in 0..3000u32 {
            let port = if i % 2 == 0 { "h0" } else { "h1" };
            // A reply to our address from an address that is no target: forged.
            let mut forged =
                rbond::net::frames::arp_probe(stranger, "10.77.0.66".parse().unwrap(), "10.77.0.1".parse().unwrap());
            forged[rbond::net::frames::VNET_HDR_LEN + 21] = 2; // op: reply
            send(port, &forged[rbond::net::frames::VNET_HDR_LEN..]);
            let mut bogus = forged[rbond::net::frames::VNET_HDR_LEN..].to_vec();
            bogus[18] = 255; // hardware address length
            send(port, &bogus);
            let garbage: Vec<u8> = (0..(14 + rng.below(200) as usize)).map(|_| rng.below(256) as u8).collect();
            send(port, &garbage);
            send(port, &forged[rbond::net::frames::VNET_HDR_LEN..rbond::net::frames::VNET_HDR_LEN + 20]); // truncated ARP
        }
        unsafe { libc::close(fd) };
    });
    inject.join().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let r = net.status().unwrap();
    for s in ["eth0", "eth1"] {
        assert_ne!(slave(&r, s).mii_status, "up", "{s}: forged replies must not keep it up");
    }
    let lines = net.log_lines().unwrap();
    assert!(!lines[lines_before..].iter().any(|l| l.contains("definitely up")), "no false recovery: {lines:#?}");
    assert_eq!(get(&net, "mode"), "active-backup 1", "the daemon is alive");
    // 3,000 forged replies and 6,000 unparseable ARP frames went out, half to each slave.
    let total =
        |count: fn(&rbond_core::SlaveReport) -> u64| ["eth0", "eth1"].iter().map(|s| count(slave(&r, s))).sum::<u64>();
    let (rejected, bad) = (total(|s| s.arp_rejected), total(|s| s.bad_frames));
    // (Plus a few of the bond's own probes relayed back before the peer went quiet.)
    assert!((2500..=3100).contains(&rejected), "forged replies refused: {rejected}");
    assert!((5000..=6000 + 3000).contains(&bad), "unparseable frames: {bad}");
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clients that ask for a lot and hang up without reading (or a follower killed mid-line)
/// are dropped: the daemon goes back to idle instead of spinning on their dead sockets.
#[test]
fn clients_that_hang_up_unread_leave_the_daemon_idle() {
    use std::io::Write;
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["miimon=100"]);
    // History for the events replies to be large.
    for _ in 0..20 {
        net.request(&Request::SetActive { slave: "eth1".into() }).unwrap();
        net.request(&Request::SetActive { slave: "eth0".into() }).unwrap();
    }
    let sock = rbond::control::socket_path(&net.run_dir, "bond0");
    for _ in 0..20 {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        for _ in 0..50 {
            s.write_all(b"{\"cmd\":\"events\",\"follow\":false}\n").unwrap();
        }
    }
    let mut follower = rbond::lab::Lab::rbond(&net, netns::bin())
        .args(["events", "bond0", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = follower.kill();
    let _ = follower.wait();
    // Answering a thousand requests takes a moment (more in a debug build); then the daemon
    // must go idle. A second is 100 ticks: idle is 0–1, the defect kept a CPU busy (~100).
    let pid = net.daemon_pid().unwrap();
    let mut windows = Vec::new();
    for _ in 0..10 {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(1));
        windows.push(cpu_ticks(pid) - before);
        if windows.last() <= Some(&3) {
            break;
        }
    }
    eprintln!("daemon CPU per second after the clients went, in ticks: {windows:?}");
    assert!(windows.last() <= Some(&3), "the daemon stays busy: {windows:?} ticks per second");
    assert_eq!(get(&net, "mode"), "active-backup 1", "and still answers");
}
