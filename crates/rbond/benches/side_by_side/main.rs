//! rbond side by side with the bare link and Open vSwitch, on the test network (a host with
//! eth0 and eth1 cabled to a Linux bridge, a peer behind it), one contender at a time:
//! rbond's kernel datapath on tcx and on cls_bpf, its userspace datapath, and Open vSwitch's
//! userspace (netdev) active-backup bond when `ovs-vswitchd` is installed.
//!
//! Beside each contender sits a witness: by default a namespace cabled straight to the same
//! bridge (the bare veth path); with BASELINE=path/to/rbond, the same contender built from
//! another revision, on a lab of its own (an A/B of two builds). Witness and contender take
//! turns in short pairs, the order flipping every pair, so each ratio compares runs seconds
//! apart (on a shared VM the bare path alone drifts by a fifth from one minute to the next);
//! every figure is the median of its pairs with a 95 % bootstrap confidence interval.
//!
//! - TCP throughput with iperf3, offloads on: one and four streams both ways, PAIRS pairs
//!   (default 10) of SECS seconds (default 2) each, and the forwarder's CPU seconds per GB.
//! - Round-trip time: PAIRS pairs of 300 pings 2 ms apart, the median of each.
//! - CPU at rest (10 s) and RSS of the forwarding daemon.
//! - Failover: a 10,000 packet/s UDP probe while the active slave's cable is pulled and
//!   replugged PULLS times (default 30), with no delays (miimon 100) and with the guide's
//!   settings (miimon 100, updelay and downdelay 200, primary eth0).
//!
//! Needs root, iperf3 and ping; `bench/run` installs them, runs this and files its tables in
//! bench/results.md. CONTENDERS (default `kernel,kernel-tc,userspace,ovs`) picks who runs.

mod ovs;
mod report;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use rbond::lab::{Lab, Wiring, ip};
use tools::{IperfServer, Side, Witness, env_num};

const GUIDE: &[&str] = &["miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];
const NO_DELAYS: &[&str] = &["miimon=100"];
/// Pings per turn: 0.6 s at one every 2 ms.
const PINGS: usize = 300;

#[derive(Clone, Copy, PartialEq)]
pub enum Contender {
    Kernel,
    KernelTc,
    Userspace,
    Ovs,
}

impl Contender {
    const ALL: [Contender; 4] = [Contender::Kernel, Contender::KernelTc, Contender::Userspace, Contender::Ovs];

    /// Its name in CONTENDERS, and rbond's `--datapath` for it.
    fn name(self) -> &'static str {
        match self {
            Contender::Kernel => "kernel",
            Contender::KernelTc => "kernel-tc",
            Contender::Userspace => "userspace",
            Contender::Ovs => "ovs",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Contender::Kernel => "rbond, kernel datapath on tcx",
            Contender::KernelTc => "rbond, kernel datapath on cls_bpf",
            Contender::Userspace => "rbond, userspace datapath",
            Contender::Ovs => {
                "Open vSwitch userspace bond (netdev, carrier detect; the peer's tx offload off, for the bare turns too)"
            }
        }
    }
}

/// The same measurement taken from the witness and from the contender, turn by turn.
#[derive(Default)]
pub struct Pairs {
    pub witness: Vec<f64>,
    pub contender: Vec<f64>,
}

impl Pairs {
    /// The contender's runs or the witness's.
    fn side(&mut self, contender: bool) -> &mut Vec<f64> {
        if contender { &mut self.contender } else { &mut self.witness }
    }

    pub fn ratios(&self) -> Vec<f64> {
        self.contender.iter().zip(&self.witness).map(|(c, w)| c / w).collect()
    }

    pub fn differences(&self) -> Vec<f64> {
        self.contender.iter().zip(&self.witness).map(|(c, w)| c - w).collect()
    }
}

/// The four throughput figures, in table order: the label and iperf3's arguments.
pub const STREAMS: [(&str, &[&str]); 4] = [
    ("1 stream out", &[]),
    ("1 stream in", &["-R"]),
    ("4 streams out", &["-P", "4"]),
    ("4 streams in", &["-P", "4", "-R"]),
];

