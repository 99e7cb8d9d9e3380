//! The `rbond` command: the daemon, a client for its control socket, and the front-ends
//! people already know (ifenslave's command line, ifupdown's hooks).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::bond::bond_config;
use crate::config::interfaces::Interfaces;
use crate::control::{Client, Request};
use crate::daemon::{Config, Daemon, DatapathChoice};
use crate::datapath::userspace::MAX_LANES;
use launch::Launcher;

pub mod addressing;
pub mod dry_run;
pub mod hook;
pub mod ifenslave;
pub mod launch;
pub mod supervise;
pub mod trial;
pub mod unit;

#[derive(Parser)]
#[command(name = "rbond", version, about = "Active-backup NIC bonding without the kernel bonding driver")]
struct Cli {
    /// Where daemons keep their control sockets and state files.
    #[arg(long, global = true, env = "RBOND_RUN_DIR", default_value = "/run/rbond")]
    run_dir: PathBuf,
    /// The bpffs where the kernel datapath's programs are pinned, so that forwarding outlives
    /// the daemon (mounted there if nothing is).
    #[arg(long, global = true, env = "RBOND_BPFFS", default_value = crate::keep::BPFFS)]
    bpffs: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Every option `--opt` takes, one line each, from the engine's option table.
fn options_help() -> String {
    let mut t = String::from("Bond options as NAME=VALUE, applied in order (e.g. miimon=100). The options:\n");
    for o in rbond_core::OPTIONS {
        t.push_str(&format!("  {:<18} {}\n", o.sysfs, o.help));
    }
    t
}

/// What the daemon runs: `rbond daemon` takes these, and `rbond supervise` passes them on.
#[derive(clap::Args)]
struct DaemonArgs {
    /// The bond device (e.g. bond0): created, or taken over if a daemon that died left it.
    #[arg(long)]
    bond: String,
    /// Slaves to enslave, in order (repeat, or separate with commas).
    #[arg(long = "slaves", alias = "slave", value_delimiter = ',')]
    slaves: Vec<String>,
    /// Bond options as NAME=VALUE, applied in order (e.g. miimon=100).
    #[arg(long = "opt", value_parser = parse_opt, long_help = options_help())]
    opts: Vec<(String, String)>,
    /// Also print the log lines on stderr.
    #[arg(long)]
    foreground: bool,
    /// The syslog socket the log lines are sent to.
    #[arg(long, default_value = crate::daemon::logger::DEV_LOG)]
    syslog: PathBuf,
    /// Where frames are moved: in the kernel (tc/BPF), by the daemon, or the first that works.
    #[arg(long, value_enum, env = "RBOND_DATAPATH", default_value_t = DatapathChoice::Auto)]
    datapath: DatapathChoice,
    /// node_exporter's textfile directory, for rbond-BOND.prom [default: Debian's
    /// /var/lib/prometheus/node-exporter, where it exists].
    #[arg(long, env = "RBOND_METRICS_DIR")]
    metrics_dir: Option<PathBuf>,
    /// bond0's MTU, given to every slave (a new bond only; a running one follows
    /// `ip link set bond0 mtu N`).
    #[arg(long)]
    mtu: Option<u32>,
    /// Also serve the metrics over HTTP on [ADDRESS:]PORT (a port alone: on loopback).
    #[arg(long, env = "RBOND_METRICS_LISTEN", value_parser = crate::monitor::http::parse_listen)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The userspace datapath's forwarding threads, 1 to 64 [default: half the CPUs rbond
    /// may run on, at least one].
    #[arg(long, env = "RBOND_THREADS", value_parser = clap::value_parser!(u8).range(1..=MAX_LANES as i64))]
    threads: Option<u8>,
}

impl DaemonArgs {
    /// The same arguments, as `rbond daemon` reads them.
    fn to_args(&self) -> Vec<String> {
        use clap::ValueEnum;
        let mut v = vec!["--bond".to_string(), self.bond.clone()];
        if !self.slaves.is_empty() {
            v.extend(["--slaves".to_string(), self.slaves.join(",")]);
        }
        for (k, val) in &self.opts {
            v.extend(["--opt".to_string(), format!("{k}={val}")]);
        }
        if self.foreground {
            v.push("--foreground".into());
        }
        v.extend(["--syslog".to_string(), self.syslog.display().to_string()]);
        if let Some(d) = self.datapath.to_possible_value() {
            v.extend(["--datapath".to_string(), d.get_name().to_string()]);
        }
        if let Some(mtu) = self.mtu {
            v.extend(["--mtu".to_string(), mtu.to_string()]);
        }
        if let Some(dir) = &self.metrics_dir {
            v.extend(["--metrics-dir".to_string(), dir.display().to_string()]);
        }
        if let Some(addr) = self.metrics_listen {
            v.extend(["--metrics-listen".to_string(), addr.to_string()]);
        }
        if let Some(n) = self.threads {
            v.extend(["--threads".to_string(), n.to_string()]);
        }
        v
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bond until `rbond down`, SIGTERM or SIGINT: create it, or adopt the one a
    /// daemon that died left running.
    Daemon {
        #[command(flatten)]
        args: DaemonArgs,
    },
    /// Run the bond's daemon and start a new one whenever it dies (for hosts where systemd
    /// does not run; `rbond up` and ifup's hook use it there).
    Supervise {
        #[command(flatten)]
        args: DaemonArgs,
        /// Abort and replace a daemon that has not pinged for this many seconds (0: never).
        #[arg(long, default_value_t = 10.0)]
        watchdog: f64,
        /// A daemon that dies sooner than this many seconds after its start is a failed start.
        #[arg(long, default_value_t = 1.0)]
        min_uptime: f64,
        /// Give up, restoring the slaves, after this many failed starts in a row.
        #[arg(long, default_value_t = 5)]
        max_failed_starts: u32,
        /// The daemon's binary (default: this one).
        #[arg(long)]
        daemon_bin: Option<PathBuf>,
    },
    /// Print the status report (the /proc/net/bonding layout), or JSON; with no bond named,
    /// a line for every bond on the host.
    Status {
        /// The bond (all of them, a line each, when left out).
        bond: Option<String>,
        /// Print the report as JSON instead (every bond's, by name, when none is named).
        #[arg(long)]
        json: bool,
    },
    /// A monitoring plugin's verdict on the bond: one line with performance data; exit 0 OK,
    /// 1 WARNING (a slave not up, not on the primary, or a broken standby path), 2 CRITICAL
    /// (no active slave), 3 UNKNOWN (no daemon answers).
    Check {
        /// The bond.
        bond: String,
    },
    /// Check every slave's path now, without changing anything: each up slave sends one ARP
    /// probe from a MAC of its own; a table of what came back; exit 0 every path verified, 1
    /// WARNING (nothing to go by), 2 CRITICAL (a path broken or down), 3 UNKNOWN.
    Verify {
        /// The bond.
        bond: String,
        /// How long to wait for replies, in seconds.
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
    },
    /// Print the bond's log lines; with --follow, keep printing new ones.
    Events {
        /// The bond.
        bond: String,
        /// Keep printing lines as the bond writes them.
        #[arg(long)]
        follow: bool,
    },
    /// Add slaves to a running bond (ifenslave bond0 eth0).
    Enslave {
        /// The bond.
        bond: String,
        /// The interfaces to enslave, in order.
        slaves: Vec<String>,
    },
    /// Take slaves out of a running bond and give them back their own settings.
    Release {
        /// The bond.
        bond: String,
        /// The slaves to release.
        slaves: Vec<String>,
    },
    /// Make a slave the active one (ifenslave -c).
    SetActive {
        /// The bond.
        bond: String,
        /// The slave to make active; its link must be up.
        slave: String,
    },
    /// Set a slave's priority (iproute2's `ip link set SLAVE type bond_slave prio N`): with no
    /// primary, the slave with the highest prio is preferred.
    SetPrio {
        /// The bond.
        bond: String,
        /// The slave.
        slave: String,
        /// Its priority (default 0; higher is preferred; negative allowed).
        #[arg(allow_negative_numbers = true)]
        prio: i32,
    },
    /// Print an option or state value as its sysfs file reads (e.g. `mode`).
    Get {
        /// The bond.
        bond: String,
        /// An option name, or active_slave, slaves, mii_status, primary, queue_id.
        option: String,
    },
    /// Change an option of a running bond, as a write to its sysfs file would.
    Set {
        /// The bond.
        bond: String,
        /// The option (see `rbond daemon --help` for the list), or active_slave.
        option: String,
        /// The new value: a number, a name, or `default`; `+ADDR` or `-ADDR` adds or removes one
        /// ARP or NS target.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Create a bond from its stanza and return once its slaves are in and bond0 has its
    /// addresses (a live first slave is converted in place, its session kept).
    Up {
        /// The bond, as its stanza names it.
        bond: String,
        /// The interfaces file.
        #[arg(short = 'i', long = "interfaces", default_value = "/etc/network/interfaces")]
        file: PathBuf,
        /// Print what would change on the host (as ip commands) and the lint findings; change
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply a bond's stanza on probation: rolled back unless confirmed in time, and at once
    /// if the bond cannot reach its gateways (the watcher outlives this terminal).
    Try {
        /// The bond, as its stanza names it (of a pending try, with --confirm).
        bond: String,
        /// The interfaces file.
        #[arg(short = 'i', long = "interfaces", default_value = "/etc/network/interfaces")]
        file: PathBuf,
        /// Seconds to wait for `rbond try --confirm` (or Enter) before rolling back.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Seconds the bond has to reach its gateways, ARP and NS targets and --check-ip addresses.
        #[arg(long, default_value_t = 10)]
        grace: u64,
        /// Another address that must answer through the bond (repeatable).
        #[arg(long = "check-ip")]
        check_ip: Vec<std::net::IpAddr>,
        /// Keep the pending try's configuration.
        #[arg(long)]
        confirm: bool,
        /// Print what would change on the host (as ip commands) and the lint findings; change
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Watch a try for `rbond try` (which starts it) and roll it back unless confirmed.
    #[command(hide = true)]
    TryWatch {
        /// The bond.
        bond: String,
        /// When to roll back without a confirmation, in milliseconds since the Unix epoch.
        #[arg(long)]
        until_ms: u64,
        /// Milliseconds the bond has to reach its gateways.
        #[arg(long)]
        grace_ms: u64,
        /// An address that must answer through the bond.
        #[arg(long = "check-ip")]
        check_ip: Vec<std::net::IpAddr>,
    },
    /// Stop the daemon: slaves get back their MAC, MTU, state and addresses (a converted one
    /// its routes and rules too), and the bond disappears.
    Down {
        /// The bond.
        bond: String,
    },
    /// Re-execute the daemon's binary (e.g. after an upgrade) without stopping the bond: the
    /// successor takes over bond0, the slaves and the engine's state, and the kernel datapath
    /// forwards throughout.
    Restart {
        /// The bond.
        bond: String,
    },
    /// Run as an ifupdown hook (from if-pre-up.d, if-up.d, if-down.d and if-post-down.d), reading
    /// ifupdown's environment.
    Hook,
    /// ifenslave(8)'s command line (the binary also answers to the name `ifenslave`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Ifenslave {
        /// ifenslave's arguments, e.g. `-c bond0 eth1`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Report what in an interfaces file would not do what its author meant. Exit code: 0
    /// clean, 1 warnings (with --strict), 2 errors.
    Lint {
        /// The interfaces file.
        #[arg(default_value = "/etc/network/interfaces")]
        file: PathBuf,
        /// Treat warnings as failures.
        #[arg(long)]
        strict: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Manpage,
    /// Install the systemd unit rbond@.service, through which bonds start where systemd runs.
    InstallUnit {
        /// systemd's unit directory.
        #[arg(long, default_value = "/etc/systemd/system")]
        dir: PathBuf,
        /// Remove it instead.
        #[arg(long)]
        remove: bool,
    },
    /// Install the ifupdown hooks, so that ifup and ifdown build bonds from bond-* options.
    InstallHooks {
        /// ifupdown's configuration directory.
        #[arg(long, default_value = "/etc/network")]
        dir: PathBuf,
        /// Remove them instead.
        #[arg(long)]
        remove: bool,
    },
    /// Run the guide's checks, ifenslave sequence and cable pulls on a throwaway network
    /// (network namespaces; no real NIC is touched). Needs root.
    Drill {
        /// Probe packets per second.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
        pps: u32,
        /// Print the results as one JSON document.
        #[arg(long)]
        json: bool,
        /// An interfaces file whose bond stanza (slaves eth0 and eth1) replaces the guide's (inet6 only: drilled over IPv6).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also draw the run as an SVG timeline: packets delivered and lost, steps, outages,
        /// log lines.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

fn parse_opt(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// This program's path, for starting daemons and writing hooks.
fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rbond"))
}

/// Carries out the command; returns the exit code when it has one of its own.
fn run(cli: Cli) -> anyhow::Result<u8> {
    let dir = cli.run_dir.as_path();
    let launcher = Launcher { bin: self_exe(), run_dir: cli.run_dir.clone(), bpffs: cli.bpffs.clone() };
    match cli.cmd {
        Cmd::Daemon { args } => {
            let DaemonArgs {
                bond,
                slaves,
                opts,
                foreground,
                syslog,
                datapath,
                mtu,
                metrics_dir,
                metrics_listen,
                threads,
            } = args;
            let (run_dir, bpffs) = (cli.run_dir, cli.bpffs);
            let options = opts;
            let cfg = Config {
                bond,
                datapath,
                slaves,
                options,
                run_dir,
                foreground,
                syslog,
                bpffs,
                mtu,
                metrics_dir,
                metrics_listen,
                threads: threads.map(usize::from),
            };
            Daemon::start(cfg)?.run()?;
        }
        Cmd::Supervise { args, watchdog, min_uptime, max_failed_starts, daemon_bin } => {
            let o = supervise::Options {
                bin: daemon_bin.unwrap_or_else(self_exe),
                run_dir: cli.run_dir.clone(),
                bpffs: cli.bpffs.clone(),
                bond: args.bond.clone(),
                daemon_args: args.to_args(),
                syslog: args.syslog.clone(),
                watchdog: Some(seconds(watchdog, "watchdog")?).filter(|w| !w.is_zero()),
                min_uptime: seconds(min_uptime, "min-uptime")?,
                max_failed_starts,
            };
            return supervise::run(o);
        }
        Cmd::Status { bond, json } => status(dir, bond, json)?,
        Cmd::Check { bond } => {
            let (verdict, line) = crate::monitor::check::verdict(&bond, Client::new(dir, &bond).status());
            println!("{line}");
            return Ok(verdict as u8);
        }
        Cmd::Verify { bond, wait } => {
            let (verdict, text) = crate::monitor::verify::run(&Client::new(dir, &bond), &bond, seconds(wait, "wait")?);
            print!("{text}");
            return Ok(verdict as u8);
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "rbond",
                &mut std::io::stdout(),
            );
        }
        Cmd::Manpage => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout())?
        }
        Cmd::Events { bond, follow } => {
            let client = Client::new(dir, &bond);
            if follow {
                client.follow(|l| println!("{}", l.text))?;
            } else {
                client.events()?.iter().for_each(|l| println!("{}", l.text));
            }
        }
        Cmd::Enslave { bond, slaves } => {
            for slave in slaves {
                Client::new(dir, &bond).done(&Request::Enslave { slave })?;
            }
        }
        Cmd::Release { bond, slaves } => {
            for slave in slaves {
                Client::new(dir, &bond).done(&Request::Release { slave })?;
            }
        }
        Cmd::SetActive { bond, slave } => Client::new(dir, &bond).done(&Request::SetActive { slave })?,
        Cmd::SetPrio { bond, slave, prio } => Client::new(dir, &bond).done(&Request::SetPrio { slave, prio })?,
        Cmd::Get { bond, option } => println!("{}", Client::new(dir, &bond).get(&option)?),
        Cmd::Set { bond, option, value } => Client::new(dir, &bond).done(&Request::Set { option, value })?,
        Cmd::Up { bond, file, dry_run: true } | Cmd::Try { bond, file, dry_run: true, .. } => {
            let ifs = Interfaces::read(&file)?;
            let (cfg, want) = (bond_config(&ifs, &bond)?, crate::config::addressing::addressing(&ifs, &bond)?);
            for line in dry_run::plan(&ifs, &cfg, &want)? {
                println!("{line}");
            }
        }
        Cmd::Up { bond, file, dry_run: false } => {
            let ifs = Interfaces::read(&file)?;
            let (cfg, want) = (bond_config(&ifs, &bond)?, crate::config::addressing::addressing(&ifs, &bond)?);
            launcher.start(&cfg)?;
            // As ifup would: the stanza's addresses and gateway on bond0; if they cannot be
            // given, the bond is taken apart again rather than left half configured.
            if let Err(e) = addressing::apply(&bond, &want) {
                let _ = launcher.stop(&bond);
                return Err(e);
            }
        }
        Cmd::Down { bond } => launcher.stop(&bond)?,
        Cmd::Try { bond, confirm: true, .. } => trial::confirm(dir, &bond)?,
        Cmd::Try { bond, file, timeout, grace, check_ip, confirm: false, dry_run: false } => {
            let t = trial::Trial {
                bond,
                file,
                timeout: Duration::from_secs(timeout),
                grace: Duration::from_secs(grace),
                check: check_ip,
            };
            return Ok(if trial::run(&launcher, &t)? { 0 } else { 1 });
        }
        Cmd::TryWatch { bond, until_ms, grace_ms, check_ip } => {
            let until = std::time::UNIX_EPOCH + Duration::from_millis(until_ms);
            let w = trial::Watch { bond, until, grace: Duration::from_millis(grace_ms), check: check_ip };
            return Ok(if trial::watch(&launcher, &w)? { 0 } else { 1 });
        }
        Cmd::Restart { bond } => launch::restart(dir, &bond)?,
        Cmd::Hook => {
            let phase = std::env::var("PHASE").unwrap_or_default();
            if let Some(stanza) = hook::stanza_from_env(std::env::vars()) {
                hook::run(&launcher, &phase, stanza)?;
            }
        }
        Cmd::Ifenslave { args } => return Ok(ifenslave_main(&args, dir)),
        Cmd::Lint { file, strict } => return Ok(lint(&file, strict)),
        Cmd::InstallUnit { dir: units, remove } => {
            let path = unit::install(&units, &self_exe(), dir, remove)?;
            println!("{} {}", if remove { "removed" } else { "installed" }, path.display());
        }
        Cmd::InstallHooks { dir: etc, remove } => {
            for p in hook::install(&etc, &self_exe(), dir, remove)? {
                println!("{} {}", if remove { "removed" } else { "installed" }, p.display());
            }
        }
        Cmd::Drill { pps, json, config, svg } => {
            let o = crate::lab::drill::DrillOptions { pps, json, bin: self_exe(), config, svg };
            return Ok(crate::lab::drill::run(o));
        }
    }
    Ok(0)
}

/// The report of one bond, or a line for every bond (JSON: every report, by name).
fn status(dir: &Path, bond: Option<String>, json: bool) -> anyhow::Result<()> {
    if let Some(bond) = bond {
        let s = Client::new(dir, &bond).status()?;
        match json {
            true => println!("{}", serde_json::to_string_pretty(&s.report)?),
            false => print!("{}", s.text),
        }
        return Ok(());
    }
    let rows: Vec<(String, anyhow::Result<crate::control::Status>)> =
        launch::bonds(dir).into_iter().map(|b| (b.clone(), Client::new(dir, &b).status())).collect();
    if json {
        let reports: std::collections::BTreeMap<&str, &rbond_core::Report> =
            rows.iter().filter_map(|(b, s)| Some((b.as_str(), &s.as_ref().ok()?.report))).collect();
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", crate::monitor::summary::table(&rows));
    }
    Ok(())
}

fn lint(file: &Path, strict: bool) -> u8 {
    use crate::config::lint::{Severity, lint};
    let findings = match Interfaces::read(file) {
        Ok(ifs) => lint(&ifs),
        Err(e) => {
            println!("{}: error: {}", e.place, e.message);
            return 2;
        }
    };
    findings.iter().for_each(|d| println!("{d}"));
    match findings.iter().map(|d| d.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) if strict => 1,
        _ => 0,
    }
}

fn ifenslave_main(args: &[String], run_dir: &Path) -> u8 {
    ifenslave::run(args, run_dir, &mut std::io::stdout(), &mut std::io::stderr())
}

pub fn main() -> ExitCode {
    // Called as ifenslave (a symlink), the program is ifenslave.
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    if argv0.as_deref().and_then(|p| p.file_name()).is_some_and(|n| n == "ifenslave") {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let run_dir = std::env::var_os("RBOND_RUN_DIR").map_or_else(|| PathBuf::from("/run/rbond"), PathBuf::from);
        return ExitCode::from(ifenslave_main(&args, &run_dir));
    }
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rbond: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A duration given in seconds on the command line.
fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{what} {s}: not a number of seconds"))
}
