//! Starting a bond's daemon in the background from a configuration, and waiting until it
//! holds its slaves, so whoever asked (`rbond up`, ifup's hook) can configure bond0 at once;
//! stopping and restarting it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::bond::BondConfig;
use crate::control::{Client, Reply, Request, socket_path};
use crate::wait;

/// Bonds whose daemons keep a socket in `run_dir`, sorted by name.
pub fn bonds(run_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(run_dir).into_iter().flatten().filter_map(|e| e.ok());
    let mut v: Vec<String> =
        entries.filter_map(|e| e.file_name().to_str()?.strip_suffix(".sock").map(str::to_string)).collect();
    v.sort();
    v
}

/// Starts `bin daemon` for the configured bond, detached from the caller, and returns once
/// every configured slave is enslaved. On failure the daemon has put everything back.
pub fn start(bin: &Path, run_dir: &Path, cfg: &BondConfig) -> anyhow::Result<()> {
    let client = Client::new(run_dir, &cfg.name);
    if client.running() {
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
    let holds_slaves = wait::until(Duration::from_secs(10), Duration::from_millis(20), || {
        if child.try_wait()?.is_some() {
            // The daemon said why on its last line; it has already put everything back.
            let why = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let last = why.lines().last().unwrap_or("the daemon exited").trim_start_matches("rbond: ");
            bail!("{}: {last}", cfg.name);
        }
        Ok(client.slaves().is_ok_and(|have| cfg.slaves.iter().all(|s| have.contains(s))))
    })?;
    if !holds_slaves {
        bail!("{}: the daemon did not finish enslaving within 10 s", cfg.name);
    }
    Ok(())
}

/// Asks the daemon to re-execute its binary in place and checks that the successor carries
/// on. The status request is served after the attempt, by whichever process then holds the
/// socket: the successor (one generation on), the daemon itself (the exec failed), or nobody
/// (the successor could not carry on and restored the slaves).
pub fn restart(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    let client = Client::new(run_dir, bond);
    let before = match client.call(&Request::Restart)? {
        Reply::Restarting { generation, .. } => generation,
        other => bail!("{bond}: unexpected reply {other:?}"),
    };
    let status = client.status().with_context(|| {
        format!("{bond}: the restarted daemon could not carry on; its slaves were restored (see the system log)")
    })?;
    if status.generation != before + 1 {
        let why = status.restart_error.as_deref().unwrap_or("unknown error");
        bail!("{bond}: restart failed, the daemon carries on as it was: {why}");
    }
    Ok(())
}

/// Asks the daemon to stop and waits until it has restored its slaves and gone.
pub fn stop(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    Client::new(run_dir, bond).done(&Request::Down)?;
    let sock = socket_path(run_dir, bond);
    // The socket goes away last, after every slave is restored.
    if !wait::until(Duration::from_secs(10), Duration::from_millis(10), || Ok(!sock.exists()))? {
        bail!("{bond}: the daemon did not finish stopping within 10 s");
    }
    Ok(())
}
