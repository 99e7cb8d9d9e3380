//! Every option: its default, its limits (refused with the kernel's message), and how it
//! interacts with the others and with a running bond.

mod common;

use common::{PEER_IP, Sim, assert_log};
use rbond_core::Command;

fn err(sim: &mut Sim, name: &str, value: &str) -> String {
    sim.set(name, value).expect_err(&format!("{name}={value} must be refused")).to_string()
}

fn lines(sim: &mut Sim) -> Vec<String> {
    sim.take_log().into_iter().map(|(_, l)| l).collect()
}

#[test]
fn a_default_bond_warns_that_it_detects_nothing() {
    let mut sim = Sim::new(&[]);
    assert_log(
        &sim.take_log(),
        &[(
            0,
            "Warning: either miimon or arp_interval and arp_ip_target module parameters must be specified, \
             otherwise bonding will not detect link failures! see bonding.txt for details.",
        )],
    );
}

#[test]
fn defaults_read_back_as_the_kernels() {
    let sim = Sim::new(&[]);
    let want = [
        ("mode", "active-backup 1"),
        ("miimon", "0"),
        ("updelay", "0"),
        ("downdelay", "0"),
        ("peer_notif_delay", "0"),
        ("use_carrier", "1"),
        ("arp_interval", "0"),
        ("arp_ip_target", ""),
        ("arp_validate", "none 0"),
        ("arp_all_targets", "any 0"),
        ("arp_missed_max", "2"),
        ("primary", ""),
        ("primary_reselect", "always 0"),
        ("fail_over_mac", "none 0"),
        ("num_grat_arp", "1"),
        ("num_unsol_na", "1"),
        ("all_slaves_active", "0"),
        ("min_links", "0"),
        ("active_slave", ""),
        ("slaves", ""),
        ("mii_status", "down"),
    ];
    for (file, value) in want {
        assert_eq!(sim.sysfs(file), value, "{file}");
    }
}

#[test]
fn numeric_options_take_their_range_and_refuse_beyond_it() {
    // (option, min, max)
    let ranges = [
        ("miimon", 0u64, 2_147_483_647u64),
        ("arp_interval", 0, 2_147_483_647),
        ("arp_missed_max", 1, 255),
        ("num_grat_arp", 0, 255),
        ("num_unsol_na", 0, 255),
        ("min_links", 0, 2_147_483_647),
    ];
    for (name, min, max) in ranges {
        let mut sim = Sim::new(&[]);
        for ok in [min, max] {
            sim.set(name, &ok.to_string()).unwrap_or_else(|e| panic!("{name}={ok}: {e}"));
            assert_eq!(sim.sysfs(name), ok.to_string());
        }
        let mut bad =
            vec![(max + 1).to_string(), "-1".into(), "ten".into(), "".into(), "99999999999999999999999".into()];
        if min > 0 {
            bad.push((min - 1).to_string());
        }
        for b in bad {
            assert_eq!(
                err(&mut sim, name, &b),
                format!("option {name}: invalid value ({b}); allowed values {min} - {max}"),
            );
        }
        // "default" selects the default; a trailing newline (as from `echo`) is ignored.
        sim.set(name, &format!("{min}\n")).unwrap();
        sim.set(name, "default").unwrap();
    }
}

#[test]
fn num_grat_arp_and_num_unsol_na_are_one_value() {
    let mut sim = Sim::new(&[]);
    sim.set("num_unsol_na", "7").unwrap();
    assert_eq!(sim.sysfs("num_grat_arp"), "7");
    // No kernel logs a change of these at info level.
    assert!(lines(&mut sim).iter().all(|l| !l.contains("num_")), "nothing logged");
}

#[test]
fn enumerated_options_take_a_name_or_a_number() {
    let tables: [(&str, &[&str]); 6] = [
        ("arp_validate", &["none", "active", "backup", "all", "filter", "filter_active", "filter_backup"]),
        ("arp_all_targets", &["any", "all"]),
        ("primary_reselect", &["always", "better", "failure"]),
        ("fail_over_mac", &["none", "active", "follow"]),
        ("use_carrier", &["off", "on"]),
        ("all_slaves_active", &["off", "on"]),
    ];
    for (name, values) in tables {
        let mut sim = Sim::new(&[]);
        let is_bool = values == ["off", "on"];
        for (n, v) in values.iter().enumerate() {
            let readback = if is_bool { n.to_string() } else { format!("{v} {n}") };
            sim.set(name, v).unwrap();
            assert_eq!(sim.sysfs(name), readback);
            sim.set(name, &n.to_string()).unwrap();
            assert_eq!(sim.sysfs(name), readback);
        }
        let past = values.len().to_string();
        for bad in [past.as_str(), "bogus", "-1", ""] {
            assert_eq!(err(&mut sim, name, bad), format!("option {name}: invalid value ({bad})"));
        }
    }
}

