//! rbond's daemon and its edges, folder by concern:
//!
//! - `daemon`: the loop that owns the engine and carries out its decisions;
//! - `datapath`: how frames move (the kernel's tc/BPF redirects, or the daemon's copies);
//! - `net`: interfaces, addresses and events over rtnetlink, and the frames rbond builds;
//! - `control`: the typed protocol of the control socket, its server and its client;
//! - `cli`: the `rbond` command, the ifenslave personality and the ifupdown hooks;
//! - `config`: `/etc/network/interfaces`, Debian's bond options, lint;
//! - `lab`: throwaway networks, the traffic probe and the drill;
//! - `monitor`: what monitoring reads: Prometheus text, the /proc-shaped report, `rbond check`;
//! - `sys`: the system calls no crate wraps, the only place `unsafe` is allowed.
//!
//! All bonding decisions are `rbond_core`'s; this crate carries them out.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod keep;
pub mod lab;
pub mod monitor;
pub mod net;
pub mod sys;
pub mod wait;
