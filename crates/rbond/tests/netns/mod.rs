//! What the namespace tests add to `rbond::lab`: the rule for when they may run, a turn on
//! the two CPUs, and shorthands that fail the test on error.
#![allow(dead_code)] // each test file uses its own part

pub mod remote;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use rbond::daemon::DatapathChoice;
pub use rbond::lab::probe::Window;
pub use rbond::lab::{Lab, Wiring};

/// Whether a test may share the two CPUs with others, or measures time (or loads the CPU)
/// and must run alone.
pub enum Cpu {
    Shared,
    Alone,
}

static CPU: RwLock<()> = RwLock::new(());

/// A test's turn on the machine; held for the whole test.
pub enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// Starts a namespace test: `None` when it cannot run here. Outside CI a run without root
/// is skipped with a note; under CI=true it fails, so a CI without privileges cannot pass.
pub fn begin(cpu: Cpu) -> Option<Turn> {
    if let Err(why) = rbond::lab::can_run() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: {why}");
        eprintln!("skipped: {why}");
        return None;
    }
    // A test that failed while holding its turn must not block the rest.
    Some(match cpu {
        Cpu::Shared => Turn::Shared(CPU.read().unwrap_or_else(|e| e.into_inner())),
        Cpu::Alone => Turn::Alone(CPU.write().unwrap_or_else(|e| e.into_inner())),
    })
}

/// A small deterministic generator: the scenarios are random but repeatable.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rbond"))
}

/// The datapath this run of a suite asks for: scripts/test runs the daemon's suites once
/// more with RBOND_DATAPATH set, which the daemon reads too; unset, the daemon chooses.
pub fn datapath() -> DatapathChoice {
    let asked = std::env::var("RBOND_DATAPATH").ok();
    asked.and_then(|v| DatapathChoice::parse(&v).ok()).unwrap_or(DatapathChoice::Auto)
}

pub fn lab(wiring: Wiring) -> Lab {
    Lab::new("rbt", wiring).expect("build the test network")
}

pub fn ip(args: &[&str]) {
    rbond::lab::ip(args).unwrap();
}

/// Starts bond0 with these options and waits for its first active slave.
pub fn start(lab: &mut Lab, opts: &[&str]) {
    let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    lab.start_bond(bin(), &["eth0", "eth1"], &opts).unwrap();
    wait(lab, "an active slave", |l| !get(l, "active_slave").is_empty());
}

/// Waits until both slaves report their link up (their updelays are over).
pub fn settled(lab: &Lab) {
    wait(lab, "both slaves up", |l| l.slaves_up(2));
}

pub fn get(lab: &Lab, option: &str) -> String {
    lab.get(option).unwrap()
}

pub fn wait(lab: &Lab, what: &str, cond: impl FnMut(&Lab) -> bool) {
    if let Err(e) = lab.wait_until(Duration::from_secs(5), what, cond) {
        panic!("{e}; log:\n{}", lab.log_lines().unwrap_or_default().join("\n"));
    }
}

/// Runs the probe at `pps` for `length`, calling `during` once it has run for `at`.
pub fn probe(lab: &Lab, pps: u32, length: Duration, at: Duration, during: impl FnOnce()) -> Window {
    let _echo = lab.echo().unwrap();
    let p = lab.probe(pps);
    std::thread::sleep(at);
    during();
    std::thread::sleep(length.saturating_sub(p.elapsed()));
    p.finish().unwrap().whole()
}

/// What `ip link` says of each slave (up, MAC, MTU), to compare before and after.
pub fn slaves_state(lab: &Lab) -> Vec<Option<(bool, String, u32)>> {
    ["eth0", "eth1"].iter().map(|n| lab.link(n)).collect()
}

pub fn rbond(lab: &Lab) -> Command {
    lab.rbond(bin())
}

/// Runs the binary under the name `ifenslave` (a symlink) in the host namespace.
pub fn ifenslave(lab: &Lab, args: &[&str]) -> std::process::Output {
    let link = lab.run_dir.join("ifenslave");
    if !link.exists() {
        std::os::unix::fs::symlink(bin(), &link).unwrap();
    }
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.host()]).arg(&link).args(args).env("RBOND_RUN_DIR", &lab.run_dir);
    c.output().unwrap()
}

