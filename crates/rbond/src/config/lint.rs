//! `rbond lint`: what in an interfaces file would not do what its author meant, each as
//! `FILE:LINE: warning|error: message`.

use std::fmt;
use std::net::IpAddr;

use rbond_core::{Ipv4Cidr, Ipv6Cidr, OPTIONS, OptionName, Options, Values};

use super::addressing::{StanzaAddress, addressing};
use super::bond::{BondConfig, OTHER_MODES, STRUCTURAL, bond_config, bonds};
use super::interfaces::{Iface, Interfaces, Place, env_name, wildcard};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub place: Place,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {s}: {}", self.place, self.message)
    }
}

fn warn(place: &Place, message: String) -> Diagnostic {
    Diagnostic { place: place.clone(), severity: Severity::Warning, message }
}

fn error(place: &Place, message: String) -> Diagnostic {
    Diagnostic { place: place.clone(), severity: Severity::Error, message }
}

/// Every `bond-*` name rbond knows, for spotting typos.
fn known() -> Vec<&'static str> {
    OPTIONS.iter().map(|o| o.debian).chain(STRUCTURAL.iter().copied()).chain(OTHER_MODES.iter().copied()).collect()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// An option name in ifupdown's canonical spelling: `bond_miimon` → `bond-miimon`.
fn canonical(name: &str) -> String {
    env_name(name).to_ascii_lowercase().replace('_', "-")
}

fn is_bond_stanza(i: &Iface) -> bool {
    i.options.iter().any(|o| canonical(&o.name).starts_with("bond-") || canonical(&o.name) == "slaves")
}

/// Options per stanza: unknown `bond-*` names and unprefixed bond options.
fn option_names(i: &Iface, out: &mut Vec<Diagnostic>) {
    let known = known();
    for o in &i.options {
        let name = canonical(&o.name);
        if name.starts_with("bond-") {
            if !known.contains(&name.as_str()) {
                let near = known.iter().min_by_key(|k| distance(&name, k)).filter(|k| distance(&name, k) <= 3);
                let hint = near.map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
                out.push(error(
                    &o.place,
                    format!("unknown option {}{hint}; ifupdown's bonding scripts ignore it", o.name),
                ));
            } else if OTHER_MODES.contains(&name.as_str()) {
                out.push(warn(&o.place, format!("{} has no effect in active-backup mode", o.name)));
            }
        } else if OptionName::parse(&o.name).is_ok() || name == "arp-ip-target" {
            let fixed = format!("bond-{}", name);
            out.push(warn(
                &o.place,
                format!("{} is ignored: ifupdown hands it to no bonding script (write {fixed})", o.name),
            ));
        }
    }
}

/// The bond's options as the engine would take them, with their refusals as errors.
fn engine_options(cfg: &BondConfig, out: &mut Vec<Diagnostic>) -> Options {
    let mut o = Options::default();
    for (k, v, place) in &cfg.options {
        if let Err(e) = o.apply(k, v) {
            out.push(error(place, e.to_string()));
        }
    }
    o
}

fn place_of<'a>(cfg: &'a BondConfig, option: &str) -> Option<&'a Place> {
    cfg.options.iter().find(|(k, _, _)| k == option).map(|(_, _, p)| p)
}

fn monitors(cfg: &BondConfig, o: &Options, out: &mut Vec<Diagnostic>) {
    let (miimon, arp) = (cfg.value("miimon"), cfg.value("arp_interval"));
    if let (Some(m), Some(a)) = (miimon.filter(|m| *m != "0"), arp.filter(|a| *a != "0")) {
        let place = place_of(cfg, "arp_interval").unwrap_or(&cfg.place);
        out.push(warn(place, format!("bond-arp-interval {a} is dropped: Debian writes bond-miimon ({m}) after it, and the two exclude each other")));
    }
    if o.miimon() == 0 && o.arp_interval() == 0 {
        out.push(warn(&cfg.place, format!("{}: no link monitoring: set bond-miimon, or bond-arp-interval with bond-arp-ip-target, otherwise link failures go undetected", cfg.name)));
    }
    for (option, debian) in [("updelay", "bond-updelay"), ("downdelay", "bond-downdelay")] {
        let Some(v) = cfg.value(option).and_then(|v| v.trim().parse::<u64>().ok()) else { continue };
        let m = u64::from(o.miimon());
        if m > 0 && v % m != 0 {
            let place = place_of(cfg, option).unwrap_or(&cfg.place);
            out.push(warn(
                place,
                format!("{debian} {v} is not a multiple of bond-miimon {m}; it is rounded to {} ms", v / m * m),
            ));
        }
    }
}

