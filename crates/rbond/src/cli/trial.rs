//! `rbond try`: a bond's stanza applied on probation, for a host one may be about to lose.
//! Before anything changes, the host's configuration is written down and a watcher is
//! started in a process group of its own (it outlives the terminal that typed the command).
//! The watcher rolls everything back at once when the bond cannot reach its gateways (or ARP
//! and NS targets, or `--check-ip` addresses) within the grace period, or when the apply did not
//! finish, and otherwise unless `rbond try --confirm` (or Enter on the terminal) keeps it
//! before the timeout. A new bond is applied as `rbond up` applies it; a running one takes the
//! file's options and slaves one change at a time. Files in the run directory carry it:
//! `<bond>.try` (the host as it was), `<bond>.try.undo` (how to undo a running bond's
//! changes), `<bond>.try.lock` (held while a try is pending), `<bond>.try.confirmed`,
//! `<bond>.try.log`.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};
use rbond_core::{Level, OPTIONS};

use super::addressing;
use super::launch::Launcher;
use crate::config::addressing::addressing;
use crate::config::bond::{BondConfig, bond_config};
use crate::config::interfaces::Interfaces;
use crate::config::lint;
use crate::control::{Client, Request};
use crate::daemon::logger::{DEV_LOG, Logger};
use crate::net::carried::HostConfig;
use crate::net::rtnl::Rtnl;
use crate::net::{ctx, reach};

/// What `rbond try` was asked.
pub struct Trial {
    pub bond: String,
    pub file: PathBuf,
    pub timeout: Duration,
    pub grace: Duration,
    pub check: Vec<IpAddr>,
}

fn path(run_dir: &Path, bond: &str, suffix: &str) -> PathBuf {
    run_dir.join(format!("{bond}.try{suffix}"))
}

/// The lock a pending try holds, if it can be had (none is pending).
fn lock(run_dir: &Path, bond: &str) -> anyhow::Result<Option<Flock<File>>> {
    let p = path(run_dir, bond, ".lock");
    let file =
        File::options().create(true).truncate(false).write(true).open(&p).with_context(|| p.display().to_string())?;
    Ok(Flock::lock(file, FlockArg::LockExclusiveNonblock).ok())
}

fn pending(run_dir: &Path, bond: &str) -> anyhow::Result<bool> {
    Ok(lock(run_dir, bond)?.is_none())
}

/// Reads the file strictly, as `rbond up` does, and refuses what lint calls an error, a slave
/// that does not exist and what a dead daemon left, before anything is touched.
fn checked(launcher: &Launcher, t: &Trial) -> anyhow::Result<(BondConfig, crate::config::addressing::Addressing)> {
    let ifs = Interfaces::read(&t.file)?;
    let errors: Vec<String> = lint::lint(&ifs)
        .into_iter()
        .filter(|d| d.severity == lint::Severity::Error)
        .map(|d| format!("{}: {}", d.place, d.message))
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    let (cfg, want) = (bond_config(&ifs, &t.bond)?, addressing(&ifs, &t.bond)?);
    let mut rtnl = Rtnl::open()?;
    for s in &cfg.slaves {
        if rtnl.link_named(s).is_err() {
            bail!("{}: {s}: no such interface", cfg.place);
        }
    }
    if launcher.exists(&t.bond) && !Client::new(&launcher.run_dir, &t.bond).running() {
        bail!("{}: a dead daemon left this bond behind; `rbond down {}` takes it apart first", t.bond, t.bond);
    }
    Ok((cfg, want))
}

