//! tcx BPF programs on interfaces, loaded and attached with raw bpf(2) calls: no compiler,
//! no loader library. Every attachment is owned by a descriptor, so a daemon that dies leaves
//! nothing behind (and one that re-executes itself keeps them by keeping the descriptors).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// `r0 = TC_ACT_SHOT (2); exit`
const DROP_ALL: [u64; 2] = [insn(0xb7, 0, 0, 0, 2), insn(0x95, 0, 0, 0, 0)];

/// One BPF instruction: opcode, destination and source registers, offset, immediate.
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64) | (((dst | (src << 4)) as u64) << 8) | ((off as u16 as u64) << 16) | ((imm as u32 as u64) << 32)
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<libc::c_long> {
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn bpf_fd(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<OwnedFd> {
    Ok(unsafe { OwnedFd::from_raw_fd(bpf(cmd, attr)? as i32) })
}

/// Loads a traffic-control program; a verifier refusal comes back with the verifier's log.
pub fn load(insns: &[u64]) -> io::Result<OwnedFd> {
    static LICENSE: &[u8] = b"GPL\0";
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(BPF_PROG_TYPE_SCHED_CLS) | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = LICENSE.as_ptr() as u64;
    attr[3] = 1 | ((log.len() as u64) << 32); // log level 1, log size
    attr[4] = log.as_mut_ptr() as u64;
    bpf_fd(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let text = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).trim().to_string();
        if text.is_empty() { e } else { io::Error::new(e.kind(), format!("{e}: {text}")) }
    })
}

/// A program attached to an interface's tcx hook; dropping it detaches the program.
pub struct Link {
    fd: OwnedFd,
}

impl Link {
    pub fn from_fd(fd: OwnedFd) -> Link {
        Link { fd }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

pub fn attach(prog: &OwnedFd, ifindex: u32, attach_type: u32) -> io::Result<Link> {
    let mut attr = [0u64; 16];
    attr[0] = prog.as_raw_fd() as u64 | (u64::from(ifindex) << 32);
    attr[1] = u64::from(attach_type);
    Ok(Link { fd: bpf_fd(BPF_LINK_CREATE, &mut attr)? })
}

/// A small array of u32 values shared with programs.
pub struct ArrayMap {
    fd: OwnedFd,
}

impl ArrayMap {
    pub fn create(entries: u32) -> io::Result<ArrayMap> {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(BPF_MAP_TYPE_ARRAY) | (4u64 << 32);
        attr[1] = 4 | (u64::from(entries) << 32);
        Ok(ArrayMap { fd: bpf_fd(BPF_MAP_CREATE, &mut attr)? })
    }

    pub fn from_fd(fd: OwnedFd) -> ArrayMap {
        ArrayMap { fd }
    }

    pub fn set(&self, key: u32, value: u32) -> io::Result<()> {
        let mut attr = [0u64; 16];
        attr[0] = self.fd.as_raw_fd() as u64;
        attr[1] = (&raw const key) as u64;
        attr[2] = (&raw const value) as u64;
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// A slave's ingress drop for the userspace datapath: the host stack never sees a slave's
/// frames (packet sockets do, they run first).
pub fn drop_ingress(ifindex: u32) -> io::Result<Link> {
    attach(&load(&DROP_ALL)?, ifindex, BPF_TCX_INGRESS)
}
