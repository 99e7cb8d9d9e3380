//! One bond's daemon: a single loop that owns the engine and its edges. It turns netlink
//! events, frames and requests into engine inputs, and the engine's actions into system calls;
//! it decides nothing about bonding itself.
//!
//! Where to look: `members` (slaves joining and leaving), `failover` (what the engine's
//! decisions do to the host: the active slave, MACs, carrier, announcements), `requests` (the
//! control socket), `event_loop` (waiting and dispatching), `handover` (restart in place),
//! `state` (what to put back, and the state file).

use std::path::PathBuf;

use anyhow::Context;
use rbond_core::{Bond, Command, Input, Instant, Level, Options};
use serde::{Deserialize, Serialize};

use crate::control::server::Server;
use crate::control::socket_path;
use crate::datapath::bond_device::BondDevice;
use crate::datapath::{self, Datapath, Kind};
use crate::keep::Kept;
use crate::net::{Netdev, System, ctx};

mod event_loop;
mod failover;
mod handover;
pub mod logger;
mod members;
mod requests;
pub mod state;

#[cfg(test)]
mod tests;

use event_loop::{Io, Poller};
use logger::Logger;
use members::Member;
use state::{State, StateFile};

/// Where frames are moved between bond0 and the active slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatapathChoice {
    /// The kernel if it can (tc/BPF), else userspace.
    Auto,
    /// tc/BPF redirects: frames never leave the kernel.
    Kernel,
    /// The daemon copies frames between the TAP and packet sockets.
    Userspace,
}

impl DatapathChoice {
    /// Parses a name as the CLI and `bond-datapath` spell it.
    pub fn parse(s: &str) -> Result<DatapathChoice, String> {
        use clap::ValueEnum;
        DatapathChoice::from_str(s.trim(), false).map_err(|_| {
            let names: Vec<String> = DatapathChoice::value_variants()
                .iter()
                .filter_map(|v| Some(v.to_possible_value()?.get_name().to_string()))
                .collect();
            let (last, rest) = names.split_last().map_or(("", &[][..]), |(l, r)| (l.as_str(), r));
            format!("{}: expected {} or {last}", s.trim(), rest.join(", "))
        })
    }
}

pub struct Config {
    pub bond: String,
    pub datapath: DatapathChoice,
    pub slaves: Vec<String>,
    pub options: Vec<(String, String)>,
    pub run_dir: PathBuf,
    pub foreground: bool,
    /// The syslog socket (normally /dev/log).
    pub syslog: PathBuf,
}

/// Whether and why the daemon is to stop, and its restarts in place.
#[derive(Default)]
struct Life {
    stop: Option<String>,
    /// Asked to re-execute in place (see `handover`).
    restart: bool,
    /// How many times this bond was carried on in place, and why the last attempt failed.
    generation: u32,
    restart_error: Option<String>,
}

pub struct Daemon {
    name: String,
    /// bond0's interface index.
    index: u32,
    engine: Bond,
    members: Vec<Member>,
    datapath: Box<dyn Datapath>,
    net: Box<dyn Netdev>,
    io: Io,
    poller: Poller,
    log: Logger,
    state: StateFile,
    run_dir: PathBuf,
    life: Life,
}

/// The engine's clock: the system's monotonic clock, which every process reads alike.
pub fn now() -> Instant {
    let t =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    Instant::from_duration(std::time::Duration::from(t))
}

/// Builds the engine's options in the order given, failing on the first bad one.
pub fn engine_options(pairs: &[(String, String)]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    for (k, v) in pairs {
        o.apply(k, v).with_context(|| format!("option {k}={v}"))?;
    }
    Ok(o)
}

/// Puts back the slaves a crashed daemon for this bond left behind.
pub fn recover(run_dir: &std::path::Path, bond: &str, net: &mut dyn Netdev, log: &mut Logger) {
    let file = StateFile::new(run_dir, bond);
    if let Some(state) = file.leftover() {
        for s in &state.slaves {
            log.note(Level::Warning, format!("{bond}: restoring {} left by a previous daemon", s.name));
            members::put_back(net, log, s);
        }
        file.remove();
    }
}

