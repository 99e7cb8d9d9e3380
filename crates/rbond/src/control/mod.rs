//! The control socket's protocol, `/run/rbond/<bond>.sock`: one JSON object per line each
//! way. Requests are tagged by `cmd`; replies by `reply`, and carry `ok` (true, or false with
//! an `error`) for clients that read only that. The daemon serves it (`server`); the CLI and
//! everything else asks through `client`.

use std::path::{Path, PathBuf};

use rbond_core::{Event, Level, Report};
use serde::{Deserialize, Serialize};

pub mod client;
pub mod server;

pub use client::Client;

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The report, as `/proc/net/bonding` shows it and as data.
    Status,
    /// A value as its sysfs file reads (an option, `active_slave`, `slaves`, …).
    Get {
        option: String,
    },
    /// Writes an option as sysfs would.
    Set {
        option: String,
        value: String,
    },
    Enslave {
        slave: String,
    },
    Release {
        slave: String,
    },
    /// `ifenslave -c`.
    SetActive {
        slave: String,
    },
    /// A slave's priority (`ip link set eth1 type bond_slave prio N`): with no primary, the
    /// highest prio is preferred.
    SetPrio {
        slave: String,
        prio: i32,
    },
    /// The log history; with `follow`, then every new line as it is written.
    Events {
        follow: bool,
    },
    /// Re-execute the daemon's binary in place, handing it the running bond.
    Restart,
    /// Release every slave and stop.
    Down,
    /// Release every slave, a converted one first getting the host's addresses, routes and
    /// rules back while the bond still forwards for it (ifdown's pre-down, before ifupdown
    /// takes bond0's addresses away).
    ReleaseAll,
    /// Every up slave probes its path now (`rbond verify`); the answer names what is probed
    /// (empty: no target or gateway, only the passive check).
    Verify,
}

/// One line of the bond's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub level: Level,
    pub text: String,
    /// The engine's event behind the line, for programs (not carried across a restart).
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub event: Option<Event>,
}

/// What a status request returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The `/proc/net/bonding/<bond>` text.
    pub text: String,
    pub report: Report,
    /// How many times the bond was carried on in place (`rbond restart`).
    pub generation: u32,
    /// How many times a new daemon took the bond over from one that died.
    #[serde(default)]
    pub adoptions: u32,
    /// Why the last restart in place failed, if it did.
    pub restart_error: Option<String>,
    /// Which datapath moves the frames.
    #[serde(default)]
    pub datapath: String,
    #[serde(default)]
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(Box<Status>),
    Value { value: String },
    Events { lines: Vec<LogLine> },
    Restarting { pid: u32, generation: u32 },
    Done,
    Error { error: String },
}

impl Reply {
    pub fn error(e: impl std::fmt::Display) -> Reply {
        Reply::Error { error: e.to_string() }
    }

    /// The reply as one line of JSON, `ok` included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({"reply": "error", "error": e.to_string()}));
        v["ok"] = serde_json::Value::Bool(!matches!(self, Reply::Error { .. }));
        let mut line = v.to_string().into_bytes();
        line.push(b'\n');
        line
    }
}

pub fn socket_path(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// Whatever a client sends, parsing ends in a request or an error, never a panic.
        #[test]
        fn arbitrary_request_lines_never_panic(line in "\\PC{0,200}", json_like: bool, cmd in "[a-z_]{0,12}") {
            let text = if json_like { format!("{{\"cmd\":\"{cmd}\",{line}}}") } else { line };
            let _ = serde_json::from_slice::<Request>(text.as_bytes());
        }
    }

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(r#"{"cmd":"set","option":"miimon","value":"100"}"#).unwrap();
        assert_eq!(r, Request::Set { option: "miimon".into(), value: "100".into() });
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"fly"}"#).is_err());
    }

    #[test]
    fn replies_keep_the_ok_field_and_read_back() {
        let line = Reply::Value { value: "active-backup 1".into() }.to_line();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!((v["ok"].as_bool(), v["value"].as_str()), (Some(true), Some("active-backup 1")));
        assert!(
            matches!(serde_json::from_slice::<Reply>(&line).unwrap(), Reply::Value { value } if value == "active-backup 1")
        );
        let line = Reply::error("no such option").to_line();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!((v["ok"].as_bool(), v["error"].as_str()), (Some(false), Some("no such option")));
        assert_eq!(*line.last().unwrap(), b'\n');
    }
}
