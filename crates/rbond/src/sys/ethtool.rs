//! ETHTOOL_GLINK: the link as the driver sees it right now. Unlike a netlink event it is never
//! batched, and reading it flushes a pending one (see the README's link detection notes).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

const ETHTOOL_GLINK: u32 = 0x0000_000a;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

thread_local! {
    /// One socket for the ioctls of this thread: the daemon asks every miimon tick.
    static SOCKET: io::Result<OwnedFd> =
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from);
}

/// Whether the interface reports link detected.
pub fn link_detected(name: &str) -> io::Result<bool> {
    let mut value = EthtoolValue { cmd: ETHTOOL_GLINK, data: 0 };
    let mut req = super::ifreq(name)?;
    req.ifr_ifru.ifru_data = (&raw mut value).cast();
    SOCKET.with(|sock| {
        let fd = sock.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?.as_raw_fd();
        // SAFETY: SIOCETHTOOL reads the ifreq, whose data pointer names `value`, a live
        // ethtool_value that the kernel fills for ETHTOOL_GLINK and nothing more.
        super::cvt_int(unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req) })
    })?;
    Ok(value.data != 0)
}