/// Everything measured of one contender.
#[derive(Default)]
pub struct Figures {
    /// Gbit/s, for each of `STREAMS`.
    pub gbps: Vec<Pairs>,
    /// The forwarders' CPU seconds per GB, run by run (the witness's only in an A/B).
    pub cpu_per_gb: Pairs,
    /// In the one-stream runs: the contender's forwarder's share of one CPU, and the
    /// machine's busy share of all its CPUs, turn by turn (the witness's: the machine's).
    pub forwarder_busy: Vec<f64>,
    pub machine_busy: Pairs,
    /// Every CPU's busy seconds per GB, run by run, both sides.
    pub host_cpu_per_gb: Pairs,
    /// Each turn's median ping RTT, µs, and every ping, for the tails.
    pub rtt: Pairs,
    pub all_pings: Pairs,
    /// The daemon's CPU % at rest and RSS in MB.
    pub idle: Option<(f64, f64)>,
    /// Outage (ms) and packets lost, pull by pull.
    pub pulls: Vec<(f64, u32)>,
    pub guide_pulls: Vec<(f64, u32)>,
    /// Probe datagrams lost and sent across `rbond restart`.
    pub restart: Option<(u32, u32)>,
    /// Where the CPU went while one TCP stream crossed it (perf, when installed).
    pub profile: Option<String>,
    pub failure: Option<String>,
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbond"))
}

/// What stands in the host namespace for the bond; kept alive while measuring.
enum Bond {
    Rbond,
    Ovs(ovs::Ovs),
}

