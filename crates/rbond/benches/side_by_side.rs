//! rbond side by side with the bare link and Open vSwitch, on the test network (a host
//! with eth0 and eth1 cabled to a Linux bridge, a peer behind it), one contender at a time:
//! bare veth (the peer reached through eth0 alone), rbond's kernel and userspace datapaths,
//! and Open vSwitch's userspace (netdev) active-backup bond when `ovs-vswitchd` is
//! installed. Needs root, iperf3 and ping; `bench/run` installs them, runs this and files
//! its tables in bench/results.md.
//!
//! - TCP throughput with iperf3, offloads left on: one stream (median of RUNS, default 3)
//!   and four streams, both ways, SECS seconds each (default 5).
//! - CPU seconds per GB moved, CPU at rest (10 s) and RSS of the daemon (rbond or
//!   ovs-vswitchd, every thread counted).
//! - Round-trip time: 1,000 pings 2 ms apart, median and p99.
//! - Failover: a 10,000 packet/s UDP probe runs while the active slave's cable is pulled
//!   and replugged PULLS times (default 10), with no delays (miimon 100) and with the
//!   guide's settings (miimon 100, updelay and downdelay 200, primary eth0).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rbond::lab::{BOND_IP, Lab, PEER_IP, Wiring, ip};

const GUIDE: &[&str] = &["miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];
const NO_DELAYS: &[&str] = &["miimon=100"];

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Bare,
    Kernel,
    Userspace,
    Ovs,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Bare => "bare veth (no bond)",
            Contender::Kernel => "rbond, kernel datapath",
            Contender::Userspace => "rbond, userspace datapath",
            Contender::Ovs => "Open vSwitch userspace bond (netdev, carrier detect; peer tx offload off)",
        }
    }
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rbond"))
}

/// Open vSwitch confined to the lab's host namespace, with its own database and run
/// directory; everything stops when this is dropped.
struct Ovs {
    dir: std::path::PathBuf,
    host: String,
}

impl Ovs {
    fn start(lab: &Lab, opts: &[&str]) -> anyhow::Result<Ovs> {
        let dir = lab.run_dir.join("ovs");
        std::fs::create_dir_all(&dir)?;
        let ovs = Ovs { dir: dir.clone(), host: lab.host() };
        let db = dir.join("conf.db");
        let d = dir.display();
        run("ovsdb-tool", &["create", &db.display().to_string(), "/usr/share/openvswitch/vswitch.ovsschema"])?;
        ovs.exec("ovsdb-server", &[&db.display().to_string(), &format!("--remote=punix:{d}/db.sock"), &format!("--pidfile={d}/ovsdb.pid"), &format!("--unixctl={d}/ovsdb.ctl"), "--detach", &format!("--log-file={d}/ovsdb.log")])?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.exec("ovs-vswitchd", &[&format!("unix:{d}/db.sock"), &format!("--pidfile={d}/vswitchd.pid"), &format!("--unixctl={d}/vswitchd.ctl"), "--detach", &format!("--log-file={d}/vswitchd.log")])?;
        let miimon = opt(opts, "miimon").unwrap_or("100");
        let updelay = opt(opts, "updelay").unwrap_or("0");
        let downdelay = opt(opts, "downdelay").unwrap_or("0");
        ovs.vsctl(&["add-br", "brb", "--", "set", "bridge", "brb", "datapath_type=netdev"])?;
        let mut bond = vec!["add-bond", "brb", "bond0", "eth0", "eth1", "bond_mode=active-backup"];
        let (m, u, dd) = (format!("other_config:bond-miimon-interval={miimon}"), format!("bond_updelay={updelay}"), format!("bond_downdelay={downdelay}"));
        bond.extend(["other_config:bond-detect-mode=carrier", &m, &u, &dd]);
        let primary = opt(opts, "primary").map(|p| format!("other_config:bond-primary={p}"));
        bond.extend(primary.as_deref());
        ovs.vsctl(&bond)?;
        for dev in ["eth0", "eth1", "brb"] {
            ip(&["-n", &ovs.host, "link", "set", dev, "up"])?;
        }
        ip(&["-n", &ovs.host, "addr", "add", &format!("{BOND_IP}/24"), "dev", "brb"])?;
        Ok(ovs)
    }

