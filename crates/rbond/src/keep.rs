//! What a predecessor left us: descriptors handed over by name. A daemon restarting in place
//! passes them across exec (`RBOND_FDS=tap=5,map=7,…`); every part of the daemon then takes
//! its own by name instead of creating it anew, so nothing that carries traffic is torn down.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{Context, bail};

use crate::sys::process;

pub const ENV: &str = "RBOND_FDS";

#[derive(Default)]
pub struct Kept {
    fds: BTreeMap<String, OwnedFd>,
}

impl Kept {
    /// The descriptors named in the environment, each checked to be open and named once; the
    /// variable is cleared so nothing started later mistakes itself for a successor.
    pub fn from_env() -> anyhow::Result<Kept> {
        let Some(value) = std::env::var_os(ENV) else { return Ok(Kept::default()) };
        process::forget_env(ENV);
        Kept::parse(&value.to_string_lossy())
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
        Ok(Kept { fds })
    }

    /// Takes the descriptor handed over under `name`, if any.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        self.fds.remove(name)
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The environment value that hands `fds` to a successor, each left open across exec.
    pub fn hand_on(fds: &[(String, BorrowedFd<'_>)]) -> std::io::Result<String> {
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
