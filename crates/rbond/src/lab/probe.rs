//! Traffic for throwaway networks: a UDP echo service on the peer, and a fixed-rate probe
//! from the host that records every datagram, so loss, duplicates and outage can be measured
//! over any stretch of time afterwards.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{ECHO_PORT, Lab, PEER_IP};

impl Lab {
    /// A UDP echo service on the peer, running until the returned guard is dropped.
    pub fn echo(&self) -> anyhow::Result<Echo> {
        self.echo_in(&self.peer())
    }

    /// A UDP echo service in namespace `ns`, running until the returned guard is dropped.
    pub fn echo_in(&self, ns: &str) -> anyhow::Result<Echo> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = self.in_ns(ns, move || {
            // Both families on one socket where the namespace has IPv6 (a VM may have none).
            let bound = UdpSocket::bind(("::", ECHO_PORT)).or_else(|_| UdpSocket::bind(("0.0.0.0", ECHO_PORT)));
            let s = match bound {
                Ok(s) => s,
                Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
            };
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            deep_buffer(&s);
            let _ = ready_tx.send(Ok(()));
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Echo { stop, worker: Some(worker) }),
            Ok(Err(e)) => bail!("echo service: {e}"),
            Err(_) => bail!("echo service did not start"),
        }
    }

    /// Starts sending `pps` numbered datagrams per second from the host to the peer's echo.
    pub fn probe(&self, pps: u32) -> Probe {
        self.probe_from(&self.host(), PEER_IP, pps)
    }

    /// Starts sending `pps` numbered datagrams per second from namespace `ns` to the echo
    /// service at `to` (IPv4 or IPv6).
    pub fn probe_from(&self, ns: &str, to: impl Into<IpAddr>, pps: u32) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = Instant::now();
        let to = SocketAddr::new(to.into(), ECHO_PORT);
        let worker = self.in_ns(ns, move || run_probe(pps, to, start, &flag));
        Probe { stop, start, worker }
    }
}

/// The peer's echo service; it stops (and frees its port) when this is dropped.
pub struct Echo {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// A running probe; `finish` stops it and returns what it saw.
pub struct Probe {
    stop: Arc<AtomicBool>,
    start: Instant,
    worker: JoinHandle<anyhow::Result<anyhow::Result<Record>>>,
}

impl Probe {
    /// Time since the probe started, the clock its record uses.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn finish(self) -> anyhow::Result<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.worker.join().map_err(|_| anyhow::anyhow!("the probe thread panicked"))??
    }
}

/// Every datagram a probe sent, and every reply.
#[derive(Debug, Clone)]
pub struct Record {
    pub interval: Duration,
    /// When each datagram was sent (index = sequence number), from the probe's start.
    pub sent: Vec<Duration>,
    /// When each reply first arrived, by sequence number.
    pub arrivals: HashMap<u32, Duration>,
    /// Sequence numbers of replies that arrived more than once.
    pub duplicates: Vec<u32>,
}

/// What the probe saw in one stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Window {
    pub sent: u32,
    pub lost: u32,
    pub duplicated: u32,
    /// The longest run of consecutive unanswered datagrams, times the sending interval.
    pub outage: Duration,
}

impl Record {
    /// Datagrams sent in `[from, to)`.
    pub fn window(&self, from: Duration, to: Duration) -> Window {
        let seqs = self.sent.iter().enumerate().filter(|(_, t)| **t >= from && **t < to).map(|(i, _)| i as u32);
        let (mut w, mut run, mut longest) = (Window::default(), 0u32, 0u32);
        for seq in seqs {
            w.sent += 1;
            if self.arrivals.contains_key(&seq) {
                run = 0;
            } else {
                w.lost += 1;
                run += 1;
                longest = longest.max(run);
            }
            w.duplicated += self.duplicates.iter().filter(|d| **d == seq).count() as u32;
        }
        w.outage = self.interval * longest;
        w
    }

    pub fn whole(&self) -> Window {
        self.window(Duration::ZERO, Duration::MAX)
    }
}

/// A receive buffer deep enough for the bursts of a probe that was starved of CPU for a
/// few tens of milliseconds (on two cores, while a daemon starts): with the default one the
/// echo's socket, itself starved, overflowed and the probe counted its own drops as the
/// bond's losses.
fn deep_buffer(s: &UdpSocket) {
    let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBufForce, &(4 << 20));
}

fn run_probe(pps: u32, peer: SocketAddr, start: Instant, stop: &AtomicBool) -> anyhow::Result<Record> {
    // Not connected: with bond0 down there is no route, and a send that fails is a loss.
    let s = if peer.is_ipv4() { UdpSocket::bind(("0.0.0.0", 0))? } else { UdpSocket::bind(("::", 0))? };
    s.set_nonblocking(true)?;
    deep_buffer(&s);
    let interval = Duration::from_secs(1) / pps.max(1);
    let mut rec = Record { interval, sent: Vec::new(), arrivals: HashMap::new(), duplicates: Vec::new() };
    let mut buf = [0u8; 64];
    let drain = |rec: &mut Record, buf: &mut [u8]| {
        while let Ok((n, from)) = s.recv_from(buf) {
            if n >= 4 && from == peer {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if rec.arrivals.insert(seq, start.elapsed()).is_some() {
                    rec.duplicates.push(seq);
                }
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let seq = rec.sent.len() as u32;
        if start.elapsed() >= interval * seq {
            rec.sent.push(start.elapsed());
            let _ = s.send_to(&seq.to_be_bytes(), peer);
        }
        drain(&mut rec, &mut buf);
        // Sleep rather than spin when there is time: on two cores a spinning probe would
        // starve the daemon it is measuring.
        let ahead = (interval * rec.sent.len() as u32).saturating_sub(start.elapsed());
        if ahead > Duration::from_micros(60) {
            thread::sleep(ahead - Duration::from_micros(50));
        }
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        drain(&mut rec, &mut buf);
        thread::sleep(Duration::from_millis(1));
    }
    Ok(rec)
}
