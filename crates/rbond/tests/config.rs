//! The interfaces(5) parser and what Debian's ifenslave scripts make of a bond stanza.

use std::path::{Path, PathBuf};

use rbond::config::bond::{bond_config, bonds};
use rbond::config::examples::HOTPLUG;
use rbond::config::interfaces::Interfaces;

/// The classic Debian guide's file, its addresses moved to 10.x.
pub const GUIDE: &str = "\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
auto bond0
iface bond0 inet static
\taddress 10.77.0.1
\tnetmask 255.255.255.0
\tnetwork 10.77.0.0
\tbroadcast 10.77.0.255
\tgateway 10.77.0.254
\tbond-slaves eth0 eth1
\tbond-mode 1
\tbond-miimon 100
\tbond-primary eth0
\tbond-updelay 200
\tbond-downdelay 200
";

fn parse(text: &str) -> Interfaces {
    Interfaces::parse(text, Path::new("/etc/network/interfaces")).unwrap()
}

fn pairs(text: &str) -> Vec<(String, String)> {
    bond_config(&parse(text), "bond0").unwrap().option_pairs()
}

fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn the_guides_file() {
    let ifs = parse(GUIDE);
    assert_eq!(
        ifs.ifaces.iter().map(|i| (i.name.as_str(), i.method.as_str())).collect::<Vec<_>>(),
        [("lo", "loopback"), ("bond0", "static")]
    );
    assert_eq!(
        ifs.marks.iter().map(|m| (m.class.as_str(), m.name.as_str())).collect::<Vec<_>>(),
        [("auto", "lo"), ("auto", "bond0")]
    );
    let b = bond_config(&ifs, "bond0").unwrap();
    assert_eq!(b.slaves, ["eth0", "eth1"]);
    // Debian writes miimon, the delays and the mode in this order, then the primary.
    assert_eq!(
        b.option_pairs(),
        p(&[("miimon", "100"), ("downdelay", "200"), ("updelay", "200"), ("mode", "1"), ("primary", "eth0")])
    );
    assert_eq!(b.place.to_string(), "/etc/network/interfaces:10");
    let miimon = b.options.iter().find(|o| o.0 == "miimon").unwrap();
    assert_eq!(miimon.2.to_string(), "/etc/network/interfaces:18");
    assert_eq!(ifs.iface("bond0")[0].value("address").unwrap().value, "10.77.0.1");
    assert_eq!(bonds(&ifs), ["bond0"]);
}

#[test]
fn the_hotplug_example() {
    let ifs = parse(HOTPLUG);
    let b = bond_config(&ifs, "bond0").unwrap();
    assert_eq!(b.slaves, ["eth0", "eth1"], "slaves join through bond-master");
    assert_eq!(b.option_pairs(), p(&[("miimon", "100"), ("mode", "active-backup"), ("primary", "eth0")]));
    assert_eq!(ifs.marks.iter().filter(|m| m.class == "hotplug").count(), 2);
    assert_eq!(bonds(&ifs), ["bond0"]);
}

#[test]
fn spellings_are_as_ifupdown_sees_them() {
    // ifupdown exports IF_BOND_MIIMON for bond-miimon, bond_miimon and bond-miimon alike; an
    // option without the bond- prefix reaches no script and does nothing.
    let text = "iface bond0 inet manual\n  bond_slaves eth0\n  bond_miimon 100\n  arp_interval 2000\n  arp_ip_target 10.0.0.9\n";
    assert_eq!(pairs(text), p(&[("miimon", "100")]));
    let legacy = "iface bond0 inet manual\n  slaves eth0 eth1\n  bond-arp-interval 1000\n  bond-arp-ip-target 10.0.0.9 10.0.0.10\n";
    let b = bond_config(&parse(legacy), "bond0").unwrap();
    assert_eq!(b.slaves, ["eth0", "eth1"]);
    assert_eq!(
        b.option_pairs(),
        p(&[("arp_ip_target", "+10.0.0.9"), ("arp_ip_target", "+10.0.0.10"), ("arp_interval", "1000")])
    );
}

#[test]
fn bond_datapath_is_rbonds_own_option() {
    let b =
        bond_config(&parse("iface bond0 inet manual\n bond-slaves eth0\n bond-datapath userspace\n"), "bond0").unwrap();
    assert_eq!(b.datapath.as_deref(), Some("userspace"));
    let bad =
        bond_config(&parse("iface bond0 inet manual\n bond-slaves eth0\n bond-datapath fast\n"), "bond0").unwrap_err();
    assert_eq!(
        bad.to_string(),
        "/etc/network/interfaces:3: bond-datapath fast: expected auto, kernel, kernel-tc or userspace"
    );
}

#[test]
fn both_monitors_leave_miimon_as_debian_does() {
    let text = "iface bond0 inet manual\n bond-slaves eth0\n bond-miimon 100\n bond-arp-interval 1000\n bond-arp-ip-target 10.0.0.9\n";
    let mut o = rbond_core::Options::default();
    for (k, v) in pairs(text) {
        o.apply(&k, &v).unwrap();
    }
    assert_eq!((o.miimon(), o.arp_interval()), (100, 0));
}

