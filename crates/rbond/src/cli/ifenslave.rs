//! `ifenslave`, as the ifenslave(8) C tool of Debian Squeeze (v1.1.0) behaves: the same
//! options, messages and exit codes (2 for usage errors, 1 for illegal operations), carried
//! out by the bond's rbond daemon.

use std::io::Write;
use std::path::Path;

use super::launch;
use crate::control::{Client, Request};
use crate::net::rtnl::Rtnl;

const USAGE: &str = "\
Usage: ifenslave [-f] <master-if> <slave-if> [<slave-if>...]
       ifenslave -d   <master-if> <slave-if> [<slave-if>...]
       ifenslave -c   <master-if> <slave-if>
       ifenslave --help
";

const HELP: &str = "
To create a bond device, simply follow these three steps :
- ensure that the rbond daemon runs for the bond, e.g. via
  `rbond up bond0` or ifup with rbond's hooks installed ;
- assign an IP address to the bond device ;
- attach all the interfaces you need to the bond using ifenslave.

  -a, --all-interfaces  show the state of every bond
  -c, --change-active   make the named slave the active one
  -d, --detach          release the named slaves from the bond
  -f, --force           accepted for compatibility
  -h, --help            this text
  -u, --usage           the usage lines
  -v, --verbose         say what is being done, on stderr
  -V, --version         the version
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Enslave,
    All,
    Change,
    Detach,
    Help,
    Usage,
    Version,
}

struct Args {
    verb: Verb,
    verbose: bool,
    names: Vec<String>,
}

/// Parses the command line as getopt would ("acdfhuvV", long forms, "--"); `None` is a
/// usage error.
fn parse(args: &[String]) -> Option<Args> {
    let mut verbs = Vec::new();
    let (mut verbose, mut names, mut only_names) = (false, Vec::new(), false);
    for a in args {
        let letters: Vec<char> = match a.as_str() {
            _ if only_names || !a.starts_with('-') || a == "-" => {
                names.push(a.clone());
                continue;
            }
            "--" => {
                only_names = true;
                continue;
            }
            "--all-interfaces" => vec!['a'],
            "--change-active" => vec!['c'],
            "--detach" => vec!['d'],
            "--force" => vec!['f'],
            "--help" => vec!['h'],
            "--usage" => vec!['u'],
            "--verbose" => vec!['v'],
            "--version" => vec!['V'],
            long if long.starts_with("--") => return None,
            short => short[1..].chars().collect(),
        };
        for c in letters {
            match c {
                'v' => verbose = true,
                'a' => verbs.push(Verb::All),
                'c' => verbs.push(Verb::Change),
                'd' => verbs.push(Verb::Detach),
                'f' => verbs.push(Verb::Enslave),
                'h' => verbs.push(Verb::Help),
                'u' => verbs.push(Verb::Usage),
                'V' => verbs.push(Verb::Version),
                _ => return None,
            }
        }
    }
    if verbs.len() > 1 {
        return None;
    }
    let verb = verbs.first().copied().unwrap_or(Verb::Enslave);
    let usage_error = match verb {
        Verb::All => !names.is_empty(),
        Verb::Change => names.len() != 2,
        Verb::Detach => names.len() < 2,
        Verb::Enslave => names.is_empty(),
        Verb::Help | Verb::Usage | Verb::Version => false,
    };
    (!usage_error).then_some(Args { verb, verbose, names })
}

/// Runs ifenslave with `args` (without the program name); returns the exit code.
pub fn run(args: &[String], run_dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let Some(a) = parse(args) else {
        let _ = err.write_all(USAGE.as_bytes());
        return 2;
    };
    let version = format!("ifenslave.c:v1.1.0 (December 1, 2003), as rbond v{}\n", rbond_core::VERSION);
    if a.verbose || a.verb == Verb::Version {
        let _ = out.write_all(version.as_bytes());
    }
    match a.verb {
        Verb::Version => 0,
        Verb::Usage => {
            let _ = out.write_all(USAGE.as_bytes());
            0
        }
        Verb::Help => {
            let _ = write!(out, "{USAGE}{HELP}");
            0
        }
        Verb::All => show_all(run_dir, out),
        _ => act(&a, run_dir, out, err),
    }
}

fn show_all(run_dir: &Path, out: &mut dyn Write) -> u8 {
    for b in launch::bonds(run_dir) {
        if let Ok(s) = Client::new(run_dir, &b).status() {
            let _ = write!(out, "{b}:\n{}\n", s.text);
        }
    }
    0
}

/// The interface's index and whether it is up; the error is the kernel's (ENODEV …).
fn interface(name: &str) -> std::io::Result<(u32, bool)> {
    let link = Rtnl::open()?.link_named(name)?;
    Ok((link.index, link.up))
}

