//! AF_PACKET sockets on one interface: options the C library names but `nix` does not
//! (PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING, memberships, classic BPF filters), and moving
//! frames a batch per system call with recvmmsg(2) and sendmmsg(2).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt_int;

const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;
const PACKET_MR_UNICAST: libc::c_ushort = 3;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_FANOUT_HASH: u32 = 0;
/// A group does not heed its members' PACKET_IGNORE_OUTGOING: it takes its own flag.
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
const BUFFER: libc::c_int = 4 << 20;

/// What a socket asks its interface to receive besides its own address; the kernel keeps a
/// count per interface and drops what a socket asked for when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    AllMulti,
    Promisc,
    Multicast([u8; 6]),
    Unicast([u8; 6]),
}

fn setsockopt<T>(fd: BorrowedFd<'_>, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `v`, a live value of the type the option
    // expects; the kernel only reads it.
    cvt_int(unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (v as *const T).cast(), len) }).map(drop)
}

/// A raw packet socket bound to `ifindex`, non-blocking, with 4 MiB buffers, that does not
/// see its own frames. With `vnet`, every frame carries a virtio-net header.
pub fn open(ifindex: u32, vnet: bool) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let one: libc::c_int = 1;
    setsockopt(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
    if vnet {
        setsockopt(fd.as_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, &one)?;
    }
    setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &BUFFER)?;
    setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &BUFFER)?;
    bind(fd, ifindex)
}

/// A raw packet socket bound to `ifindex` that sees what leaves the interface too, through
/// the classic BPF filter `code` from its first frame on (a socket receives nothing before
/// it is bound).
pub fn open_filtered(ifindex: u32, code: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let fd = socket()?;
    attach_filter(fd.as_fd(), code)?;
    bind(fd, ifindex)
}

fn socket() -> io::Result<OwnedFd> {
    let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes integers only; a non-negative result is a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(cvt_int(libc::socket(libc::AF_PACKET, flags, 0))?) })
}

fn bind(fd: OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: sockaddr_ll is plain data for which zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the address pointer and length describe `sll`, which bind only reads.
    cvt_int(unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) })?;
    Ok(fd)
}

/// Adds or drops one membership of the socket's interface.
pub fn membership(fd: BorrowedFd<'_>, ifindex: u32, what: Membership, add: bool) -> io::Result<()> {
    let (kind, addr) = match what {
        Membership::AllMulti => (PACKET_MR_ALLMULTI, None),
        Membership::Promisc => (PACKET_MR_PROMISC, None),
        Membership::Multicast(m) => (PACKET_MR_MULTICAST, Some(m)),
        Membership::Unicast(m) => (PACKET_MR_UNICAST, Some(m)),
    };
    let mut mr_address = [0u8; 8];
    mr_address[..6].copy_from_slice(&addr.unwrap_or_default());
    let mreq = libc::packet_mreq {
        mr_ifindex: i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        mr_type: kind,
        mr_alen: if addr.is_some() { 6 } else { 0 },
        mr_address,
    };
    setsockopt(fd, libc::SOL_PACKET, if add { PACKET_ADD_MEMBERSHIP } else { PACKET_DROP_MEMBERSHIP }, &mreq)
}

/// Joins the socket to fanout group `id` of its interface (creating the group), where each
/// frame reaches one member only, chosen by the hash of its flow: every frame of a flow, both
/// ways, reaches the same member.
pub fn join_fanout(fd: BorrowedFd<'_>, id: u16) -> io::Result<()> {
    let arg: u32 = u32::from(id) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
    match setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &arg) {
        // Handed over from a predecessor, already a member.
        Err(e) if e.raw_os_error() == Some(libc::EALREADY) => Ok(()),
        other => other,
    }
}

/// Lets only what the classic BPF program accepts reach the socket.
pub fn attach_filter(fd: BorrowedFd<'_>, code: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(code.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = libc::sock_fprog { len, filter: code.as_ptr().cast_mut() };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// A read or write count where "would block" means "nothing now".
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

/// Sends one frame; a full queue drops it, as a NIC's would.
pub fn send(fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `frame`, which send(2) only reads.
    nonblocking(unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) }).map(drop)
}

/// Reads one frame into `buf`; `None` when nothing is waiting.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: the pointer and length describe `buf`, which read(2) fills at most.
    nonblocking(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Writes one frame.
pub fn write(fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `frame`, which write(2) only reads.
    nonblocking(unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) }).map(drop)
}

/// One message header per buffer, each naming its single iovec; on the stack, so moving a
/// batch allocates nothing.
fn headers<const N: usize>(iovs: &mut [libc::iovec; N]) -> [libc::mmsghdr; N] {
    let mut slots = iovs.iter_mut();
    std::array::from_fn(|_| {
        // SAFETY: mmsghdr is plain data (integers and pointers) for which zero is valid.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        if let Some(iov) = slots.next() {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        h
    })
}

/// One iovec per `room`-byte slot of `mem` (at most `N`), each `len(slot)` long; the rest
/// empty. Returns them with how many there are.
fn slots<const N: usize>(mem: &mut [u8], room: usize, len: impl Fn(usize) -> usize) -> ([libc::iovec; N], usize) {
    let mut iovs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; N];
    let mut count = 0;
    for (i, (iov, slot)) in iovs.iter_mut().zip(mem.chunks_exact_mut(room.max(1))).enumerate() {
        iov.iov_base = slot.as_mut_ptr().cast();
        iov.iov_len = len(i).min(slot.len());
        count += 1;
    }
    (iovs, count)
}

/// Receives up to `N` frames with one recvmmsg, each into its `room`-byte slot of `mem`;
/// returns how many came and sets their lengths.
pub fn receive_batch<const N: usize>(
    fd: BorrowedFd<'_>,
    mem: &mut [u8],
    room: usize,
    lens: &mut [usize; N],
) -> io::Result<usize> {
    let (mut iovs, count) = slots::<N>(mem, room, |_| room);
    let mut msgs = headers(&mut iovs);
    // SAFETY: the first `count` headers each point at one iovec describing one slot of `mem`,
    // which outlives the call; the kernel writes at most each slot's length and fills msg_len.
    let n = unsafe {
        libc::recvmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), count as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    let n = nonblocking(n as isize)?.unwrap_or(0);
    for (len, m) in lens.iter_mut().zip(&msgs).take(n) {
        *len = m.msg_len as usize;
    }
    Ok(n)
}

/// Sends the first `count` frames, each `lens[i]` bytes at the start of its `room`-byte slot
/// of `mem`, with one sendmmsg. Frames the socket has no room for are dropped, as a NIC with
/// a full queue drops them.
pub fn send_batch<const N: usize>(
    fd: BorrowedFd<'_>,
    mem: &mut [u8],
    room: usize,
    lens: &[usize; N],
    count: usize,
) -> io::Result<()> {
    let (mut iovs, slots) = slots::<N>(mem, room, |i| lens[i]);
    let mut msgs = headers(&mut iovs);
    let count = count.min(slots) as u32;
    // SAFETY: the first `count` headers each point at one iovec describing the filled part of
    // one slot of `mem`, which outlives the call; sendmmsg only reads them.
    let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), count, libc::MSG_DONTWAIT) };
    nonblocking(n as isize).map(drop)
}