/// `rbond try`: applies the stanza on probation and waits for the verdict; true when the
/// configuration stays.
pub fn run(launcher: &Launcher, t: &Trial) -> anyhow::Result<bool> {
    let run_dir = &launcher.run_dir;
    std::fs::create_dir_all(run_dir).with_context(|| run_dir.display().to_string())?;
    if pending(run_dir, &t.bond)? {
        bail!(
            "{}: a try is pending; keep it with `rbond try --confirm {}`, or wait for it to roll back",
            t.bond,
            t.bond
        );
    }
    let (cfg, want) = checked(launcher, t)?;
    let before = Rtnl::open()?.host_config()?;
    let saved = path(run_dir, &t.bond, "");
    std::fs::write(&saved, serde_json::to_vec(&before)?).with_context(|| saved.display().to_string())?;
    let _ = std::fs::remove_file(path(run_dir, &t.bond, ".confirmed"));
    let _ = std::fs::remove_file(path(run_dir, &t.bond, ".undo"));
    let client = Client::new(run_dir, &t.bond);
    let running = client.running();
    let mut watcher = spawn_watcher(launcher, t)?;
    let applied = match running {
        true => change_running(&client, &cfg, &path(run_dir, &t.bond, ".undo")),
        false => launcher.start(&cfg),
    };
    let applied = applied.and_then(|()| addressing::apply(&t.bond, &want));
    let word = if applied.is_ok() { "applied" } else { "failed" };
    if let Some(mut pipe) = watcher.stdin.take() {
        let _ = writeln!(pipe, "{word}");
    }
    if let Err(e) = applied {
        let _ = watcher.wait();
        return Err(e.context(format!("{}: rolled back", t.bond)));
    }
    let log = path(run_dir, &t.bond, ".log");
    println!(
        "{}: applied; keep it with `rbond try --confirm {}` (or Enter here) within {} s, or it is rolled back (log: {})",
        t.bond,
        t.bond,
        t.timeout.as_secs(),
        log.display()
    );
    await_verdict(run_dir, &t.bond, &mut watcher)
}

/// A running bond takes the file's options and slaves through its control socket, one
/// change at a time; after each, how to undo it is written down (for the watcher), so a
/// rollback returns exactly the options and slaves it had. Options the file does not name are
/// left as they are.
fn change_running(client: &Client, cfg: &BondConfig, undo_path: &Path) -> anyhow::Result<()> {
    let mut undo: Vec<Request> = Vec::new();
    let mut done = |req: Request, back: Request| -> anyhow::Result<()> {
        client.done(&req)?;
        undo.push(back);
        std::fs::write(undo_path, serde_json::to_vec(&undo)?).with_context(|| undo_path.display().to_string())
    };
    for (option, value, place) in &cfg.options {
        let set = |v: &str| Request::Set { option: option.clone(), value: v.to_string() };
        // The file may name a value (`active-backup`) where the bond reads `active-backup 1`;
        // a target list reads its targets.
        let old = client.get(option)?;
        if let Some(t) = value.strip_prefix('+') {
            if !old.split_whitespace().any(|x| x == t) {
                done(set(value), set(&format!("-{t}"))).map_err(|e| e.context(place.to_string()))?;
            }
            continue;
        }
        if !old.split_whitespace().any(|w| w == value) {
            let back = old.split_whitespace().next().unwrap_or("").to_string();
            done(set(value), set(&back)).map_err(|e| e.context(place.to_string()))?;
        }
    }
    let had = client.slaves()?;
    for s in cfg.slaves.iter().filter(|s| !had.contains(s)) {
        done(Request::Enslave { slave: s.clone() }, Request::Release { slave: s.clone() })?;
    }
    for s in had.iter().filter(|s| !cfg.slaves.contains(s)) {
        done(Request::Release { slave: s.clone() }, Request::Enslave { slave: s.clone() })?;
    }
    Ok(())
}