#[test]
fn comments_continuations_and_mappings() {
    let text = "\
# a comment
auto bond0 \\
  eth0
mapping eth*
    script /usr/local/sbin/map-scheme
    map HOME eth0-home

iface bond0 inet manual
    bond-slaves eth0 \\
        eth1
    # a comment inside the stanza
    up echo # not a comment here
";
    let ifs = parse(text);
    assert_eq!(
        ifs.marks.iter().map(|m| (m.name.as_str(), m.place.line)).collect::<Vec<_>>(),
        [("bond0", 2), ("eth0", 2)]
    );
    assert_eq!(ifs.mappings.len(), 1);
    assert_eq!(ifs.mappings[0].patterns, ["eth*"]);
    assert_eq!(ifs.mappings[0].options.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["script", "map"]);
    let b = bond_config(&ifs, "bond0").unwrap();
    assert_eq!(b.slaves, ["eth0", "eth1"]);
    let up = ifs.iface("bond0")[0].value("up").unwrap();
    assert_eq!((up.value.as_str(), up.place.line), ("echo # not a comment here", 12));
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rbond-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("interfaces.d")).unwrap();
    d
}

#[test]
fn source_and_source_directory_read_relative_to_the_including_file() {
    let d = scratch("source");
    std::fs::write(d.join("interfaces"), "source interfaces.d/*.cfg\nsource-directory more\n").unwrap();
    std::fs::write(d.join("interfaces.d/b.cfg"), "iface eth1 inet manual\n  bond-master bond0\n").unwrap();
    std::fs::write(d.join("interfaces.d/a.cfg"), "iface bond0 inet manual\n  bond-slaves eth0\n  bond-miimon 100\n")
        .unwrap();
    std::fs::write(d.join("interfaces.d/ignored.txt"), "this is not read\n").unwrap();
    std::fs::create_dir_all(d.join("more")).unwrap();
    std::fs::write(d.join("more/extra"), "auto bond0\n").unwrap();
    std::fs::write(d.join("more/skipped.bak"), "garbage garbage\n").unwrap();
    let ifs = Interfaces::read(&d.join("interfaces")).unwrap();
    let b = bond_config(&ifs, "bond0").unwrap();
    assert_eq!(b.slaves, ["eth0", "eth1"]);
    assert_eq!(b.place.to_string(), format!("{}:1", d.join("interfaces.d/a.cfg").display()));
    assert_eq!(ifs.marks[0].place.to_string(), format!("{}:1", d.join("more/extra").display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn errors_name_the_file_and_line() {
    let e = |text: &str| Interfaces::parse(text, Path::new("/etc/network/interfaces")).unwrap_err().to_string();
    assert_eq!(
        e("\n\naddress 10.0.0.1\n"),
        "/etc/network/interfaces:3: option \"address\" is not inside an iface or mapping stanza"
    );
    assert_eq!(
        e("iface bond0 inet\n"),
        "/etc/network/interfaces:1: iface needs a name, an address family and a method: \"iface bond0 inet\""
    );
    assert_eq!(e("mapping\n"), "/etc/network/interfaces:1: mapping needs at least one interface pattern");
    assert_eq!(
        e("auto lo\nsource /nonexistent/rbond-test-file\n"),
        "/etc/network/interfaces:2: cannot read /nonexistent/rbond-test-file: No such file or directory (os error 2)"
    );
    let missing = bond_config(&parse("iface eth0 inet dhcp\n"), "bond0").unwrap_err().to_string();
    assert_eq!(
        missing,
        "/etc/network/interfaces:1: no stanza configures bond bond0 (bond-slaves on iface bond0, or bond-master bond0 on a slave)"
    );
    let all = bond_config(&parse("iface bond0 inet manual\n bond-slaves all\n"), "bond0").unwrap_err().to_string();
    assert_eq!(all, "/etc/network/interfaces:2: bond-slaves all is not supported; name the slaves");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Random text made of the format's own pieces: parsing and linting end in a result or a
    /// FILE:LINE error, never a panic.
    #[test]
    fn any_text_parses_or_fails_cleanly(pieces in proptest::collection::vec(proptest::sample::select(vec![
        "iface ", "bond0 ", "eth0 ", "inet ", "static", "manual", "auto ", "allow-hotplug ", "mapping ", "source ",
        "bond-slaves ", "bond-master ", "bond-miimon ", "bond-primary ", "bond-arp-ip-target ", "bond-updelay ",
        "address ", "netmask ", "10.0.0.1", "/24", "255.255.255.0", "100", "none", "eth1", "\\", "\n", "\n  ", "#", " ",
        "\u{0}", "é", "*", "-1", "99999999999999999999",
    ]), 0..60)) {
        let text: String = pieces.concat();
        if let Ok(ifs) = Interfaces::parse(&text, Path::new("f")) {
            let _ = rbond::config::lint::lint(&ifs);
            for b in bonds(&ifs) {
                let _ = bond_config(&ifs, &b);
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "\\",
        "\\\n\\\n",
        "iface",
        "iface a b c\n\u{0}\u{7f}",
        "allow-\n",
        "source\n",
        "#\\\nx y",
        "iface a b c\n  x\\",
    ];
    for s in samples {
        let _ = Interfaces::parse(s, Path::new("f"));
    }
}
