//! Converting a live interface into the bond, for a host that may be reached only through
//! it. The interface never goes down, and the host's address is on some interface at every
//! instant:
//!
//! 1. bond0 takes the interface's MAC (no neighbour has anything to learn), comes up, and
//!    gets a copy of its addresses (IPv6 without duplicate address detection: they were in use a moment ago);
//! 2. the datapath forwards through the interface before the first frame is diverted to
//!    bond0, and bond0 has its carrier;
//! 3. each route out of the interface is replaced by the same route out of bond0 (one step
//!    per route: never a moment without it), and the rules naming it name bond0;
//! 4. only then does the interface lose its own addresses;
//! 5. and what would interrupt the interface's sending is done once the host sends through
//!    bond0 (`Datapath::settle`: cls_bpf's qdisc goes on the interface only now).
//!
//! Giving back (`rbond down`, releasing the slave) runs the other way, before the datapath
//! lets go of the interface: see `SavedSlave::restore`.

use anyhow::bail;
use rbond_core::Level;

use super::Daemon;
use super::state::{Carried, SavedSlave, moving};
use crate::net::ctx;
use crate::net::link::{Change, Link};

/// Whether enslaving an interface converts it in place: it is the bond's first slave (so it
/// becomes the active one at once, as the guide's eth0 does), it carries addresses of the
/// host's own, and it is up with carrier. A later slave's addresses are removed as ifenslave
/// removes them.
pub fn converts(first: bool, saved: &SavedSlave, link: &Link) -> bool {
    first && !saved.addresses.is_empty() && link.up && link.lower_up
}

impl Daemon {
    /// Whether enslaving this interface converts it in place (see `converts`).
    pub(super) fn converts(&mut self, saved: &SavedSlave) -> bool {
        let link = self.net.link(saved.ifindex).unwrap_or_default();
        converts(self.members.is_empty(), saved, &link)
    }

    /// The routes out of the interface and the rules naming it, which move with it; what
    /// cannot move (sockets bound to the interface) is said before anything is touched.
    pub(super) fn carried_by(&mut self, saved: &SavedSlave) -> anyhow::Result<Carried> {
        let name = saved.name.as_str();
        let stuck = self.net.bound_sockets(saved.ifindex).unwrap_or_default();
        if !stuck.is_empty() {
            let list: Vec<String> = stuck.iter().map(ToString::to_string).collect();
            let line = format!(
                "{}: sockets bound to {name} (SO_BINDTODEVICE) cannot move to {} and will receive nothing more: {}",
                self.name,
                self.name,
                list.join(", ")
            );
            self.note(Level::Warning, line);
        }
        Ok(Carried {
            bond: self.name.clone(),
            routes: ctx(self.net.routes_out_of(saved.ifindex), "read routes", name)?,
            rules: ctx(self.net.rules_naming(name), "read policy rules", name)?,
        })
    }

    /// Steps 1 and 2: bond0 looks like the interface and forwards for it from the first
    /// frame the datapath diverts, and from the first the host sends it: the datapath
    /// forwards through the interface before bond0 has an address (and so a route) to
    /// draw traffic with.
    pub(super) fn look_like(&mut self, saved: &SavedSlave) -> anyhow::Result<()> {
        let name = saved.name.as_str();
        let bond = self.name.clone();
        ctx(self.datapath.set_active(Some(saved.ifindex)), "forward through", name)?;
        ctx(self.net.set_link(self.index, Change::Mac(saved.mac)), &format!("take {name}'s MAC"), &bond)?;
        // Up before the addresses, or the kernel installs no routes for them.
        ctx(self.net.set_link(self.index, Change::Up(true)), "set up", &bond)?;
        for a in &saved.addresses {
            let a = moving(a, name, &bond);
            ctx(self.net.add_address(self.index, &a), &format!("add {a}"), &bond)?;
        }
        ctx(self.datapath.set_carrier(true), "set carrier", &bond)
    }

    /// Steps 3 and 4, once the engine has made the interface the active slave.
    pub(super) fn finish_conversion(&mut self, saved: &SavedSlave) -> anyhow::Result<()> {
        let Some(carried) = &saved.carried else { bail!("{}: not converted", saved.name) };
        if let Err(e) = self.move_host_config(saved, carried) {
            let _ = self.release(&saved.name);
            return Err(e);
        }
        let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let line = format!(
            "{}: converted {} in place: {}, {} and {} moved to {}",
            self.name,
            saved.name,
            count(saved.addresses.len(), "address", "addresses"),
            count(carried.routes.len(), "route", "routes"),
            count(carried.rules.len(), "rule", "rules"),
            self.name
        );
        self.note(Level::Info, line);
        Ok(())
    }

    fn move_host_config(&mut self, saved: &SavedSlave, carried: &Carried) -> anyhow::Result<()> {
        let (name, i) = (saved.name.as_str(), saved.ifindex);
        // bond0 learns the interface's resolved neighbours before the routes move: else the
        // first packets through bond0 wait on address resolution, whose answer the daemon,
        // busy converting, forwards late, and a busy flow overflows the queue they wait in.
        if let Err(e) = self.net.copy_neighbours(i, self.index) {
            self.note(Level::Warning, format!("{}: copy {name}'s neighbours: {e}", self.name));
        }
        for r in &carried.routes {
            ctx(self.net.move_route(r, i, self.index), &format!("move route {}", r.show(name)), name)?;
        }
        for r in &carried.rules {
            ctx(self.net.move_rule(r, name, &self.name), &format!("move rule {}", r.show(name)), name)?;
        }
        for a in &saved.addresses {
            ctx(self.net.delete_address(i, a), &format!("remove {a}"), name)?;
        }
        // The host sends nothing through the interface now (its prefix routes went with its
        // addresses), and what it receives there, IPv6 included, still reaches the host.
        ctx(self.datapath.settle(i), "hook into the datapath", name)?;
        if saved.ipv6_disabled.is_some() {
            ctx(self.net.set_ipv6_conf(name, "disable_ipv6", "1"), "disable IPv6", name)?;
        }
        Ok(())
    }
}
