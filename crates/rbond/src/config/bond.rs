//! A bond as Debian's ifenslave scripts would set it up from `/etc/network/interfaces`: which
//! stanza speaks for it, which interfaces are its slaves, and which options it gets, in the
//! order the scripts write them (so `miimon` beats `arp_interval`, as on Debian).

use super::interfaces::{Iface, Interfaces, OptionLine, ParseError, Place, env_name};

/// The `bond-*` options rbond applies, in the order Debian's pre-up script writes them, with
/// the engine's name for each. `fail_over_mac` comes first: it must precede any slave.
pub const APPLIED: &[(&str, &str)] = &[
    ("bond-fail-over-mac", "fail_over_mac"),
    ("bond-use-carrier", "use_carrier"),
    ("bond-num-grat-arp", "num_grat_arp"),
    ("bond-num-unsol-na", "num_unsol_na"),
    ("bond-arp-ip-target", "arp_ip_target"),
    ("bond-arp-interval", "arp_interval"),
    ("bond-miimon", "miimon"),
    ("bond-downdelay", "downdelay"),
    ("bond-updelay", "updelay"),
    ("bond-peer-notif-delay", "peer_notif_delay"),
    ("bond-mode", "mode"),
    ("bond-arp-validate", "arp_validate"),
    ("bond-arp-all-targets", "arp_all_targets"),
    ("bond-arp-missed-max", "arp_missed_max"),
    ("bond-min-links", "min_links"),
    ("bond-all-slaves-active", "all_slaves_active"),
    ("bond-primary-reselect", "primary_reselect"),
];

/// `bond-*` options that are not bond options but say how the bond is built.
pub const STRUCTURAL: &[&str] =
    &["bond-slaves", "bond-master", "bond-primary", "bond-active-slave", "bond-give-a-chance", "bond-datapath"];

/// Options Debian knows that do nothing in active-backup.
pub const OTHER_MODES: &[&str] =
    &["bond-xmit-hash-policy", "bond-ad-select", "bond-lacp-rate", "bond-packets-per-slave", "bond-queue-id"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondConfig {
    pub name: String,
    /// In enslave order: `bond-slaves` first, then hotplug slaves in file order.
    pub slaves: Vec<String>,
    /// Engine option writes, in order, each with where it was written.
    pub options: Vec<(String, String, Place)>,
    /// `bond-active-slave`, applied once the slaves are in.
    pub active_slave: Option<String>,
    /// `bond-datapath` (rbond's own): `auto`, `kernel` or `userspace`.
    pub datapath: Option<String>,
    /// The stanza that speaks for the bond.
    pub place: Place,
}

impl BondConfig {
    /// The options as `NAME=VALUE` pairs, as the daemon takes them.
    pub fn option_pairs(&self) -> Vec<(String, String)> {
        self.options.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect()
    }

    pub fn value(&self, option: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _, _)| k == option).map(|(_, v, _)| v.as_str())
    }
}

fn is_bond_option(o: &OptionLine) -> bool {
    env_name(&o.name).starts_with("BOND_") || env_name(&o.name) == "SLAVES"
}

fn err(place: &Place, message: String) -> ParseError {
    ParseError { place: place.clone(), message }
}

/// Looks up `bond` in the file: its own stanza (with `bond-slaves`, possibly `none`), and
/// any stanza that names it with `bond-master`.
pub fn bond_config(ifs: &Interfaces, bond: &str) -> Result<BondConfig, ParseError> {
    let masters: Vec<&Iface> = ifs.iface(bond).into_iter().filter(|i| i.options.iter().any(is_bond_option)).collect();
    let hotplug: Vec<&Iface> = ifs
        .ifaces
        .iter()
        .filter(|i| i.value("bond-master").is_some_and(|m| m.value.split_whitespace().next() == Some(bond)))
        .collect();
    let Some(speaker) = masters.first().copied().or(hotplug.first().copied()) else {
        let place = ifs.iface(bond).first().map(|i| i.place.clone());
        let place = place.unwrap_or_else(|| ifs.ifaces.first().map(|i| i.place.clone()).unwrap_or(Place { file: std::sync::Arc::from(std::path::Path::new("")), line: 0 }));
        return Err(err(&place, format!("no stanza configures bond {bond} (bond-slaves on iface {bond}, or bond-master {bond} on a slave)")));
    };
    let mut slaves: Vec<String> = Vec::new();
    for m in &masters {
        if let Some(list) = m.value("bond-slaves").or(m.value("slaves")) {
            match list.value.as_str() {
                "none" => {}
                "all" => return Err(err(&list.place, "bond-slaves all is not supported; name the slaves".into())),
                names => slaves.extend(names.split_whitespace().map(str::to_string)),
            }
        }
    }
    for h in &hotplug {
        if !slaves.contains(&h.name) {
            slaves.push(h.name.clone());
        }
    }
    // The master stanza speaks first; what only a slave stanza says still counts.
    let sources: Vec<&Iface> = masters.iter().chain(hotplug.iter()).copied().collect();
    let find = |name: &str| sources.iter().find_map(|s| s.value(name));
    let mut options = Vec::new();
    for (debian, engine) in APPLIED {
        let Some(o) = find(debian) else { continue };
        let value = o.value.trim().to_string();
        if *engine == "arp_ip_target" {
            options.extend(value.split_whitespace().map(|t| (engine.to_string(), format!("+{t}"), o.place.clone())));
        } else {
            options.push((engine.to_string(), value, o.place.clone()));
        }
    }
    if let Some(p) = find("bond-primary") {
        // Debian's rule: the first listed name that is a slave.
        if let Some(name) = p.value.split_whitespace().find(|n| slaves.iter().any(|s| s == n)) {
            options.push(("primary".into(), name.to_string(), p.place.clone()));
        }
    }
    let active_slave = find("bond-active-slave").map(|o| o.value.trim().to_string());
    let datapath = match find("bond-datapath") {
        Some(d) if !["auto", "kernel", "userspace"].contains(&d.value.trim()) => {
            return Err(err(&d.place, format!("bond-datapath {}: expected auto, kernel or userspace", d.value.trim())));
        }
        d => d.map(|d| d.value.trim().to_string()),
    };
    Ok(BondConfig { name: bond.to_string(), slaves, options, active_slave, datapath, place: speaker.place.clone() })
}

/// Every bond the file configures, in file order.
pub fn bonds(ifs: &Interfaces) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in &ifs.ifaces {
        let name = if i.value("bond-slaves").is_some() || i.value("slaves").is_some() {
            Some(i.name.clone())
        } else {
            i.value("bond-master").and_then(|m| m.value.split_whitespace().next().map(str::to_string))
        };
        if let Some(n) = name.filter(|n| !out.contains(n)) {
            out.push(n);
        }
    }
    out
}
