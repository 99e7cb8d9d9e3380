//! `rbond status` with no bond named: every bond on the host, a line each.

use crate::control::Status;

/// The table: bond, mode, active slave, slaves up of all, failovers, the last outage.
pub fn table(rows: &[(String, anyhow::Result<Status>)]) -> String {
    let mut lines =
        vec![["BOND", "MODE", "ACTIVE", "SLAVES UP", "FAILOVERS", "LAST OUTAGE"].map(String::from).to_vec()];
    for (bond, answer) in rows {
        lines.push(match answer {
            Ok(s) => {
                let r = &s.report;
                let up = r.slaves.iter().filter(|sl| sl.mii_status == "up").count();
                let mode = r.option(rbond_core::OptionName::Mode).split(' ').next().unwrap_or("").to_string();
                let outage = r.counters.last_outage_ms.map_or("-".to_string(), |ms| format!("{ms} ms"));
                vec![
                    bond.clone(),
                    mode,
                    r.active_slave.clone().unwrap_or_else(|| "none".into()),
                    format!("{up}/{}", r.slaves.len()),
                    r.counters.failovers.to_string(),
                    outage,
                ]
            }
            Err(_) => vec![bond.clone(), "(no daemon answers)".into()],
        });
    }
    let widths: Vec<usize> =
        (0..6).map(|i| lines.iter().filter(|l| l.len() > 1).map(|l| l[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
