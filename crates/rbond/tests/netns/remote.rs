//! A host as a remote one looks before it is bonded (eth0 with the addresses, default routes
//! and a rule; the peer as its router, with far addresses), the views that tell whether it is
//! configured as before, and interactive TCP sessions through it that time every message.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Lab, ip, wait};

/// Where the peer's end of each session lives: behind the host's default route.
pub const FAR_V4: &str = "198.51.100.2";
pub const FAR_V6: &str = "2001:db8:99::2";
pub const HOST_V6: &str = "2001:db8:77::1";

pub const STANZA: &str = "\
iface bond0 inet static
    address 10.77.0.1/24
    gateway 10.77.0.2
    bond-slaves eth0 eth1
    bond-mode active-backup
    bond-miimon 100
    bond-primary eth0

iface bond0 inet6 static
    address 2001:db8:77::1/64
    gateway 2001:db8:77::2
";

/// The host as a remote one looks before bonding: eth0 with both addresses, default routes
/// and a policy rule; the peer is the router, with far addresses of its own.
pub fn remote_host(net: &Lab) {
    let (h, p) = (net.host(), net.peer());
    ip(&["-n", &h, "addr", "add", "10.77.0.1/24", "dev", "eth0"]);
    ip(&["-n", &h, "addr", "add", &format!("{HOST_V6}/64"), "dev", "eth0", "nodad"]);
    ip(&["-n", &h, "link", "set", "eth0", "up"]);
    ip(&["-n", &h, "link", "set", "eth1", "up"]);
    ip(&["-n", &h, "route", "add", "default", "via", "10.77.0.2", "dev", "eth0"]);
    ip(&["-n", &h, "-6", "route", "add", "default", "via", "2001:db8:77::2", "dev", "eth0"]);
    ip(&["-n", &h, "rule", "add", "oif", "eth0", "lookup", "main", "priority", "1000"]);
    ip(&["-n", &p, "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad"]);
    ip(&["-n", &p, "addr", "add", &format!("{FAR_V4}/32"), "dev", "lo"]);
    ip(&["-n", &p, "addr", "add", &format!("{FAR_V6}/128"), "dev", "lo"]);
    ip(&["-n", &p, "route", "add", "2001:db8:77::/64", "dev", "eth0"]);
}

