//! What the monitoring people already run sees of the bond: Debian's prometheus-node-exporter
//! reading rbond's textfile, the metrics over HTTP, the /proc-shaped report file, `rbond
//! check` for monitoring plugins, and a real rsyslog writing the lines the guide greps for.

mod netns;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netns::{Cpu, Lab, Rng, Wiring, begin, bin, get, lab, settled, wait};

const GUIDE: &[&str] = &["mode=1", "miimon=100", "updelay=200", "downdelay=200", "primary=eth0"];

fn opts(o: &[&str]) -> Vec<String> {
    o.iter().map(|s| s.to_string()).collect()
}

/// A program the test needs, or why it cannot run: a failure under CI=true, a skip otherwise.
fn needs(program: &str, package: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {program} is missing (apt-get install {package})"
        );
        eprintln!("skipped: {program} is missing (apt-get install {package})");
    }
    found
}

/// A child process killed when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on loopback just now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /metrics` from loopback in this process's namespace.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The value of one series in Prometheus text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The bond under the guide's settings, its metrics written to `dir`.
fn bond_with_metrics(net: &mut Lab, o: &[&str], dir: &Path, extra: &[String]) {
    let mut args: Vec<String> = ["--metrics-dir".to_string(), dir.display().to_string()].into();
    args.extend(extra.iter().cloned());
    net.start_supervised(bin(), &["eth0", "eth1"], &opts(o), &args.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    wait(net, "an active slave", |l| !get(l, "active_slave").is_empty());
    settled(net);
}

fn textfile(dir: &Path) -> PathBuf {
    dir.join("rbond-bond0.prom")
}

/// node_exporter (the Debian package, really started) reads rbond's textfile: its two bonding
/// series read 2 and 2, a failed slave moves `node_bonding_active` to 1 in the next scrape,
/// and the daemon's own HTTP listener serves the same text.
#[test]
fn node_exporter_reads_the_bond_and_sees_a_slave_fail() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    if !needs("prometheus-node-exporter", "prometheus-node-exporter") {
        return;
    }
    let mut net = lab(Wiring::OneSwitch);
    let dir = net.run_dir.join("textfiles");
    let port = free_port();
    let exporter = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _exporter = Running(exporter);
    // The daemon also serves the text itself, on the host namespace's loopback.
    let listen = ["--metrics-listen".to_string(), "9469".to_string()];
    bond_with_metrics(&mut net, GUIDE, &dir, &listen);
    net.wait_until(Duration::from_secs(5), "node_exporter", |_| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .unwrap();
    let metrics = scrape(port);
    assert_eq!(value(&metrics, "node_bonding_slaves{master=\"bond0\"}"), Some(2.0), "{metrics}");
    assert_eq!(value(&metrics, "node_bonding_active{master=\"bond0\"}"), Some(2.0), "{metrics}");
    assert!(metrics.contains("# HELP node_bonding_active Number of active slaves per bonding interface.\n"));
    assert!(metrics.contains("# HELP node_bonding_slaves Number of configured slaves per bonding interface.\n"));
    net.cable_of("eth1", false).unwrap();
    wait(&net, "eth1 down", |l| l.status().is_ok_and(|s| s.report.slaves[1].mii_status == "down"));
    let metrics = scrape(port);
    assert_eq!(value(&metrics, "node_bonding_active{master=\"bond0\"}"), Some(1.0), "{metrics}");
    let series = "rbond_slave_state{master=\"bond0\",slave=\"eth1\",state=\"down\"}";
    assert_eq!(value(&metrics, series), Some(1.0), "{metrics}");
    let served = net.in_ns(&net.host(), || scrape(9469)).join().unwrap().unwrap();
    assert_eq!(served, std::fs::read_to_string(textfile(&dir)).unwrap(), "the listener serves the textfile's text");
}

/// Over 100 flaps of the active slave's cable, `rbond_failovers_total` moves by exactly one
/// per failover the bond logged; the /proc-shaped file is the status report every time.
#[test]
fn failovers_are_counted_exactly_and_the_proc_file_follows() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    let mut net = lab(Wiring::OneSwitch);
    let dir = net.run_dir.join("textfiles");
    bond_with_metrics(&mut net, &["mode=1", "miimon=100", "primary=eth0"], &dir, &[]);
    let failovers = || {
        let text = std::fs::read_to_string(textfile(&dir)).unwrap();
        value(&text, "rbond_failovers_total{master=\"bond0\"}").unwrap() as u64
    };
    let before = failovers();
    let logged = |n: &Lab| n.log_lines().unwrap().iter().filter(|l| l.ends_with("the new active one.")).count();
    let logged_before = logged(&net);
    let mut rng = Rng(0xf1a9);
    for i in 0..100 {
        net.cable_of("eth0", i % 2 == 1).unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(60)));
    }
    net.cable_of("eth0", true).unwrap();
    wait(&net, "eth0 back", |l| get(l, "active_slave") == "eth0" && l.slaves_up(2));
    std::thread::sleep(Duration::from_millis(300));
    let moved = failovers() - before;
    let switches = (logged(&net) - logged_before) as u64;
    eprintln!("100 flaps: {switches} failovers logged, rbond_failovers_total moved by {moved}");
    assert!(switches >= 50, "the flaps were failovers: {switches}");
    assert_eq!(moved, switches);
    let proc = std::fs::read_to_string(net.run_dir.join("proc/net/bonding/bond0")).unwrap();
    assert_eq!(proc, net.status().unwrap().text);
}

