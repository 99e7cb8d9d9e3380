//! One bond's daemon: a single poll loop that owns the engine and its edges. It turns
//! netlink events, frames and requests into engine inputs, and engine actions into syscalls;
//! it decides nothing about bonding itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rbond_core::{Action, Bond, Command, Input, Level, LinkInfo, Mac, MacTarget, Options, SlaveSpec};
use serde_json::{Value, json};

use crate::batch::{Batch, SLOTS};
use crate::control::{self, ControlServer, Request};
use crate::frames::{self, Seen};
use crate::link_watch::{LinkEvent, LinkWatch};
use crate::logger::Logger;
use crate::netdev;
use crate::packet_socket::PacketSocket;
use crate::restore::{SavedSlave, State, StateFile};
use crate::signals::Signals;
use crate::tap::{Tap, VNET_HDR_LEN};
use crate::kernel_datapath::KernelDatapath;
use crate::tcx;

mod handover;

/// Frames moved per descriptor per wake-up, so one busy link cannot starve the rest.
const BATCH: usize = 64;

/// Where frames are moved between bond0 and the active slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Datapath {
    /// The kernel if it can (tc/BPF), else userspace.
    Auto,
    /// tcx BPF redirects: frames never leave the kernel.
    Kernel,
    /// The daemon copies frames between the TAP and packet sockets.
    Userspace,
}

pub struct Config {
    pub bond: String,
    pub datapath: Datapath,
    pub slaves: Vec<String>,
    pub options: Vec<(String, String)>,
    pub run_dir: PathBuf,
    pub foreground: bool,
    /// The syslog socket (normally /dev/log).
    pub syslog: PathBuf,
}

struct Member {
    name: String,
    ifindex: u32,
    sock: PacketSocket,
    ingress: tcx::Link,
    saved: SavedSlave,
    mac: Mac,
    carrier: bool,
    /// Its carrier events may come late, so ETHTOOL_GLINK is read every tick.
    poll_link: bool,
    last_rx_note: Option<rbond_core::Instant>,
}

pub struct Daemon {
    name: String,
    bond: Bond,
    tap: Tap,
    bond_index: u32,
    members: Vec<Member>,
    active: Option<String>,
    /// Present when the kernel forwards (tc/BPF); the daemon then only watches and steers.
    kernel: Option<KernelDatapath>,
    watch: LinkWatch,
    control: ControlServer,
    log: Logger,
    signals: Signals,
    state: StateFile,
    epoch: std::time::Instant,
    next_link_poll: rbond_core::Instant,
    stop: Option<String>,
    /// Asked to re-execute in place (see `handover`).
    restart: bool,
    /// How many times this bond was carried on in place, and why the last attempt failed.
    generation: u32,
    restart_error: Option<String>,
    run_dir: PathBuf,
    batch: Batch,
}

/// Builds the engine's options in the order given, failing on the first bad one.
pub fn engine_options(pairs: &[(String, String)]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    for (k, v) in pairs {
        o.apply(k, v).with_context(|| format!("option {k}={v}"))?;
    }
    Ok(o)
}

/// Restores a slave, logging whatever could not be put back.
fn put_back(log: &mut Logger, saved: &SavedSlave) {
    for e in saved.restore() {
        log.note(Level::Warning, e);
    }
}

/// Puts back slaves a crashed daemon for this bond left behind.
pub fn recover(run_dir: &std::path::Path, bond: &str, log: &mut Logger) {
    let file = StateFile::new(run_dir, bond);
    if let Some(state) = file.leftover() {
        for s in &state.slaves {
            log.note(Level::Warning, format!("{bond}: restoring {} left by a previous daemon", s.name));
            put_back(log, s);
        }
        file.remove();
    }
}