    fn exec(&self, prog: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut a = vec!["netns", "exec", &self.host, prog];
        a.extend(args);
        let out = Command::new("ip").args(&a).env("OVS_RUNDIR", &self.dir).env("OVS_DBDIR", &self.dir).output()?;
        if !out.status.success() {
            bail!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    fn vsctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let db = format!("--db=unix:{}/db.sock", self.dir.display());
        let mut a = vec![db.as_str(), "--timeout=10"];
        a.extend(args);
        self.exec("ovs-vsctl", &a)
    }

    /// The bond's active member: `ovs-appctl bond/show` lists each member and marks the
    /// active one under it.
    fn active(&self) -> Option<String> {
        let ctl = format!("--target={}/vswitchd.ctl", self.dir.display());
        let out = Command::new("ovs-appctl").args([&ctl, "bond/show", "bond0"]).output().ok()?;
        let mut member = None;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(rest) = l.strip_prefix("member ") {
                member = rest.split(':').next().map(str::to_string);
            } else if l.trim() == "active member" {
                return member;
            }
        }
        None
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for p in ["vswitchd.pid", "ovsdb.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(p)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn opt<'a>(opts: &[&'a str], name: &str) -> Option<&'a str> {
    opts.iter().find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
}

fn run(prog: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(prog).args(args).output().with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// What stands in the host namespace for the bond; kept alive while measuring.
enum Bond {
    Bare,
    Rbond,
    Ovs(Ovs),
}

fn bring_up(lab: &mut Lab, path: Contender, opts: &[&str]) -> anyhow::Result<Bond> {
    let h = lab.host();
    match path {
        Contender::Bare => {
            ip(&["-n", &h, "addr", "add", &format!("{BOND_IP}/24"), "dev", "eth0"])?;
            ip(&["-n", &h, "link", "set", "eth0", "up"])?;
            return Ok(Bond::Bare);
        }
        Contender::Ovs => {
            // Its netdev datapath reads frames without their checksum state: a peer that
            // leaves checksums to offload sends it frames it cannot deliver (UDP is dropped,
            // TCP stalls), so the peer computes them itself, as OVS users are told to do.
            run("ip", &["netns", "exec", &lab.peer(), "ethtool", "-K", "eth0", "tx", "off"])?;
            return Ok(Bond::Ovs(Ovs::start(lab, opts)?));
        }
        Contender::Kernel | Contender::Userspace => {}
    }
    let dp = if path == Contender::Kernel { "kernel" } else { "userspace" };
    // SAFETY: no other thread runs while the daemon is started.
    unsafe { std::env::set_var("RBOND_DATAPATH", dp) };
    let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    lab.start_bond(bin(), &["eth0", "eth1"], &opts)?;
    Ok(Bond::Rbond)
}

impl Bond {
    fn active(&self, lab: &Lab) -> Option<String> {
        match self {
            Bond::Bare => Some("eth0".into()),
            Bond::Rbond => lab.get("active_slave").ok().filter(|s| !s.is_empty()),
            Bond::Ovs(o) => o.active(),
        }
    }

    /// The process doing the forwarding, for its CPU and memory.
    fn pid(&self, lab: &Lab) -> Option<u32> {
        match self {
            Bond::Bare => None,
            Bond::Rbond => lab.daemon_pid(),
            Bond::Ovs(o) => std::fs::read_to_string(o.dir.join("vswitchd.pid")).ok()?.trim().parse().ok(),
        }
    }
}

/// Median and p99 (ms) of 1,000 pings to the peer.
fn rtt(lab: &Lab) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.host(), "ping", "-n", "-c", "1000", "-i", "0.002", &PEER_IP.to_string()])
        .output()
        .context("ping (apt-get install iputils-ping)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t: Vec<f64> = text.lines().filter_map(|l| l.split("time=").nth(1)?.split(' ').next()?.parse().ok()).collect();
    if t.len() < 900 {
        bail!("only {} of 1000 pings answered", t.len());
    }
    t.sort_by(f64::total_cmp);
    Ok((t[t.len() / 2], t[t.len() * 99 / 100]))
}

/// Outage and lost packets (at 10k/s) for each pull of the active slave's cable.
fn pulls(lab: &Lab, bond: &Bond, n: usize) -> anyhow::Result<Vec<(Duration, u32)>> {
    let _echo = lab.echo()?;
    let probe = lab.probe(10_000);
    // Long enough to see the slowest contender recover (Open vSwitch needs about a second),
    // and for a replugged link to wait out its updelay.
    let settle = Duration::from_secs(2);
    std::thread::sleep(Duration::from_millis(500));
    let mut cuts = Vec::new();
    for _ in 0..n {
        let Some(slave) = bond.active(lab) else { bail!("no active slave") };
        cuts.push(probe.elapsed());
        lab.cable_of(&slave, false)?;
        std::thread::sleep(settle);
        lab.cable_of(&slave, true)?;
        std::thread::sleep(settle);
    }
    let rec = probe.finish()?;
    Ok(cuts.iter().map(|c| rec.window(*c, *c + settle)).map(|w| (w.outage, w.lost)).collect())
}

fn summary(v: &[(Duration, u32)]) -> String {
    let mut ms: Vec<f64> = v.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
    let mut lost: Vec<u32> = v.iter().map(|(_, l)| *l).collect();
    ms.sort_by(f64::total_cmp);
    lost.sort();
    format!("{:.1} / {:.1} ms ({} / {} pkts)", ms[ms.len() / 2], ms[ms.len() - 1], lost[lost.len() / 2], lost[lost.len() - 1])
}

/// An iperf3 server on the peer for as long as this lives.
struct IperfServer(Child);

impl IperfServer {
    fn start(lab: &Lab) -> anyhow::Result<IperfServer> {
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.peer(), "iperf3", "-s", "-B", &PEER_IP.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("iperf3 (apt-get install iperf3)")?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(IperfServer(child))
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Gbit/s received and bytes moved by one iperf3 run from the host.
fn iperf(lab: &Lab, secs: u64, extra: &[&str]) -> anyhow::Result<(f64, u64)> {
    let (t, limit) = (secs.to_string(), (secs + 15).to_string());
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.host(), "timeout", &limit, "iperf3", "-c", &PEER_IP.to_string(), "-t", &t, "-J"])
        .args(extra)
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 gave no report (TCP stalled)")?;
    let end = &v["end"]["sum_received"];
    match (end["bits_per_second"].as_f64(), end["bytes"].as_u64()) {
        (Some(bps), Some(bytes)) if bytes > 0 => Ok((bps / 1e9, bytes)),
        _ => bail!("iperf3: {}", v["error"].as_str().unwrap_or("no data moved (TCP stalled)")),
    }
}

/// CPU time of every thread of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One contender's row of each table.
struct Rows {
    throughput: Vec<String>,
    latency: Vec<String>,
}

fn throughput(lab: &Lab, pid: Option<u32>) -> anyhow::Result<Vec<String>> {
    let (secs, runs) = (env_num("SECS", 5), env_num("RUNS", 3));
    let _server = IperfServer::start(lab)?;
    let cpu0 = pid.map(cpu_secs);
    let (mut out, mut inn, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let (o, b) = iperf(lab, secs, &[])?;
        let (i, c) = iperf(lab, secs, &["-R"])?;
        out.push(o);
        inn.push(i);
        bytes += b + c;
    }
    let (o4, b4) = iperf(lab, secs, &["-P", "4"])?;
    let (i4, c4) = iperf(lab, secs, &["-P", "4", "-R"])?;
    let mut cells = vec![median(out), median(inn), o4, i4].iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>();
    let (Some(pid), Some(cpu0)) = (pid, cpu0) else {
        cells.extend(["—", "—", "—"].map(String::from));
        return Ok(cells);
    };
    let per_gb = (cpu_secs(pid) - cpu0) / ((bytes + b4 + c4) as f64 / 1e9);
    let idle0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_secs(pid) - idle0) / 10.0 * 100.0;
    cells.extend([format!("{per_gb:.3}"), format!("{idle:.3} %"), format!("{:.1} MB", rss_mb(pid))]);
    Ok(cells)
}

