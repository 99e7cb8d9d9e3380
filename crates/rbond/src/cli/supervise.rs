//! `rbond supervise`: the daemon's parent on hosts where systemd is not PID 1 (ifup's hook and
//! `rbond up` start bonds through it there). It plays systemd's side of the notify protocol:
//! it hears READY and the watchdog pings, holds what the daemon stores (bond0's TAP, so that
//! bond0 keeps its carrier while no daemon runs) and hands it to the next daemon, which adopts
//! the running bond.
//!
//! A daemon that dies is started again at once. One that dies within `min_uptime` of its
//! start is a failed start; failed starts in a row wait 0.1 s, 0.2 s, 0.4 s… before the next,
//! and after `max_failed_starts` the supervisor gives up: it says why, takes the bond apart
//! (every slave restored, bond0 deleted) and exits 1. A first start refused outright (exit
//! code 1 before any READY: a bad option, a missing slave) is not retried: the daemon has put
//! everything back and said why, and would only say it again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IoSliceMut, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::unistd::Pid;
use rbond_core::Level;

use crate::daemon::adopt;
use crate::daemon::logger::Logger;
use crate::keep;
use crate::sys::process;

/// How the supervisor runs its daemon.
pub struct Options {
    /// The daemon's binary.
    pub bin: PathBuf,
    pub run_dir: PathBuf,
    pub bpffs: PathBuf,
    pub bond: String,
    /// The daemon's own arguments (after `daemon`).
    pub daemon_args: Vec<String>,
    pub syslog: PathBuf,
    /// A daemon silent for this long is aborted and replaced.
    pub watchdog: Option<Duration>,
    pub min_uptime: Duration,
    pub max_failed_starts: u32,
}

/// The supervisor's lock and PID file: `<run_dir>/<bond>.supervisor`.
fn pid_file(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.supervisor"))
}

/// The running supervisor of `bond`, if any, by PID (its lock says it lives).
pub fn running(run_dir: &Path, bond: &str) -> Option<u32> {
    let mut file = File::open(pid_file(run_dir, bond)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err(_) => text.trim().parse().ok(),
    }
}

/// What a daemon said on the notify socket.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Ready,
    Alive,
    Stopping,
    /// `FDSTORE=1` with `FDNAME`: hold these for the next daemon.
    Store(String),
    /// `FDSTOREREMOVE=1` with `FDNAME`: let it go.
    Forget(String),
}

/// One datagram of `KEY=VALUE` lines, as systemd reads them.
fn parse(text: &str) -> Vec<Heard> {
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='));
    let name = value("FDNAME").unwrap_or("stored").to_string();
    let mut heard = Vec::new();
    if value("READY") == Some("1") {
        heard.push(Heard::Ready);
    }
    if value("WATCHDOG") == Some("1") {
        heard.push(Heard::Alive);
    }
    if value("STOPPING") == Some("1") {
        heard.push(Heard::Stopping);
    }
    if value("FDSTORE") == Some("1") {
        heard.push(Heard::Store(name.clone()));
    }
    if value("FDSTOREREMOVE") == Some("1") {
        heard.push(Heard::Forget(name));
    }
    heard
}

/// How one daemon's life ended.
struct Ended {
    status: ExitStatus,
    ready: bool,
    lived: Duration,
}

struct Supervisor {
    o: Options,
    _lock: nix::fcntl::Flock<File>,
    socket: UnixDatagram,
    socket_path: PathBuf,
    signals: SignalFd,
    /// Descriptors the daemon asked us to hold, by name.
    store: BTreeMap<String, OwnedFd>,
    log: Logger,
    /// A stop was asked for (SIGTERM, SIGINT, SIGHUP) and passed on to the daemon.
    stopping: bool,
}

