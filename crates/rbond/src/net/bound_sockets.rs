//! The TCP and UDP sockets bound to one interface (SO_BINDTODEVICE), from the kernel's socket
//! diagnostics: they cannot follow the host's addresses to the bond. The request and reply
//! are a few fixed-size structs (inet_diag_req_v2, inet_diag_msg), read by hand here: no
//! crate for NETLINK_SOCK_DIAG speaks the same netlink-packet-core version as the rest.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const HEADER: usize = 16;
/// inet_diag_msg: family, state, timer, retrans, then the socket id (ports, addresses,
/// interface, cookie), then five u32s.
const MSG_LEN: usize = 72;

/// One bound socket, as `ss` would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSocket {
    pub protocol: &'static str,
    pub local: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.local {
            IpAddr::V4(a) => write!(f, "{} {a}:{}", self.protocol, self.port),
            IpAddr::V6(a) => write!(f, "{} [{a}]:{}", self.protocol, self.port),
        }
    }
}

fn request(family: u8, protocol: u8, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + 56);
    m.extend_from_slice(&((HEADER + 56) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, protocol, 0, 0]);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    m.extend_from_slice(&[0; 48]); // any socket id
    m
}

/// The socket in one inet_diag_msg, if it is bound to `index`.
fn bound(msg: &[u8], index: u32, protocol: &'static str) -> Option<BoundSocket> {
    let family = *msg.first()?;
    let port = u16::from_be_bytes(msg.get(4..6)?.try_into().ok()?);
    let src = msg.get(8..24)?;
    let dev = u32::from_ne_bytes(msg.get(40..44)?.try_into().ok()?);
    let local = match family as i32 {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?)),
    };
    (dev == index).then_some(BoundSocket { protocol, local, port })
}

/// Every TCP and UDP socket, IPv4 and IPv6, bound to the interface.
pub fn bound_to(index: u32) -> io::Result<Vec<BoundSocket>> {
    let mut sock = Socket::new(NETLINK_SOCK_DIAG)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let asks = [libc::AF_INET, libc::AF_INET6]
        .into_iter()
        .flat_map(|f| [(f, libc::IPPROTO_TCP, "tcp"), (f, libc::IPPROTO_UDP, "udp")]);
    for (seq, (family, protocol, name)) in (1u32..).zip(asks) {
        sock.send(&request(family as u8, protocol as u8, seq), 0)?;
        'dump: loop {
            let n = sock.recv(&mut &mut buf[..], 0)?;
            let mut at = 0;
            while at + HEADER <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                if len < HEADER || at + len > n || kind == NLMSG_DONE {
                    break 'dump;
                }
                if kind == NLMSG_ERROR {
                    return Err(io::Error::other("socket diagnostics refused the request"));
                }
                let body = &buf[at + HEADER..at + len];
                if body.len() >= MSG_LEN {
                    out.extend(bound(body, index, name));
                }
                at += (len + 3) & !3;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_bound_to_the_loopback_is_found_and_others_are_not() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let unbound = bound_to(lo).unwrap();
        assert!(!unbound.iter().any(|b| b.port == port), "not bound yet: {unbound:?}");
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::BindToDevice, &std::ffi::OsString::from("lo"))
            .unwrap();
        let found = bound_to(lo).unwrap();
        let me = found.iter().find(|b| b.port == port).map(|b| b.to_string());
        assert_eq!(me, Some(format!("udp 127.0.0.1:{port}")), "{found:?}");
    }
}
