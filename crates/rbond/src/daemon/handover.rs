//! Restarting in place. The daemon re-executes its binary (perhaps a newer one) and hands the
//! successor everything that keeps traffic flowing: bond0's TAP, the packet sockets, the tcx
//! links and map, the control socket, and the engine itself. Nothing is torn down, so the
//! kernel datapath keeps forwarding throughout; the successor keeps the PID, the delays in
//! progress, the failure counts and the active slave.
//!
//! Descriptors cross `execve` by number (close-on-exec cleared just before); the rest goes in
//! a file in the run directory named by `RBOND_HANDOVER`. The signal mask is inherited too,
//! so a SIGTERM arriving mid-exec waits for the successor, which restores on it as usual.

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rbond_core::{Bond, Level, Mac};
use serde::{Deserialize, Serialize};

use super::{Daemon, Member};
use crate::control::ControlServer;
use crate::kernel_datapath::KernelDatapath;
use crate::link_watch::{LinkEvent, LinkWatch};
use crate::logger::Logger;
use crate::netdev;
use crate::packet_socket::PacketSocket;
use crate::restore::{SavedSlave, StateFile};
use crate::signals::Signals;
use crate::tap::Tap;
use crate::tcx;

const ENV: &str = "RBOND_HANDOVER";
/// Bumped when the layout changes; a successor that cannot read it restores and exits.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct HandedMember {
    name: String,
    ifindex: u32,
    sock: i32,
    ingress: i32,
    saved: SavedSlave,
    mac: Mac,
    carrier: bool,
    poll_link: bool,
}

#[derive(Serialize, Deserialize)]
struct Handover {
    format: u32,
    /// The predecessor's clock, so the engine's deadlines keep their meaning.
    elapsed: Duration,
    engine: Bond,
    bond_index: u32,
    tap: i32,
    control: i32,
    /// Map, slave program, bond0's egress link.
    kernel: Option<[i32; 3]>,
    members: Vec<HandedMember>,
    active: Option<String>,
    generation: u32,
    history: Vec<crate::logger::LogLine>,
}

fn file(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.handover"))
}

