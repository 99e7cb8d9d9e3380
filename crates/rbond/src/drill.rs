//! `rbond drill`: the classic guide's verification, automated on a throwaway network. The
//! guide's bond is built in namespaces, checked as the guide checks it, put through the
//! guide's ifenslave sequence and the NEC cable-pull procedure, all under a fixed-rate UDP
//! probe, and every step is judged on the active slave, the log line and the outage.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::control::Request;
use crate::lab::{Lab, Record, Window, Wiring};

/// The guide's bond: `bond-mode 1`, `bond-miimon 100`, `bond-updelay 200`,
/// `bond-downdelay 200`, slaves eth0 eth1, primary eth0.
pub const GUIDE: [&str; 5] = ["mode=1", "miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];
const MIIMON_MS: u64 = 100;
const DELAY_MS: u64 = 200;
/// Ceiling for a change the bond makes at once (scheduling on a busy machine included).
const IMMEDIATE_MS: u64 = 20;

pub struct DrillOptions {
    pub pps: u32,
    pub json: bool,
    pub bin: PathBuf,
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
    pub passed: bool,
    pub steps: Vec<StepResult>,
    pub log: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT and SIGTERM to a flag the drill checks, so it can always clean up. Must run
/// before any other thread starts, so that they all inherit the blocked signals.
fn catch_signals() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            let mut sig = 0;
            libc::sigwait(&set, &mut sig);
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    }
}

/// Sleeps in small steps, failing as soon as the drill is interrupted.
fn pause(d: Duration) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(10).min(end.saturating_duration_since(std::time::Instant::now())));
    }
    Ok(())
}