#[test]
fn only_active_backup_is_a_mode() {
    let mut sim = Sim::new(&[]);
    for ok in ["active-backup", "1", "active-backup\n"] {
        sim.set("mode", ok).unwrap();
        assert_eq!(sim.sysfs("mode"), "active-backup 1");
    }
    let others = [
        ("balance-rr", 0),
        ("balance-xor", 2),
        ("broadcast", 3),
        ("802.3ad", 4),
        ("balance-tlb", 5),
        ("balance-alb", 6),
    ];
    for (name, n) in others {
        let want = format!("option mode: mode {name} ({n}) is not supported; rbond implements active-backup (1) only");
        assert_eq!(err(&mut sim, "mode", name), want);
        assert_eq!(err(&mut sim, "mode", &n.to_string()), want);
    }
    // The kernel's default mode is round-robin, which rbond does not have.
    assert!(err(&mut sim, "mode", "default").contains("balance-rr (0) is not supported"));
    assert_eq!(err(&mut sim, "mode", "7"), "option mode: invalid value (7)");
}

#[test]
fn mode_needs_a_down_bond_without_slaves() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0"]);
    sim.take_log();
    // The kernel checks the bond's state before it looks at the value, so even the mode the
    // bond already has is refused.
    assert_eq!(err(&mut sim, "mode", "active-backup"), "option mode: unable to set because the bond device has slaves");
    sim.release("eth0").unwrap();
    assert_eq!(err(&mut sim, "mode", "1"), "option mode: unable to set because the bond device is up");
    sim.cmd(Command::Down).unwrap();
    sim.set("arp_validate", "all").unwrap();
    sim.take_log();
    sim.set("mode", "1").unwrap();
    assert_eq!(lines(&mut sim), ["bond0: setting mode to active-backup (1)."]);
    assert_eq!(sim.sysfs("arp_validate"), "none 0", "a mode change resets arp_validate");
}

#[test]
fn unknown_options_are_named() {
    let mut sim = Sim::new(&[]);
    assert_eq!(err(&mut sim, "lacp_rate", "fast"), "unknown option lacp_rate");
    // ifupdown's spelling with dashes is the same option.
    sim.set("arp-missed-max", "3").unwrap();
    assert_eq!(sim.sysfs("arp_missed_max"), "3");
    // iproute2 calls peer_notif_delay peer_notify_delay.
    sim.set("miimon", "100").unwrap();
    sim.set("peer_notify_delay", "300").unwrap();
    assert_eq!(sim.sysfs("peer_notif_delay"), "300");
}

#[test]
fn miimon_and_arp_interval_exclude_each_other() {
    let mut sim = Sim::new(&[]);
    sim.take_log();
    sim.set("arp_ip_target", "192.0.2.254").unwrap();
    sim.set("miimon", "100").unwrap();
    sim.set("arp_validate", "all").unwrap();
    sim.take_log();
    sim.set("arp_interval", "1000").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting ARP monitoring interval to 1000.",
            "bond0: ARP monitoring cannot be used with MII monitoring. bond0 Disabling MII monitoring.",
        ]
    );
    assert_eq!((sim.sysfs("miimon").as_str(), sim.sysfs("arp_interval").as_str()), ("0", "1000"));
    sim.set("miimon", "100").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting MII monitoring interval to 100.",
            "bond0: MII monitoring cannot be used with ARP monitoring. Disabling ARP monitoring...",
        ]
    );
    assert_eq!((sim.sysfs("miimon").as_str(), sim.sysfs("arp_interval").as_str()), ("100", "0"));
    assert_eq!(sim.sysfs("arp_validate"), "none 0", "miimon resets arp_validate");
}

