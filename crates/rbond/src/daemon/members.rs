//! Slaves joining and leaving: what the host must look like before the engine hears of a
//! slave, how each step is undone when a later one fails, and what a slave's interface
//! events mean.
use anyhow::bail;
use rbond_core::{Input, Instant, Level, LinkInfo, Mac, SlaveId, SlaveSpec};
use serde::{Deserialize, Serialize};

use super::logger::Logger;
use super::state::SavedSlave;
use super::{Daemon, now};
use crate::datapath::{Membership, Port, RX_NOTE_EVERY, Seen};
use crate::net::frames;
use crate::net::link::{Change, Link};
use crate::net::watch::LinkEvent;
use crate::net::{Netdev, carrier_events_may_lag, ctx};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Member {
    pub(super) name: String,
    /// The engine's id for it: its interface index.
    pub(super) id: SlaveId,
    pub(super) saved: SavedSlave,
    pub(super) mac: Mac,
    pub(super) carrier: bool,
    /// When its carrier last came up (a switch may take a moment to forward on that port).
    #[serde(skip)]
    pub(super) carrier_since: Option<Instant>,
    /// Its carrier events may come late, so ETHTOOL_GLINK is read every tick.
    pub(super) poll_link: bool,
    /// When the engine last heard of ordinary traffic on it.
    #[serde(skip)]
    pub(super) last_rx_note: Option<Instant>,
    /// The multicast groups its socket joined for the NS monitor. A successor joins them
    /// again, as it reasserts every membership: the socket it gets may be a new one.
    #[serde(skip)]
    pub(super) groups: Vec<Mac>,
}

/// Restores a slave, logging whatever could not be put back.
pub(super) fn put_back(net: &mut dyn Netdev, log: &mut Logger, saved: &SavedSlave) {
    for e in saved.restore(net) {
        log.note(Level::Warning, e);
    }
}

