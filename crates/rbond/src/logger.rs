//! Where the bond's lines go: syslog with the kernel's `bonding: ` tag (so existing greps
//! work), stderr when running in the foreground, and a ring the control socket serves.

use std::collections::VecDeque;
use std::ffi::CString;
use std::time::{SystemTime, UNIX_EPOCH};

use rbond_core::{Event, Level};
use serde::Serialize;

const RING: usize = 2000;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub level: Level,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

pub struct Logger {
    bond: String,
    stderr: bool,
    ring: VecDeque<LogLine>,
    /// Lines not yet handed to event followers.
    pending: Vec<LogLine>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Logger {
    pub fn new(bond: &str, stderr: bool) -> Logger {
        // The ident must outlive every syslog call: it is leaked once per process.
        static IDENT: &[u8] = b"rbond\0";
        unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON) };
        Logger { bond: bond.to_string(), stderr, ring: VecDeque::new(), pending: Vec::new() }
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
        let prio = match line.level {
            Level::Info => libc::LOG_INFO,
            Level::Warning => libc::LOG_WARNING,
        };
        if let Ok(msg) = CString::new(format!("bonding: {}", line.text)) {
            unsafe { libc::syslog(prio, c"%s".as_ptr(), msg.as_ptr()) };
        }
        if self.stderr {
            eprintln!("{}", line.text);
        }
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(line.clone());
        self.pending.push(line);
    }

    pub fn history(&self) -> impl Iterator<Item = &LogLine> {
        self.ring.iter()
    }

    pub fn take_pending(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.pending)
    }
}
