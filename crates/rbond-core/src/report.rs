//! The bond's state as people and programs read it: the `/proc/net/bonding/<bond>` text,
//! sysfs-style values, and a serde form of the same for JSON.

use crate::counters::Counters;
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::bond::{Bond, SlaveId};
use crate::mac::Mac;
use crate::options::OptionName;
use crate::slave::{Duplex, LinkState};
use crate::standby::{StandbyReport, Verdict};
use crate::time::Instant;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlaveReport {
    pub id: SlaveId,
    pub name: String,
    /// `active` or `backup`.
    pub state: String,
    pub mii_status: String,
    pub link: LinkState,
    pub carrier: bool,
    pub speed: Option<u32>,
    pub duplex: Option<Duplex>,
    pub link_failure_count: u32,
    pub perm_hwaddr: Mac,
    pub mac: Mac,
    pub queue_id: u16,
    pub prio: i32,
    /// ARP frames `arp_validate` looked at and did not count (JSON only: not in `/proc`).
    pub arp_rejected: u64,
    /// Frames that could not be parsed (JSON only).
    pub bad_frames: u64,
    /// rbond's standby check, for a backup that is up.
    #[serde(default)]
    pub standby: Option<StandbyReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub bond: String,
    pub version: String,
    pub up: bool,
    /// The bond's carrier, which `/proc` calls its MII status.
    pub mii_status: String,
    pub active_slave: Option<String>,
    /// The enslaved primary, if the `primary` option names a slave.
    pub primary_slave: Option<String>,
    pub mac: Option<Mac>,
    /// Every option as its sysfs file reads, e.g. `"mode": "active-backup 1"`.
    pub options: BTreeMap<String, String>,
    pub slaves: Vec<SlaveReport>,
    /// What the bond has done (JSON only: not in `/proc`).
    #[serde(default)]
    pub counters: Counters,
}

fn up_down(b: bool) -> String {
    if b { "up" } else { "down" }.to_string()
}

impl Bond {
    /// The report, with no ages (the engine has no clock of its own).
    pub fn report(&self) -> Report {
        self.report_made(None)
    }

    /// The report as of `now`, which says how long ago each backup was last verified.
    pub fn report_at(&self, now: Instant) -> Report {
        self.report_made(Some(now))
    }

    fn report_made(&self, now: Option<Instant>) -> Report {
        let slaves = self
            .slaves
            .iter()
            .map(|s| SlaveReport {
                id: s.id,
                name: s.name.clone(),
                state: if s.backup { "backup" } else { "active" }.to_string(),
                mii_status: s.link.mii_status().to_string(),
                link: s.link,
                carrier: s.hw.carrier,
                speed: s.hw.speed,
                duplex: s.hw.duplex,
                link_failure_count: s.failures,
                perm_hwaddr: s.perm_mac,
                mac: s.mac,
                queue_id: 0,
                prio: s.prio,
                arp_rejected: s.arp_rejected,
                bad_frames: s.bad_frames,
                standby: self.standby_report(s, now),
            })
            .collect();
        Report {
            bond: self.name.clone(),
            version: VERSION.to_string(),
            up: self.up,
            mii_status: up_down(self.carrier),
            active_slave: self.active_slave().map(str::to_string),
            primary_slave: self.primary_slave().map(|p| p.name.clone()),
            mac: self.mac,
            options: OptionName::all().map(|o| (o.as_str().to_string(), self.opts.sysfs(o))).collect(),
            slaves,
            counters: self.counters().clone(),
        }
    }
}

impl Report {
    /// An option's value as its sysfs file reads (empty for an unknown name).
    pub fn option(&self, name: OptionName) -> &str {
        self.options.get(name.as_str()).map_or("", String::as_str)
    }

    /// The name part of a choice option (`active` of `active 1`).
    fn choice(&self, name: OptionName) -> &str {
        self.option(name).split(' ').next().unwrap_or_default()
    }

