//! Open vSwitch's userspace (netdev) active-backup bond, the contender rbond is held against
//! when `ovs-vswitchd` is installed.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use rbond::lab::{BOND_IP, Lab, ip};

/// Open vSwitch confined to the lab's host namespace, with its own database and run
/// directory; everything stops when this is dropped.
pub struct Ovs {
    pub dir: PathBuf,
    host: String,
}

impl Ovs {
    pub fn start(lab: &Lab, opts: &[&str]) -> anyhow::Result<Ovs> {
        let dir = lab.run_dir.join("ovs");
        std::fs::create_dir_all(&dir)?;
        let ovs = Ovs { dir: dir.clone(), host: lab.host() };
        let db = dir.join("conf.db");
        let d = dir.display();
        run("ovsdb-tool", &["create", &db.display().to_string(), "/usr/share/openvswitch/vswitch.ovsschema"])?;
        ovs.exec(
            "ovsdb-server",
            &[
                &db.display().to_string(),
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--pidfile={d}/ovsdb.pid"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                "--detach",
                &format!("--log-file={d}/ovsdb.log"),
            ],
        )?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.exec(
            "ovs-vswitchd",
            &[
                &format!("unix:{d}/db.sock"),
                &format!("--pidfile={d}/vswitchd.pid"),
                &format!("--unixctl={d}/vswitchd.ctl"),
                "--detach",
                &format!("--log-file={d}/vswitchd.log"),
            ],
        )?;
        let miimon = opt(opts, "miimon").unwrap_or("100");
        let updelay = opt(opts, "updelay").unwrap_or("0");
        let downdelay = opt(opts, "downdelay").unwrap_or("0");
        ovs.vsctl(&["add-br", "brb", "--", "set", "bridge", "brb", "datapath_type=netdev"])?;
        let mut bond = vec!["add-bond", "brb", "bond0", "eth0", "eth1", "bond_mode=active-backup"];
        let (m, u, dd) = (
            format!("other_config:bond-miimon-interval={miimon}"),
            format!("bond_updelay={updelay}"),
            format!("bond_downdelay={downdelay}"),
        );
        bond.extend(["other_config:bond-detect-mode=carrier", &m, &u, &dd]);
        let primary = opt(opts, "primary").map(|p| format!("other_config:bond-primary={p}"));
        bond.extend(primary.as_deref());
        ovs.vsctl(&bond)?;
        for dev in ["eth0", "eth1", "brb"] {
            ip(&["-n", &ovs.host, "link", "set", dev, "up"])?;
        }
        ip(&["-n", &ovs.host, "addr", "add", &format!("{BOND_IP}/24"), "dev", "brb"])?;
        Ok(ovs)
    }

    fn exec(&self, prog: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut a = vec!["netns", "exec", &self.host, prog];
        a.extend(args);
        let out = Command::new("ip").args(&a).env("OVS_RUNDIR", &self.dir).env("OVS_DBDIR", &self.dir).output()?;
        if !out.status.success() {
            bail!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    fn vsctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let db = format!("--db=unix:{}/db.sock", self.dir.display());
        let mut a = vec![db.as_str(), "--timeout=10"];
        a.extend(args);
        self.exec("ovs-vsctl", &a)
    }

    /// The bond's active member: `ovs-appctl bond/show` lists each member and marks the
    /// active one under it.
    pub fn active(&self) -> Option<String> {
        let ctl = format!("--target={}/vswitchd.ctl", self.dir.display());
        let out = Command::new("ovs-appctl").args([&ctl, "bond/show", "bond0"]).output().ok()?;
        let mut member = None;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(rest) = l.strip_prefix("member ") {
                member = rest.split(':').next().map(str::to_string);
            } else if l.trim() == "active member" {
                return member;
            }
        }
        None
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for p in ["vswitchd.pid", "ovsdb.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(p)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn opt<'a>(opts: &[&'a str], name: &str) -> Option<&'a str> {
    opts.iter().find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
}

fn run(prog: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(prog).args(args).output().with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
