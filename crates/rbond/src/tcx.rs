//! The slave ingress drop: a two-instruction BPF program on each slave's tcx ingress that
//! returns TC_ACT_SHOT, so the host stack never sees a slave's frames (packet sockets do,
//! they run first). Closing the link detaches it, so a crashed daemon leaves nothing behind.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;

/// `r0 = TC_ACT_SHOT (2); exit`
const DROP_ALL: [u64; 2] = [
    0x0000_0002_0000_00b7, // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 2
    0x0000_0000_0000_0095, // BPF_JMP | BPF_EXIT
];

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An attached drop program; dropping this value detaches it.
pub struct IngressDrop {
    _link: OwnedFd,
}

impl IngressDrop {
    pub fn attach(ifindex: u32) -> io::Result<IngressDrop> {
        static LICENSE: &[u8] = b"GPL\0";
        let mut attr = [0u64; 16];
        attr[0] = u64::from(BPF_PROG_TYPE_SCHED_CLS) | ((DROP_ALL.len() as u64) << 32);
        attr[1] = DROP_ALL.as_ptr() as u64;
        attr[2] = LICENSE.as_ptr() as u64;
        let prog = bpf(BPF_PROG_LOAD, &mut attr)?;
        let mut attr = [0u64; 16];
        attr[0] = std::os::fd::AsRawFd::as_raw_fd(&prog) as u64 | (u64::from(ifindex) << 32);
        attr[1] = u64::from(BPF_TCX_INGRESS);
        let link = bpf(BPF_LINK_CREATE, &mut attr)?;
        Ok(IngressDrop { _link: link })
    }
}
