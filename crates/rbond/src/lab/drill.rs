//! `rbond drill`: the classic guide's verification, automated on a throwaway network. The
//! guide's bond is built in namespaces, checked as the guide checks it, put through the
//! guide's ifenslave sequence and the NEC cable-pull procedure, then its daemon is killed, all
//! under a fixed-rate UDP probe, and every step is judged on the active slave, the log line
//! and the outage.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use std::path::Path;

use rbond_core::{Delay, OptionName};

use super::chart::{self, Span};
use super::probe::{Record, Window};
use crate::config::bond::{BondConfig, bond_config, bonds};
use crate::config::examples::GUIDE;
use crate::config::interfaces::Interfaces;
use crate::control::Request;
use crate::lab::{BOND_IP6, Lab, PEER_IP, PEER_IP6, Wiring};

/// Ceiling for a change the bond makes at once: 0 ms when the machine is quiet, but two
/// drills on two busy cores have shown 24 ms, so this is scheduling slack, not a target.
const IMMEDIATE_MS: u64 = 50;

pub struct DrillOptions {
    pub pps: u32,
    pub json: bool,
    pub bin: PathBuf,
    /// An interfaces file with the bond stanza to drill instead of the guide's.
    pub config: Option<PathBuf>,
    /// Where to draw the run as an SVG timeline.
    pub svg: Option<PathBuf>,
}

/// The bond to drill, from an interfaces file: its slaves must be the drill host's eth0 and
/// eth1. Errors name the file and line.
pub fn drill_config(text: &str, path: &Path) -> anyhow::Result<BondConfig> {
    let ifs = Interfaces::parse(text, path)?;
    let name = bonds(&ifs)
        .into_iter()
        .next()
        .with_context(|| format!("{}: no bond stanza (bond-slaves or bond-master)", path.display()))?;
    let cfg = bond_config(&ifs, &name)?;
    let mut sorted = cfg.slaves.clone();
    sorted.sort();
    if sorted != ["eth0", "eth1"] {
        bail!("{}: the drill's host has eth0 and eth1; {name} has {:?}", cfg.place, cfg.slaves);
    }
    Ok(cfg)
}

/// What the configuration promises, for judging each step.
#[derive(Clone)]
struct Expect {
    miimon: u64,
    updelay: u64,
    downdelay: u64,
    arp_interval: u64,
    arp_missed_max: u64,
    primary: Option<String>,
    reclaims: bool,
    one_mac: bool,
    /// How long a daemon's death may stop traffic: nothing on the kernel datapath (it forwards
    /// with no process), the time to start the next daemon on the userspace one.
    kill_outage: u64,
    /// The file puts the bond in a bridge (`bridge_ports`): a VM behind it is probed too.
    vm: bool,
    /// The file gives the bond `inet6` stanzas only: the drill runs over IPv6 alone.
    ipv6: bool,
}

impl Expect {
    fn new(pairs: &[(String, String)]) -> anyhow::Result<Expect> {
        let o = crate::daemon::engine_options(pairs)?;
        let num = |n: OptionName| o.sysfs(n).parse::<u64>().unwrap_or(0);
        Ok(Expect {
            miimon: u64::from(o.miimon()),
            updelay: o.delay_ms(Delay::Up),
            downdelay: o.delay_ms(Delay::Down),
            arp_interval: u64::from(o.arp_interval()),
            arp_missed_max: num(OptionName::ArpMissedMax),
            primary: Some(o.primary().to_string()).filter(|p| !p.is_empty()),
            reclaims: o.sysfs(OptionName::PrimaryReselect).starts_with("always"),
            one_mac: o.sysfs(OptionName::FailOverMac).starts_with("none"),
            kill_outage: IMMEDIATE_MS,
            vm: false,
            ipv6: false,
        })
    }

    /// How long pulling the active slave's cable may stop traffic.
    fn pull_outage(&self) -> u64 {
        if self.arp_interval > 0 {
            (self.arp_missed_max + 2) * self.arp_interval + IMMEDIATE_MS
        } else {
            self.downdelay + self.miimon + IMMEDIATE_MS
        }
    }

