//! bpf(2): array maps, traffic-control programs, tcx links, and pinning in bpffs. Each
//! command's attributes are the kernel's `union bpf_attr` member for it, as a `#[repr(C)]`
//! struct; the kernel accepts a prefix of the union and treats the rest as zero.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::cvt;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;
/// Room for the verifier's account of a refusal, which the error then carries whole.
const VERIFIER_LOG: usize = 1 << 20;

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ObjPath {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The kernel's `struct bpf_link_info` as far as a tcx link goes.
#[repr(C)]
#[derive(Default)]
struct TcxLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    ifindex: u32,
    attach_type: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is the #[repr(C)] member of union bpf_attr that `cmd` reads, passed with
    // its own size; every pointer inside it names memory that outlives the call.
    cvt(unsafe { libc::syscall(libc::SYS_bpf, cmd, (attr as *mut T).cast::<libc::c_void>(), std::mem::size_of::<T>()) })
}

fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

/// An array of `entries` u32 values, indexed by u32.
pub fn array_map(entries: u32) -> io::Result<OwnedFd> {
    let mut attr =
        MapCreate { map_type: BPF_MAP_TYPE_ARRAY, key_size: 4, value_size: 4, max_entries: entries, map_flags: 0 };
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

pub fn map_set(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: raw(map),
        key: (&raw const key) as u64,
        value: (&raw const value) as u64,
        ..MapElem::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

pub fn map_get(map: BorrowedFd<'_>, key: u32) -> io::Result<u32> {
    let mut value = 0u32;
    let mut attr = MapElem {
        map_fd: raw(map),
        key: (&raw const key) as u64,
        value: (&raw mut value) as u64,
        ..MapElem::default()
    };
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

/// Loads a traffic-control program.
pub fn load_tc_program(name: &str, insns: &[u64]) -> io::Result<OwnedFd> {
    load_program(BPF_PROG_TYPE_SCHED_CLS, name, insns)
}

/// Loads a program of `prog_type`. A verifier refusal comes back with the verifier's whole
/// log, from a second attempt that asks for it.
fn load_program(prog_type: u32, name: &str, insns: &[u64]) -> io::Result<OwnedFd> {
    static LICENSE: &[u8] = b"GPL\0";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().take(15).zip(name.bytes()) {
        *d = s;
    }
    let mut attr = ProgLoad {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name,
        ..ProgLoad::default()
    };
    let err = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG];
    attr.log_level = 1;
    attr.log_size = VERIFIER_LOG as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let _ = bpf_fd(BPF_PROG_LOAD, &mut attr);
    let text = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).trim().to_string();
    Err(if text.is_empty() { err } else { io::Error::new(err.kind(), format!("{err}; the verifier said:\n{text}")) })
}

/// Attaches a program to an interface's tcx hook; the link detaches it when its last
/// reference (descriptor or pin) goes.
pub fn tcx_attach(prog: BorrowedFd<'_>, ifindex: u32, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate { prog_fd: raw(prog), target_ifindex: ifindex, attach_type, flags: 0 };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// The interface a tcx link holds its program on; 0 once the interface is gone.
pub fn link_ifindex(link: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = TcxLinkInfo::default();
    let mut attr = InfoByFd {
        bpf_fd: raw(link),
        info_len: std::mem::size_of::<TcxLinkInfo>() as u32,
        info: (&raw mut info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.ifindex)
}

fn c_path(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Pins a map, program or link at `path` in a bpffs, so it outlives every descriptor.
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    let mut attr = ObjPath { pathname: c.as_ptr() as u64, bpf_fd: raw(fd), file_flags: 0 };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// A new descriptor for the object pinned at `path`.
pub fn pinned(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = ObjPath { pathname: c.as_ptr() as u64, ..ObjPath::default() };
    bpf_fd(BPF_OBJ_GET, &mut attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_layouts_match_the_kernels() {
        // Offsets of the last field of each union bpf_attr member we use (linux/bpf.h).
        assert_eq!(std::mem::size_of::<MapCreate>(), 20);
        assert_eq!(std::mem::offset_of!(MapElem, flags), 24);
        assert_eq!(std::mem::offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(std::mem::size_of::<LinkCreate>(), 16);
        assert_eq!(std::mem::offset_of!(ObjPath, file_flags), 12);
        assert_eq!(std::mem::offset_of!(TcxLinkInfo, ifindex), 16);
    }
}
