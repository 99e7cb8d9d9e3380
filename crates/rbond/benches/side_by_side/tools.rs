//! The measuring instruments: iperf3 for throughput, ping for round trips, /proc for a
//! daemon's CPU time and memory, and the witness, a bare veth beside the contender.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rbond::lab::{Lab, PEER_IP, ip};

/// Where traffic starts: a namespace, and the process (if any) forwarding its frames, whose
/// CPU time each run is charged with.
pub struct Side {
    pub ns: String,
    pub pid: Option<u32>,
}

/// The bare path beside a contender: a namespace with one veth into the same bridge and the
/// address 10.77.0.3; removed when dropped.
pub struct Witness {
    pub ns: String,
}

impl Witness {
    pub fn cable(lab: &Lab) -> anyhow::Result<Witness> {
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

/// An iperf3 server in a peer namespace for as long as this lives.
pub struct IperfServer(Child);

impl IperfServer {
    pub fn start(peer: &str) -> anyhow::Result<IperfServer> {
        let child = Command::new("ip")
            .args(["netns", "exec", peer, "iperf3", "-s", "-B", &PEER_IP.to_string()])
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

/// What one iperf3 run showed.
pub struct Run {
    pub gbps: f64,
    /// The forwarder's CPU seconds per GB moved.
    pub cpu_per_gb: Option<f64>,
    /// The forwarder's share of one CPU, and the whole machine's busy share of all of them.
    pub forwarder_busy: Option<f64>,
    pub machine_busy: f64,
    /// Every CPU's busy seconds per GB moved: the forwarder, iperf3 at both ends and the
    /// network stack wherever it ran. Less the witness's, it is what the path costs the host,
    /// whichever thread the kernel charged.
    pub host_cpu_per_gb: f64,
}

/// One iperf3 run from a side.
pub fn iperf(side: &Side, secs: u64, extra: &[&str]) -> anyhow::Result<Run> {
    let (t, limit) = (secs.to_string(), (secs + 15).to_string());
    let (cpu0, machine0, start) = (side.pid.map(cpu_secs), machine_ticks(), std::time::Instant::now());
    let out = Command::new("ip")
        .args(["netns", "exec", &side.ns, "timeout", &limit, "iperf3", "-c", &PEER_IP.to_string(), "-t", &t, "-J"])
        .args(extra)
        .output()?;
    let cpu = side.pid.map(cpu_secs).zip(cpu0).map(|(c1, c0)| c1 - c0);
    let (wall, machine1) = (start.elapsed().as_secs_f64(), machine_ticks());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 gave no report (TCP stalled)")?;
    let end = &v["end"]["sum_received"];
    match (end["bits_per_second"].as_f64(), end["bytes"].as_u64()) {
        (Some(bps), Some(bytes)) if bytes > 0 => Ok(Run {
            gbps: bps / 1e9,
            cpu_per_gb: cpu.map(|c| c / (bytes as f64 / 1e9)),
            forwarder_busy: cpu.map(|c| c / wall),
            machine_busy: (machine1.0 - machine0.0) / (machine1.1 - machine0.1).max(1.0),
            host_cpu_per_gb: (machine1.0 - machine0.0) / clock_ticks() / (bytes as f64 / 1e9),
        }),
        _ => bail!("iperf3: {}", v["error"].as_str().unwrap_or("no data moved (TCP stalled)")),
    }
}

/// /proc/stat's ticks per second (USER_HZ).
fn clock_ticks() -> f64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten();
    hz.map_or(100.0, |hz| hz as f64)
}

/// Busy and total CPU ticks of the whole machine, from /proc/stat: user to softirq, of which
/// idle and iowait are not busy. Steal, the eighth, is left out: it is time the hypervisor
/// gave to someone else, which no path here spent.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: f64 = ticks.iter().take(7).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Round-trip times in µs of `count` pings 2 ms apart from a namespace to the peer.
pub fn pings(ns: &str, count: usize) -> anyhow::Result<Vec<f64>> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-c", &count.to_string(), "-i", "0.002", &PEER_IP.to_string()])
        .output()
        .context("ping (apt-get install iputils-ping)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let t: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1)?.split(' ').next()?.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    if t.len() < count * 9 / 10 {
        bail!("only {} of {count} pings from {ns} answered", t.len());
    }
    Ok(t)
}

/// CPU time of every thread of `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
