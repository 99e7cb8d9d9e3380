//! The bond outlives its daemon: killed, crashed, silent or caught mid-restart, the daemon
//! is replaced by its supervisor and the new one adopts the running bond; forwarding on the
//! kernel datapath never stops, and bond0 keeps its addresses and routes throughout.

mod netns;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use netns::{Cpu, DatapathChoice, Lab, Rng, Wiring, begin, bin, get, lab, settled, slaves_state, wait};

const GUIDE: &[&str] = &["mode=active-backup", "miimon=100", "primary=eth0"];

fn opts(o: &[&str]) -> Vec<String> {
    o.iter().map(|s| s.to_string()).collect()
}

/// bond0 under `rbond supervise` (with these arguments of its own), settled, with an IPv6
/// address and a route besides the lab's IPv4 address.
fn supervised(net: &mut Lab, o: &[&str], args: &[&str]) {
    if let Err(e) = net.start_supervised(bin(), &["eth0", "eth1"], &opts(o), args) {
        panic!("{e}: {}", net.daemon_stderr());
    }
    wait(net, "an active slave", |l| !get(l, "active_slave").is_empty());
    settled(net);
    let h = net.host();
    netns::ip(&["-n", &h, "addr", "add", "2001:db8:77::1/64", "dev", "bond0", "nodad"]);
    netns::ip(&["-n", &h, "route", "add", "198.51.100.0/24", "via", "10.77.0.2"]);
}

