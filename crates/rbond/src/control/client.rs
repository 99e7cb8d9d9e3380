//! Asking a bond's daemon: one request per connection, typed replies, and the daemon's
//! refusals as errors that name the bond.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{LogLine, Reply, Request, Status, socket_path};

/// How long an answer may take. The daemon answers every request within one turn of its
/// loop; the slowest is the first status after a restart, which the successor serves once it
/// has taken the bond over. One that takes longer is stuck, and saying so beats hanging.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub struct Client {
    bond: String,
    path: PathBuf,
    answer_within: Duration,
}

impl Client {
    pub fn new(run_dir: &Path, bond: &str) -> Client {
        Client { bond: bond.to_string(), path: socket_path(run_dir, bond), answer_within: ANSWER_WITHIN }
    }

    fn connect(&self, req: &Request) -> anyhow::Result<BufReader<UnixStream>> {
        let mut s = UnixStream::connect(&self.path)
            .with_context(|| format!("{} (is the rbond daemon for {} running?)", self.path.display(), self.bond))?;
        s.set_read_timeout(Some(self.answer_within))?;
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        s.write_all(&line)?;
        Ok(BufReader::new(s))
    }

    fn read(&self, r: &mut BufReader<UnixStream>) -> anyhow::Result<Option<String>> {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) => Ok((n > 0).then_some(line)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => bail!(
                "{}: the daemon did not answer within {:?} (it may be stuck: see the system log)",
                self.bond,
                self.answer_within
            ),
            Err(e) => Err(e).with_context(|| format!("{}: read the daemon's answer", self.bond)),
        }
    }

    /// Sends one request and returns the daemon's reply; a refusal is an error.
    pub fn call(&self, req: &Request) -> anyhow::Result<Reply> {
        let mut r = self.connect(req)?;
        let line = self.read(&mut r)?.with_context(|| format!("{}: the daemon closed the connection", self.bond))?;
        match serde_json::from_str::<Reply>(&line).with_context(|| format!("{}: unreadable reply", self.bond))? {
            Reply::Error { error } => bail!("{}: {error}", self.bond),
            reply => Ok(reply),
        }
    }

    /// Sends a request that answers only "done".
    pub fn done(&self, req: &Request) -> anyhow::Result<()> {
        self.call(req).map(drop)
    }

    pub fn status(&self) -> anyhow::Result<Status> {
        match self.call(&Request::Status)? {
            Reply::Status(s) => Ok(*s),
            other => bail!("{}: unexpected reply {other:?}", self.bond),
        }
    }

    /// A value as its sysfs file reads.
    pub fn get(&self, option: &str) -> anyhow::Result<String> {
        match self.call(&Request::Get { option: option.into() })? {
            Reply::Value { value } => Ok(value),
            other => bail!("{}: unexpected reply {other:?}", self.bond),
        }
    }

    /// The slaves, in enslave order.
    pub fn slaves(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.get("slaves")?.split_whitespace().map(str::to_string).collect())
    }

    /// The log history.
    pub fn events(&self) -> anyhow::Result<Vec<LogLine>> {
        match self.call(&Request::Events { follow: false })? {
            Reply::Events { lines } => Ok(lines),
            other => bail!("{}: unexpected reply {other:?}", self.bond),
        }
    }

    /// The history, then every new line as the bond writes it, until the daemon goes.
    pub fn follow(&self, mut each: impl FnMut(LogLine)) -> anyhow::Result<()> {
        let mut r = self.connect(&Request::Events { follow: true })?;
        let first = self.read(&mut r)?.with_context(|| format!("{}: the daemon closed the connection", self.bond))?;
        match serde_json::from_str::<Reply>(&first)? {
            Reply::Events { lines } => lines.into_iter().for_each(&mut each),
            Reply::Error { error } => bail!("{}: {error}", self.bond),
            other => bail!("{}: unexpected reply {other:?}", self.bond),
        }
        // Lines come as the bond writes them, which may be hours apart.
        r.get_ref().set_read_timeout(None)?;
        while let Some(line) = self.read(&mut r)? {
            each(serde_json::from_str(&line)?);
        }
        Ok(())
    }

    /// Whether a daemon answers (a dead daemon's socket file may still be there).
    pub fn running(&self) -> bool {
        self.status().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    use super::*;

    /// A daemon whose socket takes the connection but never answers (hung before its loop, or
    /// in it) makes a request fail with a line saying so, instead of hanging the command.
    #[test]
    fn a_daemon_that_never_answers_is_an_error_not_a_hang() {
        let dir = std::env::temp_dir().join(format!("rbond-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _listener = UnixListener::bind(socket_path(&dir, "bond0")).unwrap();
        let client = Client { answer_within: Duration::from_millis(200), ..Client::new(&dir, "bond0") };
        let start = Instant::now();
        let e = client.status().unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "bond0: the daemon did not answer within 200ms (it may be stuck: see the system log)"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!client.running());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
