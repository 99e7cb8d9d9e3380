//! Starting a bond's daemon in the background from a configuration, and waiting until it
//! holds its slaves, so whoever asked (`rbond up`, ifup's hook) can configure bond0 at once.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::bond::BondConfig;
use crate::control::{self, Request};

/// Bonds whose daemons keep a socket in `run_dir`, sorted by name.
pub fn bonds(run_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(run_dir).into_iter().flatten().filter_map(|e| e.ok());
    let mut v: Vec<String> = entries.filter_map(|e| e.file_name().to_str()?.strip_suffix(".sock").map(str::to_string)).collect();
    v.sort();
    v
}

/// Whether a daemon for `bond` answers on its control socket.
pub fn running(run_dir: &Path, bond: &str) -> bool {
    control::call(&control::socket_path(run_dir, bond), &Request::Status).is_ok_and(|r| r["ok"] == true)
}

/// Starts `bin daemon` for the configured bond, detached from the caller, and returns once
/// every configured slave is enslaved. On failure the daemon has put everything back.
pub fn start(bin: &Path, run_dir: &Path, cfg: &BondConfig) -> anyhow::Result<()> {
    if running(run_dir, &cfg.name) {
        bail!("{}: a daemon for this bond is already running", cfg.name);
    }
    // Refused options are reported where they were written, before anything is touched.
    let mut options = rbond_core::Options::default();
    for (k, v, place) in &cfg.options {
        options.apply(k, v).map_err(|e| anyhow::anyhow!("{place}: {e}"))?;
    }
    std::fs::create_dir_all(run_dir).with_context(|| run_dir.display().to_string())?;
    let stderr_path = run_dir.join(format!("{}.stderr", cfg.name));
    let mut cmd = Command::new(bin);
    cmd.arg("--run-dir").arg(run_dir).args(["daemon", "--bond", &cfg.name]);
    if !cfg.slaves.is_empty() {
        cmd.args(["--slaves", &cfg.slaves.join(",")]);
    }
    for (k, v) in cfg.option_pairs() {
        cmd.args(["--opt", &format!("{k}={v}")]);
    }
    if let Some(d) = &cfg.datapath {
        cmd.args(["--datapath", d]);
    }
    // Its own process group, so it outlives the ifup or shell that started it.
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(File::create(&stderr_path)?);
    let mut child = cmd.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait()?.is_some() {
            // The daemon said why on its last line; it has already put everything back.
            let why = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let last = why.lines().last().unwrap_or("the daemon exited").trim_start_matches("rbond: ");
            bail!("{}: {last}", cfg.name);
        }
        if holds_slaves(run_dir, cfg) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{}: the daemon did not finish enslaving within 10 s", cfg.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn holds_slaves(run_dir: &Path, cfg: &BondConfig) -> bool {
    let Ok(r) = control::call(&control::socket_path(run_dir, &cfg.name), &Request::Status) else { return false };
    let have: Vec<&str> = r["report"]["slaves"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    cfg.slaves.iter().all(|s| have.contains(&s.as_str()))
}

/// The bond's slaves, in enslave order.
pub fn slaves(run_dir: &Path, bond: &str) -> anyhow::Result<Vec<String>> {
    let v = ask(run_dir, bond, &Request::Get { option: "slaves".into() })?;
    Ok(v["value"].as_str().unwrap_or_default().split_whitespace().map(str::to_string).collect())
}

/// Sends one request to a running daemon, failing with its error line.
pub fn ask(run_dir: &Path, bond: &str, req: &Request) -> anyhow::Result<serde_json::Value> {
    let reply = control::call(&control::socket_path(run_dir, bond), req)?;
    if reply["ok"] != true {
        bail!("{bond}: {}", reply["error"].as_str().unwrap_or("request failed"));
    }
    Ok(reply)
}

/// Asks the daemon to re-execute its binary in place and checks that the successor carries
/// on. The status request is served after the attempt, by whichever process then holds the
/// socket: the successor (one generation on), the daemon itself (the exec failed), or nobody
/// (the successor could not carry on and restored the slaves).
pub fn restart(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    let before = ask(run_dir, bond, &Request::Restart)?["generation"].as_u64();
    let status = ask(run_dir, bond, &Request::Status)
        .with_context(|| format!("{bond}: the restarted daemon could not carry on; its slaves were restored (see the system log)"))?;
    if status["generation"].as_u64() != before.map(|g| g + 1) {
        let why = status["restart_error"].as_str().unwrap_or("unknown error");
        bail!("{bond}: restart failed, the daemon carries on as it was: {why}");
    }
    Ok(())
}

/// Asks the daemon to stop and waits until it has restored its slaves and gone.
pub fn stop(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    ask(run_dir, bond, &Request::Down)?;
    let sock = control::socket_path(run_dir, bond);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The socket goes away last, after every slave is restored.
    while sock.exists() {
        if Instant::now() > deadline {
            bail!("{bond}: the daemon did not finish stopping within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