/// `bytes` over TCP from the host to the peer and back, every byte checked against a pattern
/// (so offloaded checksums and GSO frames crossing the bond are proven intact); how long it took.
pub fn tcp_both_ways(lab: &Lab, bytes: usize) -> Duration {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    use rbond::lab::PEER_IP;
    // Compared a slice at a time: a byte-wise check would time the test, not the bond.
    let pattern: Arc<Vec<u8>> = Arc::new((0..bytes).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect());
    fn check(mut s: TcpStream, pattern: &[u8]) -> usize {
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return at;
            }
            assert!(pattern.get(at..at + n) == Some(&buf[..n]), "bytes {at}..{} corrupted", at + n);
            at += n;
        }
    }
    let p = pattern.clone();
    let server = lab.in_ns(&lab.peer(), move || {
        let l = TcpListener::bind((PEER_IP, 7001)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let got = check(s.try_clone().unwrap(), &p);
        s.write_all(&p).unwrap();
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    let p = pattern.clone();
    let client = lab.in_ns(&lab.host(), move || {
        let mut s = TcpStream::connect_timeout(&(PEER_IP, 7001).into(), Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let start = std::time::Instant::now();
        s.write_all(&p).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        (check(s, &p), start.elapsed())
    });
    let (back, took) = client.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap().unwrap(), bytes);
    assert_eq!(back, bytes);
    took
}

/// rbond's hooks in /etc/network for the test's lifetime, pointing at the lab's run directory.
pub struct Hooks<'a>(&'a Path);

impl<'a> Hooks<'a> {
    pub fn install(run_dir: &'a Path) -> Option<Hooks<'a>> {
        if Command::new("ifup").arg("--version").output().is_err() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: the ifupdown package is missing");
            eprintln!("skipped: ifupdown is not installed (scripts/test installs it)");
            return None;
        }
        let out = Command::new(bin()).arg("--run-dir").arg(run_dir).args(["install-hooks"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Some(Hooks(run_dir))
    }
}

impl Drop for Hooks<'_> {
    fn drop(&mut self) {
        let _ = Command::new(bin()).arg("--run-dir").arg(self.0).args(["install-hooks", "--remove"]).output();
    }
}

/// The interfaces file for ifupdown and its state directory, in the lab's run directory.
pub fn write(lab: &Lab, text: &str) -> (PathBuf, PathBuf) {
    let file = lab.run_dir.join("interfaces");
    std::fs::write(&file, text).unwrap();
    let state = lab.run_dir.join("ifstate");
    std::fs::create_dir_all(&state).unwrap();
    (file, state)
}

/// Runs `ifup` or `ifdown` on the file in the host namespace; fails the test if it fails.
pub fn ifupdown(lab: &Lab, cmd: &str, file: &Path, state: &Path, ifaces: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.host(), cmd, "-i"])
        .arg(file)
        .arg("--state-dir")
        .arg(state)
        .args(ifaces)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {ifaces:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Advertises the peer as a router, once a second, until bond0 has both a ready address from
/// the advertised prefix and a default route through the router (eight tries); that address.
pub fn slaac_on_bond(net: &Lab) -> Option<String> {
    let ready = |n: &Lab| n.ipv6_addrs("bond0").into_iter().find(|a| a.0.starts_with("2001:db8:77:") && !a.1);
    for _ in 0..8 {
        advertise_router(net);
        std::thread::sleep(Duration::from_secs(1));
        if let Some(a) = ready(net).filter(|_| ipv6_routes(net, &["default"]).contains("dev bond0 proto ra")) {
            return Some(a.0);
        }
    }
    None
}

/// What `ip -6 route show ARGS` says in the host's namespace.
pub fn ipv6_routes(net: &Lab, args: &[&str]) -> String {
    let out = Command::new("ip").args(["-n", &net.host(), "-6", "route", "show"]).args(args).output().unwrap();
    assert!(out.status.success(), "ip -6 route show {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A router advertisement from the peer to all nodes on its eth0, as a router sends one: a
/// default router for 1800 s and 2001:db8:77::/64 for autoconfiguration (on-link, autonomous).
/// The peer forwards, as a router does: its neighbour advertisements then carry the router
/// flag; a host that hears one without it (a router turned host) drops the default route it
/// learned.
pub fn advertise_router(net: &Lab) {
    let forwarding = ["netns", "exec", &net.peer(), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"];
    let out = Command::new("ip").args(forwarding).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn6};
    use nix::sys::socket::{sendto, setsockopt, socket, sockopt};
    use std::os::fd::AsRawFd;
    let sent = net.in_ns(&net.peer(), || -> nix::Result<usize> {
        let fd = socket(AddressFamily::Inet6, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::IcmpV6)?;
        setsockopt(&fd, sockopt::Ipv6MulticastHops, &255)?; // neighbour discovery's hop limit
        // Type, code, checksum (the kernel fills it), hop limit 64, no flags, lifetime 1800 s,
        // no reachable time or retransmission timer.
        let mut ra = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        ra.extend_from_slice(&[3, 4, 64, 0xc0]); // prefix information, /64, on-link, autonomous
        ra.extend_from_slice(&86_400u32.to_be_bytes());
        ra.extend_from_slice(&14_400u32.to_be_bytes());
        ra.extend_from_slice(&[0; 4]);
        ra.extend_from_slice(&std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0).octets());
        let scope = nix::net::if_::if_nametoindex("eth0")?;
        let all_nodes = SockaddrIn6::from(std::net::SocketAddrV6::new(
            std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            0,
            0,
            scope,
        ));
        sendto(fd.as_raw_fd(), &ra, &all_nodes, MsgFlags::empty())
    });
    sent.join().unwrap().unwrap().unwrap();
}

/// Every frame arriving in the peer's namespace for `length`, each with when it came (from
/// `epoch`), read off a packet socket.
pub fn capture(lab: &Lab, epoch: std::time::Instant, length: Duration) -> Captured {
    lab.in_ns(&lab.peer(), move || {
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32) };
        assert!(fd >= 0);
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const tv).cast(), 16) };
        let start = std::time::Instant::now();
        let mut frames = Vec::new();
        let mut buf = [0u8; 512];
        while start.elapsed() < length {
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                frames.push((epoch.elapsed(), buf[..n as usize].to_vec()));
            }
        }
        unsafe { libc::close(fd) };
        frames
    })
}

/// The frames a `capture` saw, once joined.
pub type Captured = std::thread::JoinHandle<anyhow::Result<Vec<(Duration, Vec<u8>)>>>;
