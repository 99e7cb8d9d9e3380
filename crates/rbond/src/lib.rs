//! The rbond daemon and its edges: the TAP that is bond0, the slaves' packet sockets, netlink,
//! the control socket. All bonding decisions are `rbond_core`'s; this crate carries them out.

pub mod address_ops;
pub mod batch;
pub mod config;
pub mod control;
pub mod daemon;
pub mod drill;
pub mod frames;
pub mod ifenslave;
pub mod ifupdown;
pub mod kernel_datapath;
pub mod lab;
pub mod launch;
pub mod link_watch;
pub mod logger;
pub mod netdev;
pub mod packet_socket;
pub mod probe;
pub mod restore;
pub mod signals;
pub mod tap;
pub mod tcx;
