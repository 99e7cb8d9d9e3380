//! The guide's bond, booted and put through the NEC cable-pull procedure on a simulated
//! clock: prints every log line at its millisecond, then the status report. Touches nothing.
//!
//! cargo run -p rbond-core --example cable_pull

#[path = "../tests/common/mod.rs"]
mod common;

use common::Sim;
use rbond_core::Command;

fn main() {
    let guide = [("mode", "1"), ("miimon", "100"), ("downdelay", "200"), ("updelay", "200"), ("primary", "eth0")];
    let mut sim = Sim::new(&guide);
    sim.cmd(Command::Up).expect("bring the bond up");
    for nic in ["eth0", "eth1"] {
        sim.enslave(nic, false).expect("enslave");
    }
    sim.at(50).carrier("eth0", true);
    sim.at(60).carrier("eth1", true);
    let steps = [
        ("pull eth1", "eth1", false),
        ("replug eth1", "eth1", true),
        ("pull eth0", "eth0", false),
        ("replug eth0", "eth0", true),
    ];
    let mut t = 5_000;
    for (what, nic, up) in steps {
        sim.at(t);
        sim.log.push((t, format!("--- {what} ---")));
        sim.carrier(nic, up);
        t += 5_000;
    }
    sim.at(t);
    for (ms, line) in &sim.log {
        println!("{:>6}.{:03}  {line}", ms / 1000, ms % 1000);
    }
    println!();
    print!("{}", sim.bond.report().proc_text());
}
