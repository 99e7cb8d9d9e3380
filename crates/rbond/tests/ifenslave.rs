//! `ifenslave` (the rbond binary under that name) against a running bond: the guide's
//! sequence, and every illegal operation with ifenslave's message and exit code.

mod netns;

use netns::{Cpu, Lab, Wiring, begin, get, ifenslave, lab, settled, start, wait};

fn ok(net: &Lab, args: &[&str]) {
    let out = ifenslave(net, args);
    assert!(out.status.success(), "ifenslave {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn refused(net: &Lab, args: &[&str], code: i32, message: &str) {
    let out = ifenslave(net, args);
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr).as_ref()),
        (Some(code), message),
        "ifenslave {args:?}"
    );
}

#[test]
fn the_guides_ifenslave_sequence_and_its_refusals() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    start(&mut net, &["mode=1", "miimon=100", "updelay=200", "downdelay=200", "primary=eth0"]);
    settled(&net);
    ok(&net, &["-c", "bond0", "eth0"]);
    ok(&net, &["-d", "bond0", "eth0"]);
    assert_eq!((get(&net, "slaves").as_str(), get(&net, "active_slave").as_str()), ("eth1", "eth1"));
    refused(
        &net,
        &["-d", "bond0", "eth0"],
        1,
        "Illegal operation: The specified slave interface 'eth0' is not a slave\n",
    );
    refused(
        &net,
        &["-c", "bond0", "eth0"],
        1,
        "Illegal operation: The specified slave interface 'eth0' is not a slave\n",
    );
    ok(&net, &["bond0", "eth0"]);
    refused(
        &net,
        &["bond0", "eth0"],
        1,
        "Illegal operation: The specified slave interface 'eth0' is already a slave\n",
    );
    wait(&net, "eth0 reclaimed as primary", |n| get(n, "active_slave") == "eth0");
    ok(&net, &["-c", "bond0", "eth1"]);
    assert_eq!(get(&net, "active_slave"), "eth1");
    ok(&net, &["-c", "bond0", "eth0"]);
    assert_eq!(get(&net, "active_slave"), "eth0");
    let lines = net.log_lines().unwrap();
    let tail: Vec<&str> = lines.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        ["bond0: making interface eth1 the new active one.", "bond0: making interface eth0 the new active one."]
    );
    // A slave that does not exist is skipped with the errno as exit code (ENODEV = 19).
    refused(&net, &["-d", "bond0", "eth9"], 19, "Slave 'eth9': Error: get flags failed: No such device. Skipping\n");
    refused(&net, &["bond0", "eth9"], 19, "Slave 'eth9': Error: get settings failed: No such device. Skipping\n");
    // The link of eth1 is down: it cannot be made active.
    net.cable_of("eth1", false).unwrap();
    wait(&net, "eth1 down", |n| {
        n.status().unwrap().report.slaves.iter().any(|s| s.name == "eth1" && s.mii_status == "down")
    });
    refused(
        &net,
        &["-c", "bond0", "eth1"],
        1,
        "Master 'bond0', Slave 'eth1': Error: Change active failed\n  \
         (bond0: Could not set eth1 as active slave; either eth1 is down or the link is down)\n",
    );
    // A master that is down refuses changes.
    netns::ip(&["-n", &net.host(), "link", "set", "bond0", "down"]);
    refused(
        &net,
        &["-c", "bond0", "eth0"],
        1,
        "Illegal operation; the specified master interface 'bond0' is not up.\n",
    );
    // The master alone shows its state.
    let out = ifenslave(&net, &["bond0"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Ethernet Channel Bonding Driver: rbond v"));
}