/// bond0's addresses and routes, as `ip` prints them.
fn addressing(net: &Lab) -> String {
    let out = |args: &[&str]| {
        let o = std::process::Command::new("ip").args(["-n", &net.host()]).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let routes = out(&["route", "show", "dev", "bond0"]).replace(" linkdown", "");
    format!("{}{}{routes}", out(&["-br", "addr", "show", "bond0"]), out(&["-6", "route", "show", "dev", "bond0"]))
}

fn kill(pid: u32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Waits until a daemon other than `old` answers, and returns how long that took.
fn adopted(net: &Lab, old: u32, since: Instant) -> (u32, Duration) {
    wait(net, "a new daemon", |l| l.answering_pid().is_some_and(|p| p != old));
    (net.answering_pid().unwrap(), since.elapsed())
}

/// SIGKILL under a 2,000 packets/s probe: not one packet lost, bond0 keeps its addresses and
/// routes, the supervisor's new daemon adopts the bond with the same active slave, and
/// `rbond down` afterwards restores both slaves.
#[test]
fn a_killed_daemon_loses_no_packet_and_is_adopted() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = slaves_state(&net);
    supervised(&mut net, GUIDE, &[]);
    let addressing_before = addressing(&net);
    let old = net.answering_pid().unwrap();
    let mut took = None;
    let p = netns::probe(&net, 2000, Duration::from_secs(3), Duration::from_secs(1), || {
        let t = Instant::now();
        kill(old, Signal::SIGKILL);
        took = Some(adopted(&net, old, t));
    });
    let (new, took) = took.unwrap();
    eprintln!("SIGKILL at 2k pps: {p:?}, adopted in {took:?}");
    match netns::datapath() {
        DatapathChoice::Userspace => assert!(p.lost < 2000, "{p:?}"),
        _ => assert_eq!(p.lost, 0, "{p:?}"),
    }
    assert_eq!(addressing(&net), addressing_before);
    assert_eq!(get(&net, "active_slave"), "eth0");
    let lines = net.log_lines().unwrap();
    let line = format!("bond0: adopting the bond left by PID {old} (");
    assert!(lines.iter().any(|l| l.starts_with(&line)), "{lines:#?}");
    assert_eq!(net.status().unwrap().adoptions, 1);
    assert_ne!(new, old);
    let out = netns::rbond(&net).args(["down", "bond0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(slaves_state(&net), before, "slaves restored after an adoption");
    assert!(net.link("bond0").is_none(), "bond0 deleted");
    assert!(net.wait_daemon().unwrap().success(), "the supervisor exits 0 after `rbond down`");
}

/// Median and maximum, for the README's figures.
fn spread(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// 50 SIGKILLs at random moments under 10,000 packets/s, a third of them just as the active
/// slave's cable is pulled (mid-failover): while the active slave's link is up not one packet
/// is lost, bond0's addresses and routes never change, and each time the supervisor's new
/// daemon adopts the bond within a second. A kill mid-failover still ends on eth1.
#[test]
fn fifty_kills_at_random_moments_lose_nothing() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    if netns::datapath() == DatapathChoice::Userspace {
        return; // forwarding without a process is the kernel datapath's (see below for userspace)
    }
    let mut net = lab(Wiring::OneSwitch);
    netns::ip(&["-n", &net.host(), "link", "set", "eth1", "mtu", "1400"]);
    let before = slaves_state(&net);
    supervised(&mut net, GUIDE, &["--min-uptime", "0.2"]);
    let addressing_before = addressing(&net);
    let _echo = net.echo().unwrap();
    let probe = net.probe(10_000);
    let mut rng = Rng(0xdead_beef);
    // Stretches of the probe in which the active slave's link was up throughout.
    let mut link_up: Vec<(Duration, Duration)> = Vec::new();
    let mut gaps = Vec::new();
    let mut kills = Vec::new();
    for round in 0..50 {
        let from = probe.elapsed();
        std::thread::sleep(Duration::from_millis(200 + rng.below(300)));
        let old = net.answering_pid().unwrap();
        let mid_failover = round % 3 == 0;
        if mid_failover {
            link_up.push((from, probe.elapsed()));
            net.cable_of("eth0", false).unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
        let t = Instant::now();
        kills.push(probe.elapsed());
        kill(old, Signal::SIGKILL);
        let (_, took) = adopted(&net, old, t);
        gaps.push(took);
        assert!(took < Duration::from_secs(1), "round {round}: adopted after {took:?}");
        assert_eq!(addressing(&net), addressing_before, "round {round}");
        if mid_failover {
            wait(&net, "eth1 active", |l| get(l, "active_slave") == "eth1");
            net.cable_of("eth0", true).unwrap();
            wait(&net, "back on eth0", |l| get(l, "active_slave") == "eth0" && l.slaves_up(2));
            std::thread::sleep(Duration::from_millis(300));
        } else {
            link_up.push((from, probe.elapsed() + Duration::from_millis(100)));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let record = probe.finish().unwrap();
    let lost: u32 = link_up.iter().map(|(a, b)| record.window(*a, *b).lost).sum();
    let sent: u32 = link_up.iter().map(|(a, b)| record.window(*a, *b).sent).sum();
    let (median, max) = spread(gaps);
    eprintln!(
        "50 SIGKILLs at 10k pps: {lost} of {sent} lost while the link was up; no daemon for median {median:?}, max {max:?}; whole run {:?}",
        record.whole()
    );
    // Where it went wrong, if it did: the round, its kill, and when its lost packets were sent.
    let losses: Vec<String> = link_up
        .iter()
        .enumerate()
        .filter(|(_, (a, b))| record.window(*a, *b).lost > 0)
        .map(|(i, (a, b))| {
            let lost: Vec<Duration> = (0..record.sent.len())
                .filter(|s| {
                    record.sent[*s] >= *a && record.sent[*s] < *b && !record.arrivals.contains_key(&(*s as u32))
                })
                .map(|s| record.sent[s])
                .collect();
            format!(
                "round {i}: killed at {:?}, {} lost from {:?} to {:?}",
                kills[i],
                lost.len(),
                lost[0],
                lost[lost.len() - 1]
            )
        })
        .collect();
    assert_eq!(lost, 0, "{losses:#?}");
    assert_eq!(net.status().unwrap().adoptions, 50);
    let out = netns::rbond(&net).args(["down", "bond0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(slaves_state(&net), before, "after 50 kills every slave has its own MAC, MTU and state");
}

/// The active slave's cable is pulled while no daemon runs (the daemon killed, its
/// supervisor held still meanwhile): the next daemon fails over as it starts, and with
/// `downdelay 200`, 200 ms after. Returns how long after the start traffic flowed again.
fn resumes_after_start(o: &[&str]) -> Duration {
    let mut net = lab(Wiring::OneSwitch);
    supervised(&mut net, o, &[]);
    let supervisor = net.daemon_pid().unwrap();
    let _echo = net.echo().unwrap();
    let probe = net.probe(1000);
    std::thread::sleep(Duration::from_millis(200));
    kill(supervisor, Signal::SIGSTOP);
    kill(net.answering_pid().unwrap(), Signal::SIGKILL);
    net.cable_of("eth0", false).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = probe.elapsed();
    kill(supervisor, Signal::SIGCONT);
    wait(&net, "eth1 active", |l| l.get("active_slave").is_ok_and(|a| a == "eth1"));
    std::thread::sleep(Duration::from_millis(300));
    let record = probe.finish().unwrap();
    assert_eq!(record.window(Duration::ZERO, Duration::from_millis(150)).lost, 0, "{:?}", record.whole());
    assert!(record.window(started - Duration::from_millis(300), started).lost > 250, "nothing passed meanwhile");
    let first = (0..record.sent.len() as u32)
        .filter(|s| record.sent[*s as usize] >= started && record.arrivals.contains_key(s))
        .map(|s| record.sent[s as usize])
        .next()
        .expect("traffic resumed");
    first - started
}

#[test]
fn a_cable_pulled_while_no_daemon_runs_fails_over_when_one_starts() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    if netns::datapath() == DatapathChoice::Userspace {
        return; // with no process the userspace datapath queues frames instead of sending them
    }
    let at_once = resumes_after_start(&["miimon=100", "primary=eth0"]);
    let delayed = resumes_after_start(&["miimon=100", "primary=eth0", "downdelay=200"]);
    eprintln!("traffic resumed {at_once:?} after the daemon started; with downdelay 200: {delayed:?}");
    assert!(at_once < Duration::from_secs(1), "{at_once:?}");
    assert!(delayed >= Duration::from_millis(200) && delayed < Duration::from_millis(1000), "{delayed:?}");
}

/// On the userspace datapath frames need the daemon, so a SIGKILL loses the ones sent until
/// the next daemon adopts the bond; bond0, its addresses and routes survive all the same.
#[test]
fn userspace_datapath_keeps_bond0_across_a_kill() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    supervised(&mut net, GUIDE, &["--datapath", "userspace"]);
    assert!(net.status().unwrap().datapath.starts_with("userspace"));
    let addressing_before = addressing(&net);
    let old = net.answering_pid().unwrap();
    let mut took = None;
    let p = netns::probe(&net, 10_000, Duration::from_secs(3), Duration::from_secs(1), || {
        let t = Instant::now();
        kill(old, Signal::SIGKILL);
        took = Some(adopted(&net, old, t).1);
    });
    eprintln!("userspace datapath, SIGKILL at 10k pps: {p:?}, adopted in {:?}", took.unwrap());
    assert_eq!(addressing(&net), addressing_before);
    assert!(p.lost < 10_000, "traffic resumed: {p:?}");
    assert!(p.outage < Duration::from_secs(1), "{p:?}");
}

/// A daemon binary that crashes each time soon after starting: the supervisor starts it
/// again with growing pauses, gives up after five failed starts with a line saying why, and
/// the slaves end as they were.
#[test]
fn a_daemon_that_keeps_crashing_is_given_up_and_the_slaves_restored() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    netns::ip(&["-n", &net.host(), "link", "set", "eth1", "mtu", "1400", "up"]);
    let before = slaves_state(&net);
    // The real daemon, struck by SIGABRT (an abort, as from a failed assertion) 300 ms into each life.
    let crashing = net.run_dir.join("crashing-rbond");
    let script = format!("#!/bin/sh\n(sleep 0.3; kill -ABRT $$) &\nexec '{}' \"$@\"\n", bin().display());
    std::fs::write(&crashing, script).unwrap();
    std::fs::set_permissions(&crashing, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let t = Instant::now();
    let args = ["--daemon-bin", crashing.to_str().unwrap()];
    net.start_supervised(bin(), &["eth0", "eth1"], &opts(GUIDE), &args).unwrap();
    let status = net.wait_daemon().unwrap();
    let took = t.elapsed();
    let err = net.daemon_stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.matches("bond0: the daemon was killed by SIGABRT; starting a new one").count(), 4, "{err}");
    let last =
        "bond0: giving up: 5 starts in a row failed within 1s (the last was killed by SIGABRT); restoring the slaves";
    assert!(err.contains(last), "{err}");
    // Five lives of 0.3 s, and pauses of 0.1, 0.2, 0.4 and 0.8 s between them.
    assert!(took >= Duration::from_millis(3000), "{took:?}");
    assert_eq!(slaves_state(&net), before, "no foreign MAC, MTU or down state left");
    assert!(net.link("bond0").is_none());
}

/// SIGKILL of the daemon at moments around `rbond restart` (before, during and after the
/// exec): each time the supervisor's next daemon carries the bond on whole (both slaves, an
/// active one, traffic), never a half state; `rbond down` then restores everything.
#[test]
fn a_kill_during_a_restart_in_place_ends_whole() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let before = slaves_state(&net);
    supervised(&mut net, GUIDE, &["--min-uptime", "0.1"]);
    for delay_ms in [0, 1, 2, 5, 10, 20, 50] {
        let old = net.answering_pid().unwrap();
        let mut restart = netns::rbond(&net).args(["restart", "bond0"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(old, Signal::SIGKILL);
        let _ = restart.wait();
        adopted(&net, old, Instant::now());
        wait(&net, "both slaves back", |l| l.slaves_up(2) && get(l, "active_slave") == "eth0");
        let p = netns::probe(&net, 500, Duration::from_millis(400), Duration::ZERO, || {});
        assert_eq!(p.lost, 0, "killed {delay_ms} ms into a restart: {p:?}");
    }
    let out = netns::rbond(&net).args(["down", "bond0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(slaves_state(&net), before);
}

/// A daemon that stops answering (SIGSTOP) is aborted by the supervisor's watchdog and
/// replaced; the new one adopts the bond.
#[test]
fn a_silent_daemon_is_replaced_by_the_watchdog() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    supervised(&mut net, GUIDE, &["--watchdog", "1"]);
    let old = net.answering_pid().unwrap();
    let t = Instant::now();
    kill(old, Signal::SIGSTOP);
    let answered =
        net.wait_until(Duration::from_secs(5), "a new daemon", |l| l.answering_pid().is_some_and(|p| p != old));
    answered.unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "{took:?}");
    let err = net.daemon_stderr();
    assert!(err.contains(&format!("bond0: the daemon (PID {old}) was silent for 1s; aborting it")), "{err}");
    assert_eq!(get(&net, "active_slave"), "eth0");
}

/// One datagram on a notify socket: its text and the descriptors that came with it.
fn notified(sock: &std::os::unix::net::UnixDatagram) -> (String, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            fds.extend(rbond::sys::process::received(v));
        }
    }
    let n = msg.bytes;
    (String::from_utf8_lossy(&buf[..n]).to_string(), fds)
}

/// The daemon speaks systemd's notify protocol to whoever owns `$NOTIFY_SOCKET` (here the
/// test): bond0's TAP for the descriptor store, READY once both slaves are in, a watchdog
/// ping every half `WATCHDOG_USEC`, and STOPPING (letting the TAP go) on `rbond down`.
#[test]
fn the_daemon_speaks_sd_notify() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let net = lab(Wiring::OneSwitch);
    let path = net.run_dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut daemon = netns::rbond(&net)
        .args(["daemon", "--bond", "bond0", "--slaves", "eth0,eth1", "--opt", "miimon=100"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .spawn()
        .unwrap();
    let (text, fds) = notified(&sock);
    assert_eq!((text.as_str(), fds.len()), ("FDSTORE=1\nFDNAME=tap", 1));
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(&fds[0])));
    assert!(info.unwrap().contains("iff:\tbond0"), "the stored descriptor is bond0's TAP");
    let (text, _) = notified(&sock);
    assert!(text.starts_with("READY=1\nSTATUS=2 slaves, active "), "{text}");
    assert_eq!(net.status().unwrap().report.slaves.len(), 2, "READY means the slaves are in");
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(notified(&sock).0, "WATCHDOG=1");
    }
    let every = t.elapsed() / 5;
    assert!(every >= Duration::from_millis(80) && every <= Duration::from_millis(130), "a ping every {every:?}");
    // Restarted in place, the same process says it is ready again, and goes on pinging.
    let out = netns::rbond(&net).args(["restart", "bond0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut after: Vec<String> = Vec::new();
    while after.iter().filter(|t| *t == "WATCHDOG=1").count() < 3 {
        after.push(notified(&sock).0);
    }
    assert!(after.iter().any(|t| t.starts_with("READY=1\n")), "{after:?}");
    let out = netns::rbond(&net).args(["down", "bond0"]).output().unwrap();
    assert!(out.status.success());
    let stopping = std::iter::repeat_with(|| notified(&sock).0).find(|t| t != "WATCHDOG=1").unwrap();
    assert_eq!(stopping, "STOPPING=1\nFDSTOREREMOVE=1\nFDNAME=tap");
    assert!(daemon.wait().unwrap().success());
}

/// The systemd unit `rbond install-unit` writes passes `systemd-analyze verify` (which would
/// refuse, e.g., an ExecStart that cannot run).
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("rbond-unit-{}", std::process::id()));
    let out = std::process::Command::new(bin()).args(["install-unit", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = dir.join("rbond@.service");
    let verify =
        |unit: &std::path::Path| std::process::Command::new("systemd-analyze").arg("verify").arg(unit).output();
    let out = match verify(&unit) {
        Ok(out) => out,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: systemd-analyze: {e}");
            return eprintln!("skipped: systemd-analyze: {e} (apt-get install systemd)");
        }
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&unit).unwrap();
    let broken = dir.join("rbond-broken@.service");
    std::fs::write(&broken, text.replace(&bin().display().to_string(), "/nonexistent/rbond")).unwrap();
    let out = verify(&broken).unwrap();
    assert!(!out.status.success(), "verify refuses a broken unit");
    std::fs::remove_dir_all(&dir).unwrap();
}
