//! `rbond check BOND`: the verdict monitoring plugins expect (the Nagios plugin convention
//! Icinga and Checkmk follow too): one status line with performance data, and the exit code
//! 0 OK, 1 WARNING (running on fewer slaves than it has, not on its primary, or with a
//! backup whose standby path is broken), 2 CRITICAL
//! (no active slave), 3 UNKNOWN (no daemon answers).

use crate::control::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warning => "WARNING",
            Verdict::Critical => "CRITICAL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// The verdict on `bond` from what its daemon answered, and the line to print.
pub fn verdict(bond: &str, answer: anyhow::Result<Status>) -> (Verdict, String) {
    let s = match answer {
        Ok(s) => s,
        Err(e) => return (Verdict::Unknown, format!("RBOND UNKNOWN - {bond}: no daemon answers ({e:#})")),
    };
    let r = &s.report;
    let down: Vec<&str> = r.slaves.iter().filter(|sl| sl.mii_status != "up").map(|sl| sl.name.as_str()).collect();
    let (total, up) = (r.slaves.len(), r.slaves.len() - down.len());
    let mut what = match &r.active_slave {
        Some(a) => format!("{bond}: {a} active, {up} of {total} slaves up"),
        None => format!("{bond}: no active slave, {up} of {total} slaves up"),
    };
    if !down.is_empty() {
        what.push_str(&format!(" ({} not up)", down.join(", ")));
    }
    let off_primary = r.primary_slave.as_ref().filter(|p| r.active_slave.as_ref().is_some_and(|a| a != *p));
    if let Some(p) = off_primary {
        what.push_str(&format!("; the primary {p} is not active"));
    }
    let broken: Vec<String> = r
        .slaves
        .iter()
        .filter(|sl| sl.state == "backup")
        .filter_map(|sl| sl.standby.as_ref().filter(|st| st.verdict == rbond_core::Verdict::Broken).map(|st| (sl, st)))
        .map(|(sl, st)| format!("{} ({})", sl.name, st.reason))
        .collect();
    if !broken.is_empty() {
        what.push_str(&format!("; standby path broken: {}", broken.join(", ")));
    }
    let v = match (&r.active_slave, down.is_empty() && off_primary.is_none() && broken.is_empty()) {
        (None, _) => Verdict::Critical,
        (Some(_), false) => Verdict::Warning,
        (Some(_), true) => Verdict::Ok,
    };
    let c = &r.counters;
    let mut perf = format!("slaves={total};;;0 slaves_up={up};;;0 failovers={}c", c.failovers);
    if let Some(ms) = c.last_outage_ms {
        perf.push_str(&format!(" last_outage={:.3}s;;;0", ms as f64 / 1000.0));
    }
    (v, format!("RBOND {} - {what} | {perf}", v.word()))
}
