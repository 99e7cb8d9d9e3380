//! Throwaway networks for the drill and the tests: network namespaces and veth pairs under
//! unique names, removed when the value is dropped, with a peer that echoes UDP and a
//! fixed-rate probe that measures loss, duplicates and outage. Traffic stays inside them.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::control::{self, Request};

pub const BOND_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const ECHO_PORT: u16 = 7000;

pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip (install iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Whether this process can build namespaces, and if not, why.
pub fn can_run() -> Result<(), String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (it creates network namespaces)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("network namespaces unavailable: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(_) => Err("iproute2's ip command is missing (apt-get install iproute2)".into()),
    }
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}{}x{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// How the bond's two slaves reach the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// Both slaves on one bridge with the peer.
    OneSwitch,
    /// Each slave on its own access bridge, each with an uplink to a core bridge with the
    /// peer: cutting an uplink kills a path while the slave keeps its carrier.
    AccessSwitches,
}

pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    pub run_dir: PathBuf,
    daemon: Option<Child>,
}

impl Lab {
    /// Builds the namespaces, bridges and cables. `tag` starts every name (plus pid and a
    /// counter), so runs in parallel never collide.
    pub fn new(tag: &str, wiring: Wiring) -> anyhow::Result<Lab> {
        let prefix = unique(tag);
        let run_dir = std::env::temp_dir().join(format!("{prefix}-run"));
        let mut lab = Lab { prefix: prefix.clone(), namespaces: Vec::new(), run_dir, daemon: None };
        let names: &[&str] = match wiring {
            Wiring::OneSwitch => &["h", "s", "p"],
            Wiring::AccessSwitches => &["h", "a0", "a1", "c", "p"],
        };
        for n in names {
            let ns = format!("{prefix}{n}");
            ip(&["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        for sw in &lab.namespaces[1..lab.namespaces.len() - 1] {
            ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", sw, "link", "set", "br0", "up"])?;
        }
        let (host, peer, core) = (lab.host(), lab.peer(), lab.core());
        for s in ["eth0", "eth1"] {
            lab.cable(&host, s, &lab.switch_of(s), &format!("h{}", &s[3..]))?;
        }
        if wiring == Wiring::AccessSwitches {
            for a in ["a0", "a1"] {
                let access = format!("{prefix}{a}");
                lab.cable(&access, "up0", &core, &format!("c{}", &a[1..]))?;
                lab.attach(&access, "up0")?;
            }
        }
        lab.cable(&peer, "eth0", &core, "p0")?;
        ip(&["-n", &peer, "addr", "add", &format!("{PEER_IP}/24"), "dev", "eth0"])?;
        ip(&["-n", &peer, "link", "set", "eth0", "up"])?;
        std::fs::create_dir_all(&lab.run_dir)?;
        Ok(lab)
    }

    pub fn host(&self) -> String {
        format!("{}h", self.prefix)
    }
    pub fn peer(&self) -> String {
        format!("{}p", self.prefix)
    }
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
    /// The namespace holding the switch port that `slave` is cabled to.
    pub fn switch_of(&self, slave: &str) -> String {
        if self.namespaces.len() == 3 { format!("{}s", self.prefix) } else { format!("{}a{}", self.prefix, &slave[3..]) }
    }
    pub fn core(&self) -> String {
        if self.namespaces.len() == 3 { format!("{}s", self.prefix) } else { format!("{}c", self.prefix) }
    }

    /// A veth from `a`/`a_if` to the switch port `b`/`b_if`, which joins that switch's bridge.
    fn cable(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> anyhow::Result<()> {
        ip(&["link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b])?;
        self.attach(b, b_if)
    }

    fn attach(&self, ns: &str, port: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "link", "set", port, "master", "br0"])?;
        ip(&["-n", ns, "link", "set", port, "up"])
    }

    /// Pulls (false) or replugs (true) a host slave's cable, at the switch end.
    pub fn cable_of(&self, slave: &str, plugged: bool) -> anyhow::Result<()> {
        let port = format!("h{}", &slave[3..]);
        ip(&["-n", &self.switch_of(slave), "link", "set", &port, if plugged { "up" } else { "down" }])
    }

    /// The rbond binary `bin`, run inside the host namespace with this lab's run directory.
    pub fn rbond(&self, bin: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host()]).arg(bin).arg("--run-dir").arg(&self.run_dir);
        c
    }

    pub fn syslog_path(&self) -> PathBuf {
        self.run_dir.join("syslog.sock")
    }

    /// Starts `bin`'s daemon for bond0 over `slaves` (of eth0 and eth1) with these options,
    /// then gives bond0 its address and brings it up, as an administrator (or ifup) would.
    pub fn start_bond(&mut self, bin: &Path, slaves: &[&str], opts: &[String]) -> anyhow::Result<()> {
        let mut cmd = self.rbond(bin);
        cmd.args(["daemon", "--bond", "bond0", "--slaves", &slaves.join(","), "--foreground", "--syslog"]).arg(self.syslog_path());
        for o in opts {
            cmd.args(["--opt", o]);
        }
        let log = File::create(self.run_dir.join("daemon.stderr"))?;
        // Its own process group: a terminal's Ctrl-C reaches only whoever runs the lab, which
        // then stops the daemon in order.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        self.daemon = Some(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()?);
        self.wait_for_daemon()?;
        ip(&["-n", &self.host(), "addr", "add", &format!("{BOND_IP}/24"), "dev", "bond0"])?;
        ip(&["-n", &self.host(), "link", "set", "bond0", "up"])
    }

    /// Waits until the daemon answers (a dead daemon's socket file may still be there).
    pub fn wait_for_daemon(&mut self) -> anyhow::Result<()> {
        let sock = control::socket_path(&self.run_dir, "bond0");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if let Some(status) = self.daemon.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
                bail!("the daemon exited ({status}): {}", self.daemon_stderr().trim());
            }
            if Instant::now() > deadline {
                bail!("the daemon did not start: {}", self.daemon_stderr().trim());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn daemon_stderr(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("daemon.stderr")).unwrap_or_default()
    }

    pub fn request(&self, req: &Request) -> anyhow::Result<Value> {
        control::call(&control::socket_path(&self.run_dir, "bond0"), req, |_| {})
    }

    /// A value as its sysfs file reads (`mode`, `active_slave`, …).
    pub fn get(&self, option: &str) -> anyhow::Result<String> {
        let r = self.request(&Request::Get { option: option.into() })?;
        r["value"].as_str().map(str::to_string).with_context(|| format!("get {option}: {r}"))
    }

    /// The bond's log lines with their wall-clock times (milliseconds since the epoch).
    pub fn timed_log(&self) -> anyhow::Result<Vec<(u64, String)>> {
        let r = self.request(&Request::Events { follow: false })?;
        let lines = r["lines"].as_array().context("no lines in the events reply")?;
        Ok(lines.iter().filter_map(|l| Some((l["time_ms"].as_u64()?, l["text"].as_str()?.to_string()))).collect())
    }

    pub fn log_lines(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.timed_log()?.into_iter().map(|(_, l)| l).collect())
    }

