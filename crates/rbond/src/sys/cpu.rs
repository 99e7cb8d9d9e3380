//! Which CPUs the process may run on, and keeping a thread on one of them.

use std::io;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The CPUs this process may run on, in order.
pub fn allowed() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)).collect())
}

/// Keeps the calling thread on `cpu`.
pub fn pin_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    // Pid 0 is the calling thread, not the whole process.
    Ok(sched_setaffinity(Pid::from_raw(0), &set)?)
}
