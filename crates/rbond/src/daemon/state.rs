//! What enslaving changed on each slave and how to put it back, and the state file that
//! lets the next start put it back (or carry on) after a crash.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::FlockArg;
use rbond_core::{Bond, Mac};
use serde::{Deserialize, Serialize};

use super::members::Member;
use crate::control::LogLine;
use crate::datapath::{AttachMode, Kind};
use crate::net::address::{Address, IFA_F_NODAD};
use crate::net::carried::{Route, Rule};
use crate::net::link::Change;
use crate::net::{Netdev, ctx};

/// A slave as it was before rbond touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSlave {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    pub mtu: u32,
    pub up: bool,
    pub ipv6_disabled: Option<String>,
    /// Its own addresses (IPv6 link-local ones come back by themselves).
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Set when it was converted in place: it carried the host's addresses, and they went to
    /// the bond with these routes and rules, without the interface ever going down.
    #[serde(default)]
    pub carried: Option<Carried>,
}

/// What moved from a live interface to its bond besides the addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    pub bond: String,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

/// An address as it moves between interfaces: with no duplicate address detection for IPv6
/// (it was in use a moment ago, and a tentative address cannot be a source), and its label
/// renamed (a label must start with its interface's name).
pub fn moving(a: &Address, from: &str, to: &str) -> Address {
    let mut a = a.clone();
    if a.addr.is_ipv6() {
        a.flags |= IFA_F_NODAD;
    }
    a.label = a.label.map(|l| l.strip_prefix(from).map_or(l.clone(), |rest| format!("{to}{rest}")));
    a
}

impl SavedSlave {
    pub fn capture(net: &mut dyn Netdev, name: &str) -> anyhow::Result<SavedSlave> {
        let link = ctx(net.link_named(name), "no such interface", name)?;
        let mac = link.mac.ok_or_else(|| anyhow::anyhow!("{name}: cannot be enslaved: not an Ethernet interface"))?;
        let addresses = ctx(net.addresses(link.index), "read addresses", name)?;
        Ok(SavedSlave {
            name: name.to_string(),
            ifindex: link.index,
            mac,
            mtu: link.mtu,
            up: link.up,
            ipv6_disabled: net.ipv6_conf(name, "disable_ipv6"),
            addresses: addresses.into_iter().filter(|a| !a.is_link_local()).collect(),
            carried: None,
        })
    }

    /// Puts everything back, returning what could not be. The device is found by its index,
    /// so a renamed slave is restored under its new name; one that is gone is left alone.
    pub fn restore(&self, net: &mut dyn Netdev) -> Vec<String> {
        let Ok(now) = net.link(self.ifindex) else { return Vec::new() };
        let name = now.name.as_str();
        let mut failed = Vec::new();
        let mut step = |what: &str, r: std::io::Result<()>| {
            if let Err(e) = r {
                failed.push(format!("{name}: {what}: {e}"));
            }
        };
        // A converted interface stays up: it may be the host's only way in.
        if self.carried.is_none() {
            step("set down", net.set_link(self.ifindex, Change::Up(false)));
        }
        if now.mac != Some(self.mac) {
            step("restore MAC", net.set_link(self.ifindex, Change::Mac(self.mac)));
        }
        if now.mtu != self.mtu {
            step("restore MTU", net.set_link(self.ifindex, Change::Mtu(self.mtu)));
        }
        // The bond a converted interface gave its configuration to, if it is still there.
        let bond = self.carried.as_ref().and_then(|c| net.link_named(&c.bond).ok());
        if let Some(v) = &self.ipv6_disabled {
            // A converted interface's link-local address is the bond's too (same MAC): the
            // bond gives it up first, or the interface's duplicate address detection would
            // meet the bond's and fail for good.
            if let Some(bond) = &bond {
                for ll in net.addresses(bond.index).unwrap_or_default().iter().filter(|a| a.is_link_local()) {
                    step("free the link-local address", net.delete_address(bond.index, ll));
                }
            }
            step("restore disable_ipv6", net.set_ipv6_conf(name, "disable_ipv6", v));
        }
        let have = net.addresses(self.ifindex).unwrap_or_default();
        for a in self.addresses.iter().filter(|a| !have.iter().any(|h| h.addr == a.addr)) {
            let a = match &self.carried {
                Some(c) => moving(a, &c.bond, name),
                None => a.clone(),
            };
            step("restore address", net.add_address(self.ifindex, &a));
        }
        if let Some(c) = &self.carried {
            // The routes' next hops are known on the bond; eth0 learns them before the routes
            // move, since answers to its own questions would still arrive through the bond.
            if let Some(bond) = &bond {
                step("copy neighbours", net.copy_neighbours(bond.index, self.ifindex));
            }
            for r in &c.routes {
                step(&format!("restore route {}", r.show(name)), net.move_route(r, self.ifindex, self.ifindex));
            }
            for r in &c.rules {
                step(&format!("restore rule {}", r.show(name)), net.move_rule(r, &c.bond, name));
            }
            if let Some(bond) = &bond {
                step(&format!("withdraw {}'s on-link routes", c.bond), net.drop_prefix_routes(bond.index));
            }
        }
        if self.up {
            step("set up", net.set_link(self.ifindex, Change::Up(true)));
        }
        failed
    }
}

