//! A datapath that moves nothing and remembers everything, for the daemon's unit tests:
//! which slaves it holds, which one is active, every frame sent and every membership asked,
//! the order they came in, with failures injected by operation.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::BorrowedFd;

use super::{Datapath, Kind, Membership, Port, Seen, Source};

#[derive(Default)]
pub struct FakeDatapath {
    pub attached: BTreeSet<u32>,
    pub active: Option<u32>,
    pub carrier: bool,
    pub sent: Vec<(u32, Vec<u8>)>,
    pub memberships: Vec<(u32, Membership, bool)>,
    /// Each switch, send and membership as it came, such as `set_active Some(3)` or `send 3`.
    pub calls: Vec<String>,
    /// Operations that fail: `attach`, `set_active`, `set_carrier`, `send`, `membership`.
    pub failing: Vec<&'static str>,
    /// What the next `on_readable` of each slave reports.
    pub arriving: Vec<(u32, Seen)>,
}

impl FakeDatapath {
    fn attempt(&self, op: &'static str) -> io::Result<()> {
        if self.failing.contains(&op) { Err(io::Error::from_raw_os_error(libc::ENOBUFS)) } else { Ok(()) }
    }
}

impl Datapath for FakeDatapath {
    fn kind(&self) -> Kind {
        Kind::Userspace
    }
    fn attach_mode(&self) -> super::AttachMode {
        super::AttachMode::Tcx
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.attempt("set_carrier")?;
        self.carrier = up;
        Ok(())
    }
    fn attach(&mut self, port: &Port) -> io::Result<()> {
        self.attempt("attach")?;
        self.attached.insert(port.ifindex);
        Ok(())
    }
    fn detach(&mut self, ifindex: u32) {
        self.attached.remove(&ifindex);
    }
    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()> {
        self.calls.push(format!("set_active {ifindex:?}"));
        self.attempt("set_active")?;
        self.active = ifindex;
        Ok(())
    }
    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        self.calls.push(format!("send {ifindex}"));
        self.attempt("send")?;
        self.sent.push((ifindex, frame.to_vec()));
        Ok(())
    }
    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
        self.calls.push(format!("membership {ifindex}"));
        self.attempt("membership")?;
        self.memberships.push((ifindex, what, add));
        Ok(())
    }
    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)> {
        Vec::new()
    }
    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen)) {
        let Source::Slave(i) = source else { return };
        for (_, what) in self.arriving.iter().filter(|(s, _)| *s == i) {
            seen(i, *what);
        }
        self.arriving.retain(|(s, _)| *s != i);
    }
    fn handover(&self) -> Vec<(String, BorrowedFd<'_>)> {
        Vec::new()
    }
    fn remove(&mut self) {
        self.attached.clear();
        self.active = None;
    }
}
