//! Descriptors that cross a process boundary: those a predecessor or supervisor left open for
//! us by number, those received over a socket, and those given to a child at fixed numbers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::cvt_int;

/// Takes ownership of descriptor `fd`, left open by whoever started us, after checking that it
/// is open; it is closed on the next exec unless handed on again.
pub fn inherit(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {fd} is a standard stream")));
    }
    // SAFETY: F_GETFD/F_SETFD on an integer only look at the descriptor table; an unused
    // number fails with EBADF and changes nothing.
    let flags = cvt_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt_int(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process for it to
    // own; the caller takes each number once (see daemon::keep, which refuses duplicates).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Descriptors received in an SCM_RIGHTS message, now ours.
pub fn received(fds: Vec<RawFd>) -> Vec<OwnedFd> {
    // SAFETY: the kernel installs received descriptors as new entries of our table that
    // nothing else in this process knows of.
    fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).collect()
}

/// Whether `fd` survives an exec.
pub fn keep_across_exec(fd: BorrowedFd<'_>, keep: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let flags = if keep { FdFlag::empty() } else { FdFlag::FD_CLOEXEC };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop).map_err(io::Error::from)
}

/// Forgets an environment variable of this process.
///
/// Must be called while the process has a single thread (at start-up).
pub fn forget_env(key: &str) {
    // SAFETY: called only at start-up, before any other thread exists that could read the
    // environment concurrently (the daemon starts none before this).
    unsafe { std::env::remove_var(key) };
}

/// Starts `cmd` with each of `fds` open at the number it is paired with (3 and up), and
/// nothing else inherited beyond the standard streams.
pub fn spawn_with_fds(cmd: &mut Command, fds: &[(RawFd, BorrowedFd<'_>)]) -> io::Result<Child> {
    if fds.len() > 16 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "at most 16 descriptors are handed to a child"));
    }
    let moves: Vec<(RawFd, RawFd)> = fds.iter().map(|(to, fd)| (*to, fd.as_raw_fd())).collect();
    let top = moves.iter().map(|(to, _)| *to).max().unwrap_or(2) + 1;
    // SAFETY: the closure runs in the child between fork and exec and calls only fcntl and
    // dup2, which are async-signal-safe; it allocates nothing (`moves` was built before).
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way of every target number, then into place; dup2 leaves the
            // copies open across exec.
            let mut high = [0 as RawFd; 16];
            for (i, (_, from)) in moves.iter().enumerate().take(high.len()) {
                high[i] = cvt_int(libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, top))?;
            }
            for (i, (to, _)) in moves.iter().enumerate().take(high.len()) {
                cvt_int(libc::dup2(high[i], *to))?;
            }
            Ok(())
        })
    };
    cmd.spawn()
}
