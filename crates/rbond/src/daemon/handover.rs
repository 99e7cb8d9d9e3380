//! Restarting in place. The daemon re-executes its binary (perhaps a newer one) and hands the
//! successor everything that keeps traffic flowing: bond0's TAP, the packet sockets, the BPF
//! programs, links and map, the control socket, and the engine itself. Nothing is torn down,
//! so the kernel datapath keeps forwarding throughout; the successor keeps the PID, the delays
//! in progress, the failure counts and the active slave.
//!
//! Descriptors cross `execve` by name (see `keep`); the rest goes in a file in the run
//! directory named by `RBOND_HANDOVER`. The signal mask is inherited too, so a SIGTERM
//! arriving mid-exec waits for the successor, which restores on it as usual.

use std::ffi::{CString, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rbond_core::{Bond, Level};
use serde::{Deserialize, Serialize};

use super::event_loop::Io;
use super::logger::Logger;
use super::members::Member;
use super::{Config, Daemon};
use crate::control::server::Server;
use crate::control::{LogLine, socket_path};
use crate::datapath::bond_device::BondDevice;
use crate::datapath::{self, Kind, Port};
use crate::keep::{self, Kept};
use crate::net::{Netdev, System};
use crate::sys::process;

const ENV: &str = "RBOND_HANDOVER";
/// Bumped when the layout changes; a successor that cannot read it restores and exits.
const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Handover {
    format: u32,
    engine: Bond,
    index: u32,
    datapath: Kind,
    members: Vec<Member>,
    generation: u32,
    history: Vec<LogLine>,
}

fn file(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.handover"))
}

/// The binary to run: this one's path, which names the new file after an upgrade replaced it.
fn exe() -> anyhow::Result<CString> {
    let path = std::fs::read_link("/proc/self/exe").context("/proc/self/exe")?;
    let bytes = path.as_os_str().as_bytes();
    let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    Ok(CString::new(bytes)?)
}

fn cstrings(items: impl Iterator<Item = OsString>) -> anyhow::Result<Vec<CString>> {
    items.map(|s| CString::new(s.as_bytes()).map_err(Into::into)).collect()
}

/// The handover named in the environment, if this process is a successor. The variable is
/// cleared so nothing started later mistakes itself for one.
pub(super) fn pending() -> Option<PathBuf> {
    let path = std::env::var_os(ENV)?;
    process::forget_env(ENV);
    Some(PathBuf::from(path))
}

impl Daemon {
    /// Re-executes this binary with the running bond. Returns only if that failed, with
    /// everything still in place and owned by this process.
    pub(super) fn restart_in_place(&mut self) -> anyhow::Error {
        let path = file(&self.run_dir, &self.name);
        let handover = Handover {
            format: FORMAT,
            engine: self.engine.clone(),
            index: self.index,
            datapath: self.datapath.kind(),
            members: self.members.clone(),
            generation: self.life.generation + 1,
            history: self.log.history().cloned().collect(),
        };
        let mut fds: Vec<(String, BorrowedFd<'_>)> = vec![("control".into(), self.io.control.listener())];
        fds.extend(self.datapath.handover());
        let written = serde_json::to_vec(&handover)
            .map_err(anyhow::Error::from)
            .and_then(|data| std::fs::write(&path, data).with_context(|| path.display().to_string()));
        let err = match written.and_then(|()| exec(&path, &fds)) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        Kept::take_back(&fds);
        let _ = std::fs::remove_file(&path);
        err
    }

    /// Carries on a predecessor's bond. If the handover cannot be read or used, the slaves
    /// are put back from the state file instead and the error says why.
    pub(super) fn resume(cfg: &Config, path: &Path, kept: Kept) -> anyhow::Result<Daemon> {
        let read = std::fs::read(path).with_context(|| path.display().to_string());
        let _ = std::fs::remove_file(path);
        let logger = || Logger::new(&cfg.bond, cfg.foreground, &cfg.syslog);
        read.and_then(|d| serde_json::from_slice::<Handover>(&d).context("unreadable handover"))
            .and_then(|h| match h.format {
                FORMAT => Ok(h),
                other => Err(anyhow::anyhow!("handover format {other} is not {FORMAT}")),
            })
            // A descriptor that did not survive the exec is as bad as an unreadable file.
            .and_then(|h| Daemon::carry_on(cfg, logger(), h, kept))
            .map_err(|e| give_up(cfg, &mut logger(), e))
    }

    fn carry_on(cfg: &Config, mut log: Logger, h: Handover, mut kept: Kept) -> anyhow::Result<Daemon> {
        log.carry_on(h.history);
        let net: Box<dyn Netdev> = Box::new(System::open().context("rtnetlink")?);
        let control = kept.take("control").context("no control socket was handed over")?;
        let control = Server::from_fd(control, socket_path(&cfg.run_dir, &cfg.bond))?;
        let tap = BondDevice::from_fd(kept.take("tap").context("no TAP was handed over")?)?;
        let all_active = h.engine.options().all_slaves_active();
        let datapath = datapath::open(h.datapath, tap, h.index, all_active, kept)?;
        let io = Io::open(control)?;
        let mut d = Daemon::assemble(cfg, h.engine, datapath, net, io, log, h.index)?;
        for m in &h.members {
            d.datapath
                .attach(&Port { ifindex: m.id.0, name: m.name.clone() })
                .with_context(|| format!("{}: take back", m.name))?;
        }
        d.members = h.members;
        d.datapath.set_active(d.engine.active().map(|a| a.0))?;
        d.life.generation = h.generation;
        d.note(
            Level::Info,
            format!("{}: restarted in place (PID {}): the datapath kept running", cfg.bond, std::process::id()),
        );
        d.catch_up();
        Ok(d)
    }
}

/// The successor could not carry on: put the slaves back as after a crash.
fn give_up(cfg: &Config, log: &mut Logger, e: anyhow::Error) -> anyhow::Error {
    log.note(Level::Warning, format!("{}: cannot carry on after restart ({e:#}); restoring slaves", cfg.bond));
    match System::open() {
        Ok(mut net) => super::recover(&cfg.run_dir, &cfg.bond, &mut net, log),
        Err(err) => log.note(Level::Warning, format!("{}: cannot restore slaves: rtnetlink: {err}", cfg.bond)),
    }
    e.context(format!("{}: restart in place failed", cfg.bond))
}

/// Replaces this process image; returns only on failure.
fn exec(handover: &Path, fds: &[(String, BorrowedFd<'_>)]) -> anyhow::Result<std::convert::Infallible> {
    let exe = exe()?;
    let argv = cstrings(std::env::args_os())?;
    let handed = Kept::hand_on(fds)?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV && k != keep::ENV)
        .map(|(k, v)| [k, "=".into(), v].into_iter().collect())
        .collect();
    env.push([OsString::from(ENV), "=".into(), handover.as_os_str().to_owned()].into_iter().collect());
    env.push(format!("{}={handed}", keep::ENV).into());
    let envp = cstrings(env.into_iter())?;
    let e = nix::unistd::execve(&exe, &argv, &envp).unwrap_err();
    Err(std::io::Error::from(e)).with_context(|| format!("exec {}", exe.to_string_lossy()))
}
