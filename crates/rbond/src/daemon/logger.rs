//! Where the bond's lines go: syslog with the kernel's `bonding: ` tag (so existing greps
//! work), stderr when running in the foreground, and a ring the control socket serves.

use std::collections::VecDeque;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rbond_core::{Event, Level};

use crate::control::LogLine;

const RING: usize = 2000;

/// The system log socket, where one exists.
pub const DEV_LOG: &str = "/dev/log";
/// syslog facility `daemon`, shifted as the priority field wants it.
const LOG_DAEMON: u8 = 3 << 3;

pub struct Logger {
    bond: String,
    stderr: bool,
    syslog: Option<(UnixDatagram, PathBuf)>,
    ring: VecDeque<LogLine>,
    /// Lines not yet handed to event followers.
    pending: Vec<LogLine>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Logger {
    /// Lines go to the syslog socket at `syslog` when it exists (silently nowhere otherwise).
    pub fn new(bond: &str, stderr: bool, syslog: &Path) -> Logger {
        let sock = UnixDatagram::unbound().ok().map(|s| (s, syslog.to_path_buf()));
        Logger { bond: bond.to_string(), stderr, syslog: sock, ring: VecDeque::new(), pending: Vec::new() }
    }

    /// `<PRI>rbond[PID]: bonding: TEXT`, which syslog daemons and journald stamp on receipt.
    fn to_syslog(&self, level: Level, text: &str) {
        let severity = match level {
            Level::Info => 6,
            Level::Warning => 4,
        };
        if let Some((sock, path)) = &self.syslog {
            let msg = format!("<{}>rbond[{}]: bonding: {text}", LOG_DAEMON | severity, std::process::id());
            let _ = sock.send_to(msg.as_bytes(), path);
        }
    }

    pub fn event(&mut self, e: Event) {
        let text = e.render(&self.bond);
        self.write(LogLine { time_ms: now_ms(), level: e.level(), text, event: Some(e) });
    }

    /// A line of the daemon's own (not the bonding logic's), e.g. a slave that vanished.
    pub fn note(&mut self, level: Level, text: String) {
        self.write(LogLine { time_ms: now_ms(), level, text, event: None });
    }

    fn write(&mut self, line: LogLine) {
        self.to_syslog(line.level, &line.text);
        if self.stderr {
            eprintln!("{}", line.text);
        }
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(line.clone());
        self.pending.push(line);
    }

    /// Starts the ring with a predecessor's lines (already logged, so not written again).
    pub fn carry_on(&mut self, lines: Vec<LogLine>) {
        self.ring = lines.into_iter().rev().take(RING).rev().collect();
    }

    pub fn history(&self) -> impl Iterator<Item = &LogLine> {
        self.ring.iter()
    }

    pub fn take_pending(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.pending)
    }
}
