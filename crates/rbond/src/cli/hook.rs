//! Debian's ifupdown: the hook scripts it runs (if-pre-up.d, if-post-down.d) and what they do
//! for a stanza with bond options, as Debian's ifenslave scripts do it. ifupdown hands a
//! stanza's options to hooks as IF_<NAME> variables, from which the stanza is rebuilt so the
//! same mapping decides as for `rbond up`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use rbond_core::Level;

use super::addressing;
use super::launch::Launcher;
use crate::config::bond::{BondConfig, bond_config};
use crate::config::interfaces::{Iface, Interfaces, OptionLine, Place};
use crate::control::{Client, Request};
use crate::daemon::logger::{DEV_LOG, Logger};
use crate::sys::ethtool;

/// The phases rbond hooks into, and the directory ifupdown runs for each.
pub const HOOKS: [(&str, &str); 4] =
    [("if-pre-up.d", "pre-up"), ("if-up.d", "post-up"), ("if-down.d", "pre-down"), ("if-post-down.d", "post-down")];
pub const HOOK_NAME: &str = "rbond";

/// The stanza ifupdown is processing, rebuilt from the hook's environment.
pub fn stanza_from_env(vars: impl Iterator<Item = (String, String)>) -> Option<Iface> {
    let vars: Vec<(String, String)> = vars.collect();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let name = get("IFACE")?;
    let place = Place { file: Arc::from(Path::new("(ifupdown)")), line: 0 };
    // IF_BOND_MIIMON is how ifupdown spells bond-miimon; the mapping matches either.
    let options = vars
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("IF_").map(|o| (o.to_ascii_lowercase().replace('_', "-"), v)))
        .map(|(name, value)| OptionLine { name, value: value.clone(), place: place.clone() })
        .collect();
    Some(Iface {
        name,
        family: get("ADDRFAM").unwrap_or_default(),
        method: get("METHOD").unwrap_or_default(),
        options,
        place,
    })
}

/// Debian's rule for a slave stanza's `bond-primary` list: the first listed name that is
/// enslaved now becomes the primary (nothing changes if none is).
fn apply_primary(client: &Client, list: Option<&str>) -> anyhow::Result<()> {
    let Some(list) = list else { return Ok(()) };
    let enslaved = client.slaves()?;
    if let Some(p) = list.split_whitespace().find(|p| enslaved.iter().any(|s| s == p)) {
        client.done(&Request::Set { option: "primary".into(), value: p.to_string() })?;
    }
    Ok(())
}