/// Runs daemons for the bond until one stops on request; returns the exit code.
pub fn run(o: Options) -> anyhow::Result<u8> {
    let mut sup = Supervisor::open(o)?;
    let mut failed_starts = 0;
    let mut ever_ready = false;
    loop {
        let end = sup.supervise_one()?;
        ever_ready |= end.ready;
        if end.status.success() {
            return Ok(0);
        }
        let code = end.status.code().map_or(1, |c| c as u8);
        if sup.stopping {
            sup.give_up(&format!("the daemon {} while stopping", describe(end.status)));
            return Ok(code);
        }
        if code == 1 && !ever_ready {
            return Ok(code);
        }
        failed_starts = if end.lived < sup.o.min_uptime { failed_starts + 1 } else { 0 };
        let how = describe(end.status);
        if failed_starts >= sup.o.max_failed_starts {
            let why = format!("{failed_starts} starts in a row failed within {:?} (the last {how})", sup.o.min_uptime);
            sup.give_up(&why);
            return Ok(1);
        }
        let bond = sup.o.bond.clone();
        sup.log.note(Level::Warning, format!("{bond}: the daemon {how}; starting a new one"));
        let backoff = match failed_starts {
            0 => Duration::ZERO,
            n => Duration::from_millis(100) * 2u32.pow(n - 1),
        };
        if !sup.pause(backoff) {
            sup.give_up("asked to stop while no daemon ran");
            return Ok(0);
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (_, Some(sig)) => {
            let name = Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_string());
            format!("was killed by {name}")
        }
        _ => format!("ended ({status})"),
    }
}

