//! The datapaths' BPF programs, written in BPF instructions with named jump targets (no
//! compiler is needed at build or run time). The kernel datapath's two read one array map:
//! [0] is bond0's ifindex, [1] the active slave's (0 for none).

use std::collections::HashMap;

pub const KEY_BOND: i32 = 0;
pub const KEY_ACTIVE: i32 = 1;
const SKB_IFINDEX: i16 = 40; // offsetof(struct __sk_buff, ifindex)
const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_REDIRECT: i32 = 23;
const BPF_F_INGRESS: i32 = 1;
const TC_ACT_SHOT: i32 = 2;
const BPF_PSEUDO_MAP_FD: u8 = 1;

#[derive(Clone, Copy)]
#[repr(u8)]
enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R7 = 7,
    Fp = 10,
}

/// One instruction: opcode, destination and source registers, offset, immediate.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64) | (((dst | (src << 4)) as u64) << 8) | ((off as u16 as u64) << 16) | ((imm as u32 as u64) << 32)
}

/// A program under construction: jumps name their target, and `finish` computes offsets.
#[derive(Default)]
struct Asm {
    code: Vec<u64>,
    labels: HashMap<&'static str, usize>,
    /// (instruction index, target label) for every jump.
    jumps: Vec<(usize, &'static str)>,
}

impl Asm {
    fn emit(&mut self, i: u64) -> &mut Asm {
        self.code.push(i);
        self
    }
    fn label(&mut self, name: &'static str) -> &mut Asm {
        self.labels.insert(name, self.code.len());
        self
    }
    fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Asm {
        self.emit(insn(0xb7, dst as u8, 0, 0, imm))
    }
    fn mov(&mut self, dst: Reg, src: Reg) -> &mut Asm {
        self.emit(insn(0xbf, dst as u8, src as u8, 0, 0))
    }
    fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Asm {
        self.emit(insn(0x07, dst as u8, 0, 0, imm))
    }
    /// `dst = *(u32 *)(src + off)`
    fn load_u32(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Asm {
        self.emit(insn(0x61, dst as u8, src as u8, off, 0))
    }
    /// `*(u32 *)(dst + off) = imm`
    fn store_imm_u32(&mut self, dst: Reg, off: i16, imm: i32) -> &mut Asm {
        self.emit(insn(0x62, dst as u8, 0, off, imm))
    }
    /// `dst = map` (the two-slot load of a map descriptor).
    fn load_map(&mut self, dst: Reg, map_fd: i32) -> &mut Asm {
        self.emit(insn(0x18, dst as u8, BPF_PSEUDO_MAP_FD, 0, map_fd)).emit(0)
    }
    fn call(&mut self, helper: i32) -> &mut Asm {
        self.emit(insn(0x85, 0, 0, 0, helper))
    }
    fn exit(&mut self) -> &mut Asm {
        self.emit(insn(0x95, 0, 0, 0, 0))
    }
    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, target: &'static str) -> &mut Asm {
        self.jumps.push((self.code.len(), target));
        self.emit(insn(code, dst as u8, src as u8, 0, imm))
    }
    /// `if dst == imm goto target`
    fn jeq_imm(&mut self, dst: Reg, imm: i32, target: &'static str) -> &mut Asm {
        self.jump(0x15, dst, Reg::R0, imm, target)
    }
    /// `if dst != src goto target`
    fn jne(&mut self, dst: Reg, src: Reg, target: &'static str) -> &mut Asm {
        self.jump(0x5d, dst, src, 0, target)
    }

    /// `r0 = &map[key]`, null when the lookup fails.
    fn lookup(&mut self, map_fd: i32, key: i32) -> &mut Asm {
        self.store_imm_u32(Reg::Fp, -4, key)
            .load_map(Reg::R1, map_fd)
            .mov(Reg::R2, Reg::Fp)
            .add_imm(Reg::R2, -4)
            .call(HELPER_MAP_LOOKUP)
    }

    fn finish(&mut self) -> Vec<u64> {
        for (at, target) in &self.jumps {
            let to = *self.labels.get(target).unwrap_or_else(|| panic!("jump to undefined label {target}"));
            let off = i16::try_from(to as isize - *at as isize - 1).expect("jump within range");
            self.code[*at] = (self.code[*at] & !0xffff_0000) | (u64::from(off as u16) << 16);
        }
        std::mem::take(&mut self.code)
    }
}

/// On a slave's ingress: into bond0 if this slave is the active one, else drop.
pub fn slave_in(map_fd: i32) -> Vec<u64> {
    let mut a = Asm::default();
    a.load_u32(Reg::R7, Reg::R1, SKB_IFINDEX)
        .lookup(map_fd, KEY_ACTIVE)
        .jeq_imm(Reg::R0, 0, "drop")
        .load_u32(Reg::R1, Reg::R0, 0)
        .jne(Reg::R1, Reg::R7, "drop")
        .lookup(map_fd, KEY_BOND)
        .jeq_imm(Reg::R0, 0, "drop")
        .load_u32(Reg::R1, Reg::R0, 0)
        .mov_imm(Reg::R2, BPF_F_INGRESS)
        .call(HELPER_REDIRECT)
        .exit() // with the redirect's verdict
        .label("drop")
        .mov_imm(Reg::R0, TC_ACT_SHOT)
        .exit();
    a.finish()
}

/// On bond0's egress: out of the active slave, or dropped when there is none.
pub fn bond_out(map_fd: i32) -> Vec<u64> {
    let mut a = Asm::default();
    a.lookup(map_fd, KEY_ACTIVE)
        .jeq_imm(Reg::R0, 0, "drop")
        .load_u32(Reg::R1, Reg::R0, 0)
        .jeq_imm(Reg::R1, 0, "drop")
        .mov_imm(Reg::R2, 0)
        .call(HELPER_REDIRECT)
        .exit()
        .label("drop")
        .mov_imm(Reg::R0, TC_ACT_SHOT)
        .exit();
    a.finish()
}

/// A slave's ingress on the userspace datapath: the host stack never sees a slave's frames
/// (packet sockets run first and see them all).
pub fn drop_all() -> Vec<u64> {
    let mut a = Asm::default();
    a.mov_imm(Reg::R0, TC_ACT_SHOT).exit();
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jump at `at`'s offset field.
    fn offset(code: &[u64], at: usize) -> i16 {
        (code[at] >> 16) as u16 as i16
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let p = slave_in(7);
        // Both drop jumps and the null checks land on the `r0 = TC_ACT_SHOT` before the end.
        let drop = p.len() - 2;
        let jumps: Vec<usize> = (0..p.len()).filter(|i| matches!(p[*i] & 0xff, 0x15 | 0x5d)).collect();
        assert_eq!(jumps.len(), 3);
        for j in jumps {
            assert_eq!(j as isize + 1 + offset(&p, j) as isize, drop as isize, "jump at {j}");
        }
        assert_eq!(p[drop], insn(0xb7, 0, 0, 0, TC_ACT_SHOT));
        // The map's descriptor is in both lookups' two-slot loads.
        let loads: Vec<&u64> = p.iter().filter(|i| **i & 0xff == 0x18).collect();
        assert_eq!(loads.len(), 2);
        assert!(loads.iter().all(|i| *i >> 32 == 7));
    }

    #[test]
    fn the_programs_keep_their_known_shape() {
        // The hand-counted versions these replaced had these lengths.
        assert_eq!(slave_in(3).len(), 23);
        assert_eq!(bond_out(3).len(), 14);
        assert_eq!(drop_all(), [insn(0xb7, 0, 0, 0, 2), insn(0x95, 0, 0, 0, 0)]);
    }
}
