//! The real Debian ifupdown with rbond's hooks: `ifup` builds the bond from the guide's
//! stanza (and from the hotplug variant), traffic flows, and `ifdown` puts everything back.

mod netns;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netns::{Cpu, Hooks, Wiring, begin, get, ifenslave, ifupdown, lab, probe, rbond, settled, slaves_state, write};
use rbond::config::examples::{GUIDE, HOTPLUG};

#[test]
fn ifup_and_ifdown_run_the_guides_bond() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    let before = slaves_state(&net);
    let (file, state) = write(&net, GUIDE);
    ifupdown(&net, "ifup", &file, &state, &["bond0"]);
    assert_eq!(net.addrs("bond0"), ["10.77.0.1/24"], "ifup configured the address on the bond");
    settled(&net);
    assert_eq!(get(&net, "active_slave"), "eth0");
    assert_eq!(get(&net, "updelay"), "200");
    let p = probe(&net, 200, Duration::from_millis(500), Duration::ZERO, || {});
    assert!(p.lost <= 1 && p.duplicated == 0, "traffic through bond0: {p:?}");
    let out = ifenslave(&net, &["-c", "bond0", "eth1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(&net, "active_slave"), "eth1");
    ifupdown(&net, "ifdown", &file, &state, &["bond0"]);
    assert!(net.link("bond0").is_none(), "ifdown removed bond0");
    assert_eq!(slaves_state(&net), before, "every slave restored");
}

#[test]
fn ifup_of_hotplug_slaves_joins_them_to_the_bond() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    let before = slaves_state(&net);
    let (file, state) = write(&net, HOTPLUG);
    ifupdown(&net, "ifup", &file, &state, &["bond0"]);
    assert_eq!(get(&net, "slaves"), "");
    ifupdown(&net, "ifup", &file, &state, &["eth0", "eth1"]);
    assert_eq!(get(&net, "slaves"), "eth0 eth1");
    assert_eq!(get(&net, "primary"), "eth0", "the slaves' bond-primary list applies");
    settled(&net);
    let p = probe(&net, 200, Duration::from_millis(500), Duration::ZERO, || {});
    assert!(p.lost <= 1 && p.duplicated == 0, "traffic through bond0: {p:?}");
    ifupdown(&net, "ifdown", &file, &state, &["eth1"]);
    assert_eq!(get(&net, "slaves"), "eth0");
    ifupdown(&net, "ifdown", &file, &state, &["bond0", "eth0"]);
    assert!(net.link("bond0").is_none());
    assert_eq!(slaves_state(&net), before, "every slave restored");
}

/// `bond-give-a-chance`: while the slave comes up it is the primary, then the old primary is
/// put back.
#[test]
fn give_a_chance_lends_the_primary_and_takes_it_back() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    let text = HOTPLUG.replacen(
        "iface eth1 inet manual\n    bond-master bond0\n",
        "iface eth1 inet manual\n    bond-master bond0\n    bond-give-a-chance 3\n",
        1,
    );
    let (file, state) = write(&net, &text);
    ifupdown(&net, "ifup", &file, &state, &["bond0", "eth0"]);
    netns::wait(&net, "eth0 up", |l| l.slaves_up(1));
    ifupdown(&net, "ifup", &file, &state, &["eth1"]);
    assert_eq!(get(&net, "primary"), "eth0");
    let lines = net.log_lines().unwrap();
    let i = lines.iter().position(|l| l == "bond0: Setting eth1 as primary slave.").expect("eth1 lent the primary");
    assert!(
        lines[i..].iter().any(|l| l == "bond0: Setting eth0 as primary slave."),
        "and eth0 given it back: {lines:#?}"
    );
    ifupdown(&net, "ifdown", &file, &state, &["bond0", "eth0", "eth1"]);
}

/// Debian's bridge-utils stanza over the bond, through the real ifup and ifdown: `bridge_ports
/// bond0` with the host's address on br0, `mtu 9000` on the bond's stanza (bond0, both slaves
/// and the bridge at 9000), traffic through the bridge; `ifdown br0` leaves the bond running,
/// `ifdown bond0` restores the slaves.
#[test]
fn a_bridge_over_the_bond_through_ifup() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    if !Path::new("/lib/bridge-utils/ifupdown.sh").exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: bridge-utils is missing");
        return eprintln!("skipped: bridge-utils is not installed (scripts/test installs it)");
    }
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    let (sw, peer) = (net.switch_of("eth0"), net.peer());
    for (ns, dev) in [(&sw, "h0"), (&sw, "h1"), (&sw, "p0"), (&peer, "eth0")] {
        netns::ip(&["-n", ns, "link", "set", dev, "mtu", "9000"]);
    }
    let before = slaves_state(&net);
    let text = "auto bond0\niface bond0 inet manual\n    bond-slaves eth0 eth1\n    bond-mode active-backup\n    \
                bond-miimon 100\n    bond-primary eth0\n    mtu 9000\n\n\
                auto br0\niface br0 inet static\n    address 10.77.0.1/24\n    bridge_ports bond0\n    \
                bridge_stp off\n    bridge_fd 0\n";
    let (file, state) = write(&net, text);
    ifupdown(&net, "ifup", &file, &state, &["bond0", "br0"]);
    assert_eq!(net.addrs("br0"), ["10.77.0.1/24"]);
    settled(&net);
    assert_eq!(["bond0", "eth0", "eth1", "br0"].map(|n| net.link(n).unwrap().2), [9000; 4]);
    let p = probe(&net, 500, Duration::from_millis(800), Duration::from_millis(200), || {
        net.cable_of("eth0", false).unwrap();
    });
    assert!(p.lost <= 1 && p.duplicated == 0, "through br0 and a failover: {p:?}");
    net.cable_of("eth0", true).unwrap();
    ifupdown(&net, "ifdown", &file, &state, &["br0"]);
    assert!(net.link("br0").is_none(), "the bridge is gone");
    assert_eq!(get(&net, "slaves"), "eth0 eth1", "the bond runs on without its bridge");
    ifupdown(&net, "ifdown", &file, &state, &["bond0"]);
    assert!(net.link("bond0").is_none());
    assert_eq!(slaves_state(&net), before, "MAC, MTU and state as before");
}

