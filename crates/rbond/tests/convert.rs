//! A live eth0 converted into bond0 in place, as on a remote host reached only through it:
//! TCP sessions over IPv4 and IPv6 (through the default route) carry on through `rbond up`,
//! a cable pull and `rbond down`, and afterwards the host is configured exactly as before.

mod netns;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns::{Cpu, Hooks, Lab, Wiring, begin, get, ifupdown, ip, lab, rbond, wait, write};

/// Where the peer's end of each session lives: behind the host's default route.
const FAR_V4: &str = "198.51.100.2";
const FAR_V6: &str = "2001:db8:99::2";
const HOST_V6: &str = "2001:db8:77::1";

const STANZA: &str = "\
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
fn remote_host(net: &Lab) {
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
fn snapshot(net: &Lab) -> Vec<(&'static str, String)> {
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
fn same_as(before: &[(&str, String)], after: &[(&str, String)]) {
    for ((name, b), (_, a)) in before.iter().zip(after) {
        assert_eq!(a, b, "`{name}` is not as it was");
    }
}

/// Each message's send time and round trip.
type Trips = Vec<(Instant, Duration)>;

/// An interactive session from the peer's far address to the host: a message every 10 ms,
/// each echoed before the next, with its round trip.
struct Session {
    stop: Arc<AtomicBool>,
    client: JoinHandle<anyhow::Result<anyhow::Result<Trips>>>,
}

impl Session {
    fn open(net: &Lab, host: IpAddr, far: IpAddr, port: u16) -> Session {
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
        let client = net.in_ns(&net.peer(), move || -> anyhow::Result<Trips> {
            let mut s = connect_from(far, SocketAddr::new(host, port))?;
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
                std::thread::sleep(Duration::from_millis(10).saturating_sub(at.elapsed()));
            }
            drop(s);
            drop(server);
            Ok(trips)
        });
        Session { stop, client }
    }

    fn close(self) -> Trips {
        self.stop.store(true, Ordering::Relaxed);
        self.client.join().unwrap().unwrap().expect("the session lived")
    }
}

/// A TCP connection from a given local address (std connects from whatever the route picks).
fn connect_from(local: IpAddr, to: SocketAddr) -> nix::Result<TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let family = if local.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(local, 0)))?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(to))?;
    Ok(TcpStream::from(fd))
}

/// The longest round trip of a message sent in `[from, to]`.
fn longest(trips: &[(Instant, Duration)], from: Instant, to: Instant) -> Duration {
    trips.iter().filter(|(at, _)| *at >= from && *at <= to).map(|(_, d)| *d).max().unwrap_or_default()
}

fn timed(f: impl FnOnce()) -> (Instant, Instant) {
    let start = Instant::now() - Duration::from_millis(20);
    f();
    (start, Instant::now() + Duration::from_millis(200))
}