    /// The text of `/proc/net/bonding/<bond>`, line for line in the kernel's layout.
    pub fn proc_text(&self) -> String {
        let o = |name| self.option(name);
        let mut t = format!("Ethernet Channel Bonding Driver: rbond v{}\n\n", self.version);
        t.push_str("Bonding Mode: fault-tolerance (active-backup)");
        if self.choice(OptionName::FailOverMac) != "none" {
            let _ = write!(t, " (fail_over_mac {})", self.choice(OptionName::FailOverMac));
        }
        t.push('\n');
        match &self.primary_slave {
            Some(p) => {
                let _ =
                    writeln!(t, "Primary Slave: {p} (primary_reselect {})", self.choice(OptionName::PrimaryReselect));
            }
            None => t.push_str("Primary Slave: None\n"),
        }
        let _ = writeln!(t, "Currently Active Slave: {}", self.active_slave.as_deref().unwrap_or("None"));
        let _ = writeln!(t, "MII Status: {}", self.mii_status);
        let _ = writeln!(t, "MII Polling Interval (ms): {}", o(OptionName::Miimon));
        let _ = writeln!(t, "Up Delay (ms): {}", o(OptionName::Updelay));
        let _ = writeln!(t, "Down Delay (ms): {}", o(OptionName::Downdelay));
        let _ = writeln!(t, "Peer Notification Delay (ms): {}", o(OptionName::PeerNotifDelay));
        if o(OptionName::ArpInterval) != "0" {
            let targets = |name| o(name).split_whitespace().map(|a| format!(" {a}")).collect::<Vec<_>>().join(",");
            let _ = writeln!(t, "ARP Polling Interval (ms): {}", o(OptionName::ArpInterval));
            let _ = writeln!(t, "ARP Missed Max: {}", o(OptionName::ArpMissedMax));
            let _ = writeln!(t, "ARP IP target/s (n.n.n.n form):{}", targets(OptionName::ArpIpTarget));
            let _ = writeln!(t, "NS IPv6 target/s (xx::xx form):{}", targets(OptionName::NsIp6Target));
        }
        for s in &self.slaves {
            let _ = write!(t, "\nSlave Interface: {}\n", s.name);
            let _ = writeln!(t, "MII Status: {}", s.mii_status);
            match s.speed {
                Some(v) => writeln!(t, "Speed: {v} Mbps"),
                None => writeln!(t, "Speed: Unknown"),
            }
            .ok();
            let duplex = match s.duplex {
                Some(Duplex::Full) => "full",
                Some(Duplex::Half) => "half",
                None => "Unknown",
            };
            let _ = writeln!(t, "Duplex: {duplex}");
            let _ = writeln!(t, "Link Failure Count: {}", s.link_failure_count);
            let _ = writeln!(t, "Permanent HW addr: {}", s.perm_hwaddr);
            let _ = writeln!(t, "Slave queue ID: {}", s.queue_id);
            if let Some(st) = s.standby.as_ref().filter(|_| s.state == "backup") {
                // What verified a path changes from one probe to the next; the text does not.
                match st.verdict {
                    Verdict::Verified => writeln!(t, "Standby Path: verified"),
                    v => writeln!(t, "Standby Path: {} ({})", v.as_str(), st.reason_text()),
                }
                .ok();
            }
        }
        t
    }

    /// A file of `/sys/class/net/<bond>/bonding/`, as it reads without its newline
    /// (`None` for a name that is no such file).
    pub fn sysfs(&self, file: &str) -> Option<String> {
        match file {
            "active_slave" => Some(self.active_slave.clone().unwrap_or_default()),
            "slaves" => Some(self.slaves.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" ")),
            "mii_status" => Some(self.mii_status.clone()),
            // The file shows the enslaved primary only, not a name still waiting for its slave.
            "primary" => Some(self.primary_slave.clone().unwrap_or_default()),
            "queue_id" => {
                Some(self.slaves.iter().map(|s| format!("{}:{}", s.name, s.queue_id)).collect::<Vec<_>>().join(" "))
            }
            _ => OptionName::parse(file).ok().map(|o| self.option(o).to_string()),
        }
    }

    /// A file of `/sys/class/net/<slave>/bonding_slave/`, as it reads without its newline.
    pub fn slave_sysfs(&self, slave: &str, file: &str) -> Option<String> {
        let s = self.slaves.iter().find(|s| s.name == slave)?;
        match file {
            "state" => Some(s.state.clone()),
            "mii_status" => Some(s.mii_status.clone()),
            "link_failure_count" => Some(s.link_failure_count.to_string()),
            "perm_hwaddr" => Some(s.perm_hwaddr.to_string()),
            "queue_id" => Some(s.queue_id.to_string()),
            "prio" => Some(s.prio.to_string()),
            _ => None,
        }
    }
}