#[test]
fn delays_need_miimon_and_are_kept_in_ticks() {
    let mut sim = Sim::new(&[]);
    for (opt, phrase) in
        [("updelay", "up delay"), ("downdelay", "down delay"), ("peer_notif_delay", "peer notification delay")]
    {
        assert_eq!(err(&mut sim, opt, "200"), format!("Unable to set {phrase} as MII monitoring is disabled"));
    }
    sim.set("miimon", "100").unwrap();
    sim.take_log();
    sim.set("updelay", "250").unwrap();
    sim.set("downdelay", "250").unwrap();
    sim.set("peer_notif_delay", "250").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Warning: up delay (250) is not a multiple of miimon (100), updelay rounded to 200 ms",
            "bond0: Setting up delay to 200.",
            "bond0: Warning: down delay (250) is not a multiple of miimon (100), delay rounded to 200 ms",
            "bond0: Setting down delay to 200.",
            // peer_notif_delay arrived with the modern wording: no "Warning: ", and a change
            // is logged at debug level only.
            "bond0: peer notification delay (250) is not a multiple of miimon (100), value rounded to 200 ms",
        ]
    );
    assert_eq!(sim.sysfs("updelay"), "200");
    // Ticks are kept when miimon changes, so the delays in milliseconds follow it.
    sim.set("miimon", "50").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting MII monitoring interval to 50.",
            "bond0: Note: Updating updelay (to 100) since it is a multiple of the miimon value.",
            "bond0: Note: Updating downdelay (to 100) since it is a multiple of the miimon value.",
        ]
    );
    assert_eq!((sim.sysfs("updelay").as_str(), sim.sysfs("downdelay").as_str()), ("100", "100"));
    assert_eq!(sim.sysfs("peer_notif_delay"), "100");
    sim.set("updelay", "2147483647").unwrap();
    assert_eq!(
        err(&mut sim, "updelay", "2147483648"),
        "option updelay: invalid value (2147483648); allowed values 0 - 2147483647"
    );
}

#[test]
fn arp_targets_are_a_set_of_at_most_sixteen() {
    let mut sim = Sim::new(&[]);
    sim.take_log();
    sim.set("arp_ip_target", "+192.0.2.1").unwrap();
    assert_eq!(
        err(&mut sim, "arp_ip_target", "+192.0.2.1"),
        "option arp_ip_target: ARP target 192.0.2.1 is already present"
    );
    for bad in ["+0.0.0.0", "+255.255.255.255", "+192.0.2", "+bogus"] {
        let ip = &bad[1..];
        assert_eq!(
            err(&mut sim, "arp_ip_target", bad),
            format!("option arp_ip_target: invalid ARP target {ip} specified for addition")
        );
    }
    for i in 2..=16 {
        sim.set("arp_ip_target", &format!("+192.0.2.{i}")).unwrap();
    }
    assert_eq!(err(&mut sim, "arp_ip_target", "+192.0.2.17"), "option arp_ip_target: ARP target table is full!");
    let seventeen: Vec<String> = (1..=17).map(|i| format!("192.0.2.{i}")).collect();
    assert_eq!(err(&mut sim, "arp_ip_target", &seventeen.join(",")), "option arp_ip_target: ARP target table is full!");
    assert_eq!(
        err(&mut sim, "arp_ip_target", "-198.51.100.1"),
        "option arp_ip_target: unable to remove nonexistent ARP target 198.51.100.1"
    );
    sim.set("arp_ip_target", "-192.0.2.16").unwrap();
    sim.take_log();
    // A list replaces the set (netlink and ifupdown spell it this way).
    sim.set("arp_ip_target", "192.0.2.1 192.0.2.99").unwrap();
    assert_eq!(sim.sysfs("arp_ip_target"), "192.0.2.1 192.0.2.99");
    assert_eq!(
        err(&mut sim, "arp_ip_target", "192.0.2.5,192.0.2.5"),
        "option arp_ip_target: ARP target 192.0.2.5 is already present"
    );
    // With ARP monitoring on, removing the last target is warned about.
    sim.set("arp_interval", "100").unwrap();
    sim.set("arp_ip_target", "").unwrap();
    assert!(lines(&mut sim).contains(&"bond0: removing last arp target with arp_interval on".to_string()));
    assert_eq!(sim.sysfs("arp_ip_target"), "");
}

