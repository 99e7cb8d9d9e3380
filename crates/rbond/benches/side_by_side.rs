//! rbond side by side with the bare link and Open vSwitch, on the test network (a host
//! with eth0 and eth1 cabled to a Linux bridge, a peer behind it), one contender at a time:
//! rbond's kernel and userspace datapaths, and Open vSwitch's userspace (netdev)
//! active-backup bond when `ovs-vswitchd` is installed. Beside each contender's host sits a
//! witness: a namespace cabled straight to the same bridge, the bare veth path. Witness and
//! contender take turns, so each ratio compares runs seconds apart (on a shared VM the bare
//! path alone drifts by a fifth from one minute to the next). Needs root, iperf3 and ping;
//! `bench/run` installs them, runs this and files its tables in bench/results.md.
//!
//! CONTENDERS (default `kernel,userspace,ovs`) picks who runs.
//!
//! - TCP throughput with iperf3, offloads left on: one stream both ways, witness and
//!   contender in turn RUNS times (default 3; medians of the figures and of the ratios), and
//!   four streams both ways, SECS seconds each (default 5).
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
    Kernel,
    Userspace,
    Ovs,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Kernel => "rbond, kernel datapath",
            Contender::Userspace => "rbond, userspace datapath",
            Contender::Ovs => {
                "Open vSwitch userspace bond (netdev, carrier detect; the peer's tx offload off, for the bare turns too)"
            }
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
        ovs.exec(
            "ovsdb-server",
            &[
                &db.display().to_string(),
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--pidfile={d}/ovsdb.pid"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                "--detach",
                &format!("--log-file={d}/ovsdb.log"),
            ],
        )?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.exec(
            "ovs-vswitchd",
            &[
                &format!("unix:{d}/db.sock"),
                &format!("--pidfile={d}/vswitchd.pid"),
                &format!("--unixctl={d}/vswitchd.ctl"),
                "--detach",
                &format!("--log-file={d}/vswitchd.log"),
            ],
        )?;
        let miimon = opt(opts, "miimon").unwrap_or("100");
        let updelay = opt(opts, "updelay").unwrap_or("0");
        let downdelay = opt(opts, "downdelay").unwrap_or("0");
        ovs.vsctl(&["add-br", "brb", "--", "set", "bridge", "brb", "datapath_type=netdev"])?;
        let mut bond = vec!["add-bond", "brb", "bond0", "eth0", "eth1", "bond_mode=active-backup"];
        let (m, u, dd) = (
            format!("other_config:bond-miimon-interval={miimon}"),
            format!("bond_updelay={updelay}"),
            format!("bond_downdelay={downdelay}"),
        );
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
    Rbond,
    Ovs(Ovs),
}

fn bring_up(lab: &mut Lab, path: Contender, opts: &[&str]) -> anyhow::Result<Bond> {
    match path {
        Contender::Ovs => {
            // Its netdev datapath reads frames without their checksum state: a peer that
            // leaves checksums to offload sends it frames it cannot deliver (UDP is dropped,
            // TCP stalls), so the peer computes them itself, as OVS users are told to do.
            ip(&["netns", "exec", &lab.peer(), "ethtool", "-K", "eth0", "tx", "off"])?;
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
            Bond::Rbond => lab.get("active_slave").ok().filter(|s| !s.is_empty()),
            Bond::Ovs(o) => o.active(),
        }
    }

    /// The process doing the forwarding, for its CPU and memory.
    fn pid(&self, lab: &Lab) -> Option<u32> {
        match self {
            Bond::Rbond => lab.daemon_pid(),
            Bond::Ovs(o) => std::fs::read_to_string(o.dir.join("vswitchd.pid")).ok()?.trim().parse().ok(),
        }
    }
}

