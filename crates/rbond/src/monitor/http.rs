//! The metrics over HTTP, when asked for (`--metrics-listen`). A thread of its own serves
//! each scrape from the last text published: it shares nothing else with the daemon's loop,
//! so a slow or stuck scraper never holds the bond up. Written by hand because it answers
//! one request shape; an HTTP crate would bring its own runtime for it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The text a scrape gets.
pub type Served = Arc<Mutex<String>>;

/// What the listen option takes: a port (on loopback) or an address and port.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("{s}: expected PORT or ADDRESS:PORT (e.g. 9469 or [::1]:9469)"))
}

/// Listens on `addr` and serves from the returned text until the process ends; says where
/// it listens (the port chosen, for port 0).
pub fn serve(addr: SocketAddr) -> io::Result<(Served, SocketAddr)> {
    let listener = TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let served: Served = Arc::default();
    let text = served.clone();
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &text);
        }
    })?;
    Ok((served, local))
}

fn answer(mut stream: TcpStream, text: &Served) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, kind, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            text.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain; charset=utf-8", "rbond serves /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET /metrics\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_port_or_an_address() {
        assert_eq!(parse_listen("9469"), Ok(SocketAddr::from(([127, 0, 0, 1], 9469))));
        assert_eq!(parse_listen("0.0.0.0:80"), Ok(SocketAddr::from(([0, 0, 0, 0], 80))));
        assert!(parse_listen("[::1]:9469").is_ok());
        assert_eq!(parse_listen("x").unwrap_err(), "x: expected PORT or ADDRESS:PORT (e.g. 9469 or [::1]:9469)");
    }

    #[test]
    fn a_scrape_gets_the_last_text_and_other_paths_a_404() {
        let (text, addr) = serve(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        *text.lock().unwrap() = "node_bonding_slaves{master=\"bond0\"} 2\n".into();
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nnode_bonding_slaves{master=\"bond0\"} 2\n"), "{ok}");
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
