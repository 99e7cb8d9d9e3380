//! What outlives the daemon's process, and how a new daemon finds it again.
//!
//! - Descriptors handed over by name: across a restart in place (`RBOND_FDS=tap=5,…`), from
//!   rbond's supervisor (the same variable), or from systemd's descriptor store
//!   (`LISTEN_FDS`, `LISTEN_FDNAMES`). Holding bond0's TAP keeps its carrier.
//! - BPF objects pinned in a bpffs (`/sys/fs/bpf/rbond/<netns>/<bond>/`): maps, programs and
//!   tcx links stay attached, and keep forwarding, with no process at all.
//!
//! Every part of the daemon takes its own by name instead of creating it anew, so nothing
//! that carries traffic is torn down.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::sys::{bpf, process};

/// rbond's own convention, `NAME=FD,…`.
pub const ENV: &str = "RBOND_FDS";
/// Where bpffs is normally mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// systemd's first passed descriptor.
const LISTEN_FDS_START: RawFd = 3;

#[derive(Default)]
pub struct Kept {
    fds: BTreeMap<String, OwnedFd>,
    pins: Option<Pins>,
}

impl Kept {
    /// The descriptors named in the environment, each checked to be open and named once. The
    /// variables are cleared so nothing started later mistakes itself for a successor.
    pub fn from_env() -> anyhow::Result<Kept> {
        if let Some(value) = std::env::var_os(ENV) {
            process::forget_env(ENV);
            return Kept::parse(&value.to_string_lossy());
        }
        let Some(n) = std::env::var("LISTEN_FDS").ok() else { return Ok(Kept::default()) };
        let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            process::forget_env(var);
        }
        if !for_us {
            return Ok(Kept::default());
        }
        let n: RawFd = n.parse().with_context(|| format!("LISTEN_FDS={n} is not a number"))?;
        let names: Vec<&str> = names.split(':').collect();
        let value: Vec<String> = (0..n)
            .map(|i| format!("{}={}", names.get(i as usize).unwrap_or(&"unknown"), LISTEN_FDS_START + i))
            .collect();
        Kept::parse(&value.join(","))
    }

    fn parse(value: &str) -> anyhow::Result<Kept> {
        let mut numbers: BTreeMap<RawFd, &str> = BTreeMap::new();
        let mut fds = BTreeMap::new();
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let (name, n) = item.split_once('=').with_context(|| format!("{ENV}: '{item}' is not NAME=FD"))?;
            let fd: RawFd = n.parse().with_context(|| format!("{ENV}: '{n}' is not a descriptor number"))?;
            if let Some(first) = numbers.insert(fd, name) {
                bail!("{ENV}: descriptor {fd} is handed over twice ({first} and {name})");
            }
            if fds.contains_key(name) {
                bail!("{ENV}: {name} is handed over twice");
            }
            let owned = process::inherit(fd).with_context(|| format!("handed-over descriptor {fd} ({name})"))?;
            fds.insert(name.to_string(), owned);
        }
        Ok(Kept { fds, pins: None })
    }

    /// From now on BPF objects are also looked for, and kept, in these pins.
    pub fn with_pins(mut self, pins: Option<Pins>) -> Kept {
        self.pins = pins;
        self
    }

    /// Takes the descriptor handed over under `name`, if any.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        self.fds.remove(name)
    }

    /// Takes a BPF object: handed over, else pinned, else `None`.
    pub fn take_bpf(&mut self, name: &str) -> Option<OwnedFd> {
        self.take(name).or_else(|| self.pins.as_ref().and_then(|p| p.get(name)))
    }

    /// Keeps a BPF object beyond this process (a pin), where a bpffs is available.
    pub fn keep_bpf(&self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.pins.as_ref().map_or(Ok(()), |p| p.put(name, fd))
    }

    /// Stops keeping a BPF object: once its last descriptor closes, it is gone (a link
    /// detaches its program).
    pub fn forget_bpf(&self, name: &str) {
        if let Some(p) = &self.pins {
            p.remove(name);
        }
    }

    /// The same pins, without the descriptors (for a second attempt at opening a datapath).
    pub fn pins_only(&self) -> Kept {
        Kept { fds: BTreeMap::new(), pins: self.pins.clone() }
    }

    /// Forgets every pin of this bond.
    pub fn forget_all(&self) {
        if let Some(p) = &self.pins {
            p.remove_all();
        }
    }

    /// The environment value that hands `fds` to a successor, each left open across exec.
    pub fn hand_on(fds: &[(String, BorrowedFd<'_>)]) -> io::Result<String> {
        for (_, fd) in fds {
            process::keep_across_exec(*fd, true)?;
        }
        Ok(fds.iter().map(|(name, fd)| format!("{name}={}", fd.as_raw_fd())).collect::<Vec<_>>().join(","))
    }

    /// Undoes `hand_on` when the exec did not happen.
    pub fn take_back(fds: &[(String, BorrowedFd<'_>)]) {
        for (_, fd) in fds {
            let _ = process::keep_across_exec(*fd, false);
        }
    }
}

/// One bond's directory in a bpffs.
#[derive(Clone)]
pub struct Pins {
    dir: PathBuf,
}

impl Pins {
    /// The bond's pin directory under the bpffs at `bpffs`, mounting one there when nothing
    /// is mounted and `mount` allows. Bonds of other network namespaces get their own
    /// directories.
    pub fn open(bpffs: &Path, bond: &str, mount: bool) -> anyhow::Result<Pins> {
        let is_bpffs =
            |p: &Path| nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC);
        if !is_bpffs(bpffs) {
            if !mount {
                bail!("{}: no bpffs is mounted there", bpffs.display());
            }
            std::fs::create_dir_all(bpffs).with_context(|| bpffs.display().to_string())?;
            nix::mount::mount(Some("bpf"), bpffs, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
                .with_context(|| format!("mount bpffs at {}", bpffs.display()))?;
        }
        let netns = std::fs::metadata("/proc/self/ns/net").context("/proc/self/ns/net")?.ino();
        let dir = bpffs.join("rbond").join(format!("net{netns}")).join(bond);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        Ok(Pins { dir })
    }

    fn get(&self, name: &str) -> Option<OwnedFd> {
        bpf::pinned(&self.dir.join(name)).ok()
    }

    fn put(&self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()> {
        let path = self.dir.join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| bpf::pin(fd, &path))
            .map_err(|e| io::Error::new(e.kind(), format!("pin {}: {e}", path.display())))
    }

    fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// Unpins everything of this bond.
    pub fn remove_all(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            entries.flatten().for_each(|e| drop(std::fs::remove_file(e.path())));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_must_be_open_and_unique() {
        let err = |v: &str| format!("{:#}", Kept::parse(v).err().expect(v));
        assert!(err("tap=9999").contains("handed-over descriptor 9999 (tap)"), "{}", err("tap=9999"));
        assert!(err("tap=1").contains("is a standard stream"));
        assert!(err("tap").contains("is not NAME=FD"));
        assert!(err("tap=x").contains("is not a descriptor number"));
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let n = f.as_raw_fd();
        assert!(err(&format!("a={n},b={n}")).contains(&format!("descriptor {n} is handed over twice (a and b)")));
        std::mem::forget(f); // `parse` took ownership of it above before failing on b
    }
}
