//! `--dry-run` for `rbond up` and `rbond try`: what applying the stanza would change on this
//! host, as `ip` commands a person can read (the datapath's hooks as a comment), after the
//! lint findings. It reads the host and changes nothing.

use std::net::IpAddr;

use crate::config::addressing::Addressing;
use crate::config::bond::BondConfig;
use crate::config::interfaces::Interfaces;
use crate::config::lint;
use crate::daemon::convert::converts;
use crate::daemon::state::{SavedSlave, moving};
use crate::net::{Netdev, System, ctx};

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv6() { "-6 " } else { "" }
}

/// The lint findings, then the commands, one per line.
pub fn plan(ifs: &Interfaces, cfg: &BondConfig, want: &Addressing) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = lint::lint(ifs).iter().map(|d| format!("# lint: {d}")).collect();
    let mut net = System::open()?;
    let bond = cfg.name.as_str();
    out.push(format!("# {bond}: rbond's TAP device; rbond's BPF programs forward between it and the active slave"));
    out.push(format!("ip tuntap add dev {bond} mode tap vnet_hdr"));
    let mtu = cfg.mtu.unwrap_or(1500);
    if cfg.mtu.is_some() {
        out.push(format!("ip link set dev {bond} mtu {mtu}"));
    }
    for (i, name) in cfg.slaves.iter().enumerate() {
        let saved = SavedSlave::capture(&mut net, name)?;
        let link = ctx(net.link(saved.ifindex), "read", name)?;
        if converts(i == 0, &saved, &link) {
            convert(&mut net, bond, &saved, &mut out)?;
        } else {
            enslave(bond, i == 0, mtu, &saved, &mut out);
        }
    }
    stanza(bond, want, &mut out);
    Ok(out)
}

/// A live first slave carrying the host's addresses, converted in place (see
/// daemon/convert.rs for why in this order).
fn convert(net: &mut System, bond: &str, saved: &SavedSlave, out: &mut Vec<String>) -> anyhow::Result<()> {
    let name = saved.name.as_str();
    out.push(format!("# {name}: converted in place (it carries the host's addresses); it stays up"));
    out.push(format!("ip link set dev {bond} address {} up", saved.mac));
    for a in &saved.addresses {
        let m = moving(a, name, bond);
        let nodad = if m.flags & crate::net::address::IFA_F_NODAD != 0 { " nodad" } else { "" };
        out.push(format!("ip {}addr add {m} dev {bond}{nodad}", family(&m.addr)));
    }
    for r in ctx(net.routes_out_of(saved.ifindex), "read routes", name)? {
        out.push(r.command("replace", bond));
    }
    for r in ctx(net.rules_naming(name), "read policy rules", name)? {
        out.push(r.command("add", bond));
        out.push(r.command("del", name));
    }
    for a in &saved.addresses {
        out.push(format!("ip {}addr del {a} dev {name}", family(&a.addr)));
    }
    if saved.ipv6_disabled.is_some() {
        out.push(format!("sysctl -w net.ipv6.conf.{name}.disable_ipv6=1"));
    }
    Ok(())
}

/// A slave enslaved the way ifenslave does it: down, the bond's MTU, no IPv6, no IPv4
/// address of its own, up again.
fn enslave(bond: &str, first: bool, mtu: u32, saved: &SavedSlave, out: &mut Vec<String>) {
    let name = saved.name.as_str();
    out.push(format!("# {name}: enslaved"));
    if first {
        out.push(format!("ip link set dev {bond} address {} up", saved.mac));
    }
    out.push(format!("ip link set dev {name} down"));
    if saved.mtu != mtu {
        out.push(format!("ip link set dev {name} mtu {mtu}"));
    }
    if saved.ipv6_disabled.is_some() {
        out.push(format!("sysctl -w net.ipv6.conf.{name}.disable_ipv6=1"));
    }
    for a in saved.addresses.iter().filter(|a| a.addr.is_ipv4()) {
        out.push(format!("ip addr del {a} dev {name}"));
    }
    out.push(format!("ip link set dev {name} up"));
}

/// The stanza's addresses and gateways, as `rbond up` applies them.
fn stanza(bond: &str, want: &Addressing, out: &mut Vec<String>) {
    if want.addresses.is_empty() && want.gateways.is_empty() {
        return;
    }
    out.push(format!("# {bond}: the stanza's addresses and gateways; other addresses of those families go"));
    for a in &want.addresses {
        out.push(format!("ip {}addr replace {}/{} dev {bond}", family(&a.addr), a.addr, a.prefix));
    }
    for g in &want.gateways {
        let metric = g.metric.map(|m| format!(" metric {m}")).unwrap_or_default();
        out.push(format!("ip {}route replace default via {}{metric} dev {bond}", family(&g.via), g.via));
    }
}