    /// How long to let a step settle: every delay run out, plus margin.
    fn settle(&self) -> Duration {
        let monitor =
            if self.arp_interval > 0 { (self.arp_missed_max + 3) * self.arp_interval } else { 2 * self.miimon };
        Duration::from_millis(self.updelay.max(self.downdelay) + monitor + 300)
    }

    fn is_primary(&self, s: &str) -> bool {
        self.primary.as_deref() == Some(s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: String,
    pub active_before: Option<String>,
    pub active_after: Option<String>,
    pub expected_active: String,
    pub sent: u32,
    pub lost: u32,
    pub duplicated: u32,
    pub outage_ms: f64,
    pub expected_outage_ms: u64,
    /// The VM behind the bridge on the bond, probed from the peer (when the file has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_lost: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_outage_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_vm_outage_ms: Option<u64>,
    pub passed: bool,
    /// Why it failed, when it did.
    pub problem: Option<String>,
    /// The bond's log lines written during the step.
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub options: Vec<String>,
    pub pps: u32,
    /// The peer's address the probe ran to (IPv6 when the stanza is `inet6` only).
    pub peer: IpAddr,
    pub passed: bool,
    pub steps: Vec<StepResult>,
    pub log: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT and SIGTERM to a flag the drill checks, so it can always clean up. Must run
/// before any other thread starts, so that they all inherit the blocked signals.
fn catch_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    std::thread::spawn(move || {
        let _ = set.wait();
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
}

/// Sleeps in small steps, failing as soon as the drill is interrupted.
fn pause(d: Duration) -> anyhow::Result<()> {
    crate::wait::until(d, Duration::from_millis(10), || {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(false)
    })
    .map(drop)
}

/// What a step does to the bond.
enum Act {
    Nothing,
    /// A control request (the ifenslave verbs).
    Ask(Request),
    /// Pull (false) or replug (true) a slave's cable at the switch.
    Cable(&'static str, bool),
    /// SIGKILL the daemon; its supervisor starts another, which adopts the bond.
    Kill,
}

impl Act {
    fn perform(&self, lab: &Lab) -> anyhow::Result<()> {
        match self {
            Act::Nothing => Ok(()),
            Act::Cable(slave, plugged) => lab.cable_of(slave, *plugged),
            Act::Ask(r) => lab.request(r).map(drop),
            Act::Kill => {
                let pid = nix::unistd::Pid::from_raw(lab.status()?.pid as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).context("kill the daemon")
            }
        }
    }
}

/// What one step does, and what it should lead to.
struct Plan {
    name: String,
    act: Act,
    expected_active: String,
    /// A line the bond must log during the step (its beginning).
    line: Option<String>,
    /// How long traffic may stop.
    outage_ms: u64,
    /// A slave enslaved now has a link that just came up, and a switch may take up to a second
    /// to forward on its port; the VM's MAC is announced again then (see daemon/upper.rs).
    settling_ms: u64,
}

fn other(s: &str) -> &'static str {
    if s == "eth0" { "eth1" } else { "eth0" }
}

/// A step that moves the active slave from `prev` to `next` must log the switch; one that
/// does not must log `quiet` (if anything).
fn plan(name: String, act: Act, prev: &str, next: String, quiet: Option<String>, outage_ms: u64) -> Plan {
    let line = if next != prev { Some(format!("bond0: making interface {next} the new active one.")) } else { quiet };
    let settling_ms = if matches!(act, Act::Ask(Request::Enslave { .. })) { 1250 } else { 0 };
    Plan { name, act, expected_active: next, line, outage_ms, settling_ms }
}

/// The guide's steps, each with what the configuration says must follow from it.
fn plans(x: &Expect, first: &str) -> Vec<Plan> {
    let mut cur = x.primary.clone().unwrap_or_else(|| first.to_string());
    let mut out = vec![plan("guide checks".into(), Act::Nothing, &cur, cur.clone(), None, IMMEDIATE_MS)];
    let sequence: [(&str, &str); 8] = [
        ("-c", "eth0"),
        ("-d", "eth0"),
        ("", "eth0"),
        ("-c", "eth0"),
        ("-d", "eth1"),
        ("", "eth1"),
        ("-c", "eth1"),
        ("-c", "eth0"),
    ];
    for (verb, s) in sequence {
        let name = if verb.is_empty() { format!("ifenslave bond0 {s}") } else { format!("ifenslave {verb} bond0 {s}") };
        let (act, next, quiet) = match verb {
            "-c" => (Act::Ask(Request::SetActive { slave: s.into() }), s.to_string(), None),
            "-d" => {
                let next = if cur == s { other(s).to_string() } else { cur.clone() };
                (
                    Act::Ask(Request::Release { slave: s.into() }),
                    next,
                    Some(format!("bond0: releasing backup interface {s}")),
                )
            }
            _ => {
                let next = if x.is_primary(s) { s.to_string() } else { cur.clone() };
                (
                    Act::Ask(Request::Enslave { slave: s.into() }),
                    next,
                    Some(format!("bond0: link status definitely up for interface {s}.")),
                )
            }
        };
        out.push(plan(name, act, &cur, next.clone(), quiet, IMMEDIATE_MS));
        cur = next;
    }
    for (s, plugged) in [("eth1", false), ("eth1", true), ("eth0", false), ("eth0", true)] {
        let (next, quiet, outage) = if plugged {
            let next = if x.is_primary(s) && x.reclaims { s.to_string() } else { cur.clone() };
            (next, Some(format!("bond0: link status definitely up for interface {s}.")), IMMEDIATE_MS)
        } else if cur == s {
            (other(s).to_string(), None, x.pull_outage())
        } else {
            (
                cur.clone(),
                Some(format!("bond0: link status definitely down for interface {s}, disabling it")),
                IMMEDIATE_MS,
            )
        };
        let name = format!("{} {s}", if plugged { "replug" } else { "pull" });
        out.push(plan(name, Act::Cable(s, plugged), &cur, next.clone(), quiet, outage));
        cur = next;
    }
    let adopted = Some("bond0: adopting the bond left by PID ".to_string());
    out.push(plan("kill -9 the daemon".into(), Act::Kill, &cur, cur.clone(), adopted, x.kill_outage));
    out
}

struct Progress {
    tty: bool,
    quiet: bool,
}

impl Progress {
    fn say(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }
    /// A transient line on a terminal, overwritten by the next; nothing otherwise.
    fn waiting(&self, text: &str) {
        if self.tty && !self.quiet {
            print!("\r\x1b[K  … {text}");
            let _ = std::io::stdout().flush();
        }
    }
    fn done_waiting(&self) {
        if self.tty && !self.quiet {
            print!("\r\x1b[K");
        }
    }
}

/// Runs the drill; the exit code is 0 when every step passed, 1 when one failed, 2 when it
/// could not run, 130 when interrupted.
pub fn run(opts: DrillOptions) -> u8 {
    catch_signals();
    if let Err(why) = crate::lab::can_run() {
        eprintln!("rbond drill: {why}");
        return 2;
    }
    let progress = Progress { tty: std::io::stdout().is_terminal(), quiet: opts.json };
    let (slaves, pairs, x) = match configuration(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rbond drill: {e:#}");
            return 2;
        }
    };
    let mut lab = match setup(&opts, &slaves, &pairs, &x, &progress) {
        Ok(lab) => lab,
        Err(e) if INTERRUPTED.load(Ordering::SeqCst) => return interrupted(e),
        Err(e) => {
            eprintln!("rbond drill: cannot run: {e:#}");
            return 2;
        }
    };
    let result = drive(&mut lab, &opts, &pairs, &x, &slaves[0], &progress);
    drop(lab);
    match result {
        Ok(report) => {
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", table(&report));
            }
            if report.passed { 0 } else { 1 }
        }
        Err(e) if INTERRUPTED.load(Ordering::SeqCst) => interrupted(e),
        Err(e) => {
            eprintln!("rbond drill: {e:#}");
            1
        }
    }
}

fn interrupted(_: anyhow::Error) -> u8 {
    eprintln!("rbond drill: interrupted; the test network has been removed");
    130
}

type Configuration = (Vec<String>, Vec<(String, String)>, Expect);

/// The stanza to drill (the guide's, or `--config`'s) and what it promises.
fn configuration(opts: &DrillOptions) -> anyhow::Result<Configuration> {
    let cfg = match &opts.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            drill_config(&text, path)?
        }
        None => drill_config(GUIDE, Path::new("(the guide's stanza)"))?,
    };
    let pairs = cfg.option_pairs();
    let mut x = Expect::new(&pairs)?;
    if let Some(path) = &opts.config {
        let ifs = Interfaces::parse(&std::fs::read_to_string(path)?, path)?;
        let ports = |i: &crate::config::interfaces::Iface| i.value("bridge_ports").map(|p| p.value.clone());
        x.vm = ifs.ifaces.iter().filter_map(ports).any(|p| p.split_whitespace().any(|n| n == cfg.name));
        let families: Vec<&str> = ifs.iface(&cfg.name).iter().map(|i| i.family.as_str()).collect();
        x.ipv6 = !families.is_empty() && families.iter().all(|f| *f == "inet6");
    }
    Ok((cfg.slaves, pairs, x))
}

fn setup(
    opts: &DrillOptions,
    slaves: &[String],
    pairs: &[(String, String)],
    x: &Expect,
    progress: &Progress,
) -> anyhow::Result<Lab> {
    progress.say("Building the test network: host with eth0 and eth1, a switch, a peer (network namespaces)");
    let mut lab = Lab::new("rbd", Wiring::OneSwitch)?;
    let opts_kv: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    progress.say(&format!("Starting bond0 over {}: {}", slaves.join(" "), opts_kv.join(" ")));
    let slave_refs: Vec<&str> = slaves.iter().map(String::as_str).collect();
    if x.ipv6 {
        progress.say(&format!("IPv6 only: the peer {PEER_IP6}, bond0 {BOND_IP6}/64, no IPv4 address"));
        lab.peer_ipv6_only()?;
    }
    lab.start_supervised(&opts.bin, &slave_refs, &opts_kv, &[])?;
    if x.ipv6 {
        // Ready at once: an NS monitor validating backups needs a source address from its
        // first interval (the tests show bond0's addresses passing DAD on their own).
        lab.bond_ipv6_only(false)?;
    }
    progress.waiting("waiting for both slaves to come up");
    lab.wait_until(x.settle() + Duration::from_secs(5), "both slaves up", |l| l.slaves_up(2))?;
    progress.done_waiting();
    if x.vm {
        progress.say("Putting bond0 in a bridge br0 with a VM behind it (probed from the peer too)");
        lab.vm_behind_bridge()?;
    }
    Ok(lab)
}

fn active(lab: &Lab) -> Option<String> {
    lab.get("active_slave").ok().filter(|a| !a.is_empty())
}

struct Timed {
    result: StepResult,
    from: Duration,
    to: Duration,
    /// The step's log lines with their wall-clock times (ms since the epoch).
    marks: Vec<(u64, String)>,
}

fn drive(
    lab: &mut Lab,
    opts: &DrillOptions,
    pairs: &[(String, String)],
    x: &Expect,
    first: &str,
    progress: &Progress,
) -> anyhow::Result<DrillReport> {
    let _echo = lab.echo()?;
    let peer: IpAddr = if x.ipv6 { PEER_IP6.into() } else { PEER_IP.into() };
    let probe = lab.probe_from(&lab.host(), peer, opts.pps);
    let probe_started_ms = now_ms();
    let vm_ns = lab.namespaces().iter().find(|n| n.ends_with("vm")).cloned();
    let _vm_echo = vm_ns.as_deref().map(|ns| lab.echo_in(ns)).transpose()?;
    let vm_probe = vm_ns.map(|_| lab.probe_from(&lab.peer(), super::VM_IP, opts.pps));
    pause(Duration::from_millis(500))?;
    let userspace = lab.status()?.datapath.starts_with("userspace");
    let x = Expect { kill_outage: if userspace { 1000 } else { IMMEDIATE_MS }, ..x.clone() };
    let plans = plans(&x, first);
    let mut timed = Vec::new();
    // A killed daemon's successor starts its log afresh: the drill keeps the whole of it.
    let mut log = lab.log_lines()?;
    for (i, plan) in plans.iter().enumerate() {
        let t = run_step(lab, plan, &x, probe.elapsed(), progress)?;
        let verdict = if t.result.passed { "ok" } else { "FAILED" };
        progress.say(&format!("[{:>2}/{}] {:<26} {verdict}", i + 1, plans.len(), plan.name));
        log.extend(t.result.log.iter().cloned());
        timed.push(Timed { to: probe.elapsed(), ..t });
    }
    pause(Duration::from_millis(300))?;
    let record = probe.finish()?;
    let vm_record = vm_probe.map(|p| p.finish()).transpose()?;
    let since_start = |ms: u64| Duration::from_millis(ms.saturating_sub(probe_started_ms));
    let spans: Vec<Span> = timed.iter().map(|t| Span { from: t.from, to: t.to }).collect();
    let marks: Vec<(Duration, String)> =
        timed.iter().flat_map(|t| t.marks.iter().map(|(ms, l)| (since_start(*ms), l.clone()))).collect();
    let steps: Vec<StepResult> = timed.into_iter().map(|t| judge(t, &record, vm_record.as_ref())).collect();
    let report = DrillReport {
        options: pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        pps: opts.pps,
        peer,
        passed: steps.iter().all(|s| s.passed),
        steps,
        log,
    };
    if let Some(path) = &opts.svg {
        std::fs::write(path, chart::svg(&report, &record, &spans, &marks))
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(report)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Carries out a step and waits for the bond to settle; traffic figures are added later.
fn run_step(lab: &Lab, plan: &Plan, x: &Expect, from: Duration, progress: &Progress) -> anyhow::Result<Timed> {
    let since = now_ms();
    let active_before = active(lab);
    let mut problem = plan.act.perform(lab).err().map(|e| e.to_string());
    if matches!(plan.act, Act::Nothing) {
        problem = problem.or_else(|| guide_checks(lab, &plan.expected_active, x.one_mac).err().map(|e| e.to_string()));
    }
    progress.waiting(&format!("{}: letting the delays run out", plan.name));
    pause(x.settle())?;
    progress.done_waiting();
    let marks: Vec<(u64, String)> = lab.timed_log()?.into_iter().filter(|(t, _)| *t >= since).collect();
    let log: Vec<String> = marks.iter().map(|(_, l)| l.clone()).collect();
    let active_after = active(lab);
    if problem.is_none() && active_after.as_deref() != Some(plan.expected_active.as_str()) {
        problem = Some(format!("active slave is {:?}, expected {}", active_after, plan.expected_active));
    }
    if let Some(line) = plan.line.as_ref().filter(|l| problem.is_none() && !log.iter().any(|g| g.starts_with(*l))) {
        problem = Some(format!("the bond did not log {line:?}"));
    }
    let result = StepResult {
        step: plan.name.clone(),
        active_before,
        active_after,
        expected_active: plan.expected_active.clone(),
        sent: 0,
        lost: 0,
        duplicated: 0,
        outage_ms: 0.0,
        expected_outage_ms: plan.outage_ms,
        vm_lost: None,
        vm_outage_ms: None,
        expected_vm_outage_ms: x.vm.then_some(plan.outage_ms + plan.settling_ms),
        passed: problem.is_none(),
        problem,
        log,
    };
    Ok(Timed { result, from, to: Duration::ZERO, marks })
}

fn judge(t: Timed, record: &Record, vm: Option<&Record>) -> StepResult {
    let w: Window = record.window(t.from, t.to);
    let mut r = t.result;
    r.sent = w.sent;
    r.lost = w.lost;
    r.duplicated = w.duplicated;
    r.outage_ms = w.outage.as_secs_f64() * 1000.0;
    if r.problem.is_none() && r.duplicated > 0 {
        r.problem = Some(format!("{} duplicated packets", r.duplicated));
    }
    if r.problem.is_none() && r.outage_ms > r.expected_outage_ms as f64 {
        r.problem = Some(format!("outage {:.1} ms exceeds {} ms", r.outage_ms, r.expected_outage_ms));
    }
    if let Some(v) = vm.map(|v| v.window(t.from, t.to)) {
        let ms = v.outage.as_secs_f64() * 1000.0;
        (r.vm_lost, r.vm_outage_ms) = (Some(v.lost), Some(ms));
        if r.problem.is_none() && (ms > r.expected_vm_outage_ms.unwrap_or(0) as f64 || v.duplicated > 0) {
            r.problem = Some(format!("the VM: outage {ms:.1} ms, {} duplicated", v.duplicated));
        }
    }
    r.passed = r.problem.is_none();
    r
}

/// What the guide has the reader check: the report, `mode`, one MAC (under
/// `fail_over_mac none`), no errors.
fn guide_checks(lab: &Lab, active: &str, one_mac: bool) -> anyhow::Result<()> {
    let status = lab.status()?;
    let text = status.text.as_str();
    for want in [format!("Currently Active Slave: {active}\n"), "MII Status: up\n".to_string()] {
        if !text.contains(&want) {
            bail!("the status report lacks {:?}", want.trim());
        }
    }
    if text.matches("Link Failure Count: 0\n").count() != 2 {
        bail!("a link failure count is not 0");
    }
    let mode = lab.get("mode")?;
    if mode != "active-backup 1" {
        bail!("mode reads {mode:?}");
    }
    let macs: Vec<String> = ["bond0", "eth0", "eth1"].iter().filter_map(|n| lab.link(n).map(|l| l.1)).collect();
    if one_mac && (macs.len() != 3 || macs.iter().any(|m| *m != macs[0])) {
        bail!("bond0, eth0 and eth1 do not share one MAC: {macs:?}");
    }
    for n in ["bond0", "eth0", "eth1"] {
        if lab.errors(n).is_none_or(|(rx, tx)| rx + tx > 0) {
            bail!("{n} shows RX/TX errors");
        }
    }
    Ok(())
}

/// The closing table, then the bond's log.
pub fn table(r: &DrillReport) -> String {
    let mut t = String::from("\n");
    t.push_str(&format!(
        "{:<3} {:<26} {:<15} {:>6} {:>5} {:>4} {:>10} {:>10}  {}\n",
        "#", "step", "active", "sent", "lost", "dup", "outage ms", "expected", "verdict"
    ));
    for (i, s) in r.steps.iter().enumerate() {
        let name = |a: &Option<String>| a.clone().unwrap_or_else(|| "none".into());
        let active = format!("{} → {}", name(&s.active_before), name(&s.active_after));
        let verdict = match &s.problem {
            None => "pass".to_string(),
            Some(p) => format!("FAIL: {p}"),
        };
        let verdict = match s.vm_outage_ms {
            Some(ms) => format!("{verdict} (VM: {} lost, outage {ms:.1} ms)", s.vm_lost.unwrap_or(0)),
            None => verdict,
        };
        t.push_str(&format!(
            "{:<3} {:<26} {:<15} {:>6} {:>5} {:>4} {:>10.1} {:>10}  {}\n",
            i + 1,
            s.step,
            active,
            s.sent,
            s.lost,
            s.duplicated,
            s.outage_ms,
            format!("≤ {}", s.expected_outage_ms),
            verdict
        ));
    }
    let failed = r.steps.iter().filter(|s| !s.passed).count();
    t.push_str(&format!(
        "\n{}: {} of {} steps passed ({} packets/s probe to {})\n\nWhat bond0 logged:\n",
        if r.passed { "PASSED" } else { "FAILED" },
        r.steps.len() - failed,
        r.steps.len(),
        r.pps,
        r.peer
    ));
    for l in &r.log {
        t.push_str(&format!("  {l}\n"));
    }
    t
}
