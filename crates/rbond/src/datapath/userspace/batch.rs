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
    /// One allocation for every slot: large enough that the allocator maps it afresh, so
    /// its pages cost nothing until frames fill them, and can be given back.
    mem: Box<[u8]>,
    lens: [usize; SLOTS],
    filled: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { mem: vec![0; SLOTS * FRAME_ROOM].into_boxed_slice(), lens: [0; SLOTS], filled: 0 }
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
        let at = self.filled * FRAME_ROOM;
        &mut self.mem[at..at + FRAME_ROOM]
    }

    pub fn commit(&mut self, len: usize) {
        self.lens[self.filled] = len;
        self.filled += 1;
    }

    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.mem.chunks_exact(FRAME_ROOM).zip(&self.lens).take(self.filled).map(|(b, n)| &b[..*n])
    }

    /// Fills the batch from a packet socket with one recvmmsg; returns how many frames came.
    pub fn receive(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.filled = packet::receive_batch(fd, &mut self.mem, FRAME_ROOM, &mut self.lens)?;
        Ok(self.filled)
    }

    /// Gives the slots' memory back while idle (a megabyte once 64 KiB frames have filled
    /// them); it comes back as frames fill them again.
    pub fn release(&mut self) {
        self.filled = 0;
        crate::sys::release_pages(&mut self.mem);
    }

    /// Sends every frame in the batch to a packet socket with one sendmmsg.
    pub fn send(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        packet::send_batch(fd, &mut self.mem, FRAME_ROOM, &self.lens, self.filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_as_committed_and_slots_work_after_a_release() {
        let mut b = Batch::default();
        b.slot()[..3].copy_from_slice(b"abc");
        b.commit(3);
        b.slot()[..2].copy_from_slice(b"de");
        b.commit(2);
        assert_eq!(b.frames().collect::<Vec<_>>(), [b"abc".as_slice(), b"de"]);
        b.release();
        assert!(b.is_empty());
        b.slot()[..1].copy_from_slice(b"f");
        b.commit(1);
        assert_eq!(b.frames().collect::<Vec<_>>(), [b"f".as_slice()]);
        // Released pages read as zeros: nothing of the earlier frames is left behind.
        assert!(b.mem[FRAME_ROOM..2 * FRAME_ROOM].iter().all(|x| *x == 0));
    }
}
