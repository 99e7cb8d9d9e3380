//! The calls into the kernel that neither the standard library nor `nix` wrap: the ethtool
//! link query, TUN/TAP control, AF_PACKET options and batched I/O, bpf(2), and handing
//! descriptors across exec. This is the only module allowed `unsafe`; each block says why it
//! is sound in a `// SAFETY:` line.
#![allow(unsafe_code)]

use std::io;

pub mod bpf;
pub mod cpu;
pub mod ethtool;
pub mod packet;
pub mod process;
pub mod tun;

/// Takes a descriptor number out of an epoll set. The number may already be closed (the set
/// then forgot it by itself) or reused by a descriptor not yet in the set: either way only
/// the set's entry for that number is touched, if there is one.
pub fn epoll_forget(epoll: std::os::fd::BorrowedFd<'_>, fd: std::os::fd::RawFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: EPOLL_CTL_DEL with a null event reads no memory; an unknown or closed number
    // fails with ENOENT or EBADF and changes nothing.
    let _ = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

/// Gives the memory pages wholly inside `buf` back to the kernel: the process's resident
/// size shrinks, and the bytes read as zeros when next touched.
pub fn release_pages(buf: &mut [u8]) {
    // SAFETY: sysconf takes an integer and reads no memory.
    let Ok(page) = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }) else { return };
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_mut_ptr() as usize + buf.len()) / page * page;
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, which we hold exclusively, so no other data
        // shares those pages; MADV_DONTNEED makes private anonymous pages read as zeros,
        // a valid value for bytes. A failure changes nothing.
        let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// A C return value where a negative number means "see errno".
fn cvt(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// `cvt` for the many calls that return an `int`.
fn cvt_int(rc: libc::c_int) -> io::Result<libc::c_int> {
    cvt(libc::c_long::from(rc)).map(|_| rc)
}

/// An interface name as the kernel's `ifreq` wants it: at most 15 bytes, NUL-terminated.
fn ifname(name: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid interface name '{name}'")));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (d, s) in out.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(out)
}

/// A zeroed `ifreq` naming `name` (the length checked).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct (a name and a union of integers and pointers) for
    // which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = ifname(name)?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_ioctl() {
        assert!(ifreq("eth0").is_ok());
        assert!(ifreq("").is_err());
        assert!(ifreq("sixteen-chars-xx").is_err(), "16 bytes leave no room for the NUL");
        assert!(ifreq("fifteen-chars-x").is_ok());
        assert!(ifreq("a\0b").is_err());
    }
}