/// Under 1,000 fast flaps every read of the textfile is whole, valid Prometheus text
/// (`promtool check metrics`, from Debian's prometheus package, lints each one).
#[test]
fn the_textfile_stays_valid_under_a_thousand_flaps() {
    let Some(_turn) = begin(Cpu::Alone) else { return };
    if !needs("promtool", "prometheus") {
        return;
    }
    let mut net = lab(Wiring::OneSwitch);
    let dir = net.run_dir.join("textfiles");
    bond_with_metrics(&mut net, &["mode=1", "miimon=100", "primary=eth0"], &dir, &[]);
    let path = textfile(&dir);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut checked = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut lint = Command::new("promtool")
                    .args(["check", "metrics"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                lint.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
                let out = lint.wait_with_output().unwrap();
                let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
                assert!(text.ends_with("\n") && text.contains("rbond_build_info{"), "a whole file: {text}");
                checked += 1;
            }
            checked
        })
    };
    let mut rng = Rng(0x1000);
    for i in 0..1000 {
        net.cable_of("eth0", i % 2 == 1).unwrap();
        std::thread::sleep(Duration::from_millis(1 + rng.below(20)));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checked = reader.join().unwrap();
    eprintln!("1,000 flaps: {checked} reads of the textfile, each valid");
    assert!(checked >= 20, "{checked}");
}

/// `rbond check` for each state: OK, WARNING (a slave down; off the primary), CRITICAL (no
/// active slave), UNKNOWN (no daemon), each with its line.
#[test]
fn check_gives_a_verdict_for_every_state() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    let mut net = lab(Wiring::OneSwitch);
    netns::start(&mut net, &["mode=1", "miimon=100", "primary=eth0"]);
    settled(&net);
    let check = |n: &Lab| {
        let out = netns::rbond(n).args(["check", "bond0"]).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    };
    let (code, line) = check(&net);
    assert_eq!(code, 0, "{line}");
    assert_eq!(line, "RBOND OK - bond0: eth0 active, 2 of 2 slaves up | slaves=2;;;0 slaves_up=2;;;0 failovers=0c");
    net.cable_of("eth1", false).unwrap();
    wait(&net, "eth1 down", |l| !l.slaves_up(2));
    let (code, line) = check(&net);
    assert_eq!(
        (code, line.as_str()),
        (
            1,
            "RBOND WARNING - bond0: eth0 active, 1 of 2 slaves up (eth1 not up) | slaves=2;;;0 slaves_up=1;;;0 failovers=0c"
        )
    );
    net.cable_of("eth1", true).unwrap();
    settled(&net);
    net.request(&rbond::control::Request::SetActive { slave: "eth1".into() }).unwrap();
    let (code, line) = check(&net);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("RBOND WARNING - bond0: eth1 active, 2 of 2 slaves up; the primary eth0 is not active |"),
        "{line}"
    );
    net.cable_of("eth0", false).unwrap();
    net.cable_of("eth1", false).unwrap();
    wait(&net, "no active slave", |l| get(l, "active_slave").is_empty());
    let (code, line) = check(&net);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("RBOND CRITICAL - bond0: no active slave, 0 of 2 slaves up (eth0, eth1 not up) |"),
        "{line}"
    );
    net.request(&rbond::control::Request::Down).unwrap();
    net.wait_daemon().unwrap();
    let (code, line) = check(&net);
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("RBOND UNKNOWN - bond0: no daemon answers ("), "{line}");
}

