//! What enslaving changed on each slave, how to put it back, and the state file that lets
//! the next start put it back after a crash.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rbond_core::Mac;
use serde::{Deserialize, Serialize};

use crate::{address_ops, netdev};

fn own_addresses(name: &str) -> Vec<String> {
    let (v4, v6) = netdev::addresses(name);
    let v4 = v4.into_iter().map(|a| format!("{}/{}", a.addr, a.prefix));
    let v6 = v6.into_iter().filter(|(a, _)| a.segments()[0] & 0xffc0 != 0xfe80).map(|(a, p)| format!("{a}/{p}"));
    v4.chain(v6).collect()
}

/// A slave as it was before rbond touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSlave {
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    pub mtu: u32,
    pub up: bool,
    pub ipv6_disabled: Option<String>,
    /// Its own addresses as `addr/prefix` (IPv6 link-local ones come back by themselves).
    #[serde(default)]
    pub addresses: Vec<String>,
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
            addresses: own_addresses(name),
        })
    }

    /// Puts everything back, returning what could not be. The device is found by its index,
    /// so a renamed slave is restored under its new name; one that is gone is left alone.
    pub fn restore(&self) -> Vec<String> {
        let Some(name) = netdev::name_of(self.ifindex) else { return Vec::new() };
        let name = name.as_str();
        let mut failed = Vec::new();
        let mut step = |what: &str, r: io::Result<()>| {
            if let Err(e) = r {
                failed.push(format!("{name}: {what}: {e}"));
            }
        };
        step("set down", netdev::set_up(name, false));
        if let Some(mac) = self.mac.parse::<Mac>().ok().filter(|m| netdev::mac(name).ok() != Some(*m)) {
            step("restore MAC", netdev::set_mac(name, mac));
        }
        if netdev::mtu(name).ok() != Some(self.mtu) {
            step("restore MTU", netdev::set_mtu(name, self.mtu));
        }
        if let Some(v) = &self.ipv6_disabled {
            step("restore disable_ipv6", netdev::set_ipv6_disabled(name, v));
        }
        let have = own_addresses(name);
        for a in self.addresses.iter().filter(|a| !have.contains(a)) {
            if let Some((ip, prefix)) = address_ops::parse(a) {
                step("restore address", address_ops::add(self.ifindex, ip, prefix));
            }
        }
        if self.up {
            step("set up", netdev::set_up(name, true));
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
