//! A bond whose daemon is gone (killed, crashed, or re-executed in place): taking it over as
//! it runs, or, when nobody will run it again, taking it apart.
//!
//! What a daemon leaves is its state file (written before it touches a slave and after each
//! change of the bond), bond0 (a persistent TAP, its descriptor perhaps held by the
//! supervisor) and its BPF objects pinned in bpffs. A successor checks each piece against the
//! kernel before trusting it.

use std::path::Path;

use anyhow::Context;
use rbond_core::{Command, Input, Level};

use super::event_loop::Io;
use super::logger::Logger;
use super::members::put_back;
use super::state::{State, StateFile};
use super::{Config, Daemon, now};
use crate::control::server::Server;
use crate::control::socket_path;
use crate::datapath::bond_device::BondDevice;
use crate::datapath::{self, Membership, Port};
use crate::keep::{Kept, Pins};
use crate::net::{Netdev, System, ctx};

/// The state left behind, if the bond0 it describes is still there. If it is gone (deleted,
/// or another device took its name), the slaves are put back and the leftovers forgotten.
pub(super) fn still_there(
    left: State,
    bond: &str,
    net: &mut dyn Netdev,
    log: &mut Logger,
    kept: &Kept,
) -> Option<State> {
    if net.link_named(bond).is_ok_and(|l| l.index == left.index) {
        return Some(left);
    }
    log.note(Level::Warning, format!("{bond}: the bond left by PID {} is gone; restoring its slaves", left.pid));
    put_back_slaves(&left, net, log);
    kept.forget_all();
    None
}

fn put_back_slaves(left: &State, net: &mut dyn Netdev, log: &mut Logger) {
    for s in left.saved() {
        put_back(net, log, s);
    }
}

impl Daemon {
    /// Takes over the running bond: bond0's TAP (held by the supervisor, else attached by
    /// name), the datapath's pinned programs, links and map, and the engine as it was.
    pub(super) fn adopt(
        cfg: &Config,
        left: State,
        mut kept: Kept,
        net: Box<dyn Netdev>,
        log: Logger,
        state: StateFile,
    ) -> anyhow::Result<Daemon> {
        let path = socket_path(&cfg.run_dir, &cfg.bond);
        let control = match kept.take("control") {
            Some(fd) => Server::from_fd(fd, path)?,
            None => Server::bind(path)?,
        };
        let tap = match kept.take("tap") {
            Some(fd) => BondDevice::from_fd(fd)?,
            None => ctx(BondDevice::create(&cfg.bond), "take over the TAP", &cfg.bond)?,
        };
        let settings = super::userspace_settings(cfg, &left.engine);
        let datapath = datapath::open(left.datapath, left.attach, tap, left.index, settings, kept)
            .with_context(|| format!("{}: take over the {:?} datapath", cfg.bond, left.datapath))?;
        let io = Io::open(control)?;
        let engine = left.engine.clone();
        let mut d = Daemon::assemble(cfg, engine, datapath, net, io, log, left.index)?;
        d.state = state;
        d.carry_on(left, &cfg.slaves)?;
        Ok(d)
    }

    /// Carries on from `left`: the members still there are taken back, the engine resumes
    /// (a gap is not read as silence), links that changed meanwhile are news now (delays
    /// count from now), and a start that was cut short is finished.
    pub(super) fn carry_on(&mut self, left: State, slaves: &[String]) -> anyhow::Result<()> {
        let in_place = left.pid == std::process::id();
        self.life.generation = left.generation;
        self.life.adoptions = left.adoptions + u32::from(!in_place);
        self.life.started = left.started;
        if in_place {
            self.log.carry_on(left.history);
            let line = format!("{}: restarted in place (PID {}): the datapath kept running", self.name, left.pid);
            self.note(Level::Info, line);
        } else {
            let what = format!("{:?}", left.datapath).to_lowercase();
            let line = format!("{}: adopting the bond left by PID {} ({what} datapath)", self.name, left.pid);
            self.note(Level::Info, line);
        }
        if let Some(p) = &left.pending {
            self.note(Level::Warning, format!("{}: putting {} back: it was being enslaved", self.name, p.name));
            put_back(self.net.as_mut(), &mut self.log, p);
        }
        self.members = left.members;
        self.take_back_members();
        let _ = self.engine.handle(now(), Input::Command(Command::Resume));
        self.reassert();
        self.catch_up();
        if self.life.started { self.save_state(None) } else { self.finish_start(slaves) }
    }

    /// Attaches each member still present under its name; one that cannot be attached is
    /// released. Gone and renamed ones are left to `catch_up`, which releases them saying so.
    fn take_back_members(&mut self) {
        let present: Vec<(u32, String, rbond_core::Mac)> = self
            .members
            .iter()
            .filter(|m| self.net.link(m.id.0).is_ok_and(|l| l.name == m.name))
            .map(|m| (m.id.0, m.name.clone(), m.saved.mac))
            .collect();
        for (ifindex, name, mac) in present {
            if let Err(e) = self.datapath.attach(&Port { ifindex, name: name.clone(), live: false }) {
                self.note(Level::Warning, format!("{}: {name}: cannot take it back ({e}), releasing it", self.name));
                let _ = self.release(&name);
                continue;
            }
            self.hear_probe_replies(rbond_core::SlaveId(ifindex), mac);
        }
    }

    /// What the engine believes goes on the wire again: a predecessor may have died between
    /// deciding and doing.
    fn reassert(&mut self) {
        let active = self.engine.active();
        let problems = [
            self.datapath.set_active(active.map(|a| a.0)).err().map(|e| format!("activate: {e}")),
            self.datapath.set_carrier(self.engine.carrier()).err().map(|e| format!("set carrier: {e}")),
            active
                .and_then(|a| self.datapath.membership(a.0, Membership::AllMulti, true).err())
                .map(|e| format!("receive all multicast: {e}")),
        ];
        for p in problems.into_iter().flatten() {
            self.note(Level::Warning, format!("{}: {p}", self.name));
        }
    }
}

/// Takes apart what a dead daemon left for `bond`, when no daemon will run it again: every
/// slave restored, bond0 deleted, pins removed. Returns whether there was anything. Refuses
/// while a daemon holds the bond.
pub fn clean_up(run_dir: &Path, bond: &str, bpffs: &Path, log: &mut Logger) -> anyhow::Result<bool> {
    let mut file = StateFile::new(run_dir, bond);
    file.lock(None)?;
    let left = file.load()?;
    if let Some(left) = &left {
        log.note(Level::Warning, format!("{bond}: taking apart the bond left by PID {}", left.pid));
        let mut net = System::open().context("rtnetlink")?;
        put_back_slaves(left, &mut net, log);
        if net.link_named(bond).is_ok_and(|l| l.index == left.index) {
            ctx(net.delete_link(left.index), "delete", bond)?;
        }
    }
    if let Ok(pins) = Pins::open(bpffs, bond, false) {
        pins.remove_all();
    }
    let _ = std::fs::remove_file(socket_path(run_dir, bond));
    file.remove();
    Ok(left.is_some())
}