/// A real rsyslog (started by the test, its own socket and file) writes the bond's lines, and
/// the guide's own command prints the kernel's line after each ifenslave step and cable pull.
#[test]
fn the_guides_syslog_command_prints_the_kernels_lines() {
    let Some(_turn) = begin(Cpu::Shared) else { return };
    if !needs("rsyslogd", "rsyslog") {
        return;
    }
    let mut net = lab(Wiring::OneSwitch);
    let dir = net.run_dir.clone();
    let syslog = dir.join("syslog");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{sock}\" RateLimit.Interval=\"0\")\n\
             *.* action(type=\"omfile\" file=\"{log}\" template=\"RSYSLOG_TraditionalFileFormat\")\n",
            d = dir.display(),
            sock = net.syslog_path().display(),
            log = syslog.display()
        ),
    )
    .unwrap();
    let rsyslog = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _rsyslog = Running(rsyslog);
    net.wait_until(Duration::from_secs(5), "rsyslog's socket", |n| n.syslog_path().exists()).unwrap();
    netns::start(&mut net, GUIDE);
    settled(&net);
    let guide = format!("grep bonding {} | tail -1 | sed s/\".*bonding\\: \"//", syslog.display());
    let last_event = |n: &Lab| n.log_lines().unwrap().last().cloned().unwrap();
    // The guide's ifenslave verbs, then the NEC cable pull, each judged on the line it leaves.
    enum Step {
        Ifenslave(&'static [&'static str]),
        Cable(&'static str, bool),
    }
    let steps = [
        Step::Ifenslave(&["-c", "bond0", "eth1"]),
        Step::Ifenslave(&["-d", "bond0", "eth1"]),
        Step::Ifenslave(&["bond0", "eth1"]),
        Step::Ifenslave(&["-c", "bond0", "eth0"]),
        Step::Cable("eth0", false),
        Step::Cable("eth0", true),
    ];
    for step in steps {
        let name = match step {
            Step::Ifenslave(args) => {
                assert!(netns::ifenslave(&net, args).status.success(), "ifenslave {args:?}");
                format!("ifenslave {}", args.join(" "))
            }
            Step::Cable(slave, plugged) => {
                net.cable_of(slave, plugged).unwrap();
                format!("cable of {slave} plugged: {plugged}")
            }
        };
        std::thread::sleep(Duration::from_millis(700)); // the delays run out
        let want = last_event(&net);
        let mut printed = String::new();
        let read = net.wait_until(Duration::from_secs(3), "rsyslog to write", |_| {
            let out = Command::new("sh").args(["-c", &guide]).output().unwrap();
            printed = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
            printed == want
        });
        assert!(read.is_ok(), "{name}: the guide's command printed {printed:?}, the bond's last line is {want:?}");
    }
    let written = std::fs::read_to_string(&syslog).unwrap();
    assert!(written.contains(" rbond["), "logged under the identifier rbond: {written}");
}
