//! Frames moved in batches: one recvmmsg(2) or sendmmsg(2) per batch on a packet socket
//! instead of a system call per frame. The buffers are allocated once, each large enough for
//! a 64 KiB GSO frame and its vnet header.

use std::io;

use crate::tap::VNET_HDR_LEN;

/// Frames per system call.
pub const SLOTS: usize = 16;
/// Room for one frame: a 64 KiB GSO frame, its vnet header, and slack.
pub const FRAME_ROOM: usize = 65536 + VNET_HDR_LEN + 4096;

pub struct Batch {
    bufs: Vec<Box<[u8]>>,
    lens: [usize; SLOTS],
    filled: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { bufs: (0..SLOTS).map(|_| vec![0; FRAME_ROOM].into_boxed_slice()).collect(), lens: [0; SLOTS], filled: 0 }
    }
}

impl Batch {
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    pub fn is_full(&self) -> bool {
        self.filled == SLOTS
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The next empty slot, to be filled by `read` and then kept with `commit`.
    pub fn slot(&mut self) -> &mut [u8] {
        &mut self.bufs[self.filled]
    }

    pub fn commit(&mut self, len: usize) {
        self.lens[self.filled] = len;
        self.filled += 1;
    }

    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().zip(&self.lens).take(self.filled).map(|(b, n)| &b[..*n])
    }

    /// Fills the batch from `fd` with one recvmmsg; returns how many frames came.
    pub fn receive(&mut self, fd: i32) -> io::Result<usize> {
        let mut iovs: [libc::iovec; SLOTS] =
            std::array::from_fn(|i| libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: FRAME_ROOM });
        let mut msgs = headers(&mut iovs);
        let n = unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), SLOTS as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        let n = crate::packet_socket::nonblocking(n as isize)?.unwrap_or(0);
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(n) {
            *len = m.msg_len as usize;
        }
        self.filled = n;
        Ok(n)
    }

    /// Sends every frame in the batch to `fd` with one sendmmsg. Frames the socket has no room
    /// for are dropped, as a NIC with a full queue drops them.
    pub fn send(&mut self, fd: i32) -> io::Result<()> {
        let mut iovs: [libc::iovec; SLOTS] =
            std::array::from_fn(|i| libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: self.lens[i] });
        let mut msgs = headers(&mut iovs);
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), self.filled as u32, libc::MSG_DONTWAIT) };
        crate::packet_socket::nonblocking(n as isize).map(drop)
    }
}

/// One message header per buffer, each naming its single iovec; built on the stack, so the
/// hot path allocates nothing.
fn headers(iovs: &mut [libc::iovec; SLOTS]) -> [libc::mmsghdr; SLOTS] {
    let mut slots = iovs.iter_mut();
    std::array::from_fn(|_| {
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        if let Some(iov) = slots.next() {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        h
    })
}