impl Supervisor {
    fn open(o: Options) -> anyhow::Result<Supervisor> {
        std::fs::create_dir_all(&o.run_dir).with_context(|| o.run_dir.display().to_string())?;
        let path = pid_file(&o.run_dir, &o.bond);
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| path.display().to_string())?;
        let mut lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
            anyhow::anyhow!("{}: a supervisor is already running ({} is locked)", o.bond, path.display())
        })?;
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "{}", std::process::id())?;
        let socket_path = o.run_dir.join(format!("{}.notify", o.bond));
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path).with_context(|| socket_path.display().to_string())?;
        socket.set_nonblocking(true)?;
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
            set.add(s);
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let log = Logger::new(&o.bond, true, &o.syslog);
        Ok(Supervisor { o, _lock: lock, socket, socket_path, signals, store: BTreeMap::new(), log, stopping: false })
    }

    /// Starts a daemon with what the store holds, at descriptors 3 and up.
    fn spawn(&self) -> anyhow::Result<Child> {
        let mut cmd = Command::new(&self.o.bin);
        cmd.arg("--run-dir").arg(&self.o.run_dir).arg("--bpffs").arg(&self.o.bpffs).arg("daemon");
        cmd.args(&self.o.daemon_args).env("NOTIFY_SOCKET", &self.socket_path);
        for var in [keep::ENV, "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "WATCHDOG_PID"] {
            cmd.env_remove(var);
        }
        if let Some(w) = self.o.watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        let fds: Vec<(RawFd, std::os::fd::BorrowedFd<'_>)> =
            self.store.values().zip(3..).map(|(fd, n)| (n, fd.as_fd())).collect();
        let names: Vec<String> = self.store.keys().zip(3..).map(|(name, n)| format!("{name}={n}")).collect();
        cmd.env(keep::ENV, names.join(","));
        // Signals from a terminal go to the supervisor, which passes a stop on in order.
        cmd.process_group(0);
        process::spawn_with_fds(&mut cmd, &fds).with_context(|| format!("cannot start {}", self.o.bin.display()))
    }

    /// Runs one daemon until it ends, serving its messages, the watchdog and stop signals.
    fn supervise_one(&mut self) -> anyhow::Result<Ended> {
        let started = Instant::now();
        let mut child = self.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let mut ready = false;
        // A daemon on its way out (STOPPING) owes no more pings.
        let mut leaving = false;
        let mut last_sign = started;
        let mut aborted: Option<Instant> = None;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Ended { status, ready, lived: started.elapsed() });
            }
            let wait = self.o.watchdog.map_or(Duration::from_secs(1), |w| w / 4);
            let (signal, readable) = self.wait(wait);
            if let Some(sig) = signal.filter(|s| *s != Signal::SIGCHLD) {
                self.stopping = true;
                let _ = kill(pid, sig);
            }
            if readable {
                for heard in self.receive() {
                    match heard {
                        Heard::Ready => ready = true,
                        Heard::Stopping => leaving = true,
                        _ => {}
                    }
                    last_sign = Instant::now();
                }
            }
            let silent = self.o.watchdog.filter(|w| last_sign.elapsed() > *w && !self.stopping && !leaving);
            match (silent, aborted) {
                (Some(w), None) => {
                    let line = format!("{}: the daemon (PID {pid}) was silent for {w:?}; aborting it", self.o.bond);
                    self.log.note(Level::Warning, line);
                    let _ = kill(pid, Signal::SIGABRT);
                    aborted = Some(Instant::now());
                }
                (_, Some(at)) if at.elapsed() > Duration::from_secs(1) => drop(kill(pid, Signal::SIGKILL)),
                _ => {}
            }
        }
    }

    /// Waits up to `limit` for a signal or a message; says which came.
    fn wait(&mut self, limit: Duration) -> (Option<Signal>, bool) {
        let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
        let mut fds =
            [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN), PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout).is_err() {
            return (None, false);
        }
        let readable = fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        let signal = match self.signals.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        };
        (signal, readable)
    }

    /// Every message waiting, with the descriptors stored or forgotten as they say.
    fn receive(&mut self) -> Vec<Heard> {
        let mut all = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([RawFd; 8]);
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
            let Ok(msg) = recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut space), flags) else { break };
            let mut fds = Vec::new();
            for c in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(v) = c {
                    fds.extend(process::received(v));
                }
            }
            let n = msg.bytes;
            let heard = parse(&String::from_utf8_lossy(&buf[..n]));
            for h in &heard {
                match h {
                    Heard::Store(name) => {
                        if let Some(fd) = fds.pop() {
                            self.store.insert(name.clone(), fd);
                        }
                    }
                    Heard::Forget(name) => drop(self.store.remove(name)),
                    _ => {}
                }
            }
            all.extend(heard);
        }
        all
    }

    /// Sleeps `limit` unless asked to stop; returns whether to carry on.
    fn pause(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            if let (Some(sig), _) = self.wait(left)
                && sig != Signal::SIGCHLD
            {
                return false;
            }
        }
        true
    }

    /// Says why, lets bond0's TAP go and takes the bond apart.
    fn give_up(&mut self, why: &str) {
        let bond = self.o.bond.clone();
        self.log.note(Level::Warning, format!("{bond}: giving up: {why}; restoring the slaves"));
        self.store.clear();
        if let Err(e) = adopt::clean_up(&self.o.run_dir, &bond, &self.o.bpffs, &mut self.log) {
            self.log.note(Level::Warning, format!("{bond}: cannot take the bond apart: {e:#}"));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_messages_read_as_systemd_reads_them() {
        assert_eq!(parse("READY=1\nSTATUS=2 slaves\nMAINPID=7"), vec![Heard::Ready]);
        assert_eq!(parse("WATCHDOG=1"), vec![Heard::Alive]);
        assert_eq!(parse("FDSTORE=1\nFDNAME=tap"), vec![Heard::Store("tap".into())]);
        assert_eq!(
            parse("STOPPING=1\nFDSTOREREMOVE=1\nFDNAME=tap"),
            vec![Heard::Stopping, Heard::Forget("tap".into())]
        );
        assert_eq!(parse("READY=0\nWATCHDOG=trigger"), vec![]);
    }

    #[test]
    fn exits_are_described_by_code_or_signal_name() {
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exited with code 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by SIGKILL");
        assert_eq!(describe(ExitStatus::from_raw(11)), "was killed by SIGSEGV");
    }
}
