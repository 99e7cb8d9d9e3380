//! Frames moved in batches: one recvmmsg(2) or sendmmsg(2) per batch on a packet socket
//! instead of a system call per frame. The buffers are allocated once, each large enough for
//! a 64 KiB GSO frame and its vnet header.

use std::io;
use std::os::fd::BorrowedFd;

use crate::net::frames::VNET_HDR_LEN;
use crate::sys::packet;

/// Frames per system call.
pub const SLOTS: usize = 16;
/// Room for one frame: a 64 KiB GSO frame, its vnet header, and slack.
pub const FRAME_ROOM: usize = 65536 + VNET_HDR_LEN + 4096;

pub struct Batch {
    bufs: [Box<[u8]>; SLOTS],
    lens: [usize; SLOTS],
    filled: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { bufs: std::array::from_fn(|_| vec![0; FRAME_ROOM].into_boxed_slice()), lens: [0; SLOTS], filled: 0 }
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

    /// The next empty slot, to be filled by a read and then kept with `commit`.
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

    /// Fills the batch from a packet socket with one recvmmsg; returns how many frames came.
    pub fn receive(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.filled = packet::receive_batch(fd, &mut self.bufs, &mut self.lens)?;
        Ok(self.filled)
    }

    /// Sends every frame in the batch to a packet socket with one sendmmsg.
    pub fn send(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        packet::send_batch(fd, &mut self.bufs, &self.lens, self.filled)
    }
}