fn act(a: &Args, run_dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let master = a.names[0].as_str();
    let Ok((_, master_up)) = interface(master) else {
        let _ = writeln!(err, "Master '{master}': Error: handshake with driver failed. Aborting");
        return 1;
    };
    let client = Client::new(run_dir, master);
    if !client.running() {
        let _ = writeln!(err, "Illegal operation; the specified interface '{master}' is not a master. Aborting");
        return 1;
    }
    if a.names.len() == 1 {
        // The master alone: show what it is.
        return show_one(&client, out);
    }
    if !master_up {
        let _ = writeln!(err, "Illegal operation; the specified master interface '{master}' is not up.");
        return 1;
    }
    let mut code = 0;
    for slave in &a.names[1..] {
        if let Some(c) = one_slave(a, &client, master, slave, err) {
            code = c;
        }
    }
    code
}

fn show_one(client: &Client, out: &mut dyn Write) -> u8 {
    match client.status() {
        Ok(s) => {
            let _ = out.write_all(s.text.as_bytes());
            0
        }
        Err(_) => 1,
    }
}

/// One slave's operation; `Some(code)` when it failed (ifenslave goes on with the next).
fn one_slave(a: &Args, client: &Client, master: &str, slave: &str, err: &mut dyn Write) -> Option<u8> {
    if let Err(e) = interface(slave) {
        let errno = e.raw_os_error().unwrap_or(1);
        let text = std::io::Error::from_raw_os_error(errno).to_string();
        let text = text.split(" (os error").next().unwrap_or_default().to_string();
        let tail = if a.verb == Verb::Change { "Aborting" } else { "Skipping" };
        let what = if a.verb == Verb::Enslave { "get settings" } else { "get flags" };
        let _ = writeln!(err, "Slave '{slave}': Error: {what} failed: {text}. {tail}");
        return Some(u8::try_from(errno).unwrap_or(1));
    }
    let enslaved = client.slaves().unwrap_or_default().iter().any(|s| s == slave);
    let (request, failed, verbose) = match a.verb {
        Verb::Enslave if enslaved => {
            let _ = writeln!(err, "Illegal operation: The specified slave interface '{slave}' is already a slave");
            return Some(1);
        }
        Verb::Detach | Verb::Change if !enslaved => {
            let _ = writeln!(err, "Illegal operation: The specified slave interface '{slave}' is not a slave");
            return Some(1);
        }
        Verb::Enslave => (Request::Enslave { slave: slave.into() }, "Enslave failed", "Enslaving"),
        Verb::Detach => (Request::Release { slave: slave.into() }, "Release failed", "Releasing"),
        _ => (Request::SetActive { slave: slave.into() }, "Change active failed", "Changing the active slave to"),
    };
    if a.verbose {
        let _ = writeln!(err, "Master '{master}': {verbose} '{slave}'");
    }
    match client.done(&request) {
        Ok(_) => None,
        Err(e) => {
            // ifenslave's line, then why (what the kernel would have put in its log).
            let _ = writeln!(err, "Master '{master}', Slave '{slave}': Error: {failed}");
            let _ = writeln!(err, "  ({e})");
            Some(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(args: &[&str]) -> (u8, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let dir = std::env::temp_dir().join("rbond-ifenslave-unit-none");
        let code = run(&args, &dir, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn usage_errors_exit_2_with_the_usage_on_stderr() {
        for bad in [
            &[][..],
            &["-x", "bond0", "eth0"],
            &["--bogus"],
            &["-c", "bond0"],
            &["-c", "bond0", "eth0", "eth1"],
            &["-d", "bond0"],
            &["-a", "bond0"],
            &["-c", "-d", "bond0", "eth0"],
            &["-cd", "bond0", "eth0"],
            &["-h", "-u"],
        ] {
            assert_eq!(run_with(bad), (2, String::new(), USAGE.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn usage_help_and_version_go_to_stdout() {
        assert_eq!(run_with(&["-u"]), (0, USAGE.to_string(), String::new()));
        assert_eq!(run_with(&["--usage"]).1, USAGE);
        let (code, out, _) = run_with(&["-h"]);
        assert_eq!(code, 0);
        assert!(out.starts_with(USAGE) && out.contains("--change-active"));
        let (code, out, _) = run_with(&["-V"]);
        assert_eq!((code, out.starts_with("ifenslave.c:v1.1.0 (December 1, 2003), as rbond v")), (0, true));
    }

    #[test]
    fn a_missing_master_fails_the_handshake() {
        assert_eq!(
            run_with(&["nosuchbond9", "eth0"]),
            (1, String::new(), "Master 'nosuchbond9': Error: handshake with driver failed. Aborting\n".into())
        );
        // lo exists but is no bond of ours.
        assert_eq!(
            run_with(&["-d", "lo", "eth0"]),
            (1, String::new(), "Illegal operation; the specified interface 'lo' is not a master. Aborting\n".into())
        );
    }
}