/// The guide's stanza with an option the kernel refuses (a down delay without MII
/// monitoring): ifup brings the bond up without it, as Debian's scripts and the kernel do,
/// and says why in the kernel's words; `rbond up` of the same file refuses it, naming the
/// line.
#[test]
fn ifup_leaves_out_an_option_the_kernel_refuses_and_rbond_up_does_not() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    let text = GUIDE.replace("bond-miimon 100", "bond-miimon 0").replace("    bond-updelay 200\n", "");
    let (file, state) = write(&net, &text);
    let strict = rbond(&net).args(["up", "bond0", "-i"]).arg(&file).output().unwrap();
    let why = "Unable to set down delay as MII monitoring is disabled";
    assert_eq!(strict.status.code(), Some(1), "rbond up refuses the file");
    let line = text.lines().position(|l| l.contains("bond-downdelay")).unwrap() + 1;
    assert_eq!(
        String::from_utf8_lossy(&strict.stderr).trim(),
        format!("rbond: {}:{line}: {why}", file.display()),
        "the refusal names the file and line"
    );
    assert!(net.link("bond0").is_none(), "nothing was touched");
    let out = Command::new("ip")
        .args(["netns", "exec", &net.host(), "ifup", "-i"])
        .arg(&file)
        .arg("--state-dir")
        .arg(&state)
        .arg("bond0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ifup brings the bond up: {stderr}");
    assert!(
        stderr.lines().any(|l| l == format!("bond0: {why} (bond-downdelay 200 left out, as the kernel leaves it)")),
        "ifup says what it left out: {stderr}"
    );
    assert_eq!(net.addrs("bond0"), ["10.77.0.1/24"], "ifup configured the address on the bond");
    assert_eq!(get(&net, "downdelay"), "0");
    assert_eq!(get(&net, "miimon"), "0");
    ifupdown(&net, "ifdown", &file, &state, &["bond0"]);
    assert!(net.link("bond0").is_none(), "ifdown removed bond0");
}

/// A bond with no IPv4 at all, through the real ifup: an `inet6 static` stanza carrying the
/// bond's options (with the NS monitor) and an `inet6 auto` one (addresses from the router's
/// advertisements). The bond runs, IPv6 flows, and ifdown puts the slaves back.
#[test]
fn ifup_builds_an_ipv6_only_bond_from_inet6_stanzas() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let net = lab(Wiring::OneSwitch);
    let Some(_hooks) = Hooks::install(&net.run_dir) else { return };
    net.peer_ipv6_only().unwrap();
    let before = slaves_state(&net);
    let stanza = "auto bond0\niface bond0 inet6 static\n    address 2001:db8:77::1/64\n    bond-slaves eth0 eth1\n    \
                  bond-mode active-backup\n    bond-arp-interval 100\n    bond-ns-ip6-target 2001:db8:77::2\n    \
                  bond-arp-validate all\n    bond-primary eth0\n";
    let (file, state) = write(&net, stanza);
    ifupdown(&net, "ifup", &file, &state, &["bond0"]);
    assert_eq!(net.addrs("bond0"), ["2001:db8:77::1/64"], "the stanza's address and no IPv4");
    assert_eq!(get(&net, "ns_ip6_target"), "2001:db8:77::2");
    netns::wait(&net, "both slaves up on the NS monitor", |l| l.slaves_up(2) && get(l, "active_slave") == "eth0");
    let _echo = net.echo().unwrap();
    let probe = net.probe_from(&net.host(), rbond::lab::PEER_IP6, 200);
    std::thread::sleep(Duration::from_millis(500));
    let p = probe.finish().unwrap().whole();
    assert!(p.sent > 50 && p.lost <= 1 && p.duplicated == 0, "IPv6 through bond0: {p:?}");
    ifupdown(&net, "ifdown", &file, &state, &["bond0"]);
    assert!(net.link("bond0").is_none(), "ifdown removed bond0");
    assert_eq!(slaves_state(&net), before, "every slave restored");

    let auto = "auto bond0\niface bond0 inet6 auto\n    bond-slaves eth0 eth1\n    bond-mode active-backup\n    \
                bond-miimon 100\n";
    let (file, state) = write(&net, auto);
    ifupdown(&net, "ifup", &file, &state, &["bond0"]);
    assert_eq!(get(&net, "miimon"), "100");
    let slaac = netns::slaac_on_bond(&net);
    assert!(slaac.is_some(), "bond0 took an address from the router's advertisement: {:?}", net.ipv6_addrs("bond0"));
    ifupdown(&net, "ifdown", &file, &state, &["bond0"]);
    assert!(net.link("bond0").is_none(), "ifdown removed bond0");
    assert_eq!(slaves_state(&net), before, "every slave restored");
}