fn set_cloexec(fd: i32, on: bool) -> std::io::Result<()> {
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    let flags = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a descriptor the predecessor left open, closing it on the next exec.
fn inherited(fd: i32) -> anyhow::Result<OwnedFd> {
    set_cloexec(fd, true).with_context(|| format!("handed-over descriptor {fd}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
    // SAFETY: called at start-up, before the daemon starts any thread.
    unsafe { std::env::remove_var(ENV) };
    Some(PathBuf::from(path))
}

impl Daemon {
    /// Re-executes this binary with the running bond. Returns only if that failed, with
    /// everything still in place and owned by this process.
    pub(super) fn restart_in_place(&mut self) -> anyhow::Error {
        let path = file(&self.run_dir, &self.name);
        let (handover, fds) = self.hand_over();
        let written = serde_json::to_vec(&handover).map_err(anyhow::Error::from).and_then(|data| {
            std::fs::write(&path, data).with_context(|| path.display().to_string())
        });
        let err = match written.and_then(|()| exec(&path, &fds)) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        for fd in fds {
            let _ = set_cloexec(fd, true);
        }
        let _ = std::fs::remove_file(&path);
        err
    }

    fn hand_over(&self) -> (Handover, Vec<i32>) {
        let members: Vec<HandedMember> = self
            .members
            .iter()
            .map(|m| HandedMember {
                name: m.name.clone(),
                ifindex: m.ifindex,
                sock: m.sock.raw_fd(),
                ingress: m.ingress.raw_fd(),
                saved: m.saved.clone(),
                mac: m.mac,
                carrier: m.carrier,
                poll_link: m.poll_link,
            })
            .collect();
        let kernel = self.kernel.as_ref().map(KernelDatapath::raw_fds);
        let mut fds = vec![self.tap.raw_fd(), self.control.listener_fd()];
        fds.extend(kernel.iter().flatten());
        fds.extend(members.iter().flat_map(|m| [m.sock, m.ingress]));
        let h = Handover {
            format: FORMAT,
            elapsed: self.epoch.elapsed(),
            engine: self.bond.clone(),
            bond_index: self.bond_index,
            tap: self.tap.raw_fd(),
            control: self.control.listener_fd(),
            kernel,
            members,
            active: self.active.clone(),
            generation: self.generation + 1,
            history: self.log.history().cloned().collect(),
        };
        (h, fds)
    }

    /// Carries on a predecessor's bond. If the handover cannot be read or used, the slaves
    /// are put back from the state file instead and the error says why.
    pub(super) fn adopt(cfg: &super::Config, path: &Path) -> anyhow::Result<Daemon> {
        let read = std::fs::read(path).with_context(|| path.display().to_string());
        let _ = std::fs::remove_file(path);
        let logger = || Logger::new(&cfg.bond, cfg.foreground, &cfg.syslog);
        read.and_then(|d| serde_json::from_slice::<Handover>(&d).context("unreadable handover"))
            .and_then(|h| match h.format {
                FORMAT => Ok(h),
                other => Err(anyhow::anyhow!("handover format {other} is not {FORMAT}")),
            })
            // A descriptor that did not survive the exec is as bad as an unreadable file.
            .and_then(|h| Daemon::resume(cfg, logger(), h))
            .map_err(|e| give_up(cfg, &mut logger(), e))
    }

    fn resume(cfg: &super::Config, mut log: Logger, h: Handover) -> anyhow::Result<Daemon> {
        log.carry_on(h.history);
        let mut members = Vec::new();
        for m in h.members {
            members.push(Member {
                sock: PacketSocket::from_fd(inherited(m.sock)?, m.ifindex),
                ingress: tcx::Link::from_fd(inherited(m.ingress)?),
                name: m.name,
                ifindex: m.ifindex,
                saved: m.saved,
                mac: m.mac,
                carrier: m.carrier,
                poll_link: m.poll_link,
                last_rx_note: None,
            });
        }
        let kernel = match h.kernel {
            Some([a, b, c]) => Some(KernelDatapath::from_fds([inherited(a)?, inherited(b)?, inherited(c)?])),
            None => None,
        };
        let socket = crate::control::socket_path(&cfg.run_dir, &cfg.bond);
        let control = ControlServer::from_fd(inherited(h.control)?, socket)?;
        log.note(Level::Info, format!("{}: restarted in place (PID {}): the datapath kept running", cfg.bond, std::process::id()));
        let mut d = Daemon {
            name: cfg.bond.clone(),
            bond: h.engine,
            tap: Tap::from_fd(inherited(h.tap)?, &cfg.bond),
            bond_index: h.bond_index,
            members,
            active: h.active,
            kernel,
            watch: LinkWatch::open().context("netlink")?,
            control,
            log,
            signals: Signals::block_and_open()?,
            state: StateFile::new(&cfg.run_dir, &cfg.bond),
            epoch: std::time::Instant::now().checked_sub(h.elapsed).unwrap_or_else(std::time::Instant::now),
            next_link_poll: rbond_core::Instant::ZERO,
            stop: None,
            restart: false,
            generation: h.generation,
            restart_error: None,
            run_dir: cfg.run_dir.clone(),
            batch: crate::batch::Batch::default(),
        };
        d.catch_up();
        Ok(d)
    }

    /// Links and addresses may have changed while no one listened: look at them now.
    fn catch_up(&mut self) {
        let now: Vec<LinkEvent> = self
            .members
            .iter()
            .map(|m| {
                let name = netdev::name_of(m.ifindex);
                LinkEvent {
                    index: m.ifindex,
                    removed: name.is_none(),
                    admin_up: true,
                    lower_up: netdev::link_detected(&m.name).unwrap_or(false),
                    name,
                }
            })
            .collect();
        for ev in now {
            self.link_event(ev);
        }
        self.read_addresses();
        self.apply_actions();
    }
}

/// The successor could not carry on: put the slaves back as after a crash.
fn give_up(cfg: &super::Config, log: &mut Logger, e: anyhow::Error) -> anyhow::Error {
    log.note(Level::Warning, format!("{}: cannot carry on after restart ({e:#}); restoring slaves", cfg.bond));
    super::recover(&cfg.run_dir, &cfg.bond, log);
    e.context(format!("{}: restart in place failed", cfg.bond))
}

/// Replaces this process image; returns only on failure.
fn exec(handover: &Path, fds: &[i32]) -> anyhow::Result<std::convert::Infallible> {
    let exe = exe()?;
    let argv = cstrings(std::env::args_os())?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV)
        .map(|(k, v)| [k, "=".into(), v].into_iter().collect())
        .collect();
    env.push([OsString::from(ENV), "=".into(), handover.as_os_str().to_owned()].into_iter().collect());
    let envp = cstrings(env.into_iter())?;
    for fd in fds {
        set_cloexec(*fd, false)?;
    }
    let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
    unsafe { libc::execve(exe.as_ptr(), ptrs(&argv).as_ptr(), ptrs(&envp).as_ptr()) };
    Err(std::io::Error::last_os_error()).with_context(|| format!("exec {}", exe.to_string_lossy()))
}
