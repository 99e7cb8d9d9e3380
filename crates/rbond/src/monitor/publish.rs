//! Keeping the monitoring files current: after every change of the bond the daemon rewrites
//! node_exporter's textfile (`<metrics dir>/rbond-<bond>.prom`) and the `/proc`-shaped report
//! (`<run_dir>/proc/net/bonding/<bond>`), each written under a temporary name and renamed, so
//! a reader never sees half a file; and hands the same text to the HTTP listener, if any.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::http::Served;
use super::metrics;
use crate::control::Status;

/// Where Debian's prometheus-node-exporter reads textfiles (its default
/// `--collector.textfile.directory`).
pub const NODE_EXPORTER_TEXTFILES: &str = "/var/lib/prometheus/node-exporter";

/// Counts alone (ARP probes) are republished at most this often.
const COUNTS_EVERY: Duration = Duration::from_secs(1);

pub struct Publisher {
    /// The textfile, when its directory exists or was asked for.
    prom: Option<PathBuf>,
    report: PathBuf,
    served: Option<Served>,
    last: Option<Instant>,
    /// The bond's count of standby verdict changes when last published.
    standby_changes: u64,
}

/// `<run_dir>/proc`: a proc root for tools that take one (Telegraf's `host_proc`).
pub fn proc_root(run_dir: &Path) -> PathBuf {
    run_dir.join("proc")
}

impl Publisher {
    /// `metrics_dir` given is created if missing; the default is used only where it exists
    /// (a host without node_exporter gets no directory of ours).
    pub fn new(bond: &str, run_dir: &Path, metrics_dir: Option<&Path>) -> Publisher {
        let dir = match metrics_dir {
            Some(d) => std::fs::create_dir_all(d).ok().map(|()| d.to_path_buf()),
            None => Some(PathBuf::from(NODE_EXPORTER_TEXTFILES)).filter(|d| d.is_dir()),
        };
        Publisher {
            prom: dir.map(|d| d.join(format!("rbond-{bond}.prom"))),
            report: proc_root(run_dir).join("net/bonding").join(bond),
            served: None,
            last: None,
            standby_changes: 0,
        }
    }

    /// Whether a standby verdict changed since the last call (which the report and the
    /// metrics show, though no action said so).
    pub fn standby_changed(&mut self, changes: u64) -> bool {
        std::mem::replace(&mut self.standby_changes, changes) != changes
    }

    /// Serves the metrics over HTTP from now on; says where.
    pub fn serve(&mut self, addr: std::net::SocketAddr) -> io::Result<std::net::SocketAddr> {
        let (served, at) = super::http::serve(addr)?;
        self.served = Some(served);
        Ok(at)
    }

    /// Whether a change of counts alone is due for publishing.
    pub fn counts_due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= COUNTS_EVERY)
    }

    /// Writes everything for `status`; returns what could not be written.
    pub fn publish(&mut self, status: &Status) -> Vec<String> {
        self.last = Some(Instant::now());
        let text = metrics::render(status);
        let mut problems = Vec::new();
        if let Some(prom) = &self.prom {
            problems.extend(replace(prom, &text).err().map(|e| format!("{}: {e}", prom.display())));
        }
        let written = self.report.parent().map_or(Ok(()), std::fs::create_dir_all);
        if let Err(e) = written.and_then(|()| replace(&self.report, &status.text)) {
            problems.push(format!("{}: {e}", self.report.display()));
        }
        if let Some(served) = &self.served {
            *served.lock().unwrap_or_else(|e| e.into_inner()) = text;
        }
        problems
    }

    /// The bond is gone: so are its files.
    pub fn withdraw(&self) {
        for path in self.prom.iter().chain([&self.report]) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Replaces `path` whole: the text goes to a hidden temporary name first (node_exporter reads
/// only `*.prom`), then is renamed over it.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    // Named for this process: two daemons for equally named bonds (in two namespaces) must
    // not rename each other's half-written file.
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_replaced_whole_and_withdrawn() {
        let dir = std::env::temp_dir().join(format!("rbond-publish-{}", std::process::id()));
        let path = dir.join("x.prom");
        std::fs::create_dir_all(&dir).unwrap();
        replace(&path, "one\n").unwrap();
        replace(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["x.prom"], "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