fn bring_up(lab: &mut Lab, who: Contender, bin: &Path, opts: &[&str]) -> anyhow::Result<Bond> {
    if who == Contender::Ovs {
        // Its netdev datapath reads frames without their checksum state: a peer that leaves
        // checksums to offload sends it frames it cannot deliver (UDP is dropped, TCP
        // stalls), so the peer computes them itself, as OVS users are told to do.
        ip(&["netns", "exec", &lab.peer(), "ethtool", "-K", "eth0", "tx", "off"])?;
        return Ok(Bond::Ovs(ovs::Ovs::start(lab, opts)?));
    }
    // SAFETY: no other thread runs while the daemon is started.
    unsafe { std::env::set_var("RBOND_DATAPATH", who.name()) };
    let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    lab.start_bond(bin, &["eth0", "eth1"], &opts)?;
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

/// Witness and contender in turn, `pairs` times, the order flipping every pair so neither
/// always runs second on a machine that is warming up or being shared.
fn in_turns(pairs: usize, mut take: impl FnMut(bool) -> anyhow::Result<()>) -> anyhow::Result<()> {
    for i in 0..pairs {
        let contender_first = i % 2 == 1;
        take(contender_first)?;
        take(!contender_first)?;
    }
    Ok(())
}

fn throughput(witness: &Side, contender: &Side, f: &mut Figures) -> anyhow::Result<()> {
    let (secs, pairs) = (env_num("SECS", 2), env_num("PAIRS", 10) as usize);
    for (i, (_, extra)) in STREAMS.into_iter().enumerate() {
        let mut p = Pairs::default();
        in_turns(pairs, |is_contender| {
            let side = if is_contender { contender } else { witness };
            let run = tools::iperf(side, secs, extra)?;
            p.side(is_contender).push(run.gbps);
            f.cpu_per_gb.side(is_contender).extend(run.cpu_per_gb);
            f.host_cpu_per_gb.side(is_contender).push(run.host_cpu_per_gb);
            if i < 2 {
                f.machine_busy.side(is_contender).push(run.machine_busy);
                f.forwarder_busy.extend(run.forwarder_busy.filter(|_| is_contender));
            }
            Ok(())
        })?;
        f.gbps.push(p);
    }
    Ok(())
}

fn round_trips(witness: &Side, contender: &Side, f: &mut Figures) -> anyhow::Result<()> {
    in_turns(env_num("PAIRS", 10) as usize, |is_contender| {
        let side = if is_contender { contender } else { witness };
        let t = tools::pings(&side.ns, PINGS)?;
        f.rtt.side(is_contender).push(rbond::lab::stats::median(&t));
        f.all_pings.side(is_contender).extend(t);
        Ok(())
    })
}

/// Outage and lost packets (at 10k/s) for each pull of the active slave's cable.
fn pulls(lab: &Lab, bond: &Bond, settle: Duration) -> anyhow::Result<Vec<(f64, u32)>> {
    let _echo = lab.echo()?;
    let probe = lab.probe(10_000);
    std::thread::sleep(Duration::from_millis(500));
    let mut cuts = Vec::new();
    for _ in 0..env_num("PULLS", 30) {
        let Some(slave) = bond.active(lab) else { bail!("no active slave") };
        cuts.push(probe.elapsed());
        lab.cable_of(&slave, false)?;
        std::thread::sleep(settle);
        lab.cable_of(&slave, true)?;
        std::thread::sleep(settle);
    }
    let rec = probe.finish()?;
    Ok(cuts.iter().map(|c| rec.window(*c, *c + settle)).map(|w| (w.outage.as_secs_f64() * 1e3, w.lost)).collect())
}

/// perf's view of the whole machine while one stream goes out: the CPU by command, and the
/// busiest kernel and user functions of the daemon.
fn profile(lab: &Lab, host: &Side) -> Option<String> {
    Command::new("perf").arg("--version").output().ok()?;
    let data = lab.run_dir.join("perf.data");
    let traffic = std::thread::scope(|s| {
        let t = s.spawn(|| tools::iperf(host, 6, &[]).map(|run| run.gbps));
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
    let (gbps, _) = traffic;
    // Every thread of the daemon: its own and the userspace datapath's forwarding threads.
    let pid = host.pid?.to_string();
    let daemon = ["--pid", &pid, "--percentage", "relative", "--sort", "sym"];
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
    let out = lab.rbond(&bin()).args(["restart", "bond0"]).output()?;
    if !out.status.success() {
        bail!("rbond restart: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::thread::sleep(Duration::from_secs(1));
    let w = probe.finish()?.whole();
    Ok((w.lost, w.sent))
}

/// The witness's side: the bare veth beside the contender, or the baseline build's own lab.
enum Beside {
    Bare(Witness),
    Baseline(Lab),
}

fn measure(who: Contender, baseline: Option<&Path>, f: &mut Figures) -> anyhow::Result<()> {
    let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
    let bond = bring_up(&mut lab, who, &bin(), NO_DELAYS)?;
    let beside = match baseline {
        None => Beside::Bare(Witness::cable(&lab)?),
        Some(old) => {
            let mut base = Lab::new("rbb", Wiring::OneSwitch)?;
            bring_up(&mut base, who, old, NO_DELAYS)?;
            Beside::Baseline(base)
        }
    };
    let (witness, _base_server) = match &beside {
        Beside::Bare(w) => (Side { ns: w.ns.clone(), pid: None }, None),
        Beside::Baseline(b) => (Side { ns: b.host(), pid: b.daemon_pid() }, Some(IperfServer::start(&b.peer())?)),
    };
    let host = Side { ns: lab.host(), pid: bond.pid(&lab) };
    let _server = IperfServer::start(&lab.peer())?;
    std::thread::sleep(Duration::from_secs(1));
    round_trips(&witness, &host, f)?;
    throughput(&witness, &host, f)?;
    if let Some(pid) = host.pid {
        let idle0 = tools::cpu_secs(pid);
        std::thread::sleep(Duration::from_secs(10));
        f.idle = Some(((tools::cpu_secs(pid) - idle0) / 10.0 * 100.0, tools::rss_mb(pid)));
    }
    if baseline.is_some() {
        return Ok(()); // an A/B compares the datapaths; failover is not what changed
    }
    if who == Contender::Userspace {
        f.profile = profile(&lab, &host);
    }
    // Long enough to see the slowest contender recover (Open vSwitch needs about a second),
    // and for a replugged link to wait out its updelay.
    let settle = Duration::from_millis(if who == Contender::Ovs { 2000 } else { 1000 });
    f.pulls = pulls(&lab, &bond, settle)?;
    if matches!(bond, Bond::Rbond) {
        f.restart = Some(restart(&lab)?);
    }
    drop((bond, beside, lab));
    let mut lab = Lab::new("rbf", Wiring::OneSwitch)?;
    let bond = bring_up(&mut lab, who, &bin(), GUIDE)?;
    std::thread::sleep(Duration::from_secs(1));
    f.guide_pulls = pulls(&lab, &bond, settle)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    rbond::lab::can_run().map_err(|why| anyhow::anyhow!("side_by_side: {why}"))?;
    let baseline = std::env::var_os("BASELINE").map(PathBuf::from);
    let ovs = Command::new("ovs-vswitchd").arg("--version").output().is_ok();
    let wanted = std::env::var("CONTENDERS").unwrap_or_else(|_| "kernel,kernel-tc,userspace,ovs".into());
    let contenders = Contender::ALL.into_iter().filter(|c| {
        let rbond = *c != Contender::Ovs;
        wanted.split(',').any(|w| w == c.name()) && (rbond || (ovs && baseline.is_none()))
    });
    let mut rows = Vec::new();
    for who in contenders {
        eprintln!("measuring: {}", who.label());
        let mut f = Figures::default();
        if let Err(e) = measure(who, baseline.as_deref(), &mut f) {
            eprintln!("  {}: {e:#}", who.label());
            f.failure = Some(format!("{e:#}"));
        }
        rows.push((who, f));
    }
    match &baseline {
        None => report::side_by_side(&rows),
        Some(old) => report::a_b(&rows, old),
    }
    Ok(())
}
