//! The daemon's side of the control socket: accepting clients, reading request lines,
//! writing replies and followed events without ever blocking the daemon's loop.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use super::{MAX_REQUEST, Reply, Request};

/// Output a client may leave unread before it is dropped.
const MAX_BACKLOG: usize = 1 << 20;

/// A client, known by an id that is never reused while the daemon runs.
pub type ClientId = u64;

struct Client {
    id: ClientId,
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    follow: bool,
    /// No more requests: the client said so (end of input) or was told its last answer.
    closing: bool,
    /// Writing failed: the client is gone.
    dead: bool,
}

pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    next_id: ClientId,
}

impl Server {
    pub fn bind(path: PathBuf) -> anyhow::Result<Server> {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Server::from_listener(listener, path)
    }

    /// The listening socket a predecessor handed over; clients queued on it meanwhile are served.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> anyhow::Result<Server> {
        Server::from_listener(UnixListener::from(fd), path)
    }

    fn from_listener(listener: UnixListener, path: PathBuf) -> anyhow::Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(Server { listener, path, clients: Vec::new(), next_id: 0 })
    }

    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Each client's descriptor, and whether it has output waiting.
    pub fn clients(&self) -> impl Iterator<Item = (ClientId, BorrowedFd<'_>, bool)> {
        self.clients.iter().map(|c| (c.id, c.stream.as_fd(), !c.outbuf.is_empty()))
    }

    /// Accepts every waiting client.
    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                let id = self.next_id;
                self.next_id += 1;
                self.clients.push(Client {
                    id,
                    stream,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                    follow: false,
                    closing: false,
                    dead: false,
                });
            }
        }
    }

    /// Reads and flushes one client; returns its complete requests.
    pub fn service(&mut self, id: ClientId) -> Vec<Result<Request, String>> {
        let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else { return Vec::new() };
        let requests = read_requests(c);
        flush(c);
        requests
    }

    pub fn reply(&mut self, id: ClientId, reply: &Reply) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            queue(c, &reply.to_line());
        }
    }

    /// From now on the client gets every log line as it is written.
    pub fn follow(&mut self, id: ClientId) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.follow = true;
        }
    }

    /// Closes a client once its output is written.
    pub fn finish(&mut self, id: ClientId) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.closing = true;
        }
    }

    /// Sends a line to every follower.
    pub fn broadcast(&mut self, line: &[u8]) {
        for c in self.clients.iter_mut().filter(|c| c.follow) {
            queue(c, line);
        }
    }

    /// Drops clients that are done, gone, or not reading what they asked for.
    pub fn reap(&mut self) {
        self.clients.retain(|c| !(c.dead || (c.closing && c.outbuf.is_empty()) || c.outbuf.len() > MAX_BACKLOG));
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_requests(c: &mut Client) -> Vec<Result<Request, String>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while !c.closing {
        match c.stream.read(&mut chunk) {
            Ok(0) => c.closing = true,
            Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => c.dead = true,
        }
        if c.dead {
            break;
        }
        if c.inbuf.len() > MAX_REQUEST && !c.inbuf.contains(&b'\n') {
            out.push(Err(format!("request longer than {MAX_REQUEST} bytes")));
            c.inbuf.clear();
            c.closing = true;
        }
    }
    while let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
        out.push(serde_json::from_slice::<Request>(&line).map_err(|e| format!("bad request: {e}")));
    }
    out
}

fn queue(c: &mut Client, line: &[u8]) {
    if !c.dead {
        c.outbuf.extend_from_slice(line);
        flush(c);
    }
}

/// Writes what the socket takes now. Any error but "would block" means the client is gone
/// (it closed, or was killed mid-line): its output is dropped with it.
fn flush(c: &mut Client) {
    while !c.outbuf.is_empty() && !c.dead {
        match c.stream.write(&c.outbuf) {
            Ok(0) => c.dead = true,
            Ok(n) => drop(c.outbuf.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => c.dead = true,
        }
    }
    if c.dead {
        c.outbuf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (Server, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("rbond-server-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sock");
        (Server::bind(path.clone()).unwrap(), path)
    }

    /// A client that asks and hangs up without reading is dropped: its socket stays readable
    /// (end of input) forever, so keeping it would wake the daemon in a loop.
    #[test]
    fn a_client_that_hangs_up_unread_is_dropped() {
        let (mut s, path) = server();
        let mut c = UnixStream::connect(&path).unwrap();
        for _ in 0..50 {
            c.write_all(b"{\"cmd\":\"events\",\"follow\":false}\n").unwrap();
        }
        drop(c);
        s.accept();
        let id = s.clients().next().unwrap().0;
        let reqs = s.service(id);
        assert_eq!(reqs.len(), 50);
        for _ in &reqs {
            s.reply(id, &Reply::Events { lines: Vec::new() });
        }
        s.finish(id);
        s.reap();
        assert_eq!(s.client_count(), 0, "the dead client was dropped");
    }

    #[test]
    fn a_follower_killed_mid_line_is_dropped() {
        let (mut s, path) = server();
        let c = UnixStream::connect(&path).unwrap();
        s.accept();
        let id = s.clients().next().unwrap().0;
        s.follow(id);
        drop(c);
        s.broadcast(&vec![b'x'; 300_000]);
        s.reap();
        assert_eq!(s.client_count(), 0);
    }
}
