//! A slave's AF_PACKET socket: sees every frame the slave receives (before tc ingress drops
//! it for the host stack) and sends frames out of it, both with virtio-net headers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const BUFFER: libc::c_int = 4 << 20;

pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

fn setsockopt(fd: i32, level: libc::c_int, opt: libc::c_int, v: &impl Sized) -> io::Result<()> {
    let len = std::mem::size_of_val(v) as libc::socklen_t;
    let rc = unsafe { libc::setsockopt(fd, level, opt, v as *const _ as *const libc::c_void, len) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A read or write result where "would block" means "nothing now".
pub fn nonblocking(n: isize) -> io::Result<Option<usize>> {
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

impl PacketSocket {
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        setsockopt(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        setsockopt(raw, libc::SOL_PACKET, PACKET_VNET_HDR, &one)?;
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &BUFFER)?;
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &BUFFER)?;
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        if unsafe { libc::bind(raw, (&raw const sll).cast(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    pub fn from_fd(fd: OwnedFd, ifindex: u32) -> PacketSocket {
        PacketSocket { fd, ifindex }
    }

    /// Receive all multicast: only the active slave does, as bond0's joined groups must reach
    /// the host through it.
    pub fn set_allmulti(&self, on: bool) -> io::Result<()> {
        let mreq = libc::packet_mreq {
            mr_ifindex: self.ifindex as i32,
            mr_type: PACKET_MR_ALLMULTI,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        let op = if on { PACKET_ADD_MEMBERSHIP } else { PACKET_DROP_MEMBERSHIP };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, op, &mreq)
    }

    /// Only ARP frames reach this socket (a classic BPF filter), for when the kernel forwards
    /// the traffic and the daemon only watches for the ARP monitor.
    pub fn arp_only(&self) -> io::Result<()> {
        let code = [
            libc::sock_filter { code: 0x28, jt: 0, jf: 0, k: 12 },     // ldh [12]: the ethertype
            libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: 0x0806 }, // jeq ARP
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0004_0000 }, // ret accept
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 },      // ret drop
        ];
        let prog = libc::sock_fprog { len: code.len() as u16, filter: code.as_ptr().cast_mut() };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
    }

    /// Sends one frame (with its vnet header). A full queue drops it, as a NIC would.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        nonblocking(unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) }).map(drop)
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
