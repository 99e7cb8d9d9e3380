//! `rbond lint`: every diagnostic with its exact message and line, and the exit codes.

use std::path::Path;
use std::process::Command;

use rbond::config::interfaces::Interfaces;
use rbond::config::lint::lint;

fn findings(text: &str) -> Vec<String> {
    let ifs = Interfaces::parse(text, Path::new("/etc/network/interfaces")).unwrap();
    let strip = |s: String| s.strip_prefix("/etc/network/interfaces:").map(str::to_string).unwrap_or(s);
    lint(&ifs).iter().map(|d| strip(d.to_string())).collect()
}

const BOND: &str = "iface bond0 inet static\n    address 10.77.0.1\n    netmask 255.255.255.0\n    bond-slaves eth0 eth1\n    bond-miimon 100\n";

#[test]
fn the_guides_stanza_is_clean() {
    assert_eq!(findings(BOND), Vec::<String>::new());
}

#[test]
fn each_diagnostic_names_its_line() {
    let cases: [(&str, &str); 9] = [
        (
            "    arp_interval 2000\n",
            "6: warning: arp_interval is ignored: ifupdown hands it to no bonding script (write bond-arp-interval)",
        ),
        (
            "    arp_ip_target 10.77.0.9\n",
            "6: warning: arp_ip_target is ignored: ifupdown hands it to no bonding script (write bond-arp-ip-target)",
        ),
        (
            "    bond-miimonn 50\n",
            "6: error: unknown option bond-miimonn (did you mean bond-miimon?); ifupdown's bonding scripts ignore it",
        ),
        ("    bond-frobnicate yes\n", "6: error: unknown option bond-frobnicate; ifupdown's bonding scripts ignore it"),
        ("    bond-lacp-rate fast\n", "6: warning: bond-lacp-rate has no effect in active-backup mode"),
        (
            "    bond-updelay 250\n",
            "6: warning: bond-updelay 250 is not a multiple of bond-miimon 100; it is rounded to 200 ms",
        ),
        ("    bond-primary eth7\n", "6: warning: bond-primary eth7 is not a slave of bond0"),
        (
            "    bond-mode balance-rr\n",
            "6: error: option mode: mode balance-rr (0) is not supported; rbond implements active-backup (1) only",
        ),
        ("    bond-downdelay abc\n", "6: error: option downdelay: invalid value (abc); allowed values 0 - 2147483647"),
    ];
    for (line, want) in cases {
        assert_eq!(findings(&format!("{BOND}{line}")), [want], "{line}");
    }
}

/// ARP and NS targets off the bond's subnets, per family (a link-local NS target is on every
/// link), and targets with no ARP monitor to probe them; the unprefixed spelling is ignored.
#[test]
fn monitor_targets_off_subnet_or_never_probed() {
    let dual = "iface bond0 inet static\n    address 10.77.0.1/24\n    bond-slaves eth0 eth1\n    bond-arp-interval 100\n\
                iface bond0 inet6 static\n    address 2001:db8:77::1/64\n";
    let text = format!(
        "{dual}    bond-arp-ip-target 10.9.9.9\n    bond-ns-ip6-target 2001:db8:77::2 2001:db8:99::2 fe80::1\n    ns-ip6-target 2001:db8:77::2\n"
    );
    assert_eq!(
        findings(&text),
        [
            "7: warning: bond-arp-ip-target 10.9.9.9 is outside bond0's subnet 10.77.0.0/24",
            "8: warning: bond-ns-ip6-target 2001:db8:99::2 is outside bond0's subnet 2001:db8:77::/64",
            "9: warning: ns-ip6-target is ignored: ifupdown hands it to no bonding script (write bond-ns-ip6-target)",
        ]
    );
    let unprobed = format!("{BOND}    bond-ns-ip6-target 2001:db8:77::2 2001:db8:77::3\n");
    assert_eq!(
        findings(&unprobed),
        ["6: warning: bond-ns-ip6-target is never probed: the ARP monitor runs only with bond-arp-interval"]
    );
    let refused = format!("{BOND}    bond-arp-interval 0\n    bond-ns-ip6-target ff02::1\n");
    assert!(
        findings(&refused)
            .contains(&"7: error: option ns_ip6_target: invalid NS target ff02::1 specified for addition".into()),
        "{:?}",
        findings(&refused)
    );
}

#[test]
fn both_monitors_and_no_monitor() {
    let both = BOND.to_string() + "    bond-arp-interval 1000\n    bond-arp-ip-target 10.77.0.9\n";
    assert_eq!(
        findings(&both),
        [
            "6: warning: bond-arp-interval 1000 is dropped: Debian writes bond-miimon (100) after it, and the two exclude each other"
        ]
    );
    let none = "iface bond0 inet manual\n    bond-slaves eth0\n";
    assert_eq!(
        findings(none),
        [
            "1: warning: bond0: no link monitoring: set bond-miimon, or bond-arp-interval with bond-arp-ip-target, otherwise link failures go undetected"
        ]
    );
}

#[test]
fn stanzas_that_clash() {
    let text = format!("{BOND}\niface eth0 inet static\n    address 10.88.0.5/24\n\niface eth0 inet manual\n");
    assert_eq!(
        findings(&text),
        [
            "8: warning: eth0 is a slave of bond0 but its stanza gives it an address: the bond takes its addresses away",
            "10: warning: iface eth0 inet is declared again (first at /etc/network/interfaces:7)",
        ]
    );
}

#[test]
fn mappings_over_bond_interfaces_are_reported() {
    let text = format!("mapping eth*\n    script /usr/local/sbin/map\n{BOND}");
    assert_eq!(
        findings(&text),
        [
            "1: warning: mapping eth* covers eth0 (a slave of bond0); rbond uses its stanza as written and runs no mapping script",
            "1: warning: mapping eth* covers eth1 (a slave of bond0); rbond uses its stanza as written and runs no mapping script",
        ]
    );
}

#[test]
fn exit_codes() {
    let dir = std::env::temp_dir().join(format!("rbond-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |text: &str, strict: bool| {
        let f = dir.join("interfaces");
        std::fs::write(&f, text).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbond"));
        c.arg("lint").arg(&f);
        if strict {
            c.arg("--strict");
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    assert_eq!(run(BOND, true), (Some(0), String::new()));
    let warned = format!("{BOND}    bond-primary eth7\n");
    assert_eq!(run(&warned, false).0, Some(0));
    assert_eq!(run(&warned, true).0, Some(1));
    assert_eq!(run(&format!("{BOND}    bond-miimonn 5\n"), false).0, Some(2));
    let (code, out) = run("address 10.0.0.1\n", false);
    assert_eq!(code, Some(2));
    assert_eq!(
        out,
        format!(
            "{}:1: error: option \"address\" is not inside an iface or mapping stanza\n",
            dir.join("interfaces").display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
