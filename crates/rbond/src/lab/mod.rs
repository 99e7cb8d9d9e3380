//! Throwaway networks for the drill and the tests: network namespaces and veth pairs under
//! unique names, removed when the value is dropped. Traffic stays inside them (see probe.rs
//! for what runs through them).

pub mod chart;
pub mod drill;
pub mod probe;
pub mod stats;

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::control::{Client, LogLine, Reply, Request, Status};
use crate::wait;

pub const BOND_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const BOND_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 1);
pub const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 2);
pub const ECHO_PORT: u16 = 7000;
/// A VM behind a bridge on the bond (`vm_behind_bridge`).
pub const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip (install iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Whether this process can build namespaces, and if not, why.
pub fn can_run() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
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
    /// A bpffs of the lab's own (under the run directory), so that pins outlive each
    /// `ip netns exec` and are never shared with the host's.
    pub bpffs: PathBuf,
    /// The daemon started by `start_bond`, or the supervisor started by `start_supervised`.
    daemon: Option<Child>,
    wiring: Wiring,
}

impl Lab {
    /// Builds the namespaces, bridges and cables. `tag` starts every name (plus pid and a
    /// counter), so runs in parallel never collide.
    pub fn new(tag: &str, wiring: Wiring) -> anyhow::Result<Lab> {
        Lab::with_slaves(tag, wiring, 2)
    }

