//! Starting a bond's daemon in the background from a configuration, supervised (by systemd's
//! `rbond@.service` where systemd runs the host, else by `rbond supervise`), and waiting until
//! it holds its slaves, so whoever asked (`rbond up`, ifup's hook) can configure bond0 at
//! once; stopping and restarting it, and taking apart what a dead one left.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::supervise;
use crate::config::bond::BondConfig;
use crate::control::{Client, Reply, Request, socket_path};
use crate::daemon::adopt;
use crate::daemon::logger::{DEV_LOG, Logger};
use crate::wait;

/// Where systemd keeps its runtime directory when it runs the host (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// Bonds whose daemons keep a socket in `run_dir`, sorted by name.
pub fn bonds(run_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(run_dir).into_iter().flatten().filter_map(|e| e.ok());
    let mut v: Vec<String> =
        entries.filter_map(|e| e.file_name().to_str()?.strip_suffix(".sock").map(str::to_string)).collect();
    v.sort();
    v
}

/// The arguments `rbond daemon` takes for this configuration (after `--bond`).
fn daemon_args(cfg: &BondConfig) -> Vec<String> {
    let mut args = vec!["--bond".to_string(), cfg.name.clone()];
    if !cfg.slaves.is_empty() {
        args.extend(["--slaves".to_string(), cfg.slaves.join(",")]);
    }
    for (k, v) in cfg.option_pairs() {
        args.extend(["--opt".to_string(), format!("{k}={v}")]);
    }
    if let Some(d) = &cfg.datapath {
        args.extend(["--datapath".to_string(), d.clone()]);
    }
    if let Some(mtu) = cfg.mtu {
        args.extend(["--mtu".to_string(), mtu.to_string()]);
    }
    args
}

/// Where bonds are started from: the rbond binary and its directories.
pub struct Launcher {
    pub bin: PathBuf,
    pub run_dir: PathBuf,
    pub bpffs: PathBuf,
}

impl Launcher {
    /// Starts the configured bond and returns once every configured slave is enslaved. On
    /// failure the daemon has put everything back. A bond left by a dead daemon is adopted.
    pub fn start(&self, cfg: &BondConfig) -> anyhow::Result<()> {
        let client = Client::new(&self.run_dir, &cfg.name);
        if client.running() {
            bail!("{}: a daemon for this bond is already running", cfg.name);
        }
        if let Some(pid) = supervise::running(&self.run_dir, &cfg.name) {
            bail!("{}: its supervisor (PID {pid}) is already running", cfg.name);
        }
        // Refused options are reported where they were written, before anything is touched.
        let mut options = rbond_core::Options::default();
        for (k, v, place) in &cfg.options {
            options.apply(k, v).map_err(|e| anyhow::anyhow!("{place}: {e}"))?;
        }
        std::fs::create_dir_all(&self.run_dir).with_context(|| self.run_dir.display().to_string())?;
        if Path::new(SYSTEMD_RUNNING).is_dir() {
            self.start_unit(cfg)?;
        } else {
            self.start_supervisor(cfg)?;
        }
        let holds = || Ok(client.slaves().is_ok_and(|have| cfg.slaves.iter().all(|s| have.contains(s))));
        if !wait::until(Duration::from_secs(10), Duration::from_millis(20), holds)? {
            bail!("{}: the daemon did not finish enslaving within 10 s", cfg.name);
        }
        for (slave, prio) in &cfg.prios {
            client.done(&Request::SetPrio { slave: slave.clone(), prio: *prio })?;
        }
        Ok(())
    }

    /// `rbond supervise` in its own process group (it outlives the ifup or shell that started
    /// it), waited for until its daemon answers; if it exits first, its last line says why.
    fn start_supervisor(&self, cfg: &BondConfig) -> anyhow::Result<()> {
        let stderr_path = self.run_dir.join(format!("{}.stderr", cfg.name));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--run-dir").arg(&self.run_dir).arg("--bpffs").arg(&self.bpffs).arg("supervise");
        cmd.args(daemon_args(cfg));
        cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(File::create(&stderr_path)?);
        let mut child = cmd.spawn().with_context(|| format!("cannot start {}", self.bin.display()))?;
        let client = Client::new(&self.run_dir, &cfg.name);
        let answered = wait::until(Duration::from_secs(10), Duration::from_millis(20), || {
            if child.try_wait()?.is_some() {
                let why = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                bail!("{}: {}", cfg.name, why_it_ended(&why));
            }
            Ok(client.running())
        })?;
        if !answered {
            bail!("{}: the daemon did not answer within 10 s", cfg.name);
        }
        Ok(())
    }

