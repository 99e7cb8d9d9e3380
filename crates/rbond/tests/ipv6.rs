//! IPv6 through the bond on real links: the NS monitor (`ns_ip6_target`) against a peer that
//! answers neighbour solicitations, failovers on a bond with no IPv4 at all, duplicate address
//! detection with every slave enslaved, and router advertisements.

mod netns;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netns::{Cpu, Lab, Wiring, begin, get, ip, lab, start, wait};
use rbond::lab::PEER_IP6;

/// The solicited-node group of `PEER_IP6` (2001:db8:77::2) at the link layer.
const PEER_GROUP: &str = "33:33:ff:00:00:02";

/// The link-layer groups a slave's device is in (`ip maddr`), as the kernel selftest reads them.
fn link_groups(net: &Lab, dev: &str) -> String {
    let out = std::process::Command::new("ip").args(["-n", &net.host(), "maddr", "show", "dev", dev]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The peer stops answering through eth0's path only (the uplink of eth0's access switch goes
/// down; eth0 keeps its carrier): the NS monitor fails over within its intervals. With
/// validation on backups, the backup lives on our solicitations relayed through the switches,
/// is in the target's solicited-node group while the active is not, and, once eth0 is the
/// backup with its path dead, eth0 is shown down.
#[test]
fn the_ns_monitor_finds_a_dead_path_behind_a_live_link() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::AccessSwitches);
    net.peer_ipv6_only().unwrap();
    start(&mut net, &["arp_interval=100", &format!("ns_ip6_target={PEER_IP6}"), "arp_validate=all", "primary=eth0"]);
    net.bond_ipv6_only(false).unwrap();
    wait(&net, "eth0 active, both slaves up", |n| get(n, "active_slave") == "eth0" && n.slaves_up(2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(net.slaves_up(2), "the backup stays up on relayed solicitations: {:?}", net.log_lines().unwrap());
    assert!(link_groups(&net, "eth1").contains(PEER_GROUP), "the backup joined: {}", link_groups(&net, "eth1"));
    assert!(!link_groups(&net, "eth0").contains(PEER_GROUP), "the active did not: {}", link_groups(&net, "eth0"));
    let cut = epoch_ms();
    ip(&["-n", &net.switch_of("eth0"), "link", "set", "up0", "down"]);
    wait(&net, "eth1 active", |n| get(n, "active_slave") == "eth1");
    let timed = net.timed_log().unwrap();
    let at = |needle: &str| timed.iter().find(|(t, l)| *t >= cut && l.contains(needle)).map(|(t, _)| t - cut);
    let down = at("link status definitely down for interface eth0").expect("eth0 declared down");
    eprintln!("the NS monitor declared eth0 down {down} ms after its path died");
    // arp_missed_max 2: silent for two intervals, judged on the next tick, with a tick of slack.
    assert!((150..=500).contains(&down), "eth0 down {down} ms after the cut");
    assert!(at("making interface eth1 the new active one.").is_some_and(|t| t >= down), "{timed:?}");
    assert!(net.link("eth0").unwrap().0, "eth0 itself is still up");
    wait(&net, "the groups to follow the roles", |n| {
        link_groups(n, "eth0").contains(PEER_GROUP) && !link_groups(n, "eth1").contains(PEER_GROUP)
    });
    std::thread::sleep(Duration::from_millis(600));
    let report = net.status().unwrap().report;
    let eth0 = report.slaves.iter().find(|s| s.name == "eth0").unwrap();
    assert_eq!(eth0.mii_status, "down", "a backup whose NA path is dead is shown down");
    let _echo = net.echo().unwrap();
    let probe = net.probe_from(&net.host(), PEER_IP6, 200);
    std::thread::sleep(Duration::from_secs(1));
    let p = probe.finish().unwrap().whole();
    assert!(p.sent > 100 && p.lost <= 2, "IPv6 traffic flows through eth1: {p:?}");
}

/// Every IPv6 address bond0 has, with its flags, and its MAC.
fn bond_v6(net: &Lab) -> Vec<(String, bool, bool)> {
    net.ipv6_addrs("bond0")
}

/// What the peer's neighbour table says each of `addrs` is at.
fn peer_neighbours(net: &Lab, addrs: &[String]) -> Vec<Option<String>> {
    let out = std::process::Command::new("ip").args(["-n", &net.peer(), "-j", "-6", "neigh", "show"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let entries = v.as_array().cloned().unwrap_or_default();
    let lladdr = |a: &String| {
        let e = entries.iter().find(|e| e["dst"].as_str() == Some(a.as_str()))?;
        e["lladdr"].as_str().map(str::to_string)
    };
    addrs.iter().map(lladdr).collect()
}

/// Makes the peer resolve `addr` (a datagram to it from the peer's eth0).
fn peer_resolves(net: &Lab, addr: Ipv6Addr) {
    net.in_ns(&net.peer(), move || {
        let scope = nix::net::if_::if_nametoindex("eth0").unwrap();
        let s = UdpSocket::bind("[::]:0").unwrap();
        s.send_to(b"hello", SocketAddrV6::new(addr, 9, 0, scope)).unwrap();
    })
    .join()
    .unwrap()
    .unwrap();
}

/// Twenty failovers on a bond with no IPv4 address at all, under a 1,000/s IPv6 probe. bond0's
/// addresses pass duplicate address detection with both slaves enslaved (looped-back
/// solicitations would fail them: the nonce check that would hide them is off), and none ever
/// fails afterwards. `fail_over_mac active` gives bond0 a new MAC at each failover, so the
/// peer must learn it: its entries for bond0's global and link-local addresses both move within
/// one notification (one unsolicited NA each), where its own neighbour probing would take
/// seconds. Each failover's outage is as small as with IPv4.
#[test]
fn twenty_failovers_on_an_ipv6_only_bond() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let sysctl = |key: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &net.host(), "sysctl", "-qw", &format!("net.ipv6.conf.{key}.enhanced_dad=0")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    sysctl("default");
    sysctl("all");
    net.peer_ipv6_only().unwrap();
    start(&mut net, &["miimon=100", "fail_over_mac=active", "primary_reselect=failure"]);
    net.bond_ipv6_only(true).unwrap();
    let addrs: Vec<String> = bond_v6(&net).into_iter().map(|a| a.0).collect();
    assert_eq!(addrs.len(), 2, "a global and a link-local address: {addrs:?}");
    for a in &addrs {
        peer_resolves(&net, a.parse().unwrap());
    }
    let _echo = net.echo().unwrap();
    let probe = net.probe_from(&net.host(), PEER_IP6, 1000);
    let (mut pulls, mut learned) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 { ("eth0", "eth1") } else { ("eth1", "eth0") };
        std::thread::sleep(Duration::from_millis(200));
        pulls.push(probe.elapsed());
        let cut = Instant::now();
        net.cable_of(from, false).unwrap();
        wait(&net, "the failover", |n| get(n, "active_slave") == to);
        let mac = net.link("bond0").unwrap().1;
        assert_eq!(mac, net.link(to).unwrap().1, "bond0 took {to}'s MAC");
        wait(&net, "the peer to learn bond0's new MAC", |n| {
            peer_neighbours(n, &addrs).iter().all(|l| l.as_deref() == Some(mac.as_str()))
        });
        learned.push(cut.elapsed());
        let failed: Vec<_> = bond_v6(&net).into_iter().filter(|a| a.1 || a.2).collect();
        assert!(failed.is_empty(), "failover {i}: an address went tentative or failed DAD: {failed:?}");
        net.cable_of(from, true).unwrap();
        wait(&net, "both slaves up", |n| n.slaves_up(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    let record = probe.finish().unwrap();
    let mut outages: Vec<Duration> =
        pulls.iter().map(|at| record.window(*at, *at + Duration::from_millis(150)).outage).collect();
    outages.sort();
    learned.sort();
    eprintln!("outage per failover (sorted): {outages:?}; the peer learned the new MAC within {learned:?}");
    assert_eq!(bond_v6(&net).len(), 2, "no address lost");
    assert!(outages[10] <= Duration::from_millis(2), "median outage {:?}, as with IPv4", outages[10]);
    assert!(outages[19] <= Duration::from_millis(20), "longest outage {:?}", outages[19]);
    assert!(learned[19] < Duration::from_secs(1), "NUD alone would take 5 s or more: {learned:?}");
    let whole = record.whole();
    assert_eq!(whole.duplicated, 0);
}

/// Router advertisements reach bond0 through the active slave and configure it (an address
/// by SLAAC, a default route); the slaves, which keep no IPv6 of their own, get nothing. A
/// failover keeps both: bond0's carrier never drops, so the route is never marked down and
/// the address never runs duplicate address detection again.
#[test]
fn router_advertisements_configure_the_bond_and_never_a_slave() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    net.peer_ipv6_only().unwrap();
    start(&mut net, &["miimon=100"]);
    ip(&["-n", &net.host(), "-4", "addr", "flush", "dev", "bond0"]);
    let slaac = |n: &Lab| n.ipv6_addrs("bond0").into_iter().find(|a| a.0.starts_with("2001:db8:77:"));
    let Some(addr) = netns::slaac_on_bond(&net) else {
        let all = netns::ipv6_routes(&net, &["table", "all"]);
        panic!("no SLAAC address and default route on bond0: {:?}\n{all}", net.ipv6_addrs("bond0"))
    };
    // The route as shown, less its countdown ("expires 1798sec").
    let default_route = |n: &Lab| {
        let shown = netns::ipv6_routes(n, &["default"]);
        let words = shown.split_whitespace().collect::<Vec<_>>();
        let kept = words.iter().enumerate().filter(|(i, w)| **w != "expires" && (*i == 0 || words[i - 1] != "expires"));
        kept.map(|(_, w)| *w).collect::<Vec<_>>().join(" ")
    };
    let default = default_route(&net);
    assert!(default.starts_with("default via fe80::") && default.contains("dev bond0 proto ra"), "{default}");
    for slave in ["eth0", "eth1"] {
        assert_eq!(net.ipv6_addrs(slave), [], "{slave} has no IPv6 address");
        assert_eq!(netns::ipv6_routes(&net, &["dev", slave]), "", "{slave} has no IPv6 route");
    }
    net.cable_of("eth0", false).unwrap();
    wait(&net, "eth1 active", |n| get(n, "active_slave") == "eth1");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(default_route(&net), default, "the default route learned from RA stays as it was");
    assert_eq!(slaac(&net), Some((addr, false, false)), "the address stays, never tentative again");
    for slave in ["eth0", "eth1"] {
        assert_eq!(net.ipv6_addrs(slave), [], "{slave} still has no IPv6 address");
    }
}

/// Where the host listens to an IPv6 multicast group on bond0, a failover re-sends its MLD
/// report through the new active slave (`resend_igmp`), from bond0's MAC and its link-local
/// address, so a snooping switch moves the group to the new port at once.
#[test]
fn a_failover_re_sends_the_hosts_mld_reports() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    net.peer_ipv6_only().unwrap();
    start(&mut net, &["miimon=100"]);
    net.bond_ipv6_only(false).unwrap();
    // NS targets come and go on a running bond like ARP ones, refused in the kernel's words.
    let set = |value: &str| netns::rbond(&net).args(["set", "bond0", "ns_ip6_target", value]).output().unwrap();
    assert!(set("+2001:db8:77::9").status.success());
    assert!(set("+fe80::9").status.success());
    assert_eq!(get(&net, "ns_ip6_target"), "2001:db8:77::9 fe80::9");
    let refused = set("ff02::1");
    assert_eq!(
        (refused.status.code(), String::from_utf8_lossy(&refused.stderr).trim()),
        (Some(1), "rbond: bond0: option ns_ip6_target: invalid NS target ff02::1 specified for addition")
    );
    assert!(set("-2001:db8:77::9").status.success() && set("-fe80::9").status.success());
    assert_eq!(get(&net, "ns_ip6_target"), "");
    let group: Ipv6Addr = "ff0e::1:2:3".parse().unwrap();
    ip(&["-n", &net.host(), "addr", "add", &format!("{group}/128"), "dev", "bond0", "autojoin"]);
    // The join's own unsolicited reports are over well within two seconds.
    std::thread::sleep(Duration::from_secs(2));
    let epoch = Instant::now();
    let listener = netns::capture(&net, epoch, Duration::from_millis(1200));
    std::thread::sleep(Duration::from_millis(200));
    let cut = epoch.elapsed();
    net.cable_of("eth0", false).unwrap();
    let bond_mac: rbond_core::Mac = net.link("bond0").unwrap().1.parse().unwrap();
    let frames = listener.join().unwrap().unwrap();
    // Ethernet IPv6, hop-by-hop options, then ICMPv6 type 143 (MLDv2 report) naming the group.
    let reports: Vec<_> = frames
        .iter()
        .filter(|(at, f)| *at >= cut && f.len() >= 90 && f[12..14] == [0x86, 0xdd] && f[20] == 0 && f[62] == 143)
        .filter(|(_, f)| f.windows(16).any(|w| w == group.octets()))
        .collect();
    assert_eq!(reports.len(), 1, "one report (resend_igmp 1) after the failover: {} frames seen", frames.len());
    let f = &reports[0].1;
    assert_eq!(&f[6..12], &bond_mac.0, "from bond0's MAC");
    assert_eq!(f[22..24], [0xfe, 0x80], "from bond0's link-local address");
}
