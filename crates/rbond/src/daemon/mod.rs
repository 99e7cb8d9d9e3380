//! One bond's daemon: a single loop that owns the engine and its edges. It turns netlink
//! events, frames and requests into engine inputs, and the engine's actions into system calls;
//! it decides nothing about bonding itself.
//!
//! The bond is not the process: bond0 (a persistent TAP), the BPF programs and the map stay
//! when the daemon dies, and every start is an adoption of whatever it finds.
//!
//! Where to look: `members` (slaves joining and leaving), `failover` (what the engine's
//! decisions do to the host: the active slave, MACs, carrier, announcements), `requests` (the
//! control socket), `event_loop` (waiting and dispatching), `adopt` (taking over a bond a
//! dead daemon left, or taking it apart), `handover` (restart in place), `state` (what to put
//! back, and the state file), `notify` (telling a supervisor how we are).
//!
use std::path::PathBuf;

use anyhow::Context;
use rbond_core::{Bond, Command, Input, Instant, Level, Options};
use serde::{Deserialize, Serialize};

use crate::control::server::Server;
use crate::control::socket_path;
use crate::datapath::bond_device::BondDevice;
use crate::datapath::userspace::Settings;
use crate::datapath::{self, AttachMode, Datapath, Kind};
use crate::keep::{Kept, Pins};
use crate::monitor::publish::Publisher;
use crate::net::link::Change;
use crate::net::{Netdev, System, ctx};

pub mod adopt;
pub mod convert;
mod event_loop;
mod failover;
mod handover;
pub mod logger;
mod members;
pub mod notify;
mod requests;
pub mod state;
mod upper;

#[cfg(test)]
mod tests;

use event_loop::{Io, Poller};
use logger::Logger;
use members::Member;
use notify::Notifier;
use state::{SavedSlave, State, StateFile};

/// Where frames are moved between bond0 and the active slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatapathChoice {
    /// The kernel if it can (on tcx, else on cls_bpf), else userspace.
    Auto,
    /// BPF redirects on tcx (Linux 6.6 and later): frames never leave the kernel.
    Kernel,
    /// The same programs as cls_bpf filters on clsact, as kernels before 6.6 need.
    KernelTc,
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
    /// The bpffs where BPF objects are pinned, so that forwarding outlives the process.
    pub bpffs: PathBuf,
    /// bond0's MTU for a new bond.
    pub mtu: Option<u32>,
    /// node_exporter's textfile directory (by default its Debian one, where that exists).
    pub metrics_dir: Option<PathBuf>,
    /// Where to serve the metrics over HTTP, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The userspace datapath's forwarding threads, if not its default.
    pub threads: Option<usize>,
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
    /// How many times a new daemon took this bond over from one that died.
    adoptions: u32,
    /// Every configured slave is in (a successor finishes a start that was cut short).
    started: bool,
    /// When the supervisor next expects to hear that we are alive.
    next_ping: Option<Instant>,
    /// What could not be published last time (said once, until it changes).
    publish_problems: Vec<String>,
}

