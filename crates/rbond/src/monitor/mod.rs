//! What the bond tells the monitoring people already run: Prometheus text for
//! node_exporter's textfile collector (and, when asked, over HTTP), a `/proc/net/bonding`-shaped
//! report file for tools that read that, the verdict of `rbond check` for monitoring plugins,
//! the one-line-per-bond table of `rbond status`, and the path table of `rbond verify`.

pub mod check;
pub mod http;
pub mod metrics;
pub mod publish;
pub mod summary;
pub mod verify;
