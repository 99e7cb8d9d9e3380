//! Restarting in place. The daemon re-executes its binary (perhaps a newer one) and hands the
//! successor everything that keeps traffic flowing: bond0's TAP, the packet sockets, the BPF
//! programs, links and map, the control socket and the bond's lock. Nothing is torn down, so
//! the kernel datapath keeps forwarding throughout; the successor keeps the PID, the delays in
//! progress, the failure counts, the active slave and the log history.
//!
//! Descriptors cross `execve` by name (see `keep`); the rest is the state file, written with
//! the log history just before. The successor starts like any daemon and adopts the bond
//! (see `adopt`), so a restart killed half-way ends as a crash does. The signal mask is
//! inherited too, so a SIGTERM arriving mid-exec waits for the successor, which restores on
//! it as usual.

use std::ffi::{CString, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;

use super::Daemon;
use crate::keep::{self, Kept};

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

impl Daemon {
    /// Re-executes this binary with the running bond. Returns only if that failed, with
    /// everything still in place and owned by this process.
    pub(super) fn restart_in_place(&mut self) -> anyhow::Error {
        let mut state = self.snapshot(None);
        state.generation += 1;
        state.history = self.log.history().cloned().collect();
        // No frame may be in a forwarding thread's hands when this process image goes.
        self.datapath.pause();
        let mut fds: Vec<(String, BorrowedFd<'_>)> = vec![("control".into(), self.io.control.listener())];
        fds.extend(self.state.lock_fd().map(|fd| ("lock".to_string(), fd)));
        fds.extend(self.datapath.handover());
        let err = match self.state.save(&state).and_then(|()| exec(&fds)) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        Kept::take_back(&fds);
        drop(fds);
        if let Err(e) = self.datapath.resume() {
            return err.context(format!("and forwarding could not resume: {e}"));
        }
        if let Err(e) = self.save_state(None) {
            return err.context(format!("and the state file could not be put back: {e:#}"));
        }
        err
    }
}

/// Replaces this process image; returns only on failure.
fn exec(fds: &[(String, BorrowedFd<'_>)]) -> anyhow::Result<std::convert::Infallible> {
    let exe = exe()?;
    let argv = cstrings(std::env::args_os())?;
    let handed = Kept::hand_on(fds)?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != keep::ENV)
        .map(|(k, v)| [k, "=".into(), v].into_iter().collect())
        .collect();
    env.push(format!("{}={handed}", keep::ENV).into());
    let envp = cstrings(env.into_iter())?;
    let e = nix::unistd::execve(&exe, &argv, &envp).unwrap_err();
    Err(std::io::Error::from(e)).with_context(|| format!("exec {}", exe.to_string_lossy()))
}
