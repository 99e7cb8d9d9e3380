//! The bond as Prometheus text (exposition format 0.0.4). node_exporter's two bonding
//! series come first, with its names, label and help text, so dashboards and alerts written
//! for the kernel's bond work unchanged; rbond's own series follow under `rbond_`. Every
//! series carries `master`, so the files of several bonds merge in one scrape.

use std::fmt::Write;

use crate::control::Status;

/// One metric family: its header, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let _ = writeln!(self.out, "{}{{{}}} {value}", self.name, labels.join(","));
    }
}

fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    Family { out, name }
}

/// Label values as the format wants them: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The slave's state as the `state` label names it.
fn slave_state(mii_status: &str, role: &str) -> &'static str {
    match (mii_status, role) {
        ("up", "active") => "active",
        ("up", _) => "backup",
        ("going down", _) => "going_down",
        ("going back", _) => "going_back",
        _ => "down",
    }
}

/// A per-slave count, read from the slave's report.
type SlaveCount = fn(&rbond_core::SlaveReport) -> u64;

const STATES: [&str; 5] = ["active", "backup", "down", "going_down", "going_back"];

pub fn render(s: &Status) -> String {
    let r = &s.report;
    let c = &r.counters;
    let bond = r.bond.as_str();
    let master = [("master", bond)];
    let mut out = String::new();
    let up = r.slaves.iter().filter(|sl| sl.mii_status == "up").count();
    let help = "Number of configured slaves per bonding interface.";
    family(&mut out, "node_bonding_slaves", "gauge", help).sample(&master, r.slaves.len());
    family(&mut out, "node_bonding_active", "gauge", "Number of active slaves per bonding interface.")
        .sample(&master, up);
    let help = "1 for the state each slave is in: active, backup, down, going_down (downdelay), going_back (updelay).";
    let mut f = family(&mut out, "rbond_slave_state", "gauge", help);
    for sl in &r.slaves {
        let now = slave_state(&sl.mii_status, &sl.state);
        for state in STATES {
            f.sample(&[("master", bond), ("slave", &sl.name), ("state", state)], u8::from(state == now));
        }
    }
    let help = "The standby check of each backup that is up: 1 verified, 0 unverified, -1 broken.";
    let mut f = family(&mut out, "rbond_slave_standby_ok", "gauge", help);
    for sl in r.slaves.iter().filter(|sl| sl.state == "backup") {
        if let Some(st) = &sl.standby {
            f.sample(&[("master", bond), ("slave", &sl.name)], st.verdict.score());
        }
    }
    let per_slave: [(&'static str, &str, SlaveCount); 3] = [
        ("rbond_slave_link_failures_total", "Committed link failures of the slave (its Link Failure Count).", |sl| {
            u64::from(sl.link_failure_count)
        }),
        ("rbond_slave_arp_rejected_total", "ARP frames arp_validate looked at and did not count.", |sl| {
            sl.arp_rejected
        }),
        ("rbond_slave_bad_frames_total", "Frames received on the slave that could not be parsed.", |sl| sl.bad_frames),
    ];
    for (name, help, value) in per_slave {
        let mut f = family(&mut out, name, "counter", help);
        for sl in &r.slaves {
            f.sample(&[("master", bond), ("slave", &sl.name)], value(sl));
        }
    }
    let active = r.active_slave.as_deref().unwrap_or("");
    let help = "1 while the bond has an active slave (its carrier); the active slave's name is a label.";
    family(&mut out, "rbond_up", "gauge", help)
        .sample(&[("master", bond), ("active", active)], u8::from(!active.is_empty()));
    let counts = [
        (
            "rbond_failovers_total",
            "Changes of the active slave (a failback counts; the first activation does not).",
            c.failovers,
        ),
        (
            "rbond_peer_notifications_total",
            "Peer notifications (gratuitous ARP, unsolicited NA) sent.",
            c.peer_notifications,
        ),
        ("rbond_arp_probes_total", "ARP monitor probes sent.", c.arp_probes),
        ("rbond_arp_replies_total", "ARP frames the ARP monitor counted as a sign of life.", c.arp_heard),
        (
            "rbond_standby_probes_total",
            "ARP probes the standby check sent from the slaves' own MACs.",
            c.standby_probes,
        ),
        ("rbond_restarts_total", "Restarts of the daemon in place (rbond restart).", u64::from(s.generation)),
        ("rbond_adoptions_total", "Times a new daemon took the bond over from one that died.", u64::from(s.adoptions)),
    ];
    for (name, help, value) in counts {
        family(&mut out, name, "counter", help).sample(&master, value);
    }
    if let Some(ms) = c.last_outage_ms {
        let help = "The last failover's outage: from the loss of the active slave to the next one.";
        family(&mut out, "rbond_last_outage_seconds", "gauge", help).sample(&master, ms as f64 / 1000.0);
    }
    let kind = s.datapath.split_whitespace().next().unwrap_or("unknown");
    family(&mut out, "rbond_datapath_info", "gauge", "The datapath moving the bond's frames.")
        .sample(&[("master", bond), ("datapath", kind)], 1);
    family(&mut out, "rbond_build_info", "gauge", "The rbond version running the bond.")
        .sample(&[("master", bond), ("version", env!("CARGO_PKG_VERSION"))], 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn slave_states_name_every_mii_status() {
        assert_eq!(slave_state("up", "active"), "active");
        assert_eq!(slave_state("up", "backup"), "backup");
        assert_eq!(slave_state("going down", "active"), "going_down");
        assert_eq!(slave_state("going back", "backup"), "going_back");
        assert_eq!(slave_state("down", "backup"), "down");
    }
}
