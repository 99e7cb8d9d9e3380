//! rbond's bonding engine: Linux active-backup bonding (mode 1) as a pure state machine.
//!
//! Nothing here performs I/O or reads a clock. The caller feeds [`Input`]s together with the
//! time they happened, calls [`Bond::handle_timeout`] when [`Bond::poll_timeout`] says, and
//! carries out the [`Action`]s that [`Bond::poll_action`] hands back: switch the datapath,
//! set MACs and carrier, send ARP probes and peer notifications, write log lines.
//!
//! ```
//! use rbond_core::{Bond, Command, Input, Instant, LinkInfo, Mac, Options, SlaveId, SlaveSpec};
//!
//! let mut opts = Options::default();
//! opts.set(rbond_core::OptionName::Miimon, "100").unwrap();
//! let mut bond = Bond::new("bond0", opts).unwrap();
//! let t = Instant::from_millis(0);
//! bond.handle(t, Input::Command(Command::Up)).unwrap();
//! let eth0 = SlaveSpec { id: SlaveId(2), name: "eth0".into(), mac: Mac([2, 0, 0, 0, 0, 1]), link: LinkInfo::up() };
//! bond.handle(t, Input::Enslave(eth0)).unwrap();
//! assert_eq!(bond.active_slave(), Some("eth0"));
//! while let Some(action) = bond.poll_action() {
//!     // carry it out
//!     let _ = action;
//! }
//! ```
//!
//! See [`Bond`] for the order of calls.
//!
//! Behaviour follows the modern kernel driver's logic; log lines use the wording of the
//! Debian Squeeze (2.6.32) driver, which is what existing runbooks search for.

#![forbid(unsafe_code)]

mod address;
mod arp_monitor;
mod bond;
mod command;
mod counters;
mod event;
mod mac;
mod mac_policy;
mod membership;
mod mii;
mod options;
mod peer_notify;
mod report;
mod select;
mod slave;
mod standby;
mod time;
mod timer;

pub use address::{Ipv4Cidr, Ipv6Cidr, eui64_link_local, is_link_local, solicited_node};
pub use bond::{Action, ArpFrame, ArpOp, Bond, Command, Error, Input, MacTarget, NdFrame, NdKind, SlaveId};
pub use counters::Counters;
pub use event::{Event, Level};
pub use mac::{Mac, MacParseError};
pub use options::{
    ArpAllTargets, ArpValidate, Choice, Delay, FailOverMac, Flags, MAX_TARGETS, Mode, OPTIONS, OptionError, OptionInfo,
    OptionName, Options, PrimaryReselect, Val, Values,
};
pub use report::{Report, SlaveReport, VERSION};
pub use slave::{Duplex, LinkInfo, LinkState, SlaveSpec};
pub use standby::{StandbyReport, Verdict, probe_mac};
pub use time::Instant;
