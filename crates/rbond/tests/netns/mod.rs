//! Throwaway test networks: namespaces and veth pairs made per test under unique names and
//! removed when the test ends, pass or fail. Traffic stays inside them.
#![allow(dead_code)] // each test file uses its own part

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rbond::control::{self, Request};
use serde_json::Value;

pub const BOND_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const ECHO_PORT: u16 = 7000;

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

/// Starts a namespace test: `None` when it cannot run here. Outside CI a non-root run is
/// skipped with a note; under CI=true it fails, so a CI without privileges cannot pass.
pub fn begin(cpu: Cpu) -> Option<Turn> {
    let root = unsafe { libc::geteuid() } == 0;
    let tools = Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| o.status.success());
    if !(root && tools) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: these tests need root, iproute2 and network namespaces");
        eprintln!("skipped: needs root, iproute2 and network namespaces");
        return None;
    }
    // A test that failed while holding its turn must not block the rest.
    Some(match cpu {
        Cpu::Shared => Turn::Shared(CPU.read().unwrap_or_else(|e| e.into_inner())),
        Cpu::Alone => Turn::Alone(CPU.write().unwrap_or_else(|e| e.into_inner())),
    })
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("rbt{}x{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// How the bond's two slaves reach the peer.
pub enum Wiring {
    /// Both slaves on one bridge with the peer.
    OneSwitch,
    /// Each slave on its own access bridge, each with an uplink to a core bridge with the
    /// peer: cutting an uplink kills a path while the slave keeps its carrier.
    AccessSwitches,
}

pub struct Net {
    prefix: String,
    namespaces: Vec<String>,
    pub run_dir: PathBuf,
    daemon: Option<Child>,
}

impl Net {
    pub fn host(&self) -> String {
        format!("{}h", self.prefix)
    }
    pub fn peer(&self) -> String {
        format!("{}p", self.prefix)
    }
    /// The namespace holding the switch port that `slave` is cabled to.
    pub fn switch_of(&self, slave: &str) -> String {
        if self.namespaces.len() == 3 { format!("{}s", self.prefix) } else { format!("{}a{}", self.prefix, &slave[3..]) }
    }
    pub fn core(&self) -> String {
        if self.namespaces.len() == 3 { format!("{}s", self.prefix) } else { format!("{}c", self.prefix) }
    }

    pub fn new(wiring: Wiring) -> Net {
        let prefix = unique();
        let run_dir = std::env::temp_dir().join(format!("{prefix}-run"));
        let mut net = Net { prefix: prefix.clone(), namespaces: Vec::new(), run_dir, daemon: None };
        let names: Vec<&str> = match wiring {
            Wiring::OneSwitch => vec!["h", "s", "p"],
            Wiring::AccessSwitches => vec!["h", "a0", "a1", "c", "p"],
        };
        for n in names {
            let ns = format!("{prefix}{n}");
            ip(&["netns", "add", &ns]);
            net.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        for sw in &net.namespaces[1..net.namespaces.len() - 1] {
            ip(&["-n", sw, "link", "add", "br0", "type", "bridge"]);
            ip(&["-n", sw, "link", "set", "br0", "up"]);
        }
        let (host, peer, core) = (net.host(), net.peer(), net.core());
        for s in ["eth0", "eth1"] {
            let port = format!("h{}", &s[3..]);
            net.cable(&host, s, &net.switch_of(s), &port);
        }
        if net.namespaces.len() == 5 {
            for a in ["a0", "a1"] {
                let access = format!("{prefix}{a}");
                net.cable(&access, "up0", &core, &format!("c{}", &a[1..]));
                net.attach(&access, "up0");
            }
        }
        net.cable(&peer, "eth0", &core, "p0");
        ip(&["-n", &peer, "addr", "add", &format!("{PEER_IP}/24"), "dev", "eth0"]);
        ip(&["-n", &peer, "link", "set", "eth0", "up"]);
        net
    }

    /// A veth from `a`/`a_if` to the switch port `b`/`b_if`, which joins that switch's bridge.
    fn cable(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        ip(&["link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b]);
        self.attach(b, b_if);
    }

    fn attach(&self, ns: &str, port: &str) {
        ip(&["-n", ns, "link", "set", port, "master", "br0"]);
        ip(&["-n", ns, "link", "set", port, "up"]);
    }

    /// Pulls (false) or replugs (true) the cable of a host slave, at the switch end.
    pub fn cable_of(&self, slave: &str, plugged: bool) {
        let port = format!("h{}", &slave[3..]);
        ip(&["-n", &self.switch_of(slave), "link", "set", &port, if plugged { "up" } else { "down" }]);
    }

    pub fn rbond(&self) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(), env!("CARGO_BIN_EXE_rbond"), "--run-dir"]).arg(&self.run_dir);
        c
    }

    /// Starts the daemon for bond0 over eth0 and eth1, then gives bond0 its address and
    /// brings it up, as the administrator (or ifup) would.
    pub fn start_bond(&mut self, opts: &[&str]) {
        std::fs::create_dir_all(&self.run_dir).unwrap();
        let mut cmd = self.rbond();
        cmd.args(["daemon", "--bond", "bond0", "--slaves", "eth0,eth1", "--foreground", "--syslog"]);
        cmd.arg(self.syslog_path());
        for o in opts {
            cmd.args(["--opt", o]);
        }
        let log = File::create(self.run_dir.join("daemon.stderr")).unwrap();
        self.daemon = Some(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap());
        self.wait_for_socket();
        ip(&["-n", &self.host(), "addr", "add", &format!("{BOND_IP}/24"), "dev", "bond0"]);
        ip(&["-n", &self.host(), "link", "set", "bond0", "up"]);
        // The first slave has gone active once the bond reports an active slave.
        self.wait_until(Duration::from_secs(5), |n| !n.get("active_slave").is_empty());
    }

    /// Waits until the daemon answers (a dead daemon's socket file may still be there).
    /// Where the daemon sends syslog lines in tests (a socket the test may listen on).
    pub fn syslog_path(&self) -> PathBuf {
        self.run_dir.join("syslog.sock")
    }

    pub fn wait_for_socket(&self) {
        let sock = control::socket_path(&self.run_dir, "bond0");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start: {}", self.daemon_stderr());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_stderr(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("daemon.stderr")).unwrap_or_default()
    }

    pub fn request(&self, req: &Request) -> Value {
        control::call(&control::socket_path(&self.run_dir, "bond0"), req, |_| {}).expect("control request")
    }

    pub fn get(&self, option: &str) -> String {
        let r = self.request(&Request::Get { option: option.into() });
        r["value"].as_str().unwrap_or_else(|| panic!("get {option}: {r}")).to_string()
    }

    pub fn log_lines(&self) -> Vec<String> {
        let r = self.request(&Request::Events { follow: false });
        r["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect()
    }

    /// Log lines with their wall-clock times (milliseconds since the epoch).
    pub fn timed_log(&self) -> Vec<(u64, String)> {
        let r = self.request(&Request::Events { follow: false });
        let lines = r["lines"].as_array().unwrap().iter();
        lines.map(|l| (l["time_ms"].as_u64().unwrap(), l["text"].as_str().unwrap().to_string())).collect()
    }

    pub fn wait_until(&self, limit: Duration, mut cond: impl FnMut(&Net) -> bool) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out; log:\n{}", self.log_lines().join("\n"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Waits for the daemon to exit and returns its exit status.
    pub fn wait_daemon(&mut self) -> std::process::ExitStatus {
        self.daemon.take().expect("daemon running").wait().unwrap()
    }

    pub fn forget_daemon(&mut self) {
        self.daemon = None;
    }

    /// What `ip -br link` says of an interface in the host namespace: (state flags, MAC, MTU).
    pub fn link(&self, name: &str) -> Option<(bool, String, u32)> {
        let out = Command::new("ip").args(["-n", &self.host(), "-j", "link", "show", name]).output().ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let l = v.get(0)?;
        let up = l["flags"].as_array()?.iter().any(|f| f == "UP");
        Some((up, l["address"].as_str()?.to_string(), l["mtu"].as_u64()? as u32))
    }

    /// An interface's own addresses in the host namespace as `addr/prefix`, link-local left out.
    pub fn addrs(&self, name: &str) -> Vec<String> {
        let out = Command::new("ip").args(["-n", &self.host(), "-j", "addr", "show", name]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let infos = v.get(0).and_then(|l| l["addr_info"].as_array().cloned()).unwrap_or_default();
        let global = infos.iter().filter(|a| a["scope"] != "link");
        global.map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"])).collect()
    }

    /// Runs `f` on a thread inside namespace `ns`.
    pub fn in_ns<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{ns}");
        thread::spawn(move || {
            let file = File::open(&path).unwrap();
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
            f()
        })
    }

    /// A UDP echo service on the peer, running until the returned guard is dropped.
    pub fn echo(&self) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        self.in_ns(&self.peer(), move || {
            let s = UdpSocket::bind(("0.0.0.0", ECHO_PORT)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        Echo(stop)
    }

    /// Sends `pps` numbered datagrams per second to the peer's echo for `length`, counting
    /// what comes back.
    pub fn probe(&self, pps: u32, length: Duration) -> JoinHandle<Probe> {
        self.in_ns(&self.host(), move || run_probe(pps, length))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// The peer's echo service; it stops when this is dropped.
pub struct Echo(Arc<AtomicBool>);

impl Drop for Echo {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a fixed-rate probe saw.
#[derive(Debug)]
pub struct Probe {
    pub sent: u32,
    pub received: u32,
    pub duplicates: u32,
    /// Longest time between two consecutive replies (includes scheduling jitter).
    pub longest_gap: Duration,
    /// Outage as lost packets show it: the longest run of consecutive unanswered datagrams,
    /// times the sending interval.
    pub outage: Duration,
    /// When each reply arrived, by sequence number, from the probe's start.
    pub arrivals: HashMap<u32, Duration>,
}

fn run_probe(pps: u32, length: Duration) -> Probe {
    let s = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
    s.connect(SocketAddr::from((PEER_IP, ECHO_PORT))).unwrap();
    s.set_nonblocking(true).unwrap();
    let interval = Duration::from_secs(1) / pps;
    let start = Instant::now();
    let (mut sent, mut duplicates) = (0u32, 0u32);
    let mut arrivals = HashMap::new();
    let mut buf = [0u8; 64];
    let mut drain = |arrivals: &mut HashMap<u32, Duration>, duplicates: &mut u32| {
        while let Ok(n) = s.recv(&mut buf) {
            if n >= 4 {
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                if arrivals.insert(seq, start.elapsed()).is_some() {
                    *duplicates += 1;
                }
            }
        }
    };
    while start.elapsed() < length {
        let due = interval * sent;
        if start.elapsed() >= due {
            let _ = s.send(&sent.to_be_bytes());
            sent += 1;
        }
        drain(&mut arrivals, &mut duplicates);
        // Sleep rather than spin when there is time: on two cores a spinning probe would
        // starve the daemon it is measuring.
        let ahead = (interval * sent).saturating_sub(start.elapsed());
        if ahead > Duration::from_micros(60) {
            thread::sleep(ahead - Duration::from_micros(50));
        }
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        drain(&mut arrivals, &mut duplicates);
        thread::sleep(Duration::from_millis(1));
    }
    let mut times: Vec<Duration> = arrivals.values().copied().collect();
    times.sort();
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let (mut run, mut longest_run) = (0u32, 0u32);
    for seq in 0..sent {
        run = if arrivals.contains_key(&seq) { 0 } else { run + 1 };
        longest_run = longest_run.max(run);
    }
    Probe { sent, received: arrivals.len() as u32, duplicates, longest_gap, outage: interval * longest_run, arrivals }
}