/// `bond-give-a-chance N` (Debian's if-up hook, meant for slow links such as Wi-Fi): the
/// slave becomes the primary while it gets up to N seconds to bring its link up, then the
/// previous primary is put back.
fn give_a_chance(client: &Client, slave: &str, seconds: &str) -> anyhow::Result<()> {
    let seconds: u64 =
        seconds.trim().parse().with_context(|| format!("bond-give-a-chance {seconds}: not a number of seconds"))?;
    let old = client.get("primary")?;
    let set = |p: &str| client.done(&Request::Set { option: "primary".into(), value: p.into() });
    set(slave)?;
    for _ in 0..seconds {
        if ethtool::link_detected(slave).unwrap_or(false) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    set(&old)
}

/// Leaves out the options the bond refuses, each with a line on stderr and in the system log
/// in the kernel's words. Debian's scripts write one option at a time and go on when the
/// kernel refuses one, so the bond comes up without it: a boot with one bad line still has a
/// network. `rbond up`, `rbond try` and lint stay strict; a person runs those and can fix the
/// file.
fn leave_out_refused(cfg: &mut BondConfig) {
    let mut options = rbond_core::Options::default();
    let mut log = Logger::new(&cfg.name, true, Path::new(DEV_LOG));
    let bond = cfg.name.clone();
    cfg.options.retain(|(k, v, _)| match options.apply(k, v) {
        Ok(_) => true,
        Err(e) => {
            log.note(Level::Warning, format!("{bond}: {e} (bond-{k} {v} left out, as the kernel leaves it)"));
            false
        }
    });
}

/// Starts the stanza's bond as ifup does: refused options left out.
fn start(launcher: &Launcher, ifs: &Interfaces, bond: &str, with_slaves: bool) -> anyhow::Result<()> {
    let mut cfg = bond_config(ifs, bond)?;
    if !with_slaves {
        cfg.slaves.clear();
    }
    leave_out_refused(&mut cfg);
    launcher.start(&cfg)
}

/// What the hook does for the stanza in `phase`.
pub fn run(launcher: &Launcher, phase: &str, stanza: Iface) -> anyhow::Result<()> {
    let run_dir = launcher.run_dir.as_path();
    let master = stanza.value("bond-master").and_then(|m| m.value.split_whitespace().next().map(str::to_string));
    let primary = stanza.value("bond-primary").map(|p| p.value.clone());
    let chance = stanza.value("bond-give-a-chance").map(|c| c.value.clone());
    let prio = match stanza.value("bond-prio") {
        Some(p) => Some(
            p.value
                .trim()
                .parse::<i32>()
                .map_err(|_| anyhow::anyhow!("{}: bond-prio {}: not a number", p.place, p.value.trim()))?,
        ),
        None => None,
    };
    let is_bond = stanza.value("bond-slaves").is_some() || stanza.value("slaves").is_some();
    let name = stanza.name.clone();
    let ifs = Interfaces { ifaces: vec![stanza], ..Interfaces::default() };
    let running = |bond: &str| Client::new(run_dir, bond).running();
    match (phase, master, is_bond) {
        ("pre-up", Some(bond), _) => {
            let client = Client::new(run_dir, &bond);
            if !client.running() {
                // The slave's stanza speaks for its bond when it comes first, as on Debian.
                start(launcher, &ifs, &bond, false)?;
                set_up(&bond)?;
            }
            if !client.slaves()?.contains(&name) {
                client.done(&Request::Enslave { slave: name.clone() })?;
            }
            if let Some(prio) = prio {
                client.done(&Request::SetPrio { slave: name, prio })?;
            }
            apply_primary(&client, primary.as_deref())
        }
        // The bond's own stanzas: the first starts it; each (inet, then inet6) makes room for
        // the addresses ifupdown is about to add, and settles once they are in.
        ("pre-up", None, is_bond) if is_bond || running(&name) => {
            if !running(&name) {
                start(launcher, &ifs, &name, true)?;
            }
            addressing::make_room(&name, &crate::config::addressing::addressing(&ifs, &name)?)
        }
        ("post-up", None, _) if running(&name) => {
            addressing::settle(&name, &crate::config::addressing::addressing(&ifs, &name)?)
        }
        ("post-up", Some(bond), _) if running(&bond) => match chance {
            Some(n) => give_a_chance(&Client::new(run_dir, &bond), &name, &n),
            None => Ok(()),
        },
        // Before ifupdown takes bond0's addresses away, the slaves leave (a converted
        // interface getting its own back); post-down then stops the daemon.
        ("pre-down", None, _) if running(&name) => Client::new(run_dir, &name).done(&Request::ReleaseAll),
        ("post-down", Some(bond), _) if running(&bond) => {
            let client = Client::new(run_dir, &bond);
            client.done(&Request::Release { slave: name })?;
            apply_primary(&client, primary.as_deref())
        }
        ("post-down", None, true) if launcher.exists(&name) => launcher.stop(&name),
        _ => Ok(()),
    }
}

/// Brings an interface up, as Debian's script does for a bond a slave's stanza created.
fn set_up(name: &str) -> anyhow::Result<()> {
    use crate::net::link::Change;
    let mut rtnl = crate::net::rtnl::Rtnl::open()?;
    let link = crate::net::ctx(rtnl.link_named(name), "lookup", name)?;
    crate::net::ctx(rtnl.set_link(link.index, Change::Up(true)), "set up", name)
}

fn hook_script(bin: &Path, run_dir: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by `rbond install-hooks`: bonds from bond-* options, as Debian's ifenslave does.\n\
         [ -x '{bin}' ] || exit 0\n\
         exec '{bin}' --run-dir '{run}' hook\n",
        bin = bin.display(),
        run = run_dir.display()
    )
}

/// Writes (or, with `remove`, deletes) the hooks under `dir` (normally /etc/network).
pub fn install(dir: &Path, bin: &Path, run_dir: &Path, remove: bool) -> anyhow::Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut done = Vec::new();
    for (sub, _) in HOOKS {
        let path = dir.join(sub).join(HOOK_NAME);
        if remove {
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| path.display().to_string())?;
                done.push(path);
            }
            continue;
        }
        if !dir.join(sub).is_dir() {
            bail!("{}: no such directory (is ifupdown installed?)", dir.join(sub).display());
        }
        std::fs::write(&path, hook_script(bin, run_dir)).with_context(|| path.display().to_string())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        done.push(path);
    }
    Ok(done)
}
