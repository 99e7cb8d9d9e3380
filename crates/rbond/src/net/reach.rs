//! Whether an address answers through one interface: ICMP (or ICMPv6) echo from a raw socket
//! bound to the interface, so an answer proves that path and no other. `rbond try` asks it
//! of the bond's gateways before it lets a new configuration stand.

use std::ffi::OsString;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage, recvfrom, sendto, setsockopt, socket,
    sockopt,
};
use nix::sys::time::TimeVal;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// The Internet checksum (RFC 1071). The kernel computes ICMPv6's itself; ICMP's is ours.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"rbond try");
    if !v6 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// Whether a received packet is the echo reply to our `id` (an IPv4 raw socket hands over the
/// IP header too).
fn is_reply(packet: &[u8], v6: bool, id: u16) -> bool {
    let icmp = if v6 {
        packet
    } else {
        packet.get(usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4..).unwrap_or_default()
    };
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp.len() >= 8 && icmp[0] == want && icmp[4..6] == id.to_be_bytes()
}

/// Asks `target` through `dev` every 200 ms until it answers or `within` has passed.
pub fn answers(dev: &str, target: IpAddr, within: Duration) -> io::Result<bool> {
    let v6 = target.is_ipv6();
    let (family, protocol) =
        if v6 { (AddressFamily::Inet6, SockProtocol::IcmpV6) } else { (AddressFamily::Inet, SockProtocol::Icmp) };
    let fd = socket(family, SockType::Raw, SockFlag::SOCK_CLOEXEC, protocol)?;
    setsockopt(&fd, sockopt::BindToDevice, &OsString::from(dev))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000))?;
    let to = SockaddrStorage::from(std::net::SocketAddr::new(target, 0));
    let id = (std::process::id() & 0xffff) as u16;
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1500];
    for seq in 0u16.. {
        if Instant::now() >= deadline {
            break;
        }
        // A send can fail while the path is still coming up (no route yet): ask again later.
        let _ = sendto(fd.as_raw_fd(), &echo_request(v6, id, seq), &to, MsgFlags::empty());
        let wait_until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < wait_until {
            match recvfrom::<SockaddrStorage>(fd.as_raw_fd(), &mut buf) {
                Ok((n, from)) if from.and_then(|f| ip_of(&f)) == Some(target) && is_reply(&buf[..n], v6, id) => {
                    return Ok(true);
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(false)
}

fn ip_of(a: &SockaddrStorage) -> Option<IpAddr> {
    a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())).or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_answers_and_an_address_nobody_holds_does_not() {
        assert!(answers("lo", "127.0.0.1".parse().unwrap(), Duration::from_secs(2)).unwrap());
        assert!(answers("lo", "::1".parse().unwrap(), Duration::from_secs(2)).unwrap());
        assert!(!answers("lo", "192.0.2.77".parse().unwrap(), Duration::from_millis(500)).unwrap());
    }

    #[test]
    fn an_echo_request_carries_a_valid_checksum() {
        let m = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&m), 0, "a packet with its checksum in sums to zero");
        assert_eq!(&m[4..8], &[0x12, 0x34, 0, 7]);
    }
}