/// Median and p99 (ms) of 1,000 pings to the peer from namespace `ns`.
fn rtt(ns: &str) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-c", "1000", "-i", "0.002", &PEER_IP.to_string()])
        .output()
        .context("ping (apt-get install iputils-ping)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t: Vec<f64> =
        text.lines().filter_map(|l| l.split("time=").nth(1)?.split(' ').next()?.parse().ok()).collect();
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

/// The bare path beside a contender: a namespace with one veth into the same bridge and the
/// address 10.77.0.3; removed when dropped.
struct Witness {
    ns: String,
}

impl Witness {
    fn cable(lab: &Lab) -> anyhow::Result<Witness> {
        let w = Witness { ns: format!("{}w", lab.host()) };
        let sw = lab.switch_of("eth0");
        ip(&["netns", "add", &w.ns])?;
        ip(&["link", "add", "eth0", "netns", &w.ns, "type", "veth", "peer", "name", "w0", "netns", &sw])?;
        ip(&["-n", &sw, "link", "set", "w0", "master", "br0", "up"])?;
        ip(&["-n", &w.ns, "addr", "add", "10.77.0.3/24", "dev", "eth0"])?;
        for dev in ["lo", "eth0"] {
            ip(&["-n", &w.ns, "link", "set", dev, "up"])?;
        }
        Ok(w)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
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

/// Gbit/s received and bytes moved by one iperf3 run from namespace `ns`.
fn iperf(ns: &str, secs: u64, extra: &[&str]) -> anyhow::Result<(f64, u64)> {
    let (t, limit) = (secs.to_string(), (secs + 15).to_string());
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &limit, "iperf3", "-c", &PEER_IP.to_string(), "-t", &t, "-J"])
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

/// Everything measured of one contender.
#[derive(Default)]
struct Figures {
    /// Gbit/s: one stream out, in; four streams out, in.
    gbps: Option<[f64; 4]>,
    /// The witness's one stream out and in, Gbit/s, and the contender's share of it (medians
    /// of the turn-by-turn ratios).
    bare_gbps: Option<[f64; 2]>,
    ratio: Option<[f64; 2]>,
    /// The witness's ping RTT median and p99, ms, taken just before the contender's.
    bare_rtt: Option<(f64, f64)>,
    /// CPU seconds per GB, CPU % at rest, RSS in MB, of the forwarding daemon.
    daemon: Option<(f64, f64, f64)>,
    failure: Option<String>,
    /// Ping RTT median and p99, ms.
    rtt: Option<(f64, f64)>,
    pulls: Vec<(Duration, u32)>,
    guide_pulls: Vec<(Duration, u32)>,
    /// Probe datagrams lost and sent across `rbond restart`.
    restart: Option<(u32, u32)>,
    /// Where the CPU went while one TCP stream crossed it (perf, when installed).
    profile: Option<String>,
}

fn throughput(lab: &Lab, witness: &Witness, pid: Option<u32>, f: &mut Figures) -> anyhow::Result<()> {
    let (secs, runs) = (env_num("SECS", 5), env_num("RUNS", 3));
    let host = lab.host();
    let _server = IperfServer::start(lab)?;
    let mut cpu = 0.0;
    let mut bytes = 0;
    // One run from the host, with the daemon's CPU time and the bytes it moved.
    let mut run = |extra: &[&str]| -> anyhow::Result<f64> {
        let c0 = pid.map_or(0.0, cpu_secs);
        let (g, b) = iperf(&host, secs, extra)?;
        cpu += pid.map_or(0.0, cpu_secs) - c0;
        bytes += b;
        Ok(g)
    };
    let (mut mine, mut bare, mut ratio) = ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    for _ in 0..runs {
        for (i, dir) in [&[][..], &["-R"][..]].into_iter().enumerate() {
            let b = iperf(&witness.ns, secs, dir)?.0;
            let m = run(dir)?;
            bare[i].push(b);
            mine[i].push(m);
            ratio[i].push(m / b);
        }
    }
    let four = [run(&["-P", "4"])?, run(&["-P", "4", "-R"])?];
    let [mo, mi] = mine.map(median);
    f.gbps = Some([mo, mi, four[0], four[1]]);
    f.bare_gbps = Some(bare.map(median));
    f.ratio = Some(ratio.map(median));
    if let Some(pid) = pid {
        let per_gb = cpu / (bytes as f64 / 1e9);
        let idle0 = cpu_secs(pid);
        std::thread::sleep(Duration::from_secs(10));
        let idle = (cpu_secs(pid) - idle0) / 10.0 * 100.0;
        f.daemon = Some((per_gb, idle, rss_mb(pid)));
    }
    Ok(())
}

/// perf's view of the whole machine while one stream goes out: the CPU by command, and the
/// busiest kernel and user functions of the daemon.
fn profile(lab: &Lab) -> Option<String> {
    Command::new("perf").arg("--version").output().ok()?;
    let data = lab.run_dir.join("perf.data");
    let _server = IperfServer::start(lab).ok()?;
    let traffic = std::thread::scope(|s| {
        let t = s.spawn(|| iperf(&lab.host(), 6, &[]));
        std::thread::sleep(Duration::from_secs(1));
        let rec = Command::new("perf")
            .args(["record", "-a", "-g", "-F", "999", "-o"])
            .arg(&data)
            .args(["--", "sleep", "4"])
            .output();
        Some((t.join().ok()?.ok()?, rec.ok()?))
    })?;
    // Entries up to 100 % only: with children counted, the syscall entry points exceed it.
    let report = |extra: &[&str], lines: usize| -> String {
        let out = Command::new("perf").args(["report", "--stdio", "-g", "none", "-i"]).arg(&data).args(extra).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let share = |l: &str| l.trim_start().split('%').next()?.parse::<f64>().ok();
        text.lines()
            .filter(|l| share(l).is_some_and(|p| p <= 100.0))
            .take(lines)
            .map(|l| format!("    {}\n", l.trim()))
            .collect()
    };
    let (gbps, _) = traffic.0;
    let daemon = ["--comms", "rbond", "--percentage", "relative", "--sort", "sym"];
    Some(format!(
        "One stream out at {gbps:.2} Gbit/s. CPU by command, as shares of all samples (both CPUs \
         together are 100 %):\n\n{}\nThe daemon's time by function, own time only:\n\n{}\nThe \
         daemon's time with what each function calls (nested calls count in each caller):\n\n{}",
        report(&["--no-children", "--sort", "comm"], 4),
        report(&[&["--no-children"][..], &daemon].concat(), 6),
        report(&[&["--children"][..], &daemon].concat(), 16),
    ))
}

/// Probe datagrams lost across `rbond restart`, at 10,000 a second.
fn restart(lab: &Lab) -> anyhow::Result<(u32, u32)> {
    let _echo = lab.echo()?;
    let probe = lab.probe(10_000);
    std::thread::sleep(Duration::from_secs(1));
    let out = lab.rbond(bin()).args(["restart", "bond0"]).output()?;
    if !out.status.success() {
        bail!("rbond restart: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::thread::sleep(Duration::from_secs(1));
    let w = probe.finish()?.whole();
    Ok((w.lost, w.sent))
}

fn measure(who: Contender, n: usize, f: &mut Figures) -> anyhow::Result<()> {
    let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
    let witness = Witness::cable(&lab)?;
    let bond = bring_up(&mut lab, who, NO_DELAYS)?;
    std::thread::sleep(Duration::from_secs(1));
    f.bare_rtt = Some(rtt(&witness.ns)?);
    f.rtt = Some(rtt(&lab.host())?);
    throughput(&lab, &witness, bond.pid(&lab), f)?;
    if who == Contender::Userspace {
        f.profile = profile(&lab);
    }
    f.pulls = pulls(&lab, &bond, n)?;
    if matches!(bond, Bond::Rbond) {
        f.restart = Some(restart(&lab)?);
    }
    drop((bond, witness, lab));
    let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
    let bond = bring_up(&mut lab, who, GUIDE)?;
    std::thread::sleep(Duration::from_secs(1));
    f.guide_pulls = pulls(&lab, &bond, n)?;
    Ok(())
}

/// Median and max of the outages (ms) and of the packets lost.
fn spread(v: &[(Duration, u32)]) -> Option<(f64, f64, u32, u32)> {
    let mut ms: Vec<f64> = v.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
    let mut lost: Vec<u32> = v.iter().map(|(_, l)| *l).collect();
    ms.sort_by(f64::total_cmp);
    lost.sort();
    Some((*ms.get(ms.len() / 2)?, *ms.last()?, lost[lost.len() / 2], *lost.last()?))
}

fn pulls_cell(v: &[(Duration, u32)]) -> String {
    spread(v).map_or("—".into(), |(m, x, lm, lx)| format!("{m:.1} / {x:.1} ms ({lm} / {lx} pkts)"))
}

fn print_tables(rows: &[(Contender, Figures)]) {
    println!(
        "| path | 1 stream out, Gbit/s | 1 stream in | bare veth in the same turns (out / in) | vs bare (out / in) | 4 streams out | 4 streams in | daemon CPU s per GB | daemon CPU at rest | daemon RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (who, f) in rows {
        let cells = match (f.gbps, f.bare_gbps, f.ratio) {
            (Some(g), Some(b), Some(r)) => {
                let d = f.daemon.map_or(["—".to_string(), "—".into(), "—".into()], |(gb, idle, rss)| {
                    [format!("{gb:.3}"), format!("{idle:.3} %"), format!("{rss:.1} MB")]
                });
                format!(
                    "{:.2} | {:.2} | {:.2} / {:.2} | {:.0} % / {:.0} % | {:.2} | {:.2} | {}",
                    g[0],
                    g[1],
                    b[0],
                    b[1],
                    100.0 * r[0],
                    100.0 * r[1],
                    g[2],
                    g[3],
                    d.join(" | ")
                )
            }
            _ => format!("failed: {} | | | | | | | | |", f.failure.as_deref().unwrap_or("no figures")),
        };
        println!("| {} | {cells} |", who.label());
    }
    println!();
    println!(
        "| path | ping RTT median / p99, ms | bare veth just before | outage on pull at 10k pkt/s, delays 0: median / max | with the guide's delays (200 ms): median / max | lost across `rbond restart` |"
    );
    println!("|---|---|---|---|---|---|");
    let pair = |r: Option<(f64, f64)>| r.map_or("—".into(), |(a, b)| format!("{a:.3} / {b:.3}"));
    for (who, f) in rows {
        let restart = f.restart.map_or("—".into(), |(l, s)| format!("{l} of {s}"));
        println!(
            "| {} | {} | {} | {} | {} | {restart} |",
            who.label(),
            pair(f.rtt),
            pair(f.bare_rtt),
            pulls_cell(&f.pulls),
            pulls_cell(&f.guide_pulls)
        );
    }
}

/// The issue's goals against this run's figures: met, or missed and by how much.
fn print_goals(rows: &[(Contender, Figures)]) {
    println!("| goal | measured | |");
    println!("|---|---|---|");
    let line = |goal: String, measured: String, met: Option<bool>, miss: String| {
        let verdict = match met {
            Some(true) => "met".to_string(),
            Some(false) => format!("**missed** {miss}"),
            None => "not measured".to_string(),
        };
        println!("| {goal} | {measured} | {verdict} |");
    };
    for (c, f) in rows {
        let (name, want, limit) = match c {
            Contender::Kernel => ("kernel", 95.0, 10.0),
            Contender::Userspace => ("userspace", 85.0, 50.0),
            Contender::Ovs => continue,
        };
        let pct = f.ratio.map(|r| 100.0 * r[0].min(r[1]));
        line(
            format!("{name} datapath throughput ≥ {want:.0} % of bare veth (one stream, worse direction)"),
            pct.map_or("—".into(), |p| format!("{p:.0} %")),
            pct.map(|p| p >= want),
            pct.map_or(String::new(), |p| format!("by {:.0} points", want - p)),
        );
        let added = f.rtt.zip(f.bare_rtt).map(|(r, b)| (r.0 - b.0) * 1000.0);
        line(
            format!("{name} datapath RTT added ≤ {limit:.0} µs (median)"),
            added.map_or("—".into(), |a| format!("{a:.0} µs")),
            added.map(|a| a <= limit),
            added.map_or(String::new(), |a| format!("by {:.0} µs", a - limit)),
        );
        let s = spread(&f.pulls);
        line(
            format!("{name} datapath failover, delays 0: median ≤ 0.5 ms, max ≤ 1 ms"),
            s.map_or("—".into(), |(m, x, _, _)| format!("{m:.1} / {x:.1} ms")),
            s.map(|(m, x, _, _)| m <= 0.5 && x <= 1.0),
            s.map_or(String::new(), |(m, x, _, _)| {
                format!("by {:.1} / {:.1} ms", (m - 0.5).max(0.0), (x - 1.0).max(0.0))
            }),
        );
        let g = spread(&f.guide_pulls);
        line(
            format!("{name} datapath failover, guide's settings: ≤ 200 ms + one miimon tick (300 ms)"),
            g.map_or("—".into(), |(_, x, _, _)| format!("max {x:.1} ms")),
            g.map(|(_, x, _, _)| x <= 300.0),
            g.map_or(String::new(), |(_, x, _, _)| format!("by {:.1} ms", x - 300.0)),
        );
        if let Some((_, idle, rss)) = f.daemon {
            line(
                format!("{name} datapath idle daemon < 0.1 % CPU, RSS ≤ 8 MB"),
                format!("{idle:.3} %, {rss:.1} MB"),
                Some(idle < 0.1 && rss <= 8.0),
                String::new(),
            );
        }
        if *c == Contender::Kernel {
            line(
                "kernel datapath: 0 packets lost at 10k/s across a daemon restart".into(),
                f.restart.map_or("—".into(), |(l, s)| format!("{l} of {s}")),
                f.restart.map(|(l, _)| l == 0),
                f.restart.map_or(String::new(), |(l, _)| format!("by {l} packets")),
            );
        }
    }
    let profile = rows.iter().find(|(c, _)| *c == Contender::Userspace).and_then(|(_, f)| f.profile.as_deref());
    if let Some(p) = profile {
        println!("\nProfile of the userspace datapath (`perf record -a -g`):\n\n{p}");
    }
}

fn main() -> anyhow::Result<()> {
    rbond::lab::can_run().map_err(|why| anyhow::anyhow!("side_by_side: {why}"))?;
    let n = env_num("PULLS", 10) as usize;
    let ovs = Command::new("ovs-vswitchd").arg("--version").output().is_ok();
    let wanted = std::env::var("CONTENDERS").unwrap_or_else(|_| "kernel,userspace,ovs".into());
    let contenders: Vec<Contender> =
        [(Contender::Kernel, "kernel"), (Contender::Userspace, "userspace"), (Contender::Ovs, "ovs")]
            .into_iter()
            .filter(|(c, name)| wanted.split(',').any(|w| w == *name) && (*c != Contender::Ovs || ovs))
            .map(|(c, _)| c)
            .collect();
    let mut rows = Vec::new();
    for who in contenders {
        eprintln!("measuring: {}", who.label());
        let mut f = Figures::default();
        if let Err(e) = measure(who, n, &mut f) {
            eprintln!("  {}: {e:#}", who.label());
            f.failure = Some(format!("{e:#}"));
        }
        rows.push((who, f));
    }
    print_tables(&rows);
    println!();
    print_goals(&rows);
    Ok(())
}
