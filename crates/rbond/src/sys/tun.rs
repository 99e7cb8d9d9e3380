//! TUN/TAP control: attaching a descriptor (a queue) to a TAP device, creating it if needed,
//! the virtio-net header size, offloads, carrier, persistence, and the program that picks
//! the queue of each frame the host sends.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::cvt_int;

const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
const TUNSETPERSIST: libc::Ioctl = 0x4004_54cb;
const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::Ioctl = 0x4004_54d8;
const TUNSETCARRIER: libc::Ioctl = 0x4004_54e2;
const TUNGETIFF: libc::Ioctl = 0x8004_54d2;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6
pub const OFFLOADS: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40;

/// A descriptor attached to the TAP `name` with virtio-net headers, creating the device if it
/// does not exist (attaching to a persistent one that does). A new device has several
/// queues, each descriptor one of them; a device made by an older rbond may have one only,
/// and is attached as it is.
pub fn attach(name: &str) -> io::Result<OwnedFd> {
    match attach_queue(name, true) {
        // The kernel refuses a queue flag that differs from the existing device's.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => attach_queue(name, false),
        other => other,
    }
}

/// A descriptor attached to the TAP `name`; with `multi_queue`, one more queue of a device
/// that has several (or is created with them).
pub fn attach_queue(name: &str, multi_queue: bool) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("/dev/net/tun: {e} (is the tun module available?)")))?;
    let fd: OwnedFd = file.into();
    let mut req = super::ifreq(name)?;
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | if multi_queue { IFF_MULTI_QUEUE } else { 0 };
    // SAFETY: TUNSETIFF reads and writes the ifreq we own, on a descriptor of /dev/net/tun.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) })?;
    Ok(fd)
}

/// The device's name, and whether it has several queues.
pub fn device(fd: BorrowedFd<'_>) -> io::Result<(String, bool)> {
    // SAFETY: ifreq is plain data for which zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF fills the ifreq we own, on a descriptor attached to a device.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNGETIFF, &mut req) })?;
    let name: Vec<u8> = req.ifr_name.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    // SAFETY: TUNGETIFF wrote the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok((String::from_utf8_lossy(&name).into_owned(), flags & IFF_MULTI_QUEUE != 0))
}

/// Sets the size of the virtio-net header that precedes every frame.
pub fn set_vnet_header_size(fd: BorrowedFd<'_>, size: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which points at `size`.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ, &size) }).map(drop)
}

/// The offloads the device may hand us (`TUN_F_*`). Always set explicitly: a persistent TAP
/// keeps an earlier owner's.
pub fn set_offloads(fd: BorrowedFd<'_>, offloads: libc::c_ulong) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, offloads) }).map(drop)
}

pub fn set_carrier(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let v: libc::c_int = on.into();
    // SAFETY: TUNSETCARRIER reads one int through the pointer, which points at `v`.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETCARRIER, &v) }).map(drop)
}

/// Whether the device outlives its last descriptor (it keeps its addresses and routes then,
/// and loses only its carrier).
pub fn set_persist(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes its argument by value; no memory is passed.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, libc::c_ulong::from(on)) }).map(drop)
}