pub struct Daemon {
    name: String,
    /// bond0's interface index.
    index: u32,
    /// bond0 as the kernel last reported it (MTU, promiscuity, bridge).
    bond: crate::net::link::Link,
    announcer: upper::Announcer,
    engine: Bond,
    members: Vec<Member>,
    datapath: Box<dyn Datapath>,
    net: Box<dyn Netdev>,
    io: Io,
    poller: Poller,
    log: Logger,
    state: StateFile,
    notify: Notifier,
    publisher: Publisher,
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

impl Daemon {
    /// Takes over the bond a previous daemon left (after a crash, or a restart in place), or
    /// builds a new one; then tells the supervisor it is ready.
    pub fn start(cfg: Config) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&cfg.run_dir).with_context(|| cfg.run_dir.display().to_string())?;
        let mut kept = Kept::from_env()?;
        let mut state = StateFile::new(&cfg.run_dir, &cfg.bond);
        state.lock(kept.take("lock"))?;
        let mut log = Logger::new(&cfg.bond, cfg.foreground, &cfg.syslog);
        let pins = Pins::open(&cfg.bpffs, &cfg.bond, true).map_err(|e| {
            log.note(
                Level::Warning,
                format!("{}: cannot pin BPF objects ({e:#}): forwarding stops with the daemon", cfg.bond),
            )
        });
        let kept = kept.with_pins(pins.ok());
        let mut net: Box<dyn Netdev> = Box::new(System::open().context("rtnetlink")?);
        let left = state.load()?.and_then(|left| adopt::still_there(left, &cfg.bond, net.as_mut(), &mut log, &kept));
        let mut d = match left {
            Some(left) => Daemon::adopt(&cfg, left, kept, net, log, state)?,
            None => Daemon::fresh(&cfg, kept, net, log, state)?,
        };
        // A port taken is no reason to take a bond down: it runs on, and says so.
        if let Some(addr) = cfg.metrics_listen {
            match d.publisher.serve(addr) {
                Ok(at) => d.note(Level::Info, format!("{}: metrics on http://{at}/metrics", cfg.bond)),
                Err(e) => d.note(Level::Warning, format!("{}: cannot serve metrics: {e}", cfg.bond)),
            }
        }
        d.record();
        d.ready();
        Ok(d)
    }

    /// A new bond0 with the configured slaves. bond0 is made persistent only once this
    /// daemon exists to take it down again; a failure on the way undoes everything.
    fn fresh(
        cfg: &Config,
        kept: Kept,
        mut net: Box<dyn Netdev>,
        log: Logger,
        state: StateFile,
    ) -> anyhow::Result<Daemon> {
        let engine = Bond::new(&cfg.bond, engine_options(&cfg.options)?)?;
        if net.link_named(&cfg.bond).is_ok() {
            anyhow::bail!("{}: an interface with this name already exists", cfg.bond);
        }
        let control = Server::bind(socket_path(&cfg.run_dir, &cfg.bond))?;
        let io = Io::open(control)?;
        let dev = ctx(BondDevice::create(&cfg.bond), "create TAP", &cfg.bond)?;
        let index = ctx(net.link_named(&cfg.bond), "lookup", &cfg.bond)?.index;
        if let Some(mtu) = cfg.mtu {
            ctx(net.set_link(index, Change::Mtu(mtu)), &format!("set MTU {mtu}"), &cfg.bond)?;
        }
        let persist = dev.try_clone()?;
        let (datapath, why) = choose_datapath(cfg, &engine, dev, index, kept)?;
        let mut d = Daemon::assemble(cfg, engine, datapath, net, io, log, index)?;
        d.state = state;
        if let Err(e) = ctx(persist.set_persist(true), "make persistent", &cfg.bond) {
            d.shutdown();
            return Err(e);
        }
        // The engine's creation lines (the kernel's module-load messages) come first.
        d.apply_actions();
        let described = match why {
            Some(why) => format!("{}; {why})", d.datapath.describe().trim_end_matches(')')),
            None => d.datapath.describe(),
        };
        d.note(Level::Info, format!("{}: datapath: {described}", d.name));
        d.read_addresses();
        d.read_gateways();
        d.apply_actions();
        d.finish_start(&cfg.slaves)?;
        Ok(d)
    }

    /// Enslaves the configured slaves not yet in; if one cannot be, the bond is taken down.
    fn finish_start(&mut self, slaves: &[String]) -> anyhow::Result<()> {
        for s in slaves {
            if self.engine.slave_id(s).is_some() {
                continue;
            }
            if let Err(e) = self.enslave(s) {
                self.shutdown();
                return Err(e);
            }
        }
        self.life.started = true;
        self.save_state(None)
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
        let mut net = net;
        let bond = net.link(index).unwrap_or_default();
        Ok(Daemon {
            name: cfg.bond.clone(),
            index,
            bond,
            announcer: upper::Announcer::default(),
            engine,
            members: Vec::new(),
            datapath,
            net,
            io,
            poller,
            log,
            state: StateFile::new(&cfg.run_dir, &cfg.bond),
            notify: Notifier::from_env(),
            publisher: Publisher::new(&cfg.bond, &cfg.run_dir, cfg.metrics_dir.as_deref()),
            life: Life::default(),
        })
    }

    fn note(&mut self, level: Level, text: String) {
        self.log.note(level, text);
    }

    /// The supervisor hears that the bond is up, and holds bond0's TAP so that its carrier
    /// outlives this process.
    fn ready(&mut self) {
        if let Some((_, tap)) = self.datapath.handover().into_iter().find(|(name, _)| name == "tap") {
            self.notify.store("tap", tap);
        }
        let active = self.engine.active_slave().unwrap_or("none");
        self.notify.ready(&format!("{} slaves, active {active}", self.members.len()));
        self.life.next_ping = self.notify.watchdog_every.map(|every| now() + every);
    }

    /// Everything a successor needs, with `pending` (a slave about to be touched).
    fn snapshot(&self, pending: Option<&SavedSlave>) -> State {
        State {
            pid: std::process::id(),
            index: self.index,
            datapath: self.datapath.kind(),
            attach: self.datapath.attach_mode(),
            engine: self.engine.clone(),
            members: self.members.clone(),
            pending: pending.cloned(),
            started: self.life.started,
            generation: self.life.generation,
            adoptions: self.life.adoptions,
            history: Vec::new(),
        }
    }

    fn save_state(&self, pending: Option<&SavedSlave>) -> anyhow::Result<()> {
        self.state.save(&self.snapshot(pending))
    }

    /// The bond changed: the state file for a successor, the monitoring files for everyone.
    fn record(&mut self) {
        if let Err(e) = self.save_state(None) {
            self.note(Level::Warning, format!("{}: {e:#}", self.name));
        }
        self.publish();
    }

    /// Rewrites the monitoring files; what cannot be written is said once, until it changes.
    fn publish(&mut self) {
        let status = self.status();
        let problems = self.publisher.publish(&status);
        if problems != self.life.publish_problems {
            for p in &problems {
                self.note(Level::Warning, format!("{}: monitoring file: {p}", self.name));
            }
            self.life.publish_problems = problems;
        }
    }

    /// Runs until asked to stop, then restores every slave and removes bond0.
    pub fn run(mut self) -> anyhow::Result<()> {
        if let Err(e) = self.datapath.resume() {
            self.shutdown();
            anyhow::bail!("{}: start forwarding: {e}", self.name);
        }
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

    /// Takes the bond apart for good: every slave released and restored, the BPF objects
    /// unpinned, the supervisor told to let bond0's TAP go, and bond0 deleted.
    /// Every slave out. Converted interfaces first get the host's addresses and routes back
    /// while the bond still forwards for them, then leave the datapath before the engine
    /// stops forwarding: no frame of theirs meets a bond that no longer takes it, and the
    /// bond fails over to no other slave (whose announcements would draw their MAC away).
    pub(super) fn release_all(&mut self) {
        for m in self.members.iter().filter(|m| m.saved.carried.is_some()) {
            members::put_back(self.net.as_mut(), &mut self.log, &m.saved);
            self.datapath.detach(m.id.0);
        }
        let _ = self.engine.handle(now(), Input::Command(Command::ReleaseAll));
        self.apply_actions();
        for m in std::mem::take(&mut self.members).into_iter().filter(|m| m.saved.carried.is_none()) {
            self.datapath.detach(m.id.0);
            members::put_back(self.net.as_mut(), &mut self.log, &m.saved);
        }
    }

    fn shutdown(&mut self) {
        if let Some(why) = self.life.stop.take() {
            self.note(Level::Info, why);
        }
        self.release_all();
        self.datapath.remove();
        self.publisher.withdraw();
        self.notify.stopping();
        let _ = self.net.delete_link(self.index);
        self.state.remove();
    }
}