/// The watcher, in a process group of its own so that the terminal's signals do not reach it;
/// it hears "applied" or "failed" on its standard input.
fn spawn_watcher(launcher: &Launcher, t: &Trial) -> anyhow::Result<Child> {
    let run_dir = &launcher.run_dir;
    let until = SystemTime::now() + t.timeout;
    let until_ms = until.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut cmd = Command::new(&launcher.bin);
    cmd.arg("--run-dir").arg(run_dir).arg("--bpffs").arg(&launcher.bpffs).args(["try-watch", &t.bond]);
    cmd.args(["--until-ms", &until_ms.to_string(), "--grace-ms", &t.grace.as_millis().to_string()]);
    for ip in &t.check {
        cmd.args(["--check-ip", &ip.to_string()]);
    }
    let log = File::create(path(run_dir, &t.bond, ".log"))?;
    cmd.process_group(0).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(log);
    let child = cmd.spawn().with_context(|| format!("cannot start {}", launcher.bin.display()))?;
    let holds = || pending(run_dir, &t.bond);
    if !crate::wait::until(Duration::from_secs(5), Duration::from_millis(10), holds)? {
        bail!("{}: the try's watcher did not start", t.bond);
    }
    Ok(child)
}

/// Waits for the watcher's verdict; Enter on a terminal confirms.
fn await_verdict(run_dir: &Path, bond: &str, watcher: &mut Child) -> anyhow::Result<bool> {
    let (tx, enter) = std::sync::mpsc::channel();
    if std::io::stdin().is_terminal() {
        std::thread::spawn(move || {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = tx.send(());
            }
        });
    }
    loop {
        if let Some(status) = watcher.try_wait()? {
            let kept = status.success();
            let log = std::fs::read_to_string(path(run_dir, bond, ".log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("the watcher ended without a word");
            if kept {
                println!("{last}")
            } else {
                eprintln!("rbond: {last}")
            }
            return Ok(kept);
        }
        if enter.try_recv().is_ok() {
            confirm_file(run_dir, bond)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn confirm_file(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    let p = path(run_dir, bond, ".confirmed");
    std::fs::write(&p, b"").with_context(|| p.display().to_string())
}

/// `rbond try --confirm`: the pending try's configuration stays.
pub fn confirm(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    if !pending(run_dir, bond)? {
        bail!("{bond}: no try is pending");
    }
    confirm_file(run_dir, bond)?;
    if !crate::wait::until(Duration::from_secs(5), Duration::from_millis(20), || Ok(!pending(run_dir, bond)?))? {
        bail!("{bond}: the try's watcher did not answer");
    }
    println!("{bond}: confirmed; the configuration stays");
    Ok(())
}

/// What the watcher was told.
pub struct Watch {
    pub bond: String,
    pub until: SystemTime,
    pub grace: Duration,
    pub check: Vec<IpAddr>,
}

/// The watcher (`rbond try-watch`, started by `rbond try`): holds the try's lock, hears how the
/// apply went, checks the bond's reach, waits for the confirmation, and rolls back without
/// one. Its lines go to the system log and to `<bond>.try.log`; it exits 0 when the
/// configuration stays.
pub fn watch(launcher: &Launcher, w: &Watch) -> anyhow::Result<bool> {
    let run_dir = &launcher.run_dir;
    let Some(_held) = lock(run_dir, &w.bond)? else { bail!("{}: a try is pending already", w.bond) };
    // The terminal that started the try may hang up; this process carries on regardless.
    let mut hup = nix::sys::signal::SigSet::empty();
    hup.add(nix::sys::signal::Signal::SIGHUP);
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&hup), None)?;
    let mut log = Logger::new(&w.bond, true, Path::new(DEV_LOG));
    let mut heard = String::new();
    let _ = std::io::stdin().lock().read_line(&mut heard);
    let why = match heard.trim() {
        "applied" => match unreachable(run_dir, &w.bond, &w.check, w.grace)? {
            Some(why) => why,
            None => match confirmed(run_dir, &w.bond, w.until) {
                true => {
                    log.note(Level::Info, format!("{}: rbond try: confirmed; the configuration stays", w.bond));
                    clean(run_dir, &w.bond);
                    return Ok(true);
                }
                false => "not confirmed in time".to_string(),
            },
        },
        _ => "the apply did not finish".to_string(),
    };
    roll_back(launcher, &w.bond, &why, &mut log)?;
    Ok(false)
}

/// Why the bond fails its reach check within the grace period, if it does: every check
/// address, every gateway (IPv4 and IPv6) of a route through it and every ARP and NS target
/// must answer through it.
fn unreachable(run_dir: &Path, bond: &str, check: &[IpAddr], grace: Duration) -> anyhow::Result<Option<String>> {
    let mut targets = check.to_vec();
    let mut rtnl = Rtnl::open()?;
    if let Ok(link) = rtnl.link_named(bond) {
        targets.extend(rtnl.all_gateways(link.index).unwrap_or_default());
    }
    let client = Client::new(run_dir, bond);
    for option in OPTIONS.iter().filter(|o| o.values.is_targets()) {
        let listed = client.get(option.sysfs).unwrap_or_default();
        targets.extend(listed.split_whitespace().filter_map(|t| t.parse::<IpAddr>().ok()));
    }
    let deadline = Instant::now() + grace;
    for t in targets {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(200));
        if !reach::answers(bond, t, left).unwrap_or(false) {
            return Ok(Some(format!("{t} did not answer through {bond} within {} s", grace.as_secs_f64())));
        }
    }
    Ok(None)
}

/// Waits for the confirmation until `until`.
fn confirmed(run_dir: &Path, bond: &str, until: SystemTime) -> bool {
    let mark = path(run_dir, bond, ".confirmed");
    while SystemTime::now() < until {
        if mark.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    mark.exists()
}

/// Undoes the changes to a bond that ran before, or takes a new bond down (a converted
/// interface gets its configuration back with it); then puts back whatever else of the
/// host's configuration is missing.
fn roll_back(launcher: &Launcher, bond: &str, why: &str, log: &mut Logger) -> anyhow::Result<()> {
    let run_dir = &launcher.run_dir;
    let undo = path(run_dir, bond, ".undo");
    if let Ok(text) = std::fs::read(&undo) {
        let steps: Vec<Request> = serde_json::from_slice(&text).with_context(|| undo.display().to_string())?;
        let client = Client::new(run_dir, bond);
        for step in steps.iter().rev() {
            if let Err(e) = client.done(step) {
                log.note(
                    Level::Warning,
                    format!("{bond}: rbond try: could not undo ({}): {e:#}", undo_words(bond, step)),
                );
            }
        }
    } else if launcher.exists(bond)
        && let Err(e) = launcher.stop(bond)
    {
        log.note(Level::Warning, format!("{bond}: rbond try: taking the bond down: {e:#}"));
    }
    let saved = path(run_dir, bond, "");
    let before: HostConfig =
        serde_json::from_slice(&std::fs::read(&saved).with_context(|| saved.display().to_string())?)?;
    let failed = ctx(Rtnl::open()?.put_back(&before), "put the host's configuration back", bond)?;
    for f in &failed {
        log.note(Level::Warning, format!("{bond}: rbond try: could not put back {f}"));
    }
    clean(run_dir, bond);
    log.note(Level::Warning, format!("{bond}: rbond try: rolled back ({why}); the host is configured as before"));
    Ok(())
}

/// An undo step as the command that does the same.
fn undo_words(bond: &str, step: &Request) -> String {
    match step {
        Request::Set { option, value } => format!("rbond set {bond} {option} {value}"),
        Request::Enslave { slave } => format!("rbond enslave {bond} {slave}"),
        Request::Release { slave } => format!("rbond release {bond} {slave}"),
        other => format!("{other:?}"),
    }
}

fn clean(run_dir: &Path, bond: &str) {
    for suffix in ["", ".confirmed", ".undo"] {
        let _ = std::fs::remove_file(path(run_dir, bond, suffix));
    }
}
