//! A bond as Debian's ifenslave scripts would set it up from `/etc/network/interfaces`: which
//! stanza speaks for it, which interfaces are its slaves, and which options it gets, in the
//! order the scripts write them (the engine's option table is in that order, so `miimon`
//! beats `arp_interval`, as on Debian).

use rbond_core::{OPTIONS, Values};

use super::interfaces::{Iface, Interfaces, OptionLine, ParseError, Place, env_name};
use crate::daemon::DatapathChoice;

/// `bond-*` options that are not bond options but say how the bond is built.
pub const STRUCTURAL: &[&str] =
    &["bond-slaves", "bond-master", "bond-active-slave", "bond-give-a-chance", "bond-datapath", "bond-prio"];

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
    /// `mtu` on the bond's stanza: bond0's, and so every slave's.
    pub mtu: Option<u32>,
    /// `bond-prio` (rbond's own spelling of iproute2's `prio`) on slave stanzas, in order.
    pub prios: Vec<(String, i32)>,
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
        let place = place.unwrap_or_else(|| {
            ifs.ifaces
                .first()
                .map(|i| i.place.clone())
                .unwrap_or(Place { file: std::sync::Arc::from(std::path::Path::new("")), line: 0 })
        });
        return Err(err(
            &place,
            format!("no stanza configures bond {bond} (bond-slaves on iface {bond}, or bond-master {bond} on a slave)"),
        ));
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
    for info in OPTIONS {
        let Some(o) = find(info.debian) else { continue };
        let (name, value, place) = (info.sysfs.to_string(), o.value.trim(), o.place.clone());
        match info.values {
            // A list in the file; one `+addr` write each, as the script does.
            Values::Ipv4Targets | Values::Ipv6Targets => {
                options.extend(value.split_whitespace().map(|t| (name.clone(), format!("+{t}"), place.clone())))
            }
            // Debian's rule for `bond-primary`: the first listed name that is a slave.
            Values::Interface => {
                if let Some(p) = value.split_whitespace().find(|n| slaves.iter().any(|s| s == n)) {
                    options.push((name, p.to_string(), place));
                }
            }
            Values::Table(_) => options.push((name, value.to_string(), place)),
        }
    }
    let active_slave = find("bond-active-slave").map(|o| o.value.trim().to_string());
    let datapath = match find("bond-datapath") {
        Some(d) => match DatapathChoice::parse(&d.value) {
            Ok(_) => Some(d.value.trim().to_string()),
            Err(why) => return Err(err(&d.place, format!("bond-datapath {why}"))),
        },
        None => None,
    };
    let mtu = match masters.iter().find_map(|m| m.value("mtu")) {
        Some(m) => Some(
            m.value
                .trim()
                .parse::<u32>()
                .map_err(|_| err(&m.place, format!("mtu {}: not a number", m.value.trim())))?,
        ),
        None => None,
    };
    let mut prios = Vec::new();
    for s in &slaves {
        if let Some(p) = ifs.iface(s).iter().find_map(|i| i.value("bond-prio")) {
            let prio = p
                .value
                .trim()
                .parse::<i32>()
                .map_err(|_| err(&p.place, format!("bond-prio {}: not a number", p.value.trim())))?;
            prios.push((s.clone(), prio));
        }
    }
    Ok(BondConfig {
        name: bond.to_string(),
        slaves,
        options,
        active_slave,
        datapath,
        mtu,
        prios,
        place: speaker.place.clone(),
    })
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