impl Daemon {
    pub(super) fn member(&self, id: SlaveId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_named(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Takes an interface into the bond: recorded first, then down, MTU, no IPv6, datapath,
    /// the engine's decision, and up again; or, for the interface the host is reached through,
    /// converted in place (see convert.rs). A step that fails undoes the ones before it.
    pub(super) fn enslave(&mut self, name: &str) -> anyhow::Result<()> {
        if self.member_named(name).is_some() {
            bail!("{name} is already a slave of {}", self.name);
        }
        if name == self.name {
            bail!("cannot enslave {name} to itself");
        }
        self.check_free(name)?;
        let mut saved = SavedSlave::capture(self.net.as_mut(), name)?;
        if self.converts(&saved) {
            saved.carried = Some(self.carried_by(&saved)?);
        }
        self.save_state(Some(&saved))?;
        match self.take_over(name, &saved) {
            Ok(member) => {
                self.members.push(member);
                self.apply_actions();
                if saved.carried.is_some() {
                    return self.finish_conversion(&saved);
                }
                ctx(self.net.set_link(saved.ifindex, Change::Up(true)), "set up", name)
            }
            Err(e) => {
                self.datapath.detach(saved.ifindex);
                if saved.carried.is_some() {
                    self.datapath_follows_engine();
                }
                put_back(self.net.as_mut(), &mut self.log, &saved);
                self.save_state(None)?;
                Err(e)
            }
        }
    }

    /// The datapath forwards through the slave the engine calls active again: a conversion
    /// points the datapath at the interface before the engine has it (see `look_like`), so
    /// one that fails must not leave it pointed there.
    fn datapath_follows_engine(&mut self) {
        let active = self.engine.active().map(|s| s.0);
        if let Err(e) = self.datapath.set_active(active) {
            self.note(Level::Warning, format!("{}: datapath: set the active slave: {e}", self.name));
        }
    }

    /// A slave belongs to one master: not to a bridge or kernel bond, not to another of ours.
    fn check_free(&mut self, name: &str) -> anyhow::Result<()> {
        let link = ctx(self.net.link_named(name), "no such interface", name)?;
        if let Some(master) = link.master {
            let owner = self.net.link(master).map_or_else(|_| format!("interface {master}"), |l| l.name);
            bail!("{name} is already enslaved to {owner}");
        }
        if let Some(bond) = self.state.owner_of(link.index) {
            bail!("{name} is already a slave of {bond}");
        }
        Ok(())
    }

    fn take_over(&mut self, name: &str, saved: &SavedSlave) -> anyhow::Result<Member> {
        let i = saved.ifindex;
        let live = saved.carried.is_some();
        if live {
            self.look_like(saved)?;
        } else {
            ctx(self.net.set_link(i, Change::Up(false)), "set down", name)?;
        }
        let mtu = ctx(self.net.link(self.index), "read MTU", &self.name)?.mtu;
        if saved.mtu != mtu {
            ctx(self.net.set_link(i, Change::Mtu(mtu)), "set MTU", name)?;
        }
        if !live {
            if saved.ipv6_disabled.is_some() {
                ctx(self.net.set_ipv6_conf(name, "disable_ipv6", "1"), "disable IPv6", name)?;
            }
            // A slave keeps no address of its own: the host must not route through it.
            for a in saved.addresses.iter().filter(|a| a.addr.is_ipv4()) {
                ctx(self.net.delete_address(i, a), "remove address", name)?;
            }
        }
        ctx(self.datapath.attach(&Port { ifindex: i, name: name.to_string(), live }), "attach to the datapath", name)?;
        let id = SlaveId(i);
        let link = if live { LinkInfo::up() } else { LinkInfo::down() };
        let spec = SlaveSpec { id, name: name.to_string(), mac: saved.mac, link };
        self.engine.handle(now(), Input::Enslave(spec))?;
        self.hear_probe_replies(id, saved.mac);
        let link = self.net.link(i).unwrap_or_default();
        Ok(Member {
            name: name.to_string(),
            id,
            saved: saved.clone(),
            mac: saved.mac,
            carrier: live,
            carrier_since: live.then(now),
            poll_link: carrier_events_may_lag(&Link { index: i, ..link }),
            last_rx_note: None,
            groups: Vec::new(),
        })
    }

    /// Keeps each slave in the solicited-node groups the engine wants it in: a backup with
    /// validation must hear the NS targets' traffic through a NIC that filters multicast.
    pub(super) fn follow_groups(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        // Asked on every wake-up: the common case, nothing to change, allocates nothing.
        for m in &mut self.members {
            let want: Vec<Mac> = self.engine.solicited_groups(m.id).into_iter().map(frames::ipv6_group_mac).collect();
            if want == m.groups {
                continue;
            }
            let have = std::mem::replace(&mut m.groups, want.clone());
            let leave = have.iter().filter(|g| !want.contains(g)).map(|g| (g, false));
            let join = want.iter().filter(|g| !have.contains(g)).map(|g| (g, true));
            for (mac, join) in leave.chain(join) {
                if let Err(e) = self.datapath.membership(m.id.0, Membership::Multicast(mac.0), join) {
                    let verb = if join { "join" } else { "leave" };
                    problems.push(format!("{}: {verb} multicast group {mac}: {e}", m.name));
                }
            }
        }
        problems
    }

    /// A NIC that filters unicast would drop the replies to the slave's standby probes: its
    /// probe MAC joins the slave's address list for as long as the slave's socket is open.
    pub(super) fn hear_probe_replies(&mut self, slave: SlaveId, own_mac: Mac) {
        let probe = Membership::Unicast(rbond_core::probe_mac(own_mac).0);
        if let Err(e) = self.datapath.membership(slave.0, probe, true) {
            let line = format!("{}: slave {}: standby probe replies may not be heard: {e}", self.name, slave.0);
            self.note(Level::Warning, line);
        }
    }

    /// Takes a slave out: it leaves the member list before the engine's actions are carried
    /// out, so nothing is done to a device that may already be gone; restoring puts it back.
    pub(super) fn release(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(m) = self.member_named(name) else { bail!("{name} is not a slave of {}", self.name) };
        let (id, saved) = (m.id, m.saved.clone());
        // A converted interface gets the host's addresses and routes back while the bond
        // still forwards for it, and leaves the datapath before the engine stops forwarding
        // for it, so there is no instant without them.
        let converted = saved.carried.is_some();
        if converted {
            put_back(self.net.as_mut(), &mut self.log, &saved);
            self.datapath.detach(id.0);
        }
        self.engine.handle(now(), Input::Release(id))?;
        let pos = self.members.iter().position(|m| m.id == id);
        let member = pos.map(|p| self.members.remove(p));
        self.apply_actions();
        if let Some(m) = member.filter(|_| !converted) {
            self.datapath.detach(m.id.0);
            put_back(self.net.as_mut(), &mut self.log, &m.saved);
        }
        self.save_state(None)
    }

    /// A slave's interface changed or went: a slave deleted, moved to another namespace or
    /// renamed is released; otherwise its carrier is news for the engine.
    pub(super) fn slave_link_event(&mut self, ev: &LinkEvent) {
        let Some(m) = self.member(SlaveId(ev.link.index)) else { return };
        let name = m.name.clone();
        let renamed = !ev.link.name.is_empty() && ev.link.name != name;
        if ev.removed || renamed {
            let why = if ev.removed { "has gone (deleted or moved to another namespace)" } else { "was renamed" };
            self.note(Level::Warning, format!("{}: {name} {why}, releasing it", self.name));
            let _ = self.release(&name);
            return;
        }
        self.carrier_seen(SlaveId(ev.link.index), ev.link.lower_up);
    }

    pub(super) fn carrier_seen(&mut self, id: SlaveId, carrier: bool) {
        let Some(m) = self.members.iter_mut().find(|m| m.id == id) else { return };
        if m.carrier == carrier {
            return;
        }
        m.carrier = carrier;
        m.carrier_since = carrier.then(now);
        let link = if carrier { LinkInfo::up() } else { LinkInfo::down() };
        let _ = self.engine.handle(now(), Input::Link { slave: id, link });
    }

    /// Reads each slave's link where carrier events may lag (see `poll_link`). A failed read
    /// tells nothing, so it changes nothing: only a definite answer is carrier news.
    pub(super) fn poll_links(&mut self) {
        let polled: Vec<(SlaveId, String)> =
            self.members.iter().filter(|m| m.poll_link).map(|m| (m.id, m.name.clone())).collect();
        for (id, name) in polled {
            if let Ok(up) = self.net.link_detected(&name) {
                self.carrier_seen(id, up);
            }
        }
    }

    /// Shows a received frame to the engine: ARP and malformed frames always, other traffic
    /// at most every 10 ms; a frame from the bond's own MAC on a backup is its echo, and a
    /// broadcast seen leaving the active slave is owed one by every backup.
    pub(super) fn frame_seen(&mut self, ifindex: u32, what: Seen) {
        let now = now();
        let slave = SlaveId(ifindex);
        let from_bond = match what {
            Seen::Arp(f) => Some(f.sender_mac),
            Seen::Nd(f) => Some(f.sender_mac),
            Seen::Other { from } => Some(from),
            _ => None,
        };
        if from_bond.is_some() && from_bond == self.engine.mac() && self.engine.active() != Some(slave) {
            let _ = self.engine.handle(now, Input::Echo { slave });
        }
        let input = match what {
            Seen::Arp(frame) => Input::Arp { slave, frame },
            Seen::Nd(frame) => Input::Nd { slave, frame },
            Seen::Malformed => Input::BadFrame { slave },
            Seen::Sent => Input::BondBroadcast,
            Seen::Other { .. } => {
                let Some(m) = self.members.iter_mut().find(|m| m.id == slave) else { return };
                if m.last_rx_note.is_some_and(|t| now.saturating_since(t) < RX_NOTE_EVERY) {
                    return;
                }
                m.last_rx_note = Some(now);
                Input::Rx { slave }
            }
        };
        let _ = self.engine.handle(now, input);
    }

    /// Links may have changed while no one listened (across a restart): look at them now.
    pub(super) fn catch_up(&mut self) {
        let ids: Vec<SlaveId> = self.members.iter().map(|m| m.id).collect();
        for id in ids {
            let event = match self.net.link(id.0) {
                Ok(link) => LinkEvent { link, removed: false },
                Err(_) => LinkEvent { link: Link { index: id.0, ..Link::default() }, removed: true },
            };
            self.slave_link_event(&event);
        }
        self.poll_links();
        self.read_addresses();
        self.read_gateways();
        self.apply_actions();
    }
}