/// Targets the monitor cannot reach directly: outside every subnet the bond's stanzas give
/// it (a link-local NS target is on every link), and targets with no ARP monitor to probe them.
fn targets(ifs: &Interfaces, cfg: &BondConfig, out: &mut Vec<Diagnostic>) {
    let subnets = addressing(ifs, &cfg.name).map(|a| a.addresses).unwrap_or_default();
    let on_link = |ip: IpAddr| {
        let v6_link_local = matches!(ip, IpAddr::V6(v6) if rbond_core::is_link_local(v6));
        v6_link_local || subnets.iter().any(|a| same_subnet(a.addr, ip, a.prefix))
    };
    let mut unprobed = Vec::new();
    for (k, v, place) in &cfg.options {
        let Some(info) = OPTIONS.iter().find(|o| o.sysfs == k && o.values.is_targets()) else { continue };
        let debian = info.debian;
        // An interval that miimon drops has its own warning; one line per option, not target.
        if cfg.value("arp_interval").is_none_or(|v| v.trim() == "0") && !unprobed.contains(&debian) {
            unprobed.push(debian);
            out.push(warn(
                place,
                format!("{debian} is never probed: the ARP monitor runs only with bond-arp-interval"),
            ));
        }
        let family: Vec<String> =
            subnets.iter().filter(|a| a.addr.is_ipv4() == (info.values == Values::Ipv4Targets)).map(network).collect();
        let listed = v.split_whitespace().map(|t| t.trim_start_matches('+')).filter_map(|t| t.parse::<IpAddr>().ok());
        for ip in listed.filter(|ip| !family.is_empty() && !on_link(*ip)) {
            let nets = family.join(", ");
            out.push(warn(place, format!("{debian} {ip} is outside {}'s subnet {nets}", cfg.name)));
        }
    }
}

/// `addr/prefix` as its network, `10.77.0.0/24`.
fn network(a: &StanzaAddress) -> String {
    let net = match a.addr {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Cidr::new(v4, a.prefix).network()),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Cidr::new(v6, a.prefix).network()),
    };
    format!("{net}/{}", a.prefix)
}

fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Cidr::new(a, prefix).contains(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Cidr::new(a, prefix).contains(b),
        _ => false,
    }
}

fn slaves(ifs: &Interfaces, cfg: &BondConfig, out: &mut Vec<Diagnostic>) {
    for s in &cfg.slaves {
        for stanza in ifs.iface(s) {
            if let Some(a) = stanza.value("address") {
                out.push(warn(
                    &a.place,
                    format!(
                        "{s} is a slave of {} but its stanza gives it an address: the bond takes its addresses away",
                        cfg.name
                    ),
                ));
            }
        }
    }
    let primaries = ifs.ifaces.iter().filter(|i| i.name == cfg.name || cfg.slaves.contains(&i.name));
    for p in primaries.filter_map(|i| i.value("bond-primary")) {
        for name in p.value.split_whitespace().filter(|n| !cfg.slaves.iter().any(|s| s == n)) {
            out.push(warn(&p.place, format!("bond-primary {name} is not a slave of {}", cfg.name)));
        }
    }
}

/// rbond reads stanzas as written: a mapping script never picks a bond's stanza for it.
fn mappings(ifs: &Interfaces, cfg: &BondConfig, out: &mut Vec<Diagnostic>) {
    let members = std::iter::once(&cfg.name).chain(cfg.slaves.iter());
    for name in members {
        for m in ifs.mappings.iter().filter(|m| m.patterns.iter().any(|p| wildcard(p.as_bytes(), name.as_bytes()))) {
            let role = if *name == cfg.name { "the bond".to_string() } else { format!("a slave of {}", cfg.name) };
            out.push(warn(
                &m.place,
                format!(
                    "mapping {} covers {name} ({role}); rbond uses its stanza as written and runs no mapping script",
                    m.patterns.join(" ")
                ),
            ));
        }
    }
}

fn duplicates(ifs: &Interfaces, out: &mut Vec<Diagnostic>) {
    for (i, a) in ifs.ifaces.iter().enumerate() {
        if let Some(first) = ifs.ifaces[..i].iter().find(|b| b.name == a.name && b.family == a.family) {
            out.push(warn(
                &a.place,
                format!("iface {} {} is declared again (first at {})", a.name, a.family, first.place),
            ));
        }
    }
}

/// Every finding, in file order.
pub fn lint(ifs: &Interfaces) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    duplicates(ifs, &mut out);
    for i in ifs.ifaces.iter().filter(|i| is_bond_stanza(i)) {
        option_names(i, &mut out);
    }
    for bond in bonds(ifs) {
        match bond_config(ifs, &bond) {
            Ok(cfg) => {
                let o = engine_options(&cfg, &mut out);
                monitors(&cfg, &o, &mut out);
                targets(ifs, &cfg, &mut out);
                slaves(ifs, &cfg, &mut out);
                mappings(ifs, &cfg, &mut out);
            }
            Err(e) => out.push(error(&e.place, e.message)),
        }
    }
    out.sort_by(|a, b| (&a.place.file, a.place.line).cmp(&(&b.place.file, b.place.line)));
    out
}