/// Opens the kernel datapath when asked or possible (its programs on tcx, else, on kernels
/// before 6.6, as cls_bpf filters), else the userspace one, and says why it fell back.
fn choose_datapath(
    cfg: &Config,
    engine: &Bond,
    dev: BondDevice,
    index: u32,
    kept: Kept,
) -> anyhow::Result<(Box<dyn Datapath>, Option<String>)> {
    let want = cfg.datapath;
    let settings = userspace_settings(cfg, engine);
    let all_active = settings.deliver_backups;
    let (modes, mut why): (&[AttachMode], Vec<String>) = match want {
        DatapathChoice::Userspace => (&[], vec!["asked for".into()]),
        _ if all_active => (&[], vec!["all_slaves_active needs the userspace datapath".into()]),
        DatapathChoice::Kernel => (&[AttachMode::Tcx], Vec::new()),
        DatapathChoice::KernelTc => (&[AttachMode::Tc], Vec::new()),
        DatapathChoice::Auto => (&[AttachMode::Tcx, AttachMode::Tc], Vec::new()),
    };
    for mode in modes {
        let tap = dev.try_clone()?;
        match datapath::open(Kind::Kernel, *mode, tap, index, Settings::default(), kept.pins_only()) {
            Ok(k) => return Ok((k, (!why.is_empty()).then(|| why.join("; ")))),
            Err(e) => why.push(format!("{} could not load: {e}", mode.describe())),
        }
    }
    let why = why.join("; ");
    if matches!(want, DatapathChoice::Kernel | DatapathChoice::KernelTc) {
        anyhow::bail!("{}: the kernel datapath: {why}", engine.name());
    }
    let userspace = datapath::open(Kind::Userspace, AttachMode::Tcx, dev, index, settings, kept);
    Ok((ctx(userspace, "open the userspace datapath", engine.name())?, Some(why)))
}

/// What the userspace datapath is asked for, by the bond's options and the daemon's.
fn userspace_settings(cfg: &Config, engine: &Bond) -> Settings {
    Settings { deliver_backups: engine.options().all_slaves_active(), threads: cfg.threads }
}