fn measure(who: Contender, n: usize) -> anyhow::Result<Rows> {
    let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
    let bond = bring_up(&mut lab, who, NO_DELAYS)?;
    std::thread::sleep(Duration::from_secs(1));
    let (p50, p99) = rtt(&lab)?;
    let mut latency = vec![format!("{p50:.3} / {p99:.3}")];
    let throughput = throughput(&lab, bond.pid(&lab)).unwrap_or_else(|e| vec![format!("failed: {e:#}")]);
    if who != Contender::Bare {
        latency.push(summary(&pulls(&lab, &bond, n)?));
        drop((bond, lab));
        let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
        let bond = bring_up(&mut lab, who, GUIDE)?;
        std::thread::sleep(Duration::from_secs(1));
        latency.push(summary(&pulls(&lab, &bond, n)?));
    }
    Ok(Rows { throughput, latency })
}

fn main() -> anyhow::Result<()> {
    rbond::lab::can_run().map_err(|why| anyhow::anyhow!("side_by_side: {why}"))?;
    let n = env_num("PULLS", 10) as usize;
    let mut contenders = vec![Contender::Bare, Contender::Kernel, Contender::Userspace];
    if Command::new("ovs-vswitchd").arg("--version").output().is_ok() {
        contenders.push(Contender::Ovs);
    }
    let mut rows = Vec::new();
    for who in contenders {
        eprintln!("measuring: {}", who.label());
        let r = measure(who, n).unwrap_or_else(|e| Rows { throughput: vec![format!("failed: {e:#}")], latency: vec![] });
        rows.push((who, r));
    }
    let bare: Vec<f64> = rows[0].1.throughput.iter().take(2).filter_map(|c| c.parse().ok()).collect();
    println!("| path | 1 stream out, Gbit/s | 1 stream in | vs bare (out / in) | 4 streams out | 4 streams in | daemon CPU s per GB | daemon CPU at rest | daemon RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (who, r) in &rows {
        let mut cells = r.throughput.clone();
        let ratio = |i: usize| Some(100.0 * cells.get(i)?.parse::<f64>().ok()? / bare.get(i)?);
        if let (Some(o), Some(i)) = (ratio(0), ratio(1)) {
            cells.insert(2, format!("{o:.0} % / {i:.0} %"));
        }
        println!("| {} | {} |", who.label(), cells.join(" | "));
    }
    println!();
    println!("| path | ping RTT median / p99, ms | outage on pull at 10k pkt/s, delays 0: median / max | with the guide's delays (200 ms): median / max |");
    println!("|---|---|---|---|");
    for (who, r) in &rows {
        let mut cells = r.latency.clone();
        cells.resize(3, "—".to_string());
        println!("| {} | {} |", who.label(), cells.join(" | "));
    }
    Ok(())
}
