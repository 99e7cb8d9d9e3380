//! Asking a bond's daemon: one request per connection, typed replies, and the daemon's
//! refusals as errors that name the bond.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{LogLine, Reply, Request, Status, socket_path};

pub struct Client {
    bond: String,
    path: PathBuf,
}

impl Client {
    pub fn new(run_dir: &Path, bond: &str) -> Client {
        Client { bond: bond.to_string(), path: socket_path(run_dir, bond) }
    }

    fn connect(&self, req: &Request) -> anyhow::Result<BufReader<UnixStream>> {
        let mut s = UnixStream::connect(&self.path)
            .with_context(|| format!("{} (is the rbond daemon for {} running?)", self.path.display(), self.bond))?;
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        s.write_all(&line)?;
        Ok(BufReader::new(s))
    }

    fn read(&self, r: &mut BufReader<UnixStream>) -> anyhow::Result<Option<String>> {
        let mut line = String::new();
        Ok((r.read_line(&mut line)? > 0).then_some(line))
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
