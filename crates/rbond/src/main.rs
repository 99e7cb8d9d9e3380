//! The `rbond` command: the daemon, and a client for its control socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rbond::control::{self, Request};
use rbond::daemon::{Config, Daemon};
use rbond::launch::ask;
use serde_json::Value;

#[derive(Parser)]
#[command(name = "rbond", version, about = "Active-backup NIC bonding without the kernel bonding driver")]
struct Cli {
    /// Where daemons keep their control sockets and state files.
    #[arg(long, global = true, env = "RBOND_RUN_DIR", default_value = "/run/rbond")]
    run_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the bond and run it until `rbond down`, SIGTERM or SIGINT.
    Daemon {
        #[arg(long)]
        bond: String,
        /// Slaves to enslave, in order (repeat, or separate with commas).
        #[arg(long = "slaves", alias = "slave", value_delimiter = ',')]
        slaves: Vec<String>,
        /// Bond options as NAME=VALUE, applied in order (e.g. miimon=100).
        #[arg(long = "opt", value_parser = parse_opt)]
        opts: Vec<(String, String)>,
        /// Also print the log lines on stderr.
        #[arg(long)]
        foreground: bool,
        /// The syslog socket the log lines are sent to.
        #[arg(long, default_value = rbond::logger::DEV_LOG)]
        syslog: PathBuf,
        /// Where frames are moved: in the kernel (tc/BPF), by the daemon, or the first that works.
        #[arg(long, value_enum, env = "RBOND_DATAPATH", default_value_t = rbond::daemon::Datapath::Auto)]
        datapath: rbond::daemon::Datapath,
    },
    /// Print the status report (the /proc/net/bonding layout), or JSON; every running bond
    /// when none is named.
    Status {
        bond: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the bond's log lines; with --follow, keep printing new ones.
    Events {
        bond: String,
        #[arg(long)]
        follow: bool,
    },
    Enslave { bond: String, slaves: Vec<String> },
    Release { bond: String, slaves: Vec<String> },
    SetActive { bond: String, slave: String },
    /// Print an option or state value as its sysfs file reads (e.g. `mode`).
    Get { bond: String, option: String },
    Set { bond: String, option: String, value: String },
    /// Create a bond from its stanza in an interfaces file and return once its slaves are in.
    Up {
        bond: String,
        /// The interfaces file.
        #[arg(short = 'i', long = "interfaces", default_value = "/etc/network/interfaces")]
        file: PathBuf,
    },
    /// Stop the daemon: slaves get back their MAC, MTU and state, and the bond disappears.
    Down { bond: String },
    /// Re-execute the daemon's binary (e.g. after an upgrade) without stopping the bond: the
    /// successor takes over bond0, the slaves and the engine's state, and the kernel datapath
    /// forwards throughout.
    Restart { bond: String },
    /// Run as an ifupdown hook (from if-pre-up.d and if-post-down.d), reading ifupdown's
    /// environment.
    Hook,
    /// ifenslave(8)'s command line (the binary also answers to the name `ifenslave`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Ifenslave {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Report what in an interfaces file would not do what its author meant. Exit code: 0
    /// clean, 1 warnings (with --strict), 2 errors.
    Lint {
        #[arg(default_value = "/etc/network/interfaces")]
        file: PathBuf,
        /// Treat warnings as failures.
        #[arg(long)]
        strict: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Manpage,
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
        /// An interfaces file whose bond stanza (slaves eth0 and eth1) replaces the guide's.
        #[arg(long)]
        config: Option<PathBuf>,
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

fn print_line(v: &Value) {
    println!("{}", v["text"].as_str().unwrap_or_default());
}

/// Carries out the command; returns the exit code when it has one of its own.
fn run(cli: Cli) -> anyhow::Result<u8> {
    let dir = &cli.run_dir;
    match cli.cmd {
        Cmd::Daemon { bond, slaves, opts, foreground, syslog, datapath } => {
            let cfg = Config { bond, datapath, slaves, options: opts, run_dir: dir.clone(), foreground, syslog };
            Daemon::start(cfg)?.run()?;
        }
        Cmd::Status { bond, json } => {
            let bonds = match bond {
                Some(b) => vec![b],
                None => rbond::launch::bonds(dir),
            };
            for (i, bond) in bonds.iter().enumerate() {
                let r = ask(dir, bond, &Request::Status)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r["report"])?);
                } else {
                    print!("{}{}", if i > 0 { "\n" } else { "" }, r["text"].as_str().unwrap_or_default());
                }
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "rbond", &mut std::io::stdout());
        }
        Cmd::Manpage => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout())?,
        Cmd::Events { bond, follow } => {
            // The reply carries the history; a follower then gets one line per new event.
            let mut refused = None;
            control::stream(&control::socket_path(dir, &bond), &Request::Events { follow }, |v| match v.get("ok") {
                Some(ok) if *ok != true => refused = Some(v["error"].to_string()),
                Some(_) => v["lines"].as_array().into_iter().flatten().for_each(print_line),
                None => print_line(v),
            })?;
            if let Some(e) = refused {
                anyhow::bail!("{bond}: {e}");
            }
        }
        Cmd::Enslave { bond, slaves } => {
            for slave in slaves {
                ask(dir, &bond, &Request::Enslave { slave })?;
            }
        }
        Cmd::Release { bond, slaves } => {
            for slave in slaves {
                ask(dir, &bond, &Request::Release { slave })?;
            }
        }
        Cmd::SetActive { bond, slave } => drop(ask(dir, &bond, &Request::SetActive { slave })?),
        Cmd::Get { bond, option } => println!("{}", ask(dir, &bond, &Request::Get { option })?["value"].as_str().unwrap_or_default()),
        Cmd::Set { bond, option, value } => drop(ask(dir, &bond, &Request::Set { option, value })?),
        Cmd::Up { bond, file } => {
            let ifs = rbond::config::interfaces::Interfaces::read(&file)?;
            let cfg = rbond::config::bond::bond_config(&ifs, &bond)?;
            rbond::launch::start(&self_exe(), dir, &cfg)?;
        }
        Cmd::Down { bond } => rbond::launch::stop(dir, &bond)?,
        Cmd::Restart { bond } => rbond::launch::restart(dir, &bond)?,
        Cmd::Hook => {
            let phase = std::env::var("PHASE").unwrap_or_default();
            if let Some(stanza) = rbond::ifupdown::stanza_from_env(std::env::vars()) {
                rbond::ifupdown::run_hook(&self_exe(), dir, &phase, stanza)?;
            }
        }
        Cmd::Ifenslave { args } => return Ok(ifenslave(&args, dir)),
        Cmd::Lint { file, strict } => return Ok(lint(&file, strict)),
        Cmd::InstallHooks { dir: etc, remove } => {
            for p in rbond::ifupdown::install_hooks(&etc, &self_exe(), dir, remove)? {
                println!("{} {}", if remove { "removed" } else { "installed" }, p.display());
            }
        }
        Cmd::Drill { pps, json, config } => {
            return Ok(rbond::drill::run(rbond::drill::DrillOptions { pps, json, bin: self_exe(), config }));
        }
    }
    Ok(0)
}

fn lint(file: &std::path::Path, strict: bool) -> u8 {
    use rbond::config::lint::{Severity, lint};
    let findings = match rbond::config::interfaces::Interfaces::read(file) {
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

fn ifenslave(args: &[String], run_dir: &std::path::Path) -> u8 {
    rbond::ifenslave::run(args, run_dir, &mut std::io::stdout(), &mut std::io::stderr())
}

fn main() -> ExitCode {
    // Called as ifenslave (a symlink), the program is ifenslave.
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    if argv0.as_deref().and_then(|p| p.file_name()).is_some_and(|n| n == "ifenslave") {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let run_dir = std::env::var_os("RBOND_RUN_DIR").map_or_else(|| PathBuf::from("/run/rbond"), PathBuf::from);
        return ExitCode::from(ifenslave(&args, &run_dir));
    }
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rbond: {e:#}");
            ExitCode::FAILURE
        }
    }
}
