//! The systemd template unit `rbond@.service`: one bond per instance, supervised by systemd
//! (Type=notify, watchdog, restart, and the descriptor store holding bond0's TAP across a
//! crash). `rbond up` and ifup's hook start it when systemd runs the host.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub const UNIT_NAME: &str = "rbond@.service";

/// The unit for the rbond binary at `bin`, keeping its sockets and state in `run_dir`.
pub fn text(bin: &Path, run_dir: &Path) -> String {
    let (bin, run) = (bin.display(), run_dir.display());
    format!(
        "# One active-backup bond, e.g. rbond@bond0.service. Installed by `rbond install-unit`;\n\
         # `rbond up` and ifup's hook start it with the bond's arguments in {run}/%i.env.\n\
         [Unit]\n\
         Description=rbond active-backup bond %i\n\
         DefaultDependencies=no\n\
         Before=network.target\n\
         Wants=network.target\n\
         StartLimitIntervalSec=30\n\
         StartLimitBurst=5\n\
         \n\
         [Service]\n\
         # READY once the slaves are in; the daemon pings from its loop every WatchdogSec/2.\n\
         Type=notify\n\
         NotifyAccess=main\n\
         WatchdogSec=10s\n\
         EnvironmentFile=-{run}/%i.env\n\
         ExecStart={bin} --run-dir {run} daemon --bond %i $RBOND_ARGS\n\
         # A crash leaves bond0 forwarding; the next daemon adopts it. Exit 0 is `rbond down`.\n\
         Restart=always\n\
         RestartSec=100ms\n\
         RestartPreventExitStatus=0\n\
         # Holds bond0's TAP while no daemon runs, so bond0 keeps its carrier.\n\
         FileDescriptorStoreMax=8\n\
         TimeoutStopSec=15s\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// Writes (or, with `remove`, deletes) the unit under `dir` (normally /etc/systemd/system).
pub fn install(dir: &Path, bin: &Path, run_dir: &Path, remove: bool) -> anyhow::Result<PathBuf> {
    let path = dir.join(UNIT_NAME);
    if remove {
        std::fs::remove_file(&path).with_context(|| path.display().to_string())?;
    } else {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        std::fs::write(&path, text(bin, run_dir)).with_context(|| path.display().to_string())?;
    }
    Ok(path)
}
