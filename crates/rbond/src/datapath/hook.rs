//! Where the datapath's BPF programs sit on an interface, in either of the kernel's two ways.
//! tcx links (Linux 6.6 and later) are descriptor objects, kept beyond the process by pinning
//! them; cls_bpf filters on a clsact qdisc (Linux 4.5 and later) are netlink objects the kernel
//! keeps until they are deleted. Either way the programs go on running with no process.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::keep::Kept;
use crate::net::rtnl::Rtnl;
pub use crate::net::tc::Hook;
use crate::sys::bpf;

/// How programs are hooked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// tcx links: the modern way, where the kernel has it.
    #[default]
    Tcx,
    /// cls_bpf filters on clsact: every kernel since 4.5.
    Tc,
}

impl AttachMode {
    /// How the log names it.
    pub fn describe(self) -> &'static str {
        match self {
            AttachMode::Tcx => "tcx",
            AttachMode::Tc => "cls_bpf on clsact",
        }
    }
}

/// A program hooked on an interface: a tcx link (it detaches when its last reference goes),
/// or rbond's filter (it stays until deleted).
pub enum Hooked {
    Link(OwnedFd),
    Filter,
    /// Nothing yet: the filter of a slave the host still sends through, made later (see the
    /// kernel datapath's `settle`).
    Later,
}

/// Hooks programs in one way, keeping what must outlive the process.
pub struct Hooks {
    mode: AttachMode,
    /// For filters.
    rtnl: Option<Rtnl>,
}

impl Hooks {
    pub fn new(mode: AttachMode) -> io::Result<Hooks> {
        let rtnl = match mode {
            AttachMode::Tcx => None,
            AttachMode::Tc => Some(Rtnl::open()?),
        };
        Ok(Hooks { mode, rtnl })
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Hooks `prog` (named `name` in the log and in `tc filter show`) on `ifindex`'s `hook`.
    /// A tcx link kept under `pin` is taken back if it still holds a program there, else a new
    /// one is made and kept; rbond's filter is created, or replaced in one step.
    pub fn hook(
        &mut self,
        kept: &mut Kept,
        pin: &str,
        name: &str,
        prog: BorrowedFd<'_>,
        ifindex: u32,
        hook: Hook,
    ) -> io::Result<Hooked> {
        if let Some(rtnl) = &mut self.rtnl {
            rtnl.clsact(ifindex)?;
            rtnl.bpf_filter(ifindex, hook, prog, name)?;
            return Ok(Hooked::Filter);
        }
        if let Some(link) = kept.take_bpf(pin).filter(|l| bpf::link_ifindex(l.as_fd()).ok() == Some(ifindex)) {
            return Ok(Hooked::Link(link));
        }
        let attach_type = match hook {
            Hook::Ingress => bpf::BPF_TCX_INGRESS,
            Hook::Egress => bpf::BPF_TCX_EGRESS,
        };
        let link = bpf::tcx_attach(prog, ifindex, attach_type)?;
        kept.keep_bpf(pin, link.as_fd())?;
        Ok(Hooked::Link(link))
    }

    /// Takes a program off for good: its link unpinned (and closed with `hooked`), or rbond's
    /// filter deleted.
    pub fn unhook(&mut self, kept: &Kept, pin: &str, ifindex: u32, hook: Hook, hooked: Hooked) {
        kept.forget_bpf(pin);
        if let (Hooked::Filter, Some(rtnl)) = (hooked, &mut self.rtnl) {
            let _ = rtnl.delete_bpf_filter(ifindex, hook);
        }
    }
}