#[test]
fn a_live_eth0_becomes_a_bond_and_back_without_a_stall() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    remote_host(&net);
    let before = snapshot(&net);
    let eth0_mac = net.link("eth0").unwrap().1;
    let v4 = Session::open(&net, "10.77.0.1".parse().unwrap(), FAR_V4.parse().unwrap(), 7100);
    let v6 = Session::open(&net, HOST_V6.parse().unwrap(), FAR_V6.parse().unwrap(), 7101);
    std::thread::sleep(Duration::from_millis(300));

    // A socket bound to eth0 cannot follow its addresses: rbond says so before it acts.
    let stuck = net.in_ns(&net.host(), || {
        let s = std::net::UdpSocket::bind("0.0.0.0:5353").unwrap();
        let eth0 = std::ffi::OsString::from("eth0");
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::BindToDevice, &eth0).unwrap();
        s
    });
    let stuck = stuck.join().unwrap().unwrap();
    let file = net.run_dir.join("interfaces");
    std::fs::write(&file, STANZA).unwrap();
    let up = timed(|| {
        let out = rbond(&net).args(["up", "bond0", "-i"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "rbond up: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(net.link("bond0").unwrap().1, eth0_mac, "bond0 took eth0's MAC");
    let bond_addrs = net.addrs("bond0");
    for want in ["10.77.0.1/24", "2001:db8:77::1/64"] {
        assert!(bond_addrs.iter().any(|a| a == want), "bond0 has {want}: {bond_addrs:?}");
    }
    assert_eq!(net.addrs("eth0"), Vec::<String>::new(), "eth0 kept no address of its own");
    let routes = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["-n", &net.host()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(routes(&["route", "show", "default"]).starts_with("default via 10.77.0.2 dev bond0"));
    assert!(routes(&["-6", "route", "show", "default"]).starts_with("default via 2001:db8:77::2 dev bond0"));
    assert!(routes(&["rule"]).contains("1000:\tfrom all oif bond0 lookup main"), "{}", routes(&["rule"]));
    let log = net.log_lines().unwrap();
    let warned = "bond0: sockets bound to eth0 (SO_BINDTODEVICE) cannot move to bond0 and will receive nothing more: udp 0.0.0.0:5353";
    let said = log.iter().position(|l| l == warned);
    let done =
        log.iter().position(|l| l == "bond0: converted eth0 in place: 2 addresses, 2 routes and 1 rule moved to bond0");
    assert!(said.is_some() && said < done, "the warning comes before the conversion: {log:?}");
    drop(stuck);
    assert_eq!(get(&net, "active_slave"), "eth0");

    std::thread::sleep(Duration::from_millis(300));
    let pull = timed(|| {
        net.cable_of("eth0", false).unwrap();
        wait(&net, "failover to eth1", |n| n.get("active_slave").is_ok_and(|a| a == "eth1"));
        std::thread::sleep(Duration::from_millis(500));
        net.cable_of("eth0", true).unwrap();
        wait(&net, "eth0 back", |n| n.get("active_slave").is_ok_and(|a| a == "eth0"));
    });
    std::thread::sleep(Duration::from_millis(300));
    let down = timed(|| {
        let out = rbond(&net).args(["down", "bond0"]).output().unwrap();
        assert!(out.status.success(), "rbond down: {}", String::from_utf8_lossy(&out.stderr));
    });
    std::thread::sleep(Duration::from_millis(300));
    for (family, trips) in [("IPv4", v4.close()), ("IPv6", v6.close())] {
        let (u, p, d) = (longest(&trips, up.0, up.1), longest(&trips, pull.0, pull.1), longest(&trips, down.0, down.1));
        eprintln!("{family}: {} messages; longest round trip: up {u:?}, cable pull {p:?}, down {d:?}", trips.len());
        assert!(u < Duration::from_millis(100), "{family}: the conversion stalled the session for {u:?}");
        assert!(d < Duration::from_millis(100), "{family}: giving back stalled the session for {d:?}");
        assert!(p < Duration::from_millis(400), "{family}: the failover stalled the session for {p:?}");
    }
    assert!(net.link("bond0").is_none(), "bond0 is gone");
    same_as(&before, &snapshot(&net));
}

/// The same conversion through the real ifup, which adds the stanza's address and gateway
/// itself after rbond's hook: bond0 ends with exactly the stanza's addresses and one default
/// route each, the sessions never stall, and ifdown (whose pre-down hook gives eth0 its
/// configuration back before ifupdown takes bond0's away) leaves the host as it was.
#[test]
fn ifup_converts_a_live_eth0_too() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    remote_host(&net);
    let before = snapshot(&net);
    let v4 = Session::open(&net, "10.77.0.1".parse().unwrap(), FAR_V4.parse().unwrap(), 7100);
    let v6 = Session::open(&net, HOST_V6.parse().unwrap(), FAR_V6.parse().unwrap(), 7101);
    std::thread::sleep(Duration::from_millis(300));
    let (file, state) = write(&net, &format!("auto bond0\n{STANZA}"));
    let up = timed(|| ifupdown(&net, "ifup", &file, &state, &["bond0"]));
    assert_eq!(net.addrs("bond0"), ["10.77.0.1/24", "2001:db8:77::1/64"], "the stanza's addresses, no stand-ins");
    let routes = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["-n", &net.host()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(routes(&["route", "show", "default"]), "default via 10.77.0.2 dev bond0 onlink");
    assert_eq!(routes(&["-6", "route", "show", "default"]).lines().count(), 1, "one IPv6 default route");
    std::thread::sleep(Duration::from_millis(300));
    let down = timed(|| ifupdown(&net, "ifdown", &file, &state, &["bond0"]));
    std::thread::sleep(Duration::from_millis(300));
    for (family, trips) in [("IPv4", v4.close()), ("IPv6", v6.close())] {
        let (u, d) = (longest(&trips, up.0, up.1), longest(&trips, down.0, down.1));
        eprintln!("{family}: {} messages; longest round trip: ifup {u:?}, ifdown {d:?}", trips.len());
        assert!(u < Duration::from_millis(100), "{family}: ifup stalled the session for {u:?}");
        assert!(d < Duration::from_millis(100), "{family}: ifdown stalled the session for {d:?}");
    }
    same_as(&before, &snapshot(&net));
}