    /// Polls `cond` every 20 ms until it holds, failing after `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Lab) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            if Instant::now() > deadline {
                bail!("timed out after {limit:?} waiting for {what}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Waits for the daemon to exit and returns its exit status.
    pub fn wait_daemon(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.daemon.take().context("no daemon running")?.wait()?)
    }

    /// What `ip -j link` says of an interface in the host namespace: (up, MAC, MTU).
    pub fn link(&self, name: &str) -> Option<(bool, String, u32)> {
        let l = self.ip_json(&["link", "show", name])?;
        let up = l["flags"].as_array()?.iter().any(|f| f == "UP");
        Some((up, l["address"].as_str()?.to_string(), l["mtu"].as_u64()? as u32))
    }

    /// An interface's own addresses in the host namespace as `addr/prefix`, link-local left out.
    pub fn addrs(&self, name: &str) -> Vec<String> {
        let infos = self.ip_json(&["addr", "show", name]).and_then(|l| l["addr_info"].as_array().cloned()).unwrap_or_default();
        let global = infos.iter().filter(|a| a["scope"] != "link");
        global.filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"]))).collect()
    }

    /// The receive and transmit error counters of an interface in the host namespace.
    pub fn errors(&self, name: &str) -> Option<(u64, u64)> {
        let l = self.ip_json(&["-s", "link", "show", name])?;
        let s = &l["stats64"];
        Some((s["rx"]["errors"].as_u64()?, s["tx"]["errors"].as_u64()?))
    }

    fn ip_json(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new("ip").args(["-n", &self.host(), "-j"]).args(args).output().ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v.get(0).cloned()
    }