impl Daemon {
    /// Starts the bond, or carries on the one a predecessor handed over (`rbond restart`).
    pub fn start(cfg: Config) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&cfg.run_dir).with_context(|| cfg.run_dir.display().to_string())?;
        if let Some(path) = handover::pending() {
            return Daemon::adopt(&cfg, &path);
        }
        let mut log = Logger::new(&cfg.bond, cfg.foreground, &cfg.syslog);
        recover(&cfg.run_dir, &cfg.bond, &mut log);
        let bond = Bond::new(&cfg.bond, engine_options(&cfg.options)?)?;
        let signals = Signals::block_and_open()?;
        let watch = LinkWatch::open().context("netlink")?;
        let tap = Tap::create(&cfg.bond)?;
        let bond_index = netdev::ctx(netdev::index(&cfg.bond), "lookup", &cfg.bond)?;
        let control = ControlServer::bind(control::socket_path(&cfg.run_dir, &cfg.bond))?;
        let state = StateFile::new(&cfg.run_dir, &cfg.bond);
        let mut d = Daemon {
            name: cfg.bond.clone(),
            bond,
            tap,
            bond_index,
            members: Vec::new(),
            active: None,
            kernel: None,
            watch,
            control,
            log,
            signals,
            state,
            epoch: std::time::Instant::now(),
            next_link_poll: rbond_core::Instant::ZERO,
            stop: None,
            restart: false,
            generation: 0,
            restart_error: None,
            run_dir: cfg.run_dir.clone(),
            batch: Batch::default(),
        };
        // The engine's creation lines (the kernel's module-load messages) come first.
        d.apply_actions();
        d.choose_datapath(cfg.datapath)?;
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

    /// Loads the kernel datapath when asked or possible, saying which one is in use.
    fn choose_datapath(&mut self, want: Datapath) -> anyhow::Result<()> {
        let all_active = self.bond.options().all_slaves_active();
        let kernel = match want {
            Datapath::Userspace => Err("asked for".to_string()),
            _ if all_active => Err("all_slaves_active needs the userspace datapath".to_string()),
            _ => KernelDatapath::load(self.bond_index).map_err(|e| format!("the kernel datapath could not load: {e}")),
        };
        match (kernel, want) {
            (Ok(k), _) => {
                self.kernel = Some(k);
                self.log.note(Level::Info, format!("{}: datapath: kernel (tc/BPF redirect)", self.name));
            }
            (Err(why), Datapath::Kernel) => anyhow::bail!("{}: {why}", self.name),
            (Err(why), _) => self.log.note(Level::Info, format!("{}: datapath: userspace (TAP and packet sockets; {why})", self.name)),
        }
        Ok(())
    }

    fn now(&self) -> rbond_core::Instant {
        rbond_core::Instant::from_duration(self.epoch.elapsed())
    }

    /// Records every member, and `pending` (a slave about to be touched) with them.
    fn save_state(&self, pending: Option<&SavedSlave>) -> anyhow::Result<()> {
        let slaves = self.members.iter().map(|m| &m.saved).chain(pending).cloned().collect();
        self.state.save(&State { pid: std::process::id(), slaves })
    }

    /// Takes an interface into the bond: recorded first, then down, MTU, no IPv6, packet
    /// socket and ingress drop, the engine's decision, and up again.
    fn enslave(&mut self, name: &str) -> anyhow::Result<()> {
        if self.members.iter().any(|m| m.name == name) {
            anyhow::bail!("{name} is already a slave of {}", self.name);
        }
        if name == self.name {
            anyhow::bail!("cannot enslave {name} to itself");
        }
        let saved = SavedSlave::capture(name)?;
        self.save_state(Some(&saved))?;
        match self.take_over(name, &saved) {
            Ok(member) => {
                self.members.push(member);
                self.apply_actions();
                netdev::ctx(netdev::set_up(name, true), "set up", name)?;
                Ok(())
            }
            Err(e) => {
                put_back(&mut self.log, &saved);
                self.save_state(None)?;
                Err(e)
            }
        }
    }

    fn take_over(&mut self, name: &str, saved: &SavedSlave) -> anyhow::Result<Member> {
        netdev::ctx(netdev::set_up(name, false), "set down", name)?;
        let mtu = netdev::ctx(netdev::mtu(&self.name), "read MTU", &self.name)?;
        if saved.mtu != mtu {
            netdev::ctx(netdev::set_mtu(name, mtu), "set MTU", name)?;
        }
        if saved.ipv6_disabled.is_some() {
            netdev::ctx(netdev::set_ipv6_disabled(name, "1"), "disable IPv6", name)?;
        }
        // A slave keeps no address of its own: the host must not route through it.
        for (ip, prefix) in saved.addresses.iter().filter_map(|a| crate::address_ops::parse(a)) {
            if ip.is_ipv4() {
                netdev::ctx(crate::address_ops::delete(saved.ifindex, ip, prefix), "remove address", name)?;
            }
        }
        let sock = netdev::ctx(PacketSocket::open(saved.ifindex), "open packet socket", name)?;
        let ingress = match &self.kernel {
            Some(k) => {
                netdev::ctx(sock.arp_only(), "filter packet socket", name)?;
                netdev::ctx(k.attach_slave(saved.ifindex), "attach slave program", name)?
            }
            None => netdev::ctx(tcx::drop_ingress(saved.ifindex), "attach ingress drop", name)?,
        };
        let mac: Mac = saved.mac.parse()?;
        let spec = SlaveSpec { name: name.to_string(), mac, link: LinkInfo::down() };
        self.bond.handle(self.now(), Input::Enslave(spec))?;
        Ok(Member {
            name: name.to_string(),
            ifindex: saved.ifindex,
            sock,
            ingress,
            saved: saved.clone(),
            mac,
            carrier: false,
            poll_link: netdev::carrier_events_may_lag(name, saved.ifindex),
            last_rx_note: None,
        })
    }

    /// Takes a slave out: it leaves the member list before the engine's actions are applied,
    /// so nothing is done to a device that may already be gone; restoring puts it back.
    fn release(&mut self, name: &str) -> anyhow::Result<()> {
        self.bond.handle(self.now(), Input::Release(name.to_string()))?;
        let pos = self.members.iter().position(|m| m.name == name);
        let member = pos.map(|p| self.members.remove(p));
        self.apply_actions();
        if let Some(m) = member {
            drop(m.sock);
            drop(m.ingress);
            put_back(&mut self.log, &m.saved);
        }
        self.save_state(None)
    }

    fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn apply_actions(&mut self) {
        while let Some(a) = self.bond.poll_action() {
            if let Err(e) = self.apply(a) {
                self.log.note(Level::Warning, format!("{}: {e}", self.name));
            }
        }
        for line in self.log.take_pending() {
            self.control.broadcast(&serde_json::to_value(&line).unwrap_or(Value::Null));
        }
    }

    fn apply(&mut self, a: Action) -> anyhow::Result<()> {
        match a {
            Action::Activate { slave } => {
                if let Some(m) = self.member(&slave) {
                    m.sock.set_allmulti(true)?;
                    if let Some(k) = &self.kernel {
                        k.set_active(Some(m.ifindex))?;
                    }
                }
                self.active = Some(slave);
            }
            Action::Deactivate { slave } => {
                if let Some(m) = self.member(&slave) {
                    m.sock.set_allmulti(false)?;
                }
                if self.active.as_deref() == Some(slave.as_str()) {
                    self.active = None;
                    if let Some(k) = &self.kernel {
                        k.set_active(None)?;
                    }
                }
            }
            Action::SetMac { target: MacTarget::Bond, mac } => netdev::ctx(netdev::set_mac(&self.name, mac), "set MAC", &self.name)?,
            Action::SetMac { target: MacTarget::Slave(name), mac } => self.set_slave_mac(&name, mac)?,
            Action::SetCarrier { up } => self.tap.set_carrier(up)?,
            Action::SendArpProbe { slave, target, source } => {
                if let Some(m) = self.member(&slave) {
                    m.sock.send(&frames::arp_probe(m.mac, source, target))?;
                }
            }
            Action::NotifyPeers { slave } => self.notify_peers(&slave)?,
            Action::Log(e) => self.log.event(e),
        }
        Ok(())
    }

    /// Slaves released in the same step are skipped: restoring puts their own MAC back.
    fn set_slave_mac(&mut self, name: &str, mac: Mac) -> anyhow::Result<()> {
        let Some(m) = self.members.iter_mut().find(|m| m.name == name) else { return Ok(()) };
        if netdev::set_mac(name, mac).is_err() {
            // Drivers that cannot change a live address take it while down.
            let up = netdev::is_up(name).unwrap_or(false);
            netdev::ctx(netdev::set_up(name, false), "set down", name)?;
            netdev::ctx(netdev::set_mac(name, mac), "set MAC", name)?;
            if up {
                netdev::ctx(netdev::set_up(name, true), "set up", name)?;
            }
        }
        m.mac = mac;
        Ok(())
    }

    fn notify_peers(&self, slave: &str) -> anyhow::Result<()> {
        let Some(m) = self.member(slave) else { return Ok(()) };
        let mac = netdev::mac(&self.name)?;
        let (v4, v6) = netdev::addresses(&self.name);
        for a in v4 {
            m.sock.send(&frames::gratuitous_arp(mac, a.addr))?;
        }
        for (a, _) in v6 {
            m.sock.send(&frames::unsolicited_na(mac, a))?;
        }
        Ok(())
    }

    /// Runs until asked to stop, then restores every slave and removes bond0.
    pub fn run(mut self) -> anyhow::Result<()> {
        while self.stop.is_none() {
            self.turn();
            if std::mem::take(&mut self.restart) {
                let e = format!("{:#}", self.restart_in_place());
                self.log.note(Level::Warning, format!("{}: restart failed, carrying on: {e}", self.name));
                self.restart_error = Some(e);
                self.apply_actions();
            }
        }
        self.shutdown();
        Ok(())
    }

    fn timeout_ms(&self) -> i32 {
        let now = self.now();
        let polling = self.members.iter().any(|m| m.poll_link);
        let next = [self.bond.poll_timeout(), Some(self.next_link_poll).filter(|_| polling)];
        // Nothing scheduled: wait for events (a second at most).
        let Some(at) = next.into_iter().flatten().min() else { return 1000 };
        // Rounded up: a deadline less than a millisecond away must not become poll(0), which
        // would spin until it arrives.
        at.saturating_since(now).as_micros().div_ceil(1000).min(1000) as i32
    }

    /// One wake-up: wait for something, then serve everything that is ready.
    fn turn(&mut self) {
        let mut fds = vec![
            libc::pollfd { fd: self.signals.raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.watch.raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.tap.raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        fds.extend(self.members.iter().map(|m| libc::pollfd { fd: m.sock.raw_fd(), events: libc::POLLIN, revents: 0 }));
        let slaves_end = fds.len();
        fds.extend(self.control.poll_fds());
        let timeout = self.timeout_ms();
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let ready = |i: usize| fds[i].revents != 0;
        if let Some(sig) = ready(0).then(|| self.signals.read()).flatten() {
            self.stop = Some(format!("{}: stopping on signal {sig}", self.name));
        }
        if ready(1) {
            let events = self.watch.drain();
            for ev in events.links {
                self.link_event(ev);
            }
            if events.addresses {
                self.read_addresses();
            }
        }
        if ready(2) {
            self.pump_bond();
        }
        for i in 3..slaves_end {
            if ready(i) && i - 3 < self.members.len() {
                self.pump_slave(i - 3);
            }
        }
        if fds[slaves_end..].iter().any(|f| f.revents != 0) {
            self.serve_control();
            self.control.reap();
        }
        self.timers();
        self.apply_actions();
    }

    /// bond0 → the active slave, a batch at a time. With no active slave frames are dropped.
    fn pump_bond(&mut self) {
        let out = self.active.as_deref().and_then(|a| self.members.iter().position(|m| m.name == a));
        for _ in 0..BATCH / SLOTS {
            self.batch.clear();
            while !self.batch.is_full() {
                let Ok(Some(n)) = self.tap.read(self.batch.slot()) else { break };
                self.batch.commit(n);
            }
            if let Some(i) = out.filter(|_| !self.batch.is_empty()) {
                let _ = self.batch.send(self.members[i].sock.raw_fd());
            }
            if !self.batch.is_full() {
                break; // the TAP is drained
            }
        }
    }

    /// A slave → bond0 if it is the active one; everything is shown to the ARP monitor.
    fn pump_slave(&mut self, i: usize) {
        let arp_monitor = self.bond.options().arp_interval() > 0;
        // With the kernel datapath every frame is already on its way (or dropped).
        let deliver = self.kernel.is_none()
            && (self.bond.options().all_slaves_active() || self.active.as_deref() == Some(self.members[i].name.as_str()));
        for _ in 0..BATCH / SLOTS {
            let Ok(n) = self.batch.receive(self.members[i].sock.raw_fd()) else { break };
            // What each frame was, kept on the stack until the batch's buffers are free again.
            let mut seen = [Seen::Other; SLOTS];
            for (what, frame) in seen.iter_mut().zip(self.batch.frames()) {
                *what = frames::inspect(frame.get(VNET_HDR_LEN..).unwrap_or_default());
                if deliver && *what != Seen::Malformed {
                    let _ = self.tap.write(frame);
                }
            }
            for what in seen.into_iter().take(n).filter(|w| *w != Seen::Other || arp_monitor) {
                self.watch_frame(i, what);
            }
            if n < SLOTS {
                break; // the socket is drained
            }
        }
    }

    /// Shows a received frame to the engine: ARP and malformed frames always, other traffic
    /// at most every 10 ms (enough for the ARP monitor's "heard something lately").
    fn watch_frame(&mut self, i: usize, what: Seen) {
        let now = self.now();
        let slave = self.members[i].name.clone();
        let input = match what {
            Seen::Arp(frame) => Input::Arp { slave, frame },
            Seen::Malformed => Input::BadFrame { slave },
            Seen::Other if self.members[i].last_rx_note.is_none_or(|t| now.saturating_since(t) > Duration::from_millis(10)) => {
                self.members[i].last_rx_note = Some(now);
                Input::Rx { slave }
            }
            Seen::Other => return,
        };
        drop(self.bond.handle(now, input));
    }

    fn link_event(&mut self, ev: LinkEvent) {
        if ev.index == self.bond_index {
            if ev.removed {
                self.stop = Some(format!("{}: the bond device was deleted; restoring slaves and exiting", self.name));
                return;
            }
            let cmd = if ev.admin_up { Command::Up } else { Command::Down };
            let _ = self.bond.handle(self.now(), Input::Command(cmd));
            return;
        }
        let Some(m) = self.members.iter().find(|m| m.ifindex == ev.index) else { return };
        let name = m.name.clone();
        let renamed = ev.name.as_deref().is_some_and(|n| n != name);
        if ev.removed || renamed {
            let why = if ev.removed { "has gone (deleted or moved to another namespace)" } else { "was renamed" };
            self.log.note(Level::Warning, format!("{}: {name} {why}, releasing it", self.name));
            let _ = self.release(&name);
            return;
        }
        self.carrier_seen(&name, ev.lower_up);
    }

    fn carrier_seen(&mut self, name: &str, carrier: bool) {
        let Some(m) = self.members.iter_mut().find(|m| m.name == name) else { return };
        if m.carrier == carrier {
            return;
        }
        m.carrier = carrier;
        let link = if carrier { LinkInfo::up() } else { LinkInfo::down() };
        let _ = self.bond.handle(self.now(), Input::Link { slave: name.to_string(), link });
    }

    fn timers(&mut self) {
        let now = self.now();
        // Links are read when the engine has work due (so its pass sees the truth) and at
        // least every miimon: one wake-up serves both.
        let engine_due = self.bond.poll_timeout().is_some_and(|t| t <= now);
        if engine_due || now >= self.next_link_poll {
            self.poll_links(now);
        }
        self.bond.handle_timeout(now);
    }

    /// Netlink carrier events can arrive up to a second late on physical NICs and TAPs (the
    /// kernel batches them); ETHTOOL_GLINK tells the truth at once. It costs the kernel's
    /// rtnl lock, so it is read only where events may lag.
    fn poll_links(&mut self, now: rbond_core::Instant) {
        let names: Vec<String> = self.members.iter().filter(|m| m.poll_link).map(|m| m.name.clone()).collect();
        for n in names {
            if let Ok(up) = netdev::link_detected(&n) {
                self.carrier_seen(&n, up);
            }
        }
        let miimon = self.bond.options().miimon();
        let every = if miimon > 0 { u64::from(miimon) } else { 100 };
        self.next_link_poll = now + Duration::from_millis(every);
    }

    /// bond0's IPv4 addresses, for the ARP monitor's probe sources and validation.
    fn read_addresses(&mut self) {
        let (v4, _) = netdev::addresses(&self.name);
        let _ = self.bond.handle(self.now(), Input::Addresses(v4));
    }

    /// A reply describes the bond as it is on the wire: whatever the engine decided before
    /// or because of a request is carried out first. (Answering first let a client see an
    /// active slave before the datapath used it, and its first ARP request was dropped.)
    fn serve_control(&mut self) {
        self.apply_actions();
        for (id, req) in self.control.service() {
            let reply = match req {
                Ok(r) => self.request(id, r),
                Err(e) => control::error(e),
            };
            self.apply_actions();
            self.control.reply(id, &reply);
        }
    }

    fn request(&mut self, id: usize, req: Request) -> Value {
        let now = self.now();
        let r: anyhow::Result<Value> = match req {
            Request::Status => {
                let report = self.bond.report();
                let (generation, restart_error) = (self.generation, &self.restart_error);
                Ok(json!({ "text": report.proc_text(), "report": report, "generation": generation, "restart_error": restart_error }))
            }
            Request::Get { option } => match self.bond.report().sysfs(&option) {
                Some(v) => Ok(json!({ "value": v })),
                None => Err(anyhow::anyhow!("unknown option {option}")),
            },
            Request::Set { option, value } => self.bond.set_option(now, &option, &value).map(|()| json!({})).map_err(Into::into),
            Request::Enslave { slave } => self.enslave(&slave).map(|()| json!({})),
            Request::Release { slave } => self.release(&slave).map(|()| json!({})),
            Request::SetActive { slave } => {
                self.bond.handle(now, Input::Command(Command::ChangeActive(slave))).map(|()| json!({})).map_err(Into::into)
            }
            Request::Events { follow } => {
                let lines: Vec<&crate::logger::LogLine> = self.log.history().collect();
                let v = json!({ "lines": lines });
                if follow {
                    self.control.follow(id);
                    return control::ok(v);
                }
                Ok(v)
            }
            Request::Restart => {
                self.restart = true;
                Ok(json!({ "pid": std::process::id(), "generation": self.generation }))
            }
            Request::Down => {
                self.stop = Some(format!("{}: stopping on request", self.name));
                Ok(json!({}))
            }
        };
        self.control.finish(id);
        match r {
            Ok(v) => control::ok(v),
            Err(e) => control::error(e),
        }
    }

    /// Releases every slave (restoring each) and lets bond0 disappear with its descriptor.
    fn shutdown(&mut self) {
        if let Some(why) = self.stop.take() {
            self.log.note(Level::Info, why);
        }
        let _ = self.bond.handle(self.now(), Input::Command(Command::ReleaseAll));
        self.apply_actions();
        for m in self.members.drain(..) {
            put_back(&mut self.log, &m.saved);
        }
        self.state.remove();
    }
}
