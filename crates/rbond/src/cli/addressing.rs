//! bond0's addresses and default gateways from its stanza: applied once `rbond up` has the
//! bond running, as ifup's `static` method applies them (where the bond took over a live
//! interface's addresses, the stanza's win: the others of that family go), or, under ifup,
//! made room for.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;

use crate::config::addressing::Addressing;
use crate::net::address::{Address, IFA_F_NODAD, IFA_F_TENTATIVE};
use crate::net::ctx;
use crate::net::link::Change;
use crate::net::rtnl::Rtnl;

/// An rtnetlink socket and the index of `name`.
fn open(name: &str) -> anyhow::Result<(Rtnl, u32)> {
    let mut rtnl = Rtnl::open()?;
    let index = ctx(rtnl.link_named(name), "lookup", name)?.index;
    Ok((rtnl, index))
}

pub fn apply(bond: &str, want: &Addressing) -> anyhow::Result<()> {
    if want.addresses.is_empty() && want.gateways.is_empty() {
        return Ok(());
    }
    let (mut rtnl, index) = open(bond)?;
    // Up first, as ifup's method brings it up: a gateway needs a device that is up.
    ctx(rtnl.set_link(index, Change::Up(true)), "set up", bond)?;
    for a in &want.addresses {
        let add = rtnl.add_address(index, &Address::new(a.addr, a.prefix));
        add.map_err(|e| anyhow::anyhow!("{}: address {}/{}: {e}", a.place, a.addr, a.prefix))?;
    }
    let families = |v6: bool| want.addresses.iter().any(|a| a.addr.is_ipv6() == v6);
    let listed = |a: &Address| want.addresses.iter().any(|w| a.is(w.addr, w.prefix));
    // The file's address may have gone in as a secondary of the one it replaces; it must be
    // promoted, not removed with it, when that one goes.
    let promote = format!("/proc/sys/net/ipv4/conf/{bond}/promote_secondaries");
    std::fs::write(&promote, "1").with_context(|| promote.clone())?;
    for a in ctx(rtnl.addresses(index), "read addresses", bond)? {
        if !a.is_link_local() && families(a.addr.is_ipv6()) && !listed(&a) {
            ctx(rtnl.delete_address(index, &a), &format!("remove {a}, which the file does not give it"), bond)?;
        }
    }
    for g in &want.gateways {
        let add = rtnl.replace_default_route(index, g.via, g.metric);
        add.map_err(|e| anyhow::anyhow!("{}: gateway {}: {e}", g.place, g.via))?;
    }
    Ok(())
}

/// The stand-in for an address, as a host route, and where it goes: IPv4 on bond0 itself,
/// which so always keeps an address (losing its last one would flush its neighbours, and the
/// next packet would wait for ARP); IPv6 on the loopback, where the host owns it for every
/// interface (IPv6 refuses a second prefix for one address on one interface).
fn stand_in(addr: IpAddr, bond: u32, lo: u32) -> (u32, Address) {
    let mut a = Address::new(addr, if addr.is_ipv4() { 32 } else { 128 });
    a.flags |= IFA_F_NODAD;
    (if addr.is_ipv4() { bond } else { lo }, a)
}

/// ifup adds the stanza's address and IPv4 gateway itself once the pre-up hook returns, and
/// fails if they exist; after converting a live interface bond0 has them already. So each
/// gives way to a stand-in that keeps the host reachable until ifupdown's own is in: the
/// address as a host route, the gateway one metric further. `settle` removes the stand-ins.
pub fn make_room(bond: &str, want: &Addressing) -> anyhow::Result<()> {
    let (mut rtnl, index) = open(bond)?;
    let lo = ctx(rtnl.link_named("lo"), "lookup", "lo")?.index;
    let have = ctx(rtnl.addresses(index), "read addresses", bond)?;
    let converted: Vec<_> = want.addresses.iter().filter(|w| have.iter().any(|h| h.is(w.addr, w.prefix))).collect();
    for g in want.gateways.iter().filter(|g| g.via.is_ipv4() && converted.iter().any(|a| a.addr.is_ipv4())) {
        let metric = g.metric.unwrap_or(0);
        ctx(rtnl.replace_default_route(index, g.via, Some(metric + 1)), "add a stand-in gateway", bond)?;
        ctx(rtnl.delete_default_route(index, g.via, Some(metric)), "make room for ifup's gateway", bond)?;
    }
    for a in converted {
        let (on, s) = stand_in(a.addr, index, lo);
        ctx(rtnl.add_address(on, &s), &format!("add the stand-in {s}"), bond)?;
        // An IPv6 address gets its local route a moment after the request returns (when the
        // kernel's address worker marks it ready); the one it stands in for goes only then.
        let ready = |r: &mut Rtnl| -> anyhow::Result<bool> {
            let have = r.addresses(on)?;
            Ok(have.iter().any(|h| h.is(s.addr, s.prefix) && h.flags & IFA_F_TENTATIVE == 0))
        };
        if !crate::wait::until(Duration::from_secs(1), Duration::from_millis(1), || ready(&mut rtnl))? {
            anyhow::bail!("{bond}: the stand-in {s} did not become ready");
        }
        let exact = Address::new(a.addr, a.prefix);
        ctx(rtnl.delete_address(index, &exact), &format!("make room for ifup's {exact}"), bond)?;
    }
    Ok(())
}

/// Removes the stand-ins `make_room` left, now that ifupdown has added the real ones.
pub fn settle(bond: &str, want: &Addressing) -> anyhow::Result<()> {
    let (mut rtnl, index) = open(bond)?;
    let lo = ctx(rtnl.link_named("lo"), "lookup", "lo")?.index;
    for w in &want.addresses {
        let (on, s) = stand_in(w.addr, index, lo);
        let there = ctx(rtnl.addresses(on), "read addresses", bond)?;
        if w.prefix != s.prefix && there.iter().any(|h| h.is(s.addr, s.prefix)) {
            ctx(rtnl.delete_address(on, &s), &format!("remove the stand-in {s}"), bond)?;
        }
    }
    for g in want.gateways.iter().filter(|g| g.via.is_ipv4()) {
        // Gone already unless make_room put it there.
        let _ = rtnl.delete_default_route(index, g.via, Some(g.metric.unwrap_or(0) + 1));
    }
    Ok(())
}