/// What a step does to the bond.
enum Act {
    Nothing,
    /// A control request (the ifenslave verbs).
    Ask(Request),
    /// Pull (false) or replug (true) a slave's cable at the switch.
    Cable(&'static str, bool),
}

impl Act {
    fn perform(&self, lab: &Lab) -> anyhow::Result<()> {
        match self {
            Act::Nothing => Ok(()),
            Act::Cable(slave, plugged) => lab.cable_of(slave, *plugged),
            Act::Ask(r) => {
                let reply = lab.request(r)?;
                if reply["ok"] != true {
                    bail!("{}", reply["error"].as_str().unwrap_or("refused"));
                }
                Ok(())
            }
        }
    }
}

/// What one step does, and what it should lead to.
struct Plan {
    name: &'static str,
    act: Act,
    expected_active: &'static str,
    /// A line the bond must log during the step.
    line: Option<&'static str>,
    /// How long traffic may stop, derived from miimon and the delays.
    outage_ms: u64,
}

fn plans() -> Vec<Plan> {
    let set_active = |s: &str| Act::Ask(Request::SetActive { slave: s.into() });
    let detach = |s: &str| Act::Ask(Request::Release { slave: s.into() });
    let enslave = |s: &str| Act::Ask(Request::Enslave { slave: s.into() });
    let worst_pull = DELAY_MS + MIIMON_MS + IMMEDIATE_MS;
    let p = |name, act, expected_active, line, outage_ms| Plan { name, act, expected_active, line, outage_ms };
    vec![
        p("guide checks", Act::Nothing, "eth0", None, IMMEDIATE_MS),
        p("ifenslave -c bond0 eth0", set_active("eth0"), "eth0", None, IMMEDIATE_MS),
        p("ifenslave -d bond0 eth0", detach("eth0"), "eth1", Some("bond0: making interface eth1 the new active one."), IMMEDIATE_MS),
        p("ifenslave bond0 eth0", enslave("eth0"), "eth0", Some("bond0: making interface eth0 the new active one."), IMMEDIATE_MS),
        p("ifenslave -c bond0 eth0", set_active("eth0"), "eth0", None, IMMEDIATE_MS),
        p("ifenslave -d bond0 eth1", detach("eth1"), "eth0", Some("bond0: releasing backup interface eth1"), IMMEDIATE_MS),
        p("ifenslave bond0 eth1", enslave("eth1"), "eth0", Some("bond0: link status definitely up for interface eth1."), IMMEDIATE_MS),
        p("ifenslave -c bond0 eth1", set_active("eth1"), "eth1", Some("bond0: making interface eth1 the new active one."), IMMEDIATE_MS),
        p("ifenslave -c bond0 eth0", set_active("eth0"), "eth0", Some("bond0: making interface eth0 the new active one."), IMMEDIATE_MS),
        p("pull eth1", Act::Cable("eth1", false), "eth0", Some("bond0: link status definitely down for interface eth1, disabling it"), IMMEDIATE_MS),
        p("replug eth1", Act::Cable("eth1", true), "eth0", Some("bond0: link status definitely up for interface eth1."), IMMEDIATE_MS),
        p("pull eth0", Act::Cable("eth0", false), "eth1", Some("bond0: making interface eth1 the new active one."), worst_pull),
        p("replug eth0", Act::Cable("eth0", true), "eth0", Some("bond0: making interface eth0 the new active one."), IMMEDIATE_MS),
    ]
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
    let mut lab = match setup(&opts, &progress) {
        Ok(lab) => lab,
        Err(e) if INTERRUPTED.load(Ordering::SeqCst) => return interrupted(e),
        Err(e) => {
            eprintln!("rbond drill: cannot run: {e:#}");
            return 2;
        }
    };
    let result = drive(&mut lab, &opts, &progress);
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

fn setup(opts: &DrillOptions, progress: &Progress) -> anyhow::Result<Lab> {
    progress.say("Building the test network: host with eth0 and eth1, a switch, a peer (network namespaces)");
    let mut lab = Lab::new("rbd", Wiring::OneSwitch)?;
    let guide: Vec<String> = GUIDE.iter().map(|s| s.to_string()).collect();
    progress.say(&format!("Starting bond0: {}", GUIDE.join(" ")));
    lab.start_bond(&opts.bin, &guide)?;
    progress.waiting("waiting for both slaves to come up");
    lab.wait_until(Duration::from_secs(5), "both slaves up", |l| all_slaves_up(l).unwrap_or(false))?;
    progress.done_waiting();
    Ok(lab)
}

fn all_slaves_up(lab: &Lab) -> anyhow::Result<bool> {
    let r = lab.request(&Request::Status)?;
    let slaves = r["report"]["slaves"].as_array().context("no slaves in the report")?;
    Ok(slaves.len() == 2 && slaves.iter().all(|s| s["mii_status"] == "up"))
}

fn active(lab: &Lab) -> Option<String> {
    lab.get("active_slave").ok().filter(|a| !a.is_empty())
}

struct Timed {
    result: StepResult,
    from: Duration,
    to: Duration,
}

fn drive(lab: &mut Lab, opts: &DrillOptions, progress: &Progress) -> anyhow::Result<DrillReport> {
    let _echo = lab.echo()?;
    let probe = lab.probe(opts.pps);
    pause(Duration::from_millis(500))?;
    let plans = plans();
    let mut timed = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let t = run_step(lab, plan, probe.elapsed(), progress)?;
        let verdict = if t.result.passed { "ok" } else { "FAILED" };
        progress.say(&format!("[{:>2}/{}] {:<26} {verdict}", i + 1, plans.len(), plan.name));
        timed.push(Timed { to: probe.elapsed(), ..t });
    }
    pause(Duration::from_millis(300))?;
    let record = probe.finish()?;
    let steps: Vec<StepResult> = timed.into_iter().map(|t| judge(t, &record)).collect();
    Ok(DrillReport {
        options: GUIDE.iter().map(|s| s.to_string()).collect(),
        pps: opts.pps,
        passed: steps.iter().all(|s| s.passed),
        steps,
        log: lab.log_lines()?,
    })
}

/// Carries out a step and waits for the bond to settle; traffic figures are added later.
fn run_step(lab: &Lab, plan: &Plan, from: Duration, progress: &Progress) -> anyhow::Result<Timed> {
    let before_lines = lab.log_lines()?.len();
    let active_before = active(lab);
    let mut problem = plan.act.perform(lab).err().map(|e| e.to_string());
    if matches!(plan.act, Act::Nothing) {
        problem = problem.or_else(|| guide_checks(lab).err().map(|e| e.to_string()));
    }
    // Long enough for any delay to run out (downdelay + a tick, or updelay + a tick).
    progress.waiting(&format!("{}: letting the delays run out", plan.name));
    let settle = Duration::from_millis(DELAY_MS + 2 * MIIMON_MS + 300);
    let deadline = std::time::Instant::now() + settle;
    while std::time::Instant::now() < deadline {
        pause(Duration::from_millis(50))?;
    }
    progress.done_waiting();
    let log: Vec<String> = lab.log_lines()?.into_iter().skip(before_lines).collect();
    let active_after = active(lab);
    if problem.is_none() && active_after.as_deref() != Some(plan.expected_active) {
        problem = Some(format!("active slave is {:?}, expected {}", active_after, plan.expected_active));
    }
    if let Some(line) = plan.line.filter(|l| problem.is_none() && !log.iter().any(|g| g == l)) {
        problem = Some(format!("the bond did not log {line:?}"));
    }
    let result = StepResult {
        step: plan.name.to_string(),
        active_before,
        active_after,
        expected_active: plan.expected_active.to_string(),
        sent: 0,
        lost: 0,
        duplicated: 0,
        outage_ms: 0.0,
        expected_outage_ms: plan.outage_ms,
        passed: problem.is_none(),
        problem,
        log,
    };
    Ok(Timed { result, from, to: Duration::ZERO })
}

fn judge(t: Timed, record: &Record) -> StepResult {
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
    r.passed = r.problem.is_none();
    r
}

/// What the guide has the reader check: the report, `mode`, one MAC, no errors.
fn guide_checks(lab: &Lab) -> anyhow::Result<()> {
    let r = lab.request(&Request::Status)?;
    let text = r["text"].as_str().unwrap_or_default();
    for want in ["Currently Active Slave: eth0\n", "MII Status: up\n"] {
        if !text.contains(want) {
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
    if macs.len() != 3 || macs.iter().any(|m| *m != macs[0]) {
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
        t.push_str(&format!(
            "{:<3} {:<26} {:<15} {:>6} {:>5} {:>4} {:>10.1} {:>10}  {}\n",
            i + 1, s.step, active, s.sent, s.lost, s.duplicated, s.outage_ms, format!("≤ {}", s.expected_outage_ms), verdict
        ));
    }
    let failed = r.steps.iter().filter(|s| !s.passed).count();
    t.push_str(&format!(
        "\n{}: {} of {} steps passed ({} packets/s probe)\n\nWhat bond0 logged:\n",
        if r.passed { "PASSED" } else { "FAILED" },
        r.steps.len() - failed,
        r.steps.len(),
        r.pps
    ));
    for l in &r.log {
        t.push_str(&format!("  {l}\n"));
    }
    t
}
