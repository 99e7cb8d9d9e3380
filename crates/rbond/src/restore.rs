//! What enslaving changed on each slave, how to put it back, and the state file that lets
//! the next start put it back after a crash.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rbond_core::Mac;
use serde::{Deserialize, Serialize};

use crate::netdev;

/// A slave as it was before rbond touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSlave {
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    pub mtu: u32,
    pub up: bool,
    pub ipv6_disabled: Option<String>,
}

impl SavedSlave {
    pub fn capture(name: &str) -> anyhow::Result<SavedSlave> {
        let ifindex = netdev::ctx(netdev::index(name), "no such interface", name)?;
        let mac = netdev::ctx(netdev::mac(name), "cannot be enslaved", name)?;
        Ok(SavedSlave {
            name: name.to_string(),
            ifindex,
            mac: mac.to_string(),
            mtu: netdev::ctx(netdev::mtu(name), "read MTU", name)?,
            up: netdev::ctx(netdev::is_up(name), "read flags", name)?,
            ipv6_disabled: netdev::ipv6_disabled(name),
        })
    }

    /// Puts everything back, returning what could not be (the interface may be gone).
    /// Nothing is touched if the name now belongs to another device.
    pub fn restore(&self) -> Vec<String> {
        if netdev::index(&self.name).ok() != Some(self.ifindex) {
            return Vec::new();
        }
        let mut failed = Vec::new();
        let mut step = |what: &str, r: io::Result<()>| {
            if let Err(e) = r {
                failed.push(format!("{}: {what}: {e}", self.name));
            }
        };
        step("set down", netdev::set_up(&self.name, false));
        if let Some(mac) = self.mac.parse::<Mac>().ok().filter(|m| netdev::mac(&self.name).ok() != Some(*m)) {
            step("restore MAC", netdev::set_mac(&self.name, mac));
        }
        if netdev::mtu(&self.name).ok() != Some(self.mtu) {
            step("restore MTU", netdev::set_mtu(&self.name, self.mtu));
        }
        if let Some(v) = &self.ipv6_disabled {
            step("restore disable_ipv6", netdev::set_ipv6_disabled(&self.name, v));
        }
        if self.up {
            step("set up", netdev::set_up(&self.name, true));
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
        fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, &self.path))
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))
    }

    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// A state left by a daemon that is no longer running, if any.
    pub fn leftover(&self) -> Option<State> {
        let state: State = serde_json::from_slice(&fs::read(&self.path).ok()?).ok()?;
        let alive = state.pid != 0 && Path::new(&format!("/proc/{}", state.pid)).exists() && state.pid != std::process::id();
        (!alive).then_some(state)
    }
}
