//! The control socket: one JSON object per line each way, `/run/rbond/<bond>.sock`, root only.
//! The server lives in the daemon's poll loop; `call` is the client the CLI uses.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Output a follower may leave unread before it is dropped.
const MAX_BACKLOG: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Get { option: String },
    Set { option: String, value: String },
    Enslave { slave: String },
    Release { slave: String },
    SetActive { slave: String },
    Events { follow: bool },
    /// Re-execute the daemon's binary in place, handing it the running bond.
    Restart,
    Down,
}

pub fn socket_path(run_dir: &Path, bond: &str) -> PathBuf {
    run_dir.join(format!("{bond}.sock"))
}

pub fn ok(mut v: Value) -> Value {
    v["ok"] = json!(true);
    v
}

pub fn error(msg: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": msg.to_string() })
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    follow: bool,
    closing: bool,
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
}

impl ControlServer {
    pub fn bind(path: PathBuf) -> anyhow::Result<ControlServer> {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer { listener, path, clients: Vec::new() })
    }

    /// The listening socket a predecessor handed over; clients queued on it meanwhile are served.
    pub fn from_fd(fd: std::os::fd::OwnedFd, path: PathBuf) -> anyhow::Result<ControlServer> {
        let listener = UnixListener::from(fd);
        listener.set_nonblocking(true)?;
        Ok(ControlServer { listener, path, clients: Vec::new() })
    }

    pub fn listener_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.listener.as_raw_fd()
    }

    /// The descriptors to poll: the listener first, then each client (for reading, and for
    /// writing while it has output waiting).
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        use std::os::fd::AsRawFd;
        let mut v = vec![libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        for c in &self.clients {
            let out = if c.outbuf.is_empty() { 0 } else { libc::POLLOUT };
            v.push(libc::pollfd { fd: c.stream.as_raw_fd(), events: libc::POLLIN | out, revents: 0 });
        }
        v
    }

    /// Accepts, reads and flushes; returns the complete requests, each with its client.
    pub fn service(&mut self) -> Vec<(usize, Result<Request, String>)> {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client { stream, inbuf: Vec::new(), outbuf: Vec::new(), follow: false, closing: false });
            }
        }
        let mut requests = Vec::new();
        for (id, c) in self.clients.iter_mut().enumerate() {
            read_requests(c, id, &mut requests);
            flush(c);
        }
        requests
    }

    pub fn reply(&mut self, id: usize, v: &Value) {
        if let Some(c) = self.clients.get_mut(id) {
            queue(c, v);
            flush(c);
        }
    }

    pub fn follow(&mut self, id: usize) {
        if let Some(c) = self.clients.get_mut(id) {
            c.follow = true;
        }
    }

    /// Closes a client once its output is written.
    pub fn finish(&mut self, id: usize) {
        if let Some(c) = self.clients.get_mut(id) {
            c.closing = true;
        }
    }

    pub fn broadcast(&mut self, v: &Value) {
        for c in self.clients.iter_mut().filter(|c| c.follow) {
            queue(c, v);
            flush(c);
        }
    }

    /// Drops clients that hung up, finished, or stopped reading.
    pub fn reap(&mut self) {
        self.clients.retain(|c| {
            let done = c.closing && c.outbuf.is_empty();
            let dead = c.stream.peer_addr().is_err() || c.outbuf.len() > MAX_BACKLOG;
            !(done || dead)
        });
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_requests(c: &mut Client, id: usize, out: &mut Vec<(usize, Result<Request, String>)>) {
    let mut chunk = [0u8; 4096];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => {
                c.closing = true;
                break;
            }
            Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.closing = true;
                break;
            }
        }
        if c.inbuf.len() > MAX_REQUEST && !c.inbuf.contains(&b'\n') {
            out.push((id, Err(format!("request longer than {MAX_REQUEST} bytes"))));
            c.inbuf.clear();
            c.closing = true;
            return;
        }
    }
    while let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
        let parsed = serde_json::from_slice::<Request>(&line).map_err(|e| format!("bad request: {e}"));
        out.push((id, parsed));
    }
}

fn queue(c: &mut Client, v: &Value) {
    c.outbuf.extend_from_slice(v.to_string().as_bytes());
    c.outbuf.push(b'\n');
}

fn flush(c: &mut Client) {
    while !c.outbuf.is_empty() {
        match c.stream.write(&c.outbuf) {
            Ok(0) => break,
            Ok(n) => drop(c.outbuf.drain(..n)),
            Err(_) => break,
        }
    }
}

/// Sends one request and hands `each` every line of the answer as it arrives, the reply
/// first (an event follower keeps getting lines until the daemon closes).
pub fn stream(path: &Path, req: &Request, mut each: impl FnMut(&Value)) -> anyhow::Result<()> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (is the rbond daemon for this bond running?)", path.display()))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    for l in BufReader::new(s).lines() {
        each(&serde_json::from_str(&l?)?);
    }
    Ok(())
}

/// Sends one request and returns its reply.
pub fn call(path: &Path, req: &Request) -> anyhow::Result<Value> {
    let mut first = None;
    stream(path, req, |v| {
        first.get_or_insert_with(|| v.clone());
    })?;
    first.ok_or_else(|| anyhow::anyhow!("the daemon closed the connection"))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// Whatever a client sends, parsing ends in a request or an error, never a panic.
        #[test]
        fn arbitrary_request_lines_never_panic(line in "\\PC{0,200}", json_like: bool, cmd in "[a-z_]{0,12}") {
            let text = if json_like { format!("{{\"cmd\":\"{cmd}\",{line}}}") } else { line };
            let _ = serde_json::from_slice::<Request>(text.as_bytes());
        }
    }

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(r#"{"cmd":"set","option":"miimon","value":"100"}"#).unwrap();
        assert_eq!(r, Request::Set { option: "miimon".into(), value: "100".into() });
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"fly"}"#).is_err());
    }
}