#[test]
fn arp_interval_without_targets_is_dropped_at_creation_but_accepted_at_runtime() {
    let mut sim = Sim::new(&[("arp_interval", "1000")]);
    assert_eq!(
        lines(&mut sim),
        [
            "Warning: arp_interval module parameter (1000) specified without providing an arp_ip_target parameter, arp_interval was reset to 0",
            "Warning: either miimon or arp_interval and arp_ip_target module parameters must be specified, \
             otherwise bonding will not detect link failures! see bonding.txt for details.",
        ]
    );
    assert_eq!(sim.sysfs("arp_interval"), "0");
    sim.set("arp_interval", "1000").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting ARP monitoring interval to 1000.",
            "bond0: ARP monitoring has been set up, but no ARP targets have been specified."
        ]
    );
    let sim = Sim::new(&[("arp_interval", "1000"), ("arp_ip_target", "192.0.2.254"), ("arp_validate", "active")]);
    assert_eq!(sim.log[0].1, "ARP monitoring set to 1000 ms, validate active, with 1 target(s): 192.0.2.254");
}

#[test]
fn an_arp_monitor_with_no_target_takes_every_slave_down() {
    let mut sim = Sim::running(&[], &[]);
    sim.set("arp_interval", "100").unwrap();
    sim.enslave("eth0", true).unwrap();
    sim.after(2000);
    assert!(sim.log.iter().any(|(_, l)| l == "bond0: link status definitely down for interface eth0, disabling it"));
    // With no active slave the monitor keeps retrying eth0 as its probe candidate.
    assert_eq!(sim.slave_sysfs("eth0", "mii_status"), "going back");
    assert_eq!(sim.sysfs("mii_status"), "down");
    assert_eq!(sim.sysfs("active_slave"), "");
}

#[test]
fn fail_over_mac_needs_a_bond_without_slaves() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0"]);
    assert_eq!(
        err(&mut sim, "fail_over_mac", "active"),
        "option fail_over_mac: unable to set because the bond device has slaves"
    );
    sim.release("eth0").unwrap();
    sim.set("fail_over_mac", "active").unwrap();
    assert_eq!(sim.sysfs("fail_over_mac"), "active 1");
}

#[test]
fn primary_is_remembered_until_enslaved_and_then_takes_over() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0", "eth1"]);
    sim.take_log();
    sim.set("primary", "eth2").unwrap();
    assert_eq!(sim.sysfs("primary"), "", "the file names an enslaved primary only");
    sim.enslave("eth2", true).unwrap();
    assert_eq!(sim.sysfs("primary"), "eth2");
    sim.set("primary", "eth1").unwrap();
    sim.set("primary", "").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Recording eth2 as primary, but it has not been enslaved to bond0 yet.",
            "bond0: making interface eth2 the new active one.",
            "bond0: enslaving eth2 as an active interface with an up link.",
            "bond0: Setting eth1 as primary slave.",
            "bond0: making interface eth1 the new active one.",
            // A healthy active slave stays (kernels from 6.0 would move to eth0, the first up
            // slave: a failover nobody asked for).
            "bond0: Setting primary slave to None.",
        ]
    );
    assert_eq!(err(&mut sim, "primary", "a-name-far-too-long"), "option primary: invalid value (a-name-far-too-long)");
}

#[test]
fn primary_reselect_applies_at_once() {
    let mut sim =
        Sim::running(&[("miimon", "100"), ("primary", "eth0"), ("primary_reselect", "failure")], &["eth0", "eth1"]);
    sim.cmd(Command::ChangeActive("eth1".into())).unwrap();
    assert_eq!(sim.active().as_deref(), Some("eth1"));
    sim.set("primary_reselect", "always").unwrap();
    assert_eq!(sim.active().as_deref(), Some("eth0"));
}

#[test]
fn min_links_does_not_touch_the_carrier_in_active_backup() {
    let mut sim = Sim::running(&[("miimon", "100"), ("min_links", "2")], &["eth0"]);
    sim.after(500);
    assert_eq!(sim.sysfs("mii_status"), "up");
}

#[test]
fn arp_missed_max_sets_how_long_silence_is_tolerated() {
    for (missed, down_at) in [("2", 1300), ("5", 1600)] {
        let mut sim =
            Sim::running(&[("arp_interval", "100"), ("arp_ip_target", "192.0.2.254"), ("arp_missed_max", missed)], &[]);
        sim.arp_peer = Some(PEER_IP);
        sim.addresses();
        sim.enslave("eth0", true).unwrap();
        sim.at(1000);
        sim.arp_peer = None; // the peer goes silent
        sim.at(3000);
        let down = sim.log.iter().find(|(_, l)| l.contains("definitely down")).map(|(t, _)| *t);
        assert_eq!(down, Some(down_at), "arp_missed_max {missed}");
    }
}