    /// `systemctl start rbond@<bond>.service`, its arguments in `<run_dir>/<bond>.env`;
    /// systemd returns once the daemon says READY (the slaves are in).
    fn start_unit(&self, cfg: &BondConfig) -> anyhow::Result<()> {
        let env = self.run_dir.join(format!("{}.env", cfg.name));
        let args: Vec<String> = daemon_args(cfg).into_iter().skip(2).collect();
        std::fs::write(&env, format!("RBOND_ARGS={}\n", args.join(" "))).with_context(|| env.display().to_string())?;
        let unit = format!("rbond@{}.service", cfg.name);
        let out = Command::new("systemctl").args(["start", &unit]).output().context("cannot run systemctl")?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            bail!("{}: systemctl start {unit}: {} (see journalctl -u {unit})", cfg.name, why.trim());
        }
        Ok(())
    }

    /// Whether anything of the bond is there: a daemon, its supervisor, or what a dead daemon
    /// left.
    pub fn exists(&self, bond: &str) -> bool {
        Client::new(&self.run_dir, bond).running()
            || supervise::running(&self.run_dir, bond).is_some()
            || self.run_dir.join(format!("{bond}.state")).exists()
    }

    /// Stops the bond: its daemon restores the slaves and deletes bond0. With no daemon
    /// running, its supervisor is stopped, or what a dead daemon left is taken apart.
    pub fn stop(&self, bond: &str) -> anyhow::Result<()> {
        let client = Client::new(&self.run_dir, bond);
        if client.running() {
            client.done(&Request::Down)?;
        } else if let Some(pid) = supervise::running(&self.run_dir, bond) {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
                .with_context(|| format!("{bond}: stop its supervisor (PID {pid})"))?;
        } else {
            let mut log = Logger::new(bond, true, Path::new(DEV_LOG));
            if !adopt::clean_up(&self.run_dir, bond, &self.bpffs, &mut log)? {
                bail!("{bond}: no daemon is running for this bond");
            }
            return Ok(());
        }
        // The socket goes away after every slave is restored; the supervisor right after.
        let sock = socket_path(&self.run_dir, bond);
        let gone = || Ok(!sock.exists() && supervise::running(&self.run_dir, bond).is_none());
        if !wait::until(Duration::from_secs(10), Duration::from_millis(10), gone)? {
            bail!("{bond}: the daemon did not finish stopping within 10 s");
        }
        Ok(())
    }
}

/// Asks the daemon to re-execute its binary in place and checks that the successor carries
/// on. The status request is served after the attempt, by whichever process then holds the
/// socket: the successor (one generation on) or the daemon itself (the exec failed).
pub fn restart(run_dir: &Path, bond: &str) -> anyhow::Result<()> {
    let client = Client::new(run_dir, bond);
    let before = match client.call(&Request::Restart)? {
        Reply::Restarting { generation, .. } => generation,
        other => bail!("{bond}: unexpected reply {other:?}"),
    };
    let status = client.status().with_context(|| {
        format!("{bond}: the restarted daemon could not carry on (see the system log; its supervisor starts another)")
    })?;
    if status.generation != before + 1 {
        let why = status.restart_error.as_deref().unwrap_or("unknown error");
        bail!("{bond}: restart failed, the daemon carries on as it was: {why}");
    }
    Ok(())
}

/// The line of a daemon's stderr that says why it ended: its last error (rbond's own, or the
/// argument parser's, which a hint follows), else its last line.
fn why_it_ended(stderr: &str) -> &str {
    let lines = || stderr.lines().rev().map(str::trim).filter(|l| !l.is_empty());
    let error = lines().find_map(|l| l.strip_prefix("rbond: ").or_else(|| l.strip_prefix("error: ")));
    error.or_else(|| lines().next()).unwrap_or("the daemon exited")
}

#[cfg(test)]
mod tests {
    use super::why_it_ended;

    #[test]
    fn the_reason_a_daemon_ended_is_its_last_error_line() {
        let clap = "error: invalid value 'bogus' for '--datapath <DATAPATH>'\n  [possible values: auto, kernel]\n\nFor more information, try '--help'.\n";
        assert_eq!(why_it_ended(clap), "invalid value 'bogus' for '--datapath <DATAPATH>'");
        assert_eq!(why_it_ended("rbond: eth9: no such interface\n"), "eth9: no such interface");
        assert_eq!(why_it_ended("killed\n"), "killed");
        assert_eq!(why_it_ended(""), "the daemon exited");
    }
}