    /// As `new`, with `slaves` host interfaces (eth0, eth1, …); more than two only on one switch.
    pub fn with_slaves(tag: &str, wiring: Wiring, slaves: usize) -> anyhow::Result<Lab> {
        if wiring == Wiring::AccessSwitches && slaves != 2 {
            bail!("access switches are wired for two slaves");
        }
        let prefix = unique(tag);
        let run_dir = std::env::temp_dir().join(format!("{prefix}-run"));
        let bpffs = run_dir.join("bpf");
        let mut lab = Lab { prefix: prefix.clone(), namespaces: Vec::new(), run_dir, bpffs, daemon: None, wiring };
        std::fs::create_dir_all(&lab.bpffs)?;
        nix::mount::mount(Some("bpf"), &lab.bpffs, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
            .with_context(|| format!("mount bpffs at {}", lab.bpffs.display()))?;
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
        for i in 0..slaves {
            let s = format!("eth{i}");
            lab.cable(&host, &s, &lab.switch_of(&s), &format!("h{i}"))?;
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
        Ok(lab)
    }

    /// Another namespace of this lab (a VM, a container), removed with it.
    pub fn add_namespace(&mut self, tag: &str) -> anyhow::Result<String> {
        let ns = format!("{}{tag}", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// bond0 as a port of a bridge `br0` that takes over its address, and a VM behind br0: a
    /// namespace (tagged `vm`, with IPv6 off so that it sends nothing unasked) cabled into br0
    /// through a veth, with its own MAC and `VM_IP`. Returns the VM's namespace.
    pub fn vm_behind_bridge(&mut self) -> anyhow::Result<String> {
        let (h, vm) = (self.host(), self.add_namespace("vm")?);
        for key in ["all", "default"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &vm, "sysctl", "-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")])
                .output()?;
            if !out.status.success() {
                bail!("sysctl in {vm}: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        ip(&["-n", &h, "addr", "flush", "dev", "bond0"])?;
        ip(&["-n", &h, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"])?;
        ip(&["-n", &h, "link", "set", "bond0", "master", "br0"])?;
        ip(&["-n", &h, "link", "set", "br0", "up"])?;
        ip(&["-n", &h, "addr", "add", &format!("{BOND_IP}/24"), "dev", "br0"])?;
        ip(&["link", "add", "vm0", "netns", &vm, "type", "veth", "peer", "name", "vmport", "netns", &h])?;
        ip(&["-n", &h, "link", "set", "vmport", "master", "br0"])?;
        ip(&["-n", &h, "link", "set", "vmport", "up"])?;
        ip(&["-n", &vm, "link", "set", "vm0", "address", "02:00:00:00:00:50"])?;
        ip(&["-n", &vm, "addr", "add", &format!("{VM_IP}/24"), "dev", "vm0", "nodad"])?;
        ip(&["-n", &vm, "link", "set", "vm0", "up"])?;
        Ok(vm)
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
        if self.wiring == Wiring::OneSwitch {
            format!("{}s", self.prefix)
        } else {
            format!("{}a{}", self.prefix, &slave[3..])
        }
    }
    pub fn core(&self) -> String {
        if self.wiring == Wiring::OneSwitch { format!("{}s", self.prefix) } else { format!("{}c", self.prefix) }
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

    /// The rbond binary `bin`, run inside the host namespace with this lab's directories.
    pub fn rbond(&self, bin: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host()]).arg(bin);
        c.arg("--run-dir").arg(&self.run_dir).arg("--bpffs").arg(&self.bpffs);
        c
    }

    /// Starts bonds as `rbond up` and ifup's hook do, with this lab's directories (to be
    /// called from inside the host namespace).
    pub fn launcher(&self, bin: &Path) -> crate::cli::launch::Launcher {
        crate::cli::launch::Launcher { bin: bin.into(), run_dir: self.run_dir.clone(), bpffs: self.bpffs.clone() }
    }

    pub fn syslog_path(&self) -> PathBuf {
        self.run_dir.join("syslog.sock")
    }

    /// Starts `bin`'s daemon for bond0 over `slaves` (of eth0 and eth1) with these options,
    /// then gives bond0 its address and brings it up, as an administrator (or ifup) would.
    pub fn start_bond(&mut self, bin: &Path, slaves: &[&str], opts: &[String]) -> anyhow::Result<()> {
        self.spawn_bond(bin, &["daemon"], slaves, opts)
    }

    /// As `start_bond`, under `rbond supervise` with these arguments of its own.
    pub fn start_supervised(
        &mut self,
        bin: &Path,
        slaves: &[&str],
        opts: &[String],
        args: &[&str],
    ) -> anyhow::Result<()> {
        let supervise: Vec<&str> = std::iter::once("supervise").chain(args.iter().copied()).collect();
        self.spawn_bond(bin, &supervise, slaves, opts)
    }

    fn spawn_bond(&mut self, bin: &Path, how: &[&str], slaves: &[&str], opts: &[String]) -> anyhow::Result<()> {
        let mut cmd = self.rbond(bin);
        cmd.args(how).args(["--bond", "bond0", "--slaves", &slaves.join(","), "--foreground", "--syslog"]);
        cmd.arg(self.syslog_path());
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
        // `replace`: a bond adopted from a daemon that died still has it.
        ip(&["-n", &self.host(), "addr", "replace", &format!("{BOND_IP}/24"), "dev", "bond0"])?;
        ip(&["-n", &self.host(), "link", "set", "bond0", "up"])
    }

    /// Waits until the daemon answers (a dead daemon's socket file may still be there). A
    /// connection alone is not enough: the daemon binds its socket before it makes bond0, and
    /// answers once bond0 is made.
    pub fn wait_for_daemon(&mut self) -> anyhow::Result<()> {
        let answered = wait::until(Duration::from_secs(5), Duration::from_millis(20), || {
            if let Some(status) = self.daemon.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
                bail!("the daemon exited ({status}): {}", self.daemon_stderr().trim());
            }
            Ok(self.client().running())
        })?;
        if !answered {
            bail!("the daemon did not start: {}", self.daemon_stderr().trim());
        }
        Ok(())
    }

    pub fn daemon_stderr(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("daemon.stderr")).unwrap_or_default()
    }

    /// The client for bond0's daemon.
    pub fn client(&self) -> Client {
        Client::new(&self.run_dir, "bond0")
    }

    /// Sends a request to bond0's daemon; a refusal is an error.
    pub fn request(&self, req: &Request) -> anyhow::Result<Reply> {
        self.client().call(req)
    }

    pub fn status(&self) -> anyhow::Result<Status> {
        self.client().status()
    }

    /// A value as its sysfs file reads (`mode`, `active_slave`, …).
    pub fn get(&self, option: &str) -> anyhow::Result<String> {
        self.client().get(option)
    }

    /// The bond's log lines with their wall-clock times (milliseconds since the epoch).
    pub fn timed_log(&self) -> anyhow::Result<Vec<(u64, String)>> {
        Ok(self.client().events()?.into_iter().map(|l: LogLine| (l.time_ms, l.text)).collect())
    }

    pub fn log_lines(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.timed_log()?.into_iter().map(|(_, l)| l).collect())
    }

    /// Whether the bond has exactly `count` slaves and every one reports its link up.
    pub fn slaves_up(&self, count: usize) -> bool {
        let Ok(s) = self.status() else { return false };
        s.report.slaves.len() == count && s.report.slaves.iter().all(|s| s.mii_status == "up")
    }

    /// Polls `cond` every 20 ms until it holds, failing after `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Lab) -> bool) -> anyhow::Result<()> {
        if !wait::until(limit, Duration::from_millis(20), || Ok(cond(self)))? {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        Ok(())
    }

    /// The process `start_bond` or `start_supervised` started.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// The PID of the daemon that answers now (under a supervisor, the latest one).
    pub fn answering_pid(&self) -> Option<u32> {
        self.status().ok().map(|s| s.pid)
    }

    /// Whether the daemon started by `start_bond` is still running.
    pub fn daemon_alive(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(|d| matches!(d.try_wait(), Ok(None)))
    }

    /// Waits (20 s at most) for the daemon to exit and returns its exit status.
    pub fn wait_daemon(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let d = self.daemon.as_mut().context("no daemon running")?;
        let mut status = None;
        wait::until(Duration::from_secs(20), Duration::from_millis(10), || {
            status = d.try_wait()?;
            Ok(status.is_some())
        })?;
        let status = status.with_context(|| format!("the daemon did not exit: {}", self.daemon_stderr()))?;
        self.daemon = None;
        Ok(status)
    }

    /// What `ip -j link` says of an interface in the host namespace: (up, MAC, MTU).
    pub fn link(&self, name: &str) -> Option<(bool, String, u32)> {
        let l = self.ip_json(&["link", "show", name])?;
        let up = l["flags"].as_array()?.iter().any(|f| f == "UP");
        Some((up, l["address"].as_str()?.to_string(), l["mtu"].as_u64()? as u32))
    }

    /// An interface's own addresses in the host namespace as `addr/prefix`, link-local left out.
    pub fn addrs(&self, name: &str) -> Vec<String> {
        let infos =
            self.ip_json(&["addr", "show", name]).and_then(|l| l["addr_info"].as_array().cloned()).unwrap_or_default();
        let global = infos.iter().filter(|a| a["scope"] != "link");
        global.filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"]))).collect()
    }

    /// An interface's IPv6 addresses in the host namespace (link-local too), each with
    /// whether it is still tentative and whether its duplicate address detection failed.
    pub fn ipv6_addrs(&self, name: &str) -> Vec<(String, bool, bool)> {
        let infos = self
            .ip_json(&["-6", "addr", "show", name])
            .and_then(|l| l["addr_info"].as_array().cloned())
            .unwrap_or_default();
        let flag = |a: &Value, f: &str| a[f].as_bool().unwrap_or(false);
        infos
            .iter()
            .filter_map(|a| Some((a["local"].as_str()?.to_string(), flag(a, "tentative"), flag(a, "dadfailed"))))
            .collect()
    }

    /// The peer on IPv6 alone: its IPv4 address goes, `PEER_IP6` comes. Before a bond whose
    /// NS monitor asks for the peer starts, or its slaves find no one to answer.
    pub fn peer_ipv6_only(&self) -> anyhow::Result<()> {
        let p = self.peer();
        ip(&["-n", &p, "-4", "addr", "flush", "dev", "eth0"])?;
        ip(&["-n", &p, "addr", "add", &format!("{PEER_IP6}/64"), "dev", "eth0", "nodad"])
    }

    /// bond0 on IPv6 alone: its IPv4 address goes and `BOND_IP6` comes, through duplicate
    /// address detection when `dad` (as an administrator's would; a second or so) or ready at
    /// once; this waits until bond0's addresses are ready and fails if one failed DAD.
    pub fn bond_ipv6_only(&self, dad: bool) -> anyhow::Result<()> {
        let h = self.host();
        ip(&["-n", &h, "-4", "addr", "flush", "dev", "bond0"])?;
        let addr = format!("{BOND_IP6}/64");
        ip(&["-n", &h, "addr", "add", &addr, "dev", "bond0"]
            .into_iter()
            .chain((!dad).then_some("nodad"))
            .collect::<Vec<_>>())?;
        self.wait_until(Duration::from_secs(5), "bond0's IPv6 addresses past DAD", |l| {
            let a = l.ipv6_addrs("bond0");
            a.len() >= 2 && a.iter().all(|(_, tentative, _)| !tentative)
        })?;
        if let Some((addr, ..)) = self.ipv6_addrs("bond0").into_iter().find(|a| a.2) {
            bail!("bond0's {addr} failed duplicate address detection");
        }
        Ok(())
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
    pub fn in_ns<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<anyhow::Result<T>> {
        let path = format!("/var/run/netns/{ns}");
        thread::spawn(move || {
            let file = File::open(&path).with_context(|| path.clone())?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
            Ok(f())
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Daemons started by others (ifup's hook, `rbond up`) are found by their sockets, and
        // supervisors by their PID files; each is asked to stop in order.
        for bond in crate::cli::launch::bonds(&self.run_dir) {
            let _ = Client::new(&self.run_dir, &bond).done(&Request::Down);
            let sock = crate::control::socket_path(&self.run_dir, &bond);
            let _ = wait::until(Duration::from_secs(5), Duration::from_millis(10), || Ok(!sock.exists()));
        }
        if let Some(mut d) = self.daemon.take() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = wait::until(Duration::from_secs(5), Duration::from_millis(20), || Ok(d.try_wait()?.is_some()));
            let _ = d.kill();
            let _ = d.wait();
        }
        // Whatever still runs in the namespaces (a supervisor's daemon, a test's orphan) goes.
        for ns in &self.namespaces {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| o.stdout).unwrap_or_default();
            for pid in String::from_utf8_lossy(&pids).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = nix::mount::umount2(&self.bpffs, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
