//! What enslaving changed on each slave and how to put it back, and the state file that
//! lets the next start put it back (or carry on) after a crash.

use std::fs;
use std::path::{Path, PathBuf};

use rbond_core::Mac;
use serde::{Deserialize, Serialize};

use crate::net::address::Address;
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
            ipv6_disabled: net.ipv6_disabled(name),
            addresses: addresses.into_iter().filter(|a| !a.is_link_local()).collect(),
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
        step("set down", net.set_link(self.ifindex, Change::Up(false)));
        if now.mac != Some(self.mac) {
            step("restore MAC", net.set_link(self.ifindex, Change::Mac(self.mac)));
        }
        if now.mtu != self.mtu {
            step("restore MTU", net.set_link(self.ifindex, Change::Mtu(self.mtu)));
        }
        if let Some(v) = &self.ipv6_disabled {
            step("restore disable_ipv6", net.set_ipv6_disabled(name, v));
        }
        let have = net.addresses(self.ifindex).unwrap_or_default();
        for a in self.addresses.iter().filter(|a| !have.iter().any(|h| h.addr == a.addr)) {
            step("restore address", net.add_address(self.ifindex, a));
        }
        if self.up {
            step("set up", net.set_link(self.ifindex, Change::Up(true)));
        }
        failed
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub slaves: Vec<SavedSlave>,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(run_dir: &Path, bond: &str) -> StateFile {
        StateFile { path: run_dir.join(format!("{bond}.state")) }
    }

    /// Written before any slave is touched, and atomically.
    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("state.tmp");
        let data = serde_json::to_vec_pretty(state)?;
        fs::write(&tmp, data)
            .and_then(|()| fs::rename(&tmp, &self.path))
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))
    }

    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// A state left by a daemon that is no longer running, if any.
    pub fn leftover(&self) -> Option<State> {
        let state: State = serde_json::from_slice(&fs::read(&self.path).ok()?).ok()?;
        let alive =
            state.pid != 0 && Path::new(&format!("/proc/{}", state.pid)).exists() && state.pid != std::process::id();
        (!alive).then_some(state)
    }
}
