//! Telling a supervisor how the daemon is doing, in systemd's notify protocol: datagrams of
//! `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET` (systemd, or `rbond supervise`).
//! `READY=1` once the slaves are in, `WATCHDOG=1` from the loop, `FDSTORE=1` with bond0's TAP
//! so that its carrier outlives us, `STOPPING=1` on the way out.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sendmsg, socket};

pub struct Notifier {
    socket: Option<(std::os::fd::OwnedFd, UnixAddr)>,
    /// How often the supervisor wants to hear from us (half its watchdog timeout).
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// The supervisor named in the environment, if any. The variables stay: a restart in
    /// place re-executes us with the same environment, and we start nothing else.
    pub fn from_env() -> Notifier {
        let path = std::env::var("NOTIFY_SOCKET").ok();
        let usec = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.parse::<u64>().ok());
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let addr = path.and_then(|p| match p.strip_prefix('@') {
            Some(abstract_name) => UnixAddr::new_abstract(abstract_name.as_bytes()).ok(),
            None => UnixAddr::new(p.as_str()).ok(),
        });
        let sock = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).ok();
        Notifier {
            socket: sock.zip(addr),
            watchdog_every: usec.filter(|u| *u > 0 && for_us).map(|u| Duration::from_micros(u) / 2),
        }
    }

    fn send(&self, text: &str, fds: &[BorrowedFd<'_>]) {
        let Some((sock, addr)) = &self.socket else { return };
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs = if raw.is_empty() { Vec::new() } else { vec![ControlMessage::ScmRights(&raw)] };
        let iov = [std::io::IoSlice::new(text.as_bytes())];
        let _ = sendmsg(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), Some(addr));
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()), &[]);
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1", &[]);
    }

    /// Asks the supervisor to hold `fd` for us and hand it to our successor under `name`.
    pub fn store(&self, name: &str, fd: BorrowedFd<'_>) {
        self.send(&format!("FDSTORE=1\nFDNAME={name}"), &[fd]);
    }

    /// We are stopping on purpose: what the store holds is no longer needed.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nFDSTOREREMOVE=1\nFDNAME=tap", &[]);
    }
}