    /// Runs `f` on a thread inside namespace `ns`.
    pub fn in_ns<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<anyhow::Result<T>> {
        let path = format!("/var/run/netns/{ns}");
        thread::spawn(move || {
            let file = File::open(&path).with_context(|| path.clone())?;
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {path}: {}", std::io::Error::last_os_error());
            }
            Ok(f())
        })
    }

    /// A UDP echo service on the peer, running until the returned guard is dropped.
    pub fn echo(&self) -> anyhow::Result<Echo> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = self.in_ns(&self.peer(), move || {
            let s = match UdpSocket::bind(("0.0.0.0", ECHO_PORT)) {
                Ok(s) => s,
                Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
            };
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = ready_tx.send(Ok(()));
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Echo { stop, worker: Some(worker) }),
            Ok(Err(e)) => bail!("echo service: {e}"),
            Err(_) => bail!("echo service did not start"),
        }
    }

    /// Starts sending `pps` numbered datagrams per second from the host to the peer's echo.
    pub fn probe(&self, pps: u32) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = Instant::now();
        let worker = self.in_ns(&self.host(), move || run_probe(pps, start, &flag));
        Probe { stop, start, worker }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Daemons started by others (ifup's hook, `rbond up`) are found by their sockets.
        for bond in crate::launch::bonds(&self.run_dir) {
            let _ = crate::launch::stop(&self.run_dir, &bond);
        }
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

/// The peer's echo service; it stops (and frees its port) when this is dropped.
pub struct Echo {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// A running probe; `finish` stops it and returns what it saw.
pub struct Probe {
    stop: Arc<AtomicBool>,
    start: Instant,
    worker: JoinHandle<anyhow::Result<anyhow::Result<Record>>>,
}

impl Probe {
    /// Time since the probe started, the clock its record uses.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn finish(self) -> anyhow::Result<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.worker.join().map_err(|_| anyhow::anyhow!("the probe thread panicked"))??
    }
}

/// Every datagram a probe sent, and every reply.
#[derive(Debug, Clone)]
pub struct Record {
    pub interval: Duration,
    /// When each datagram was sent (index = sequence number), from the probe's start.
    pub sent: Vec<Duration>,
    /// When each reply first arrived, by sequence number.
    pub arrivals: HashMap<u32, Duration>,
    /// Sequence numbers of replies that arrived more than once.
    pub duplicates: Vec<u32>,
}

/// What the probe saw in one stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Window {
    pub sent: u32,
    pub lost: u32,
    pub duplicated: u32,
    /// The longest run of consecutive unanswered datagrams, times the sending interval.
    pub outage: Duration,
}

impl Record {
    /// Datagrams sent in `[from, to)`.
    pub fn window(&self, from: Duration, to: Duration) -> Window {
        let seqs = self.sent.iter().enumerate().filter(|(_, t)| **t >= from && **t < to).map(|(i, _)| i as u32);
        let (mut w, mut run, mut longest) = (Window::default(), 0u32, 0u32);
        for seq in seqs {
            w.sent += 1;
            if self.arrivals.contains_key(&seq) {
                run = 0;
            } else {
                w.lost += 1;
                run += 1;
                longest = longest.max(run);
            }
            w.duplicated += self.duplicates.iter().filter(|d| **d == seq).count() as u32;
        }
        w.outage = self.interval * longest;
        w
    }

    pub fn whole(&self) -> Window {
        self.window(Duration::ZERO, Duration::MAX)
    }
}

fn run_probe(pps: u32, start: Instant, stop: &AtomicBool) -> anyhow::Result<Record> {
    // Not connected: with bond0 down there is no route, and a send that fails is a loss.
    let s = UdpSocket::bind(("0.0.0.0", 0))?;
    let peer = SocketAddr::from((PEER_IP, ECHO_PORT));
    s.set_nonblocking(true)?;
    let interval = Duration::from_secs(1) / pps.max(1);
    let mut rec = Record { interval, sent: Vec::new(), arrivals: HashMap::new(), duplicates: Vec::new() };
    let mut buf = [0u8; 64];
    let drain = |rec: &mut Record, buf: &mut [u8]| {
        while let Ok((n, from)) = s.recv_from(buf) {
            if n >= 4 && from == peer {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if rec.arrivals.insert(seq, start.elapsed()).is_some() {
                    rec.duplicates.push(seq);
                }
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let seq = rec.sent.len() as u32;
        if start.elapsed() >= interval * seq {
            rec.sent.push(start.elapsed());
            let _ = s.send_to(&seq.to_be_bytes(), peer);
        }
        drain(&mut rec, &mut buf);
        // Sleep rather than spin when there is time: on two cores a spinning probe would
        // starve the daemon it is measuring.
        let ahead = (interval * rec.sent.len() as u32).saturating_sub(start.elapsed());
        if ahead > Duration::from_micros(60) {
            thread::sleep(ahead - Duration::from_micros(50));
        }
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        drain(&mut rec, &mut buf);
        thread::sleep(Duration::from_millis(1));
    }
    Ok(rec)
}
