//! The kernel datapath: frames never leave the kernel. bond0's egress is redirected to the
//! active slave, the active slave's ingress into bond0, and every other slave's ingress is
//! dropped, by two tcx programs reading one map: [0] = bond0's ifindex, [1] = the active
//! slave's (0 for none). A failover is one map write.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::tcx::{self, ArrayMap, BPF_TCX_EGRESS, BPF_TCX_INGRESS, Link, insn};

const KEY_BOND: i32 = 0;
const KEY_ACTIVE: i32 = 1;
const SKB_IFINDEX: i16 = 40; // offsetof(struct __sk_buff, ifindex)
const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_REDIRECT: i32 = 23;
const BPF_F_INGRESS: i32 = 1;
const TC_ACT_SHOT: i32 = 2;

/// `r1 = map` (a two-slot load of the map's descriptor).
fn load_map(map: &ArrayMap) -> [u64; 2] {
    [insn(0x18, 1, 1, 0, map.raw_fd()), 0]
}

/// Looks up `key`: `r0 = &map[key]` (null-checked by the caller).
fn lookup(map: &ArrayMap, key: i32) -> Vec<u64> {
    let mut v = vec![insn(0x62, 10, 0, -4, key)]; // *(u32 *)(r10 - 4) = key
    v.extend(load_map(map));
    v.extend([insn(0xbf, 2, 10, 0, 0), insn(0x07, 2, 0, 0, -4), insn(0x85, 0, 0, 0, HELPER_MAP_LOOKUP)]);
    v
}

/// On a slave's ingress: into bond0 if this slave is the active one, else drop.
fn slave_in(map: &ArrayMap) -> Vec<u64> {
    let mut p = vec![insn(0x61, 7, 1, SKB_IFINDEX, 0)]; // r7 = skb->ifindex
    p.extend(lookup(map, KEY_ACTIVE)); // 1..=6
    p.push(insn(0x15, 0, 0, 13, 0)); // 7: if r0 == 0 goto drop (21)
    p.push(insn(0x61, 1, 0, 0, 0)); // 8: r1 = *r0
    p.push(insn(0x5d, 1, 7, 11, 0)); // 9: if r1 != r7 goto drop
    p.extend(lookup(map, KEY_BOND)); // 10..=15
    p.push(insn(0x15, 0, 0, 4, 0)); // 16: if r0 == 0 goto drop
    p.push(insn(0x61, 1, 0, 0, 0)); // 17: r1 = bond0's ifindex
    p.push(insn(0xb7, 2, 0, 0, BPF_F_INGRESS)); // 18
    p.push(insn(0x85, 0, 0, 0, HELPER_REDIRECT)); // 19
    p.push(insn(0x95, 0, 0, 0, 0)); // 20: exit with the redirect's verdict
    p.push(insn(0xb7, 0, 0, 0, TC_ACT_SHOT)); // 21: drop
    p.push(insn(0x95, 0, 0, 0, 0));
    p
}

/// On bond0's egress: out of the active slave, or dropped when there is none.
fn bond_out(map: &ArrayMap) -> Vec<u64> {
    let mut p = lookup(map, KEY_ACTIVE); // 0..=5
    p.push(insn(0x15, 0, 0, 5, 0)); // 6: if r0 == 0 goto drop (12)
    p.push(insn(0x61, 1, 0, 0, 0)); // 7: r1 = active ifindex
    p.push(insn(0x15, 1, 0, 3, 0)); // 8: if r1 == 0 goto drop
    p.push(insn(0xb7, 2, 0, 0, 0)); // 9
    p.push(insn(0x85, 0, 0, 0, HELPER_REDIRECT)); // 10
    p.push(insn(0x95, 0, 0, 0, 0)); // 11
    p.push(insn(0xb7, 0, 0, 0, TC_ACT_SHOT)); // 12
    p.push(insn(0x95, 0, 0, 0, 0));
    p
}

pub struct KernelDatapath {
    map: ArrayMap,
    slave_prog: OwnedFd,
    bond_out: Link,
}

impl KernelDatapath {
    /// Loads both programs and puts `bond_out` on bond0's egress; no slave is active yet.
    pub fn load(bond_ifindex: u32) -> io::Result<KernelDatapath> {
        let map = ArrayMap::create(2)?;
        map.set(KEY_BOND as u32, bond_ifindex)?;
        map.set(KEY_ACTIVE as u32, 0)?;
        let slave_prog = tcx::load(&slave_in(&map))?;
        let out = tcx::load(&bond_out(&map))?;
        let link = tcx::attach(&out, bond_ifindex, BPF_TCX_EGRESS)?;
        Ok(KernelDatapath { map, slave_prog, bond_out: link })
    }

    /// Puts `slave_in` on a slave's ingress; dropping the link takes it off.
    pub fn attach_slave(&self, ifindex: u32) -> io::Result<Link> {
        tcx::attach(&self.slave_prog, ifindex, BPF_TCX_INGRESS)
    }

    /// The map, the slave program and bond0's egress link, in that order: what a successor
    /// needs to keep forwarding untouched.
    pub fn raw_fds(&self) -> [i32; 3] {
        [self.map.raw_fd(), self.slave_prog.as_raw_fd(), self.bond_out.raw_fd()]
    }

    pub fn from_fds([map, slave_prog, bond_out]: [OwnedFd; 3]) -> KernelDatapath {
        KernelDatapath { map: ArrayMap::from_fd(map), slave_prog, bond_out: Link::from_fd(bond_out) }
    }

    pub fn set_active(&self, ifindex: Option<u32>) -> io::Result<()> {
        self.map.set(KEY_ACTIVE as u32, ifindex.unwrap_or(0))
    }
}
