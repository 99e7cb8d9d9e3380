//! How frames move between bond0 and the active slave. Two implementations meet at the
//! [`Datapath`] trait: the kernel datapath, where two BPF programs on tc hooks redirect frames
//! and the daemon only steers, and the userspace datapath, where the daemon copies frames
//! between the TAP and the slaves' packet sockets. Both give the daemon what the monitors need
//! to see (ARP and neighbour discovery on every slave, the bond's broadcasts leaving the
//! active one) and a way to send frames of its own.

use std::io;
use std::os::fd::BorrowedFd;

pub mod bond_device;
pub mod hook;
pub mod kernel;
pub mod ports;
pub mod sent_watch;
pub mod slave_socket;
pub mod userspace;

#[cfg(test)]
pub mod fake;

use bond_device::BondDevice;
pub use hook::AttachMode;

use crate::keep::Kept;
pub use crate::net::frames::Seen;
pub use slave_socket::Membership;

/// How often the engine hears of ordinary traffic on a slave: enough for the ARP monitor's
/// "heard something lately", without an input per frame. The userspace datapath's threads
/// report no more often, the daemon notes no more often.
pub const RX_NOTE_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Which descriptor became readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The userspace datapath's forwarding threads (what they saw for the monitors).
    Lanes,
    /// A slave's packet socket, by the slave's ifindex.
    Slave(u32),
    /// The watch on what leaves the active slave.
    Sent,
}

/// The two implementations, by name (what a successor must reopen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Kernel,
    Userspace,
}

/// A slave as the datapath knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub ifindex: u32,
    pub name: String,
    /// The host still sends through it (a conversion, before its routes move to bond0):
    /// whatever would interrupt that waits for `settle`.
    pub live: bool,
}

pub trait Datapath: std::any::Any {
    fn kind(&self) -> Kind;
    /// How its BPF programs are hooked in (tcx, or cls_bpf on older kernels).
    fn attach_mode(&self) -> AttachMode;
    /// How the log names it.
    fn describe(&self) -> String;
    /// bond0's carrier, which the host's stack and every program on it read as "link".
    fn set_carrier(&mut self, up: bool) -> io::Result<()>;
    /// Takes a slave in: from now on its frames reach bond0 only while it is the active one,
    /// and the daemon sees the frames the monitors look at. A descriptor handed over under
    /// the slave's name is used instead of a new one.
    fn attach(&mut self, port: &Port) -> io::Result<()>;
    /// The host sends through bond0 now, no longer through a live port attached before (a
    /// conversion, once the port's routes moved): what `attach` left for this moment is done.
    fn settle(&mut self, _ifindex: u32) -> io::Result<()> {
        Ok(())
    }
    /// Lets a slave go: its socket closes and its ingress program detaches.
    fn detach(&mut self, ifindex: u32);
    /// Where bond0's frames leave and whose frames reach bond0; `None` drops both ways.
    fn set_active(&mut self, ifindex: Option<u32>) -> io::Result<()>;
    /// Sends a frame rbond built (a probe, an announcement) out of a slave.
    fn send(&mut self, ifindex: u32, frame: &[u8]) -> io::Result<()>;
    /// Asks a slave's interface to receive more than its own address, while the slave stays.
    fn membership(&mut self, ifindex: u32, what: Membership, add: bool) -> io::Result<()>;
    /// The descriptors to wait on.
    fn sources(&self) -> Vec<(Source, BorrowedFd<'_>)>;
    /// Serves a readable descriptor; `seen` hears what arrived on which slave.
    fn on_readable(&mut self, source: Source, seen: &mut dyn FnMut(u32, Seen));
    /// What a successor needs to carry on without a lost frame, by name.
    fn handover(&self) -> Vec<(String, BorrowedFd<'_>)>;
    /// Stops forwarding in this process, with no frame in flight (a successor is about to
    /// take the descriptors). The kernel datapath forwards with no process at all.
    fn pause(&mut self) {}
    /// Starts forwarding in this process: a datapath opens paused, so that until the daemon
    /// has wired it (slaves in, the active one chosen) frames wait in their queues instead of
    /// meeting a bond with no way out. Again after `pause`, when the successor did not start.
    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Takes everything down for good (the bond stops): nothing is kept for a successor.
    fn remove(&mut self);
}

/// Opens the datapath of this kind for bond0 (`tap`, at `bond_index`), its programs hooked
/// in `mode`, taking what a predecessor handed over from `kept`; `settings` are the userspace
/// datapath's.
pub fn open(
    kind: Kind,
    mode: AttachMode,
    tap: BondDevice,
    bond_index: u32,
    settings: userspace::Settings,
    kept: Kept,
) -> io::Result<Box<dyn Datapath>> {
    Ok(match kind {
        Kind::Kernel => Box::new(kernel::KernelDatapath::open(tap, bond_index, kept, mode)?),
        Kind::Userspace => Box::new(userspace::UserspaceDatapath::open(tap, settings, kept, mode)?),
    })
}

/// The name a slave's descriptor of kind `what` (`socket`, `ingress`) is kept under.
pub fn slave_fd_name(what: &str, ifindex: u32) -> String {
    format!("{what}-{ifindex}")
}

/// The name lane `lane`'s descriptor of what is kept as `name` is kept under: the first
/// lane's is the one a single-threaded rbond kept, so either takes the other's over.
pub fn lane_fd_name(name: &str, lane: usize) -> String {
    if lane == 0 { name.to_string() } else { format!("{name}.{lane}") }
}