impl Daemon {
    /// Starts the bond, or carries on the one a predecessor handed over (`rbond restart`).
    pub fn start(cfg: Config) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&cfg.run_dir).with_context(|| cfg.run_dir.display().to_string())?;
        let kept = Kept::from_env()?;
        if let Some(path) = handover::pending() {
            return Daemon::resume(&cfg, &path, kept);
        }
        let mut log = Logger::new(&cfg.bond, cfg.foreground, &cfg.syslog);
        let mut net: Box<dyn Netdev> = Box::new(System::open().context("rtnetlink")?);
        recover(&cfg.run_dir, &cfg.bond, net.as_mut(), &mut log);
        let engine = Bond::new(&cfg.bond, engine_options(&cfg.options)?)?;
        if net.link_named(&cfg.bond).is_ok() {
            anyhow::bail!("{}: an interface with this name already exists", cfg.bond);
        }
        let dev = ctx(BondDevice::create(&cfg.bond), "create TAP", &cfg.bond)?;
        let index = ctx(net.link_named(&cfg.bond), "lookup", &cfg.bond)?.index;
        let control = Server::bind(socket_path(&cfg.run_dir, &cfg.bond))?;
        let io = Io::open(control)?;
        let (datapath, why) = choose_datapath(cfg.datapath, &engine, dev, index)?;
        let mut d = Daemon::assemble(&cfg, engine, datapath, net, io, log, index)?;
        // The engine's creation lines (the kernel's module-load messages) come first.
        d.apply_actions();
        let described = match why {
            Some(why) => format!("{}; {why})", d.datapath.describe().trim_end_matches(')')),
            None => d.datapath.describe(),
        };
        d.note(Level::Info, format!("{}: datapath: {described}", d.name));
        d.read_addresses();
        d.apply_actions();
        for s in &cfg.slaves {
            if let Err(e) = d.enslave(s) {
                d.shutdown();
                return Err(e);
            }
        }
        d.save_state(None)?;
        Ok(d)
    }

    fn assemble(
        cfg: &Config,
        engine: Bond,
        datapath: Box<dyn Datapath>,
        net: Box<dyn Netdev>,
        io: Io,
        log: Logger,
        index: u32,
    ) -> anyhow::Result<Daemon> {
        let poller = Poller::open()?;
        Ok(Daemon {
            name: cfg.bond.clone(),
            index,
            engine,
            members: Vec::new(),
            datapath,
            net,
            io,
            poller,
            log,
            state: StateFile::new(&cfg.run_dir, &cfg.bond),
            run_dir: cfg.run_dir.clone(),
            life: Life::default(),
        })
    }

    fn note(&mut self, level: Level, text: String) {
        self.log.note(level, text);
    }

    /// Records every member, and `pending` (a slave about to be touched) with them.
    fn save_state(&self, pending: Option<&state::SavedSlave>) -> anyhow::Result<()> {
        let slaves = self.members.iter().map(|m| &m.saved).chain(pending).cloned().collect();
        self.state.save(&State { pid: std::process::id(), slaves })
    }

    /// Runs until asked to stop, then restores every slave and removes bond0.
    pub fn run(mut self) -> anyhow::Result<()> {
        while self.life.stop.is_none() {
            self.turn();
            if std::mem::take(&mut self.life.restart) {
                let e = format!("{:#}", self.restart_in_place());
                self.note(Level::Warning, format!("{}: restart failed, carrying on: {e}", self.name));
                self.life.restart_error = Some(e);
                self.apply_actions();
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Releases every slave (restoring each) and lets bond0 disappear with its descriptor.
    fn shutdown(&mut self) {
        if let Some(why) = self.life.stop.take() {
            self.note(Level::Info, why);
        }
        let _ = self.engine.handle(now(), Input::Command(Command::ReleaseAll));
        self.apply_actions();
        for m in std::mem::take(&mut self.members) {
            self.datapath.detach(m.id.0);
            members::put_back(self.net.as_mut(), &mut self.log, &m.saved);
        }
        self.state.remove();
    }
}

/// Opens the kernel datapath when asked or possible, else the userspace one, and says why.
fn choose_datapath(
    want: DatapathChoice,
    engine: &Bond,
    dev: BondDevice,
    index: u32,
) -> anyhow::Result<(Box<dyn Datapath>, Option<String>)> {
    let all_active = engine.options().all_slaves_active();
    let kernel = match want {
        DatapathChoice::Userspace => Err("asked for".to_string()),
        _ if all_active => Err("all_slaves_active needs the userspace datapath".to_string()),
        _ => dev
            .try_clone()
            .and_then(|tap| datapath::open(Kind::Kernel, tap, index, false, Kept::default()))
            .map_err(|e| format!("the kernel datapath could not load: {e}")),
    };
    match (kernel, want) {
        (Ok(k), _) => Ok((k, None)),
        (Err(why), DatapathChoice::Kernel) => anyhow::bail!("{}: {why}", engine.name()),
        (Err(why), _) => Ok((datapath::open(Kind::Userspace, dev, index, all_active, Kept::default())?, Some(why))),
    }
}
