//! `rbond verify BOND`: a one-shot check of every slave's path on a live host. Every up slave
//! sends one standby probe at once (the active slave's, flooded by the switch, also reaches
//! every backup in its segment); after a short wait the table says what came back. Nothing
//! changes: not the active slave, not the traffic, not the switch's idea of the bond's MAC.

use std::fmt::Write;
use std::time::{Duration, Instant};

use rbond_core::{SlaveReport, Verdict as Path};

use super::check::Verdict;
use crate::control::client::Client;
use crate::control::{Reply, Request};

/// Probes, waits `wait`, and returns the verdict and the text to print.
pub fn run(client: &Client, bond: &str, wait: Duration) -> (Verdict, String) {
    let started = Instant::now();
    let targets = match client.call(&Request::Verify) {
        Ok(Reply::Value { value }) => value,
        Ok(other) => return unknown(bond, &format!("unexpected answer {other:?}")),
        Err(e) => return unknown(bond, &format!("no daemon answers ({e:#})")),
    };
    std::thread::sleep(wait);
    match client.status() {
        Ok(s) => table(bond, &s.report.slaves, &targets, started.elapsed()),
        Err(e) => unknown(bond, &format!("no daemon answers ({e:#})")),
    }
}

fn unknown(bond: &str, why: &str) -> (Verdict, String) {
    (Verdict::Unknown, format!("RBOND UNKNOWN - {bond}: {why}\n"))
}

/// One slave's row: its path's verdict, and the evidence or its absence.
fn judge(sl: &SlaveReport, targets: &str, waited: Duration) -> (Path, String) {
    let within = format!("within {:.1} s", waited.as_secs_f64());
    let Some(st) = sl.standby.as_ref().filter(|_| sl.mii_status == "up") else {
        return (Path::Broken, format!("link {}", sl.mii_status));
    };
    let fresh = st.last_ok_ms_ago.is_some_and(|ms| u128::from(ms) <= waited.as_millis());
    match (fresh, targets.is_empty()) {
        (true, _) => (Path::Verified, st.reason.clone()),
        (false, false) => (Path::Broken, format!("no reply from {} {within}", targets.replace(' ', " or "))),
        (false, true) if st.verdict == Path::Broken => (Path::Broken, st.reason.clone()),
        (false, true) => (Path::Unverified, format!("no gateway or target to probe, no broadcast came back {within}")),
    }
}

/// The table and the closing plugin-style line; the exit code is the worst row's.
fn table(bond: &str, slaves: &[SlaveReport], targets: &str, waited: Duration) -> (Verdict, String) {
    let mut out = format!("{:<16} {:<7} {:<11} {:<11} EVIDENCE\n", "SLAVE", "ROLE", "LINK", "PATH");
    let mut worst = Verdict::Ok;
    let mut bad = Vec::new();
    for sl in slaves {
        let (path, evidence) = judge(sl, targets, waited);
        let _ = writeln!(out, "{:<16} {:<7} {:<11} {:<11} {evidence}", sl.name, sl.state, sl.mii_status, path.as_str());
        let v = match path {
            Path::Verified => Verdict::Ok,
            Path::Unverified => Verdict::Warning,
            Path::Broken => Verdict::Critical,
        };
        if v != Verdict::Ok {
            bad.push(format!("{} {}", sl.name, path.as_str()));
        }
        worst = worst.max(v);
    }
    let summary = if bad.is_empty() {
        format!("every path of {bond} verified ({} slaves)", slaves.len())
    } else {
        format!("{bond}: {}", bad.join(", "))
    };
    let _ = writeln!(out, "RBOND {} - {summary}", worst.word());
    (worst, out)
}