/// Everything a new daemon needs to carry on this bond, or to put everything back: written
/// atomically before a slave is touched, and after every change the engine makes or an
/// option written at run time.
#[derive(Serialize, Deserialize)]
pub(super) struct State {
    /// The daemon that wrote it.
    pub(super) pid: u32,
    /// bond0's interface index: a device of that name with another index is not ours.
    pub(super) index: u32,
    pub(super) datapath: Kind,
    /// How its programs are hooked in.
    #[serde(default)]
    pub(super) attach: AttachMode,
    pub(super) engine: Bond,
    pub(super) members: Vec<Member>,
    /// A slave being enslaved: perhaps touched already, not yet a member.
    #[serde(default)]
    pub(super) pending: Option<SavedSlave>,
    /// Whether the daemon finished its start (every configured slave in); a successor
    /// finishes one that did not.
    #[serde(default)]
    pub(super) started: bool,
    /// Restarts in place, and takeovers of a bond whose daemon died.
    #[serde(default)]
    pub(super) generation: u32,
    #[serde(default)]
    pub(super) adoptions: u32,
    /// Only for a restart in place: the log history the successor carries on.
    #[serde(default)]
    pub(super) history: Vec<LogLine>,
}

impl State {
    /// Every slave rbond has touched, as it was before.
    pub(super) fn saved(&self) -> impl Iterator<Item = &SavedSlave> {
        self.members.iter().map(|m| &m.saved).chain(&self.pending)
    }
}

/// `<run_dir>/<bond>.state`, and the lock that says whether a daemon owns it.
pub struct StateFile {
    path: PathBuf,
    lock: Option<Lock>,
}

impl StateFile {
    pub fn new(run_dir: &Path, bond: &str) -> StateFile {
        StateFile { path: run_dir.join(format!("{bond}.state")), lock: None }
    }

    pub(super) fn save(&self, state: &State) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("state.tmp");
        let data = serde_json::to_vec(state)?;
        fs::write(&tmp, data)
            .and_then(|()| fs::rename(&tmp, &self.path))
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))
    }

    /// The state a daemon left, if any. One that cannot be read is an error naming the file,
    /// and nothing may be touched then: without it nobody knows what to put back.
    pub(super) fn load(&self) -> anyhow::Result<Option<State>> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("{}: {e}", self.path.display()),
        };
        serde_json::from_slice(&data).map(Some).map_err(|e| {
            anyhow::anyhow!(
                "{}: unreadable ({e}); nothing was touched (move it away to start afresh)",
                self.path.display()
            )
        })
    }

    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// Takes the bond's lock, or the one a predecessor handed over (`held`). A daemon holds it
    /// for as long as it lives and the kernel drops it when the process dies, so a dead
    /// daemon's files never pass for a live one.
    pub fn lock(&mut self, held: Option<OwnedFd>) -> anyhow::Result<()> {
        let path = self.path.with_extension("lock");
        let file = match held {
            Some(fd) => fs::File::from(fd),
            None => fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        };
        let lock = Lock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| anyhow::anyhow!("a daemon for this bond is already running ({} is locked)", path.display()))?;
        self.lock = Some(lock);
        Ok(())
    }

    /// The other bond of ours (by its state file beside this one) that has `ifindex` as a
    /// slave, or is enslaving it.
    pub(super) fn owner_of(&self, ifindex: u32) -> Option<String> {
        let dir = self.path.parent()?;
        let ours = self.path.file_name()?;
        let files = fs::read_dir(dir).ok()?.flatten().map(|e| e.path());
        let others = files.filter(|p| p.extension().is_some_and(|x| x == "state") && p.file_name() != Some(ours));
        others.into_iter().find_map(|p| {
            let state: State = serde_json::from_slice(&fs::read(&p).ok()?).ok()?;
            state.saved().any(|s| s.ifindex == ifindex).then_some(())?;
            Some(p.file_stem()?.to_string_lossy().to_string())
        })
    }

    /// The lock's descriptor, to hand to a successor.
    pub fn lock_fd(&self) -> Option<BorrowedFd<'_>> {
        self.lock.as_ref().map(|l| l.as_fd())
    }
}

/// An exclusive lock on a file, held until dropped.
type Lock = nix::fcntl::Flock<fs::File>;
