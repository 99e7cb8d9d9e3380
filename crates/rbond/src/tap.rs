//! bond0 itself: a TAP device carrying virtio-net headers, so checksum-offloaded and GSO frames
//! from the host stack cross it intact.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::netdev;

const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::Ioctl = 0x4004_54d8;
const TUNSETCARRIER: libc::Ioctl = 0x4004_54e2;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6
const OFFLOADS: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40;

/// The virtio-net header that precedes every frame on the TAP and on the packet sockets.
pub const VNET_HDR_LEN: usize = 10;

pub struct Tap {
    fd: OwnedFd,
    name: String,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl Tap {
    /// Creates the device; it disappears when this value is dropped (it is not persistent).
    pub fn create(name: &str) -> anyhow::Result<Tap> {
        if netdev::index(name).is_ok() {
            anyhow::bail!("{name}: an interface with this name already exists");
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| anyhow::anyhow!("/dev/net/tun: {e} (is the tun module available?)"))?;
        let fd: OwnedFd = file.into();
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        let raw = fd.as_raw_fd();
        netdev::ctx(check(unsafe { libc::ioctl(raw, TUNSETIFF, &mut req) }), "create TAP", name)?;
        let hdr: libc::c_int = VNET_HDR_LEN as libc::c_int;
        netdev::ctx(check(unsafe { libc::ioctl(raw, TUNSETVNETHDRSZ, &hdr) }), "set vnet header size", name)?;
        // Always explicit: a TAP keeps offload flags from an earlier owner otherwise.
        netdev::ctx(check(unsafe { libc::ioctl(raw, TUNSETOFFLOAD, OFFLOADS) }), "set offloads", name)?;
        let tap = Tap { fd, name: name.to_string() };
        tap.set_carrier(false)?;
        Ok(tap)
    }

    /// The device a predecessor created, through the descriptor it handed over.
    pub fn from_fd(fd: OwnedFd, name: &str) -> Tap {
        Tap { fd, name: name.to_string() }
    }

    pub fn set_carrier(&self, on: bool) -> anyhow::Result<()> {
        let v: libc::c_int = on.into();
        netdev::ctx(check(unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETCARRIER, &v) }), "set carrier", &self.name)
    }

    /// Reads one frame (with its vnet header) into `buf`; `None` when nothing is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        crate::packet_socket::nonblocking(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    pub fn write(&self, frame: &[u8]) -> io::Result<()> {
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
