//! bond0 itself: a TAP device carrying virtio-net headers, so that checksum-offloaded and GSO
//! frames from the host stack cross it intact. Its carrier is the bond's; holding its
//! descriptor keeps that carrier (a TAP with no descriptor reads as NO-CARRIER).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::net::frames::VNET_HDR_LEN;
use crate::sys::{packet, tun};

pub struct BondDevice {
    fd: OwnedFd,
}

impl BondDevice {
    /// Creates the TAP `name`; it disappears when its last descriptor closes unless made
    /// persistent.
    pub fn create(name: &str) -> io::Result<BondDevice> {
        Self::configure(tun::attach(name)?)
    }

    /// The device through a descriptor a predecessor handed over.
    pub fn from_fd(fd: OwnedFd) -> io::Result<BondDevice> {
        Self::configure(fd)
    }

    fn configure(fd: OwnedFd) -> io::Result<BondDevice> {
        tun::set_vnet_header_size(fd.as_fd(), VNET_HDR_LEN)?;
        // Always explicit: a TAP keeps an earlier owner's offloads otherwise.
        tun::set_offloads(fd.as_fd(), tun::OFFLOADS)?;
        Ok(BondDevice { fd })
    }

    /// A second descriptor of the same queue.
    pub fn try_clone(&self) -> io::Result<BondDevice> {
        Ok(BondDevice { fd: self.fd.try_clone()? })
    }

    /// Whether the device has several queues (one made by an older rbond has one).
    pub fn multi_queue(&self) -> io::Result<bool> {
        Ok(tun::device(self.fd.as_fd())?.1)
    }

    /// Another queue of the same device, for another forwarding thread.
    pub fn another_queue(&self) -> io::Result<BondDevice> {
        let (name, _) = tun::device(self.fd.as_fd())?;
        Self::configure(tun::attach_queue(&name, true)?)
    }

    pub fn set_carrier(&self, on: bool) -> io::Result<()> {
        tun::set_carrier(self.fd.as_fd(), on)
    }

    pub fn set_persist(&self, on: bool) -> io::Result<()> {
        tun::set_persist(self.fd.as_fd(), on)
    }

    /// Reads one frame (with its vnet header) into `buf`; `None` when nothing is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        packet::read(self.fd.as_fd(), buf)
    }

    pub fn write(&self, frame: &[u8]) -> io::Result<()> {
        packet::write(self.fd.as_fd(), frame)
    }
}

impl AsFd for BondDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