#[test]
fn arp_all_targets_all_needs_every_target_to_answer() {
    for (mode, stays_up) in [("any", true), ("all", false)] {
        let mut sim = Sim::running(
            &[
                ("arp_interval", "100"),
                ("arp_ip_target", "192.0.2.254,192.0.2.253"),
                ("arp_validate", "active"),
                ("arp_all_targets", mode),
            ],
            &[],
        );
        sim.arp_peer = Some(PEER_IP); // 192.0.2.253 never answers
        sim.addresses();
        sim.enslave("eth0", true).unwrap();
        sim.after(3000);
        assert_eq!(sim.slave_sysfs("eth0", "mii_status") == "up", stays_up, "arp_all_targets {mode}");
    }
}

/// The names in the kernel's value tables are values too: `off`, `on`, `minval`, `maxval`.
#[test]
fn value_table_names_are_accepted_as_the_kernel_accepts_them() {
    let mut sim = Sim::new(&[]);
    for (option, value, reads) in [
        ("miimon", "maxval", "2147483647"),
        ("miimon", "off", "0"),
        ("arp_interval", "off", "0"),
        ("arp_missed_max", "minval", "1"),
        ("arp_missed_max", "maxval", "255"),
        ("num_grat_arp", "off", "0"),
        ("use_carrier", "off", "0"),
        ("use_carrier", "on", "1"),
        ("all_slaves_active", "on", "1"),
        ("resend_igmp", "maxval", "255"),
        ("min_links", "maxval", "2147483647"),
    ] {
        sim.set(option, value).unwrap_or_else(|e| panic!("{option}={value}: {e}"));
        assert_eq!(sim.sysfs(option), reads, "{option}={value}");
    }
    assert_eq!(
        err(&mut sim, "arp_missed_max", "off"),
        "option arp_missed_max: invalid value (off); allowed values 1 - 255"
    );
}

/// Each successful change says what the first kernel with the option said, `(N)` included.
#[test]
fn option_changes_are_logged_in_the_kernels_words() {
    let mut sim = Sim::new(&[]);
    sim.take_log();
    for (option, value) in [
        ("fail_over_mac", "active"),
        ("arp_validate", "all"),
        ("arp_all_targets", "1"),
        ("primary_reselect", "better"),
        ("use_carrier", "0"),
        ("resend_igmp", "3"),
        ("min_links", "2"),
        ("num_grat_arp", "3"),
        ("arp_missed_max", "4"),
        ("all_slaves_active", "1"),
    ] {
        sim.set(option, value).unwrap();
    }
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting fail_over_mac to active (1).",
            "bond0: setting arp_validate to all (3).",
            "bond0: setting arp_all_targets to all (1).",
            "bond0: setting primary_reselect to better (1).",
            "bond0: Setting use_carrier to 0.",
            "bond0: Setting resend_igmp to 3.",
            "bond0: Setting min links value to 2",
        ],
        "num_grat_arp, arp_missed_max and all_slaves_active are changed silently"
    );
}

/// Writing `active_slave` says what it does; `ifenslave -c` only makes the switch.
#[test]
fn active_slave_writes_say_what_they_do() {
    let mut sim = Sim::running(&[("miimon", "100")], &["eth0", "eth1"]);
    sim.take_log();
    sim.set("active_slave", "eth1").unwrap();
    sim.set("active_slave", "eth1").unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Setting eth1 as active slave.",
            "bond0: making interface eth1 the new active one.",
            "bond0: eth1 is already the current active slave.",
        ]
    );
    sim.carrier("eth0", false);
    sim.take_log();
    assert!(sim.set("active_slave", "eth0").is_err());
    sim.set("active_slave", "").unwrap();
    sim.cmd(Command::ChangeActive("eth1".into())).unwrap();
    assert_eq!(
        lines(&mut sim),
        [
            "bond0: Could not set eth0 as active slave; either eth0 is down or the link is down.",
            "bond0: Clearing current active slave.",
            "bond0: making interface eth1 the new active one.",
        ]
    );
}