/// What `ip -j` says of the host's addresses, routes and rules, and its links' state; link
/// local addresses wait out their duplicate address detection first.
pub fn snapshot(net: &Lab) -> Vec<(&'static str, String)> {
    let h = net.host();
    let show = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["-j", "-n", &h]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait(net, "addresses past DAD", |_| !show(&["addr"]).contains("tentative"));
    let views: [(&'static str, &[&str]); 7] = [
        ("ip addr show dev eth0", &["addr", "show", "dev", "eth0"]),
        ("ip addr show dev eth1", &["addr", "show", "dev", "eth1"]),
        ("ip addr show dev lo", &["addr", "show", "dev", "lo"]),
        ("ip -4 route show table all", &["-4", "route", "show", "table", "all"]),
        ("ip -6 route show table all", &["-6", "route", "show", "table", "all"]),
        ("ip -4 rule", &["-4", "rule"]),
        ("ip -6 rule", &["-6", "rule"]),
    ];
    views.into_iter().map(|(name, args)| (name, show(args))).collect()
}

/// Each view of the host as it was before.
pub fn same_as(before: &[(&str, String)], after: &[(&str, String)]) {
    for ((name, b), (_, a)) in before.iter().zip(after) {
        assert_eq!(a, b, "`{name}` is not as it was");
    }
}

/// Each message's send time and round trip.
pub type Trips = Vec<(Instant, Duration)>;

/// An interactive session from the peer's far address to the host: a message every 10 ms,
/// each echoed before the next, with its round trip.
pub struct Session {
    stop: Arc<AtomicBool>,
    client: JoinHandle<anyhow::Result<anyhow::Result<Trips>>>,
}

impl Session {
    /// The session to the host's IPv4 address from the peer's far one.
    pub fn v4(net: &Lab) -> Session {
        Session::open(net, "10.77.0.1".parse().unwrap(), FAR_V4.parse().unwrap(), 7100)
    }

    /// The session to the host's IPv6 address from the peer's far one.
    pub fn v6(net: &Lab) -> Session {
        Session::open(net, HOST_V6.parse().unwrap(), FAR_V6.parse().unwrap(), 7101)
    }

    /// Opens the session and returns once its first message has come back, so that every
    /// step the test then takes happens on a session already running.
    pub fn open(net: &Lab, host: IpAddr, far: IpAddr, port: u16) -> Session {
        let listen = SocketAddr::new(if host.is_ipv4() { [0u8; 4].into() } else { [0u16; 8].into() }, port);
        let server = net.in_ns(&net.host(), move || {
            let l = TcpListener::bind(listen).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 8];
            while s.read_exact(&mut buf).is_ok() && s.write_all(&buf).is_ok() {}
        });
        std::thread::sleep(Duration::from_millis(100));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (running, first) = std::sync::mpsc::channel();
        let started = Instant::now();
        let client = net.in_ns(&net.peer(), move || -> anyhow::Result<Trips> {
            let mut s = connect_once_reachable(far, SocketAddr::new(host, port))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut trips = Vec::new();
            let mut buf = [0u8; 8];
            for seq in 0u64.. {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let at = Instant::now();
                s.write_all(&seq.to_be_bytes())?;
                s.read_exact(&mut buf)?;
                anyhow::ensure!(u64::from_be_bytes(buf) == seq, "message {seq} came back wrong");
                trips.push((at, at.elapsed()));
                if seq == 0 {
                    let _ = running.send(());
                }
                std::thread::sleep(Duration::from_millis(10).saturating_sub(at.elapsed()));
            }
            drop(s);
            drop(server);
            Ok(trips)
        });
        if first.recv_timeout(Duration::from_secs(10)).is_ok() && started.elapsed() > Duration::from_millis(500) {
            eprintln!("the session to {host} took {:?} to start (before the test's steps)", started.elapsed());
        }
        Session { stop, client }
    }

    pub fn close(self) -> Trips {
        self.stop.store(true, Ordering::Relaxed);
        self.client.join().unwrap().unwrap().expect("the session lived")
    }
}

/// The session's connection, made before rbond touches anything. A fresh lab's first ARP
/// exchange once went unanswered for its three tries in CI (EHOSTUNREACH); that is the lab
/// warming up on a loaded machine, not the bond, so the connect is tried up to three times.
fn connect_once_reachable(local: IpAddr, to: SocketAddr) -> nix::Result<TcpStream> {
    for _ in 1..3 {
        match connect_from(local, to) {
            Err(nix::Error::EHOSTUNREACH) => eprintln!("{to} unreachable before the test began; connecting again"),
            done => return done,
        }
    }
    connect_from(local, to)
}

/// A TCP connection from a given local address (std connects from whatever the route picks).
pub fn connect_from(local: IpAddr, to: SocketAddr) -> nix::Result<TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let family = if local.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(local, 0)))?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(to))?;
    Ok(TcpStream::from(fd))
}

/// The longest round trip of a message in flight at any moment of `[from, to]` (one sent
/// before `from` that came back late counts too); a session that sent nothing in the window
/// fails the test, as it would show nothing.
pub fn longest(trips: &[(Instant, Duration)], from: Instant, to: Instant) -> Duration {
    let during = trips.iter().filter(|(at, d)| *at + *d >= from && *at <= to);
    let longest = during.map(|(_, d)| *d).max();
    longest.unwrap_or_else(|| panic!("no message was in flight during the step ({} in all)", trips.len()))
}

pub fn timed(f: impl FnOnce()) -> (Instant, Instant) {
    let start = Instant::now() - Duration::from_millis(20);
    f();
    (start, Instant::now() + Duration::from_millis(200))
}
