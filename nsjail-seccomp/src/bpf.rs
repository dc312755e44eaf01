//! A small compiler from seccomp rules to classic BPF.
//!
//! It is `const fn`, so that the default filters are constants of this crate (a rule list that
//! does not compile fails the build); the helper's build script writes them out for the helper.
//! The CLI compiles custom profiles with the same code at run time.
//!
//! Every program starts the same way: a system call from any ABI but native x86_64 (i386 through
//! `int 0x80`, x32 with bit 30 of the number set) kills the process. Then, in this order:
//!
//! 1. every rule with argument conditions, in the order given;
//! 2. for each system call, its first rule without conditions (later ones never match);
//! 3. the default action.
//!
//! so that for one system call the specific rules are tried before the general one, as
//! libseccomp does. Conditions of one rule must all hold. Unconditional rules with the same
//! action are grouped behind one `ret`; a linear scan is cheap for lists of this size, and
//! the kernel's action cache skips the filter for calls whose answer never depends on arguments.

/// One BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Log,
}

/// How much of a 64-bit argument a condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits only: for arguments the kernel truncates to `int` (an `ioctl` request),
    /// where junk in the high half must not slip past the rule (CVE-2019-10063).
    Low32,
    Full64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

/// `args[arg] OP value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub arg: u8,
    pub width: Width,
    pub op: Op,
    pub value: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Rule<'a> {
    pub nr: u32,
    pub conds: &'a [Cond],
    pub action: Action,
}

/// The kernel's limit on one program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// More than [`MAX_INSNS`] instructions.
    TooLong,
    /// A jump further than 255 instructions (a rule with too many conditions).
    JumpTooFar,
    /// An argument index above 5.
    BadArg,
}

impl CompileError {
    pub fn describe(self) -> &'static str {
        match self {
            CompileError::TooLong => "the filter is longer than 4096 BPF instructions",
            CompileError::JumpTooFar => "a rule has too many conditions to compile",
            CompileError::BadArg => "an argument index is above 5",
        }
    }
}

/// A compiled program in a fixed buffer (`insns[..len]` is the program).
pub struct Program {
    pub insns: [Insn; MAX_INSNS],
    pub len: usize,
}

impl Program {
    pub fn as_slice(&self) -> &[Insn] {
        self.insns.split_at(self.len).0
    }
}

// Opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `__X32_SYSCALL_BIT`.
const X32_BIT: u32 = 0x4000_0000;

// SECCOMP_RET_* (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// The program's return value for `a`.
pub const fn ret_value(a: Action) -> u32 {
    match a {
        Action::Allow => RET_ALLOW,
        Action::Errno(e) => RET_ERRNO | (e as u32 & 0xffff),
        Action::KillThread => RET_KILL_THREAD,
        Action::KillProcess => RET_KILL_PROCESS,
        Action::Trap => RET_TRAP,
        Action::Log => RET_LOG,
    }
}

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

const fn same_action(a: Action, b: Action) -> bool {
    match (a, b) {
        (Action::Allow, Action::Allow)
        | (Action::KillThread, Action::KillThread)
        | (Action::KillProcess, Action::KillProcess)
        | (Action::Trap, Action::Trap)
        | (Action::Log, Action::Log) => true,
        (Action::Errno(x), Action::Errno(y)) => x == y,
        _ => false,
    }
}

/// Instructions one condition takes.
const fn cond_len(c: &Cond) -> usize {
    match (c.width, c.op) {
        (Width::Low32, Op::MaskedEq { .. }) => 3,
        (Width::Low32, _) => 2,
        (Width::Full64, Op::Eq | Op::Ne) => 4,
        (Width::Full64, Op::MaskedEq { .. }) => 6,
        (Width::Full64, _) => 5,
    }
}

/// The output buffer and where the next instruction goes.
struct Out {
    insns: [Insn; MAX_INSNS],
    len: usize,
    error: Option<CompileError>,
}

impl Out {
    const fn push(&mut self, i: Insn) {
        if self.len >= MAX_INSNS {
            self.error = Some(CompileError::TooLong);
            return;
        }
        self.insns[self.len] = i;
        self.len += 1;
    }

    /// A jump offset from the instruction about to be pushed to absolute position `to`.
    const fn off(&mut self, to: usize) -> u8 {
        let from = self.len + 1;
        if to < from || to - from > 255 {
            self.error = Some(CompileError::JumpTooFar);
            return 0;
        }
        (to - from) as u8
    }

    const fn jmp(&mut self, code: u16, k: u32, jt_to: usize, jf_to: usize) {
        let jt = self.off(jt_to);
        let jf = self.off(jf_to);
        self.push(jump(code, k, jt, jf));
    }
}

/// Emit one condition; `fail` is where to go when it does not hold.
const fn emit_cond(out: &mut Out, c: &Cond, fail: usize) {
    if c.arg > 5 {
        out.error = Some(CompileError::BadArg);
        return;
    }
    let lo_off = OFF_ARGS + 8 * c.arg as u32;
    let hi_off = lo_off + 4;
    let lo = c.value as u32;
    let hi = (c.value >> 32) as u32;
    let start = out.len;
    let next = start + cond_len(c);
    match c.width {
        Width::Low32 => {
            out.push(stmt(LD_W_ABS, lo_off));
            match c.op {
                Op::Eq => out.jmp(JEQ_K, lo, next, fail),
                Op::Ne => out.jmp(JEQ_K, lo, fail, next),
                Op::Gt => out.jmp(JGT_K, lo, next, fail),
                Op::Ge => out.jmp(JGE_K, lo, next, fail),
                Op::Lt => out.jmp(JGE_K, lo, fail, next),
                Op::Le => out.jmp(JGT_K, lo, fail, next),
                Op::MaskedEq { mask } => {
                    out.push(stmt(ALU_AND_K, mask as u32));
                    out.jmp(JEQ_K, lo, next, fail);
                }
            }
        }
        Width::Full64 => match c.op {
            Op::Eq => {
                out.push(stmt(LD_W_ABS, hi_off));
                out.jmp(JEQ_K, hi, start + 2, fail);
                out.push(stmt(LD_W_ABS, lo_off));
                out.jmp(JEQ_K, lo, next, fail);
            }
            Op::Ne => {
                // Different high halves already make the values differ.
                out.push(stmt(LD_W_ABS, hi_off));
                out.jmp(JEQ_K, hi, start + 2, next);
                out.push(stmt(LD_W_ABS, lo_off));
                out.jmp(JEQ_K, lo, fail, next);
            }
            Op::MaskedEq { mask } => {
                out.push(stmt(LD_W_ABS, hi_off));
                out.push(stmt(ALU_AND_K, (mask >> 32) as u32));
                out.jmp(JEQ_K, hi, start + 3, fail);
                out.push(stmt(LD_W_ABS, lo_off));
                out.push(stmt(ALU_AND_K, mask as u32));
                out.jmp(JEQ_K, lo, next, fail);
            }
            Op::Gt | Op::Ge => {
                // hi > HI: holds; hi < HI: fails; equal: decided by the low half.
                out.push(stmt(LD_W_ABS, hi_off));
                out.jmp(JGT_K, hi, next, start + 2);
                out.jmp(JEQ_K, hi, start + 3, fail);
                out.push(stmt(LD_W_ABS, lo_off));
                let code = if matches!(c.op, Op::Gt) { JGT_K } else { JGE_K };
                out.jmp(code, lo, next, fail);
            }
            Op::Lt | Op::Le => {
                out.push(stmt(LD_W_ABS, hi_off));
                out.jmp(JGT_K, hi, fail, start + 2);
                out.jmp(JEQ_K, hi, start + 3, next);
                out.push(stmt(LD_W_ABS, lo_off));
                let code = if matches!(c.op, Op::Lt) { JGE_K } else { JGT_K };
                out.jmp(code, lo, fail, next);
            }
        },
    }
}

/// Whether rule `i` of the flattened `parts` is the first unconditional rule of its syscall.
const fn first_unconditional(parts: &[&[Rule]], pi: usize, ri: usize) -> bool {
    let nr = parts[pi][ri].nr;
    let mut p = 0;
    while p <= pi {
        let rules = parts[p];
        let end = if p == pi { ri } else { rules.len() };
        let mut r = 0;
        while r < end {
            if rules[r].nr == nr && rules[r].conds.is_empty() {
                return false;
            }
            r += 1;
        }
        p += 1;
    }
    true
}

/// Compile the rules of `parts` (taken as one list, in order) with `default` for everything
/// they do not match.
pub const fn compile(parts: &[&[Rule]], default: Action) -> Result<Program, CompileError> {
    let mut out = Out {
        insns: [stmt(0, 0); MAX_INSNS],
        len: 0,
        error: None,
    };
    // Prologue: native ABI only. The number -1 (a system call skipped by a tracer) passes on.
    out.push(stmt(LD_W_ABS, OFF_ARCH));
    out.push(jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    out.push(stmt(RET_K, RET_KILL_PROCESS));
    out.push(stmt(LD_W_ABS, OFF_NR));
    out.push(jump(JSET_K, X32_BIT, 0, 2));
    out.push(jump(JEQ_K, u32::MAX, 1, 0));
    out.push(stmt(RET_K, RET_KILL_PROCESS));
    // The accumulator holds the syscall number unless a condition loaded an argument.
    let mut a_is_nr = true;

    // 1. Rules with conditions.
    let mut p = 0;
    while p < parts.len() {
        let mut r = 0;
        while r < parts[p].len() {
            let rule = &parts[p][r];
            if !rule.conds.is_empty() {
                if !a_is_nr {
                    out.push(stmt(LD_W_ABS, OFF_NR));
                }
                let mut body = 0;
                let mut c = 0;
                while c < rule.conds.len() {
                    body += cond_len(&rule.conds[c]);
                    c += 1;
                }
                // [jeq nr][conditions][ret]; `end` is the first instruction after the block.
                let end = out.len + 1 + body + 1;
                out.jmp(JEQ_K, rule.nr, out.len + 1, end);
                let mut c = 0;
                while c < rule.conds.len() {
                    emit_cond(&mut out, &rule.conds[c], end);
                    c += 1;
                }
                out.push(stmt(RET_K, ret_value(rule.action)));
                a_is_nr = false;
            }
            r += 1;
        }
        p += 1;
    }

    // 2. The first unconditional rule of each syscall, grouped by runs of the same action:
    //    [jeq nr1 → ret] [jeq nr2 → ret] … [ret action].
    if !a_is_nr {
        out.push(stmt(LD_W_ABS, OFF_NR));
    }
    let mut group_action = Action::Allow;
    // Positions of the group's jumps, patched once the group's `ret` is placed.
    let mut group: [usize; 200] = [0; 200];
    let mut group_len = 0;
    let mut p = 0;
    loop {
        let done = p >= parts.len();
        let mut r = 0;
        let count = if done { 1 } else { parts[p].len() };
        while r < count {
            let take = if done {
                None
            } else {
                let rule = &parts[p][r];
                if rule.conds.is_empty()
                    && !same_action(rule.action, default)
                    && first_unconditional(parts, p, r)
                {
                    Some(*rule)
                } else {
                    None
                }
            };
            let flush = group_len > 0
                && (done
                    || group_len == group.len()
                    || match take {
                        Some(rule) => !same_action(rule.action, group_action),
                        None => false,
                    });
            if flush {
                let ret_at = out.len;
                let mut g = 0;
                while g < group_len {
                    let at = group[g];
                    let dist = ret_at - at - 1;
                    if dist > 255 {
                        out.error = Some(CompileError::JumpTooFar);
                    }
                    out.insns[at].jt = dist as u8;
                    g += 1;
                }
                out.push(stmt(RET_K, ret_value(group_action)));
                // Falling through the last jump must skip the ret.
                out.insns[group[group_len - 1]].jf = 1;
                group_len = 0;
            }
            if let Some(rule) = take {
                group_action = rule.action;
                group[group_len] = out.len;
                group_len += 1;
                out.push(jump(JEQ_K, rule.nr, 0, 0));
            }
            r += 1;
        }
        if done {
            break;
        }
        p += 1;
    }

    // 3. Everything else.
    out.push(stmt(RET_K, ret_value(default)));
    match out.error {
        Some(e) => Err(e),
        None => Ok(Program {
            insns: out.insns,
            len: out.len,
        }),
    }
}

/// The first `N` instructions of a compiled program, for a static of exactly that size.
pub const fn trim<const N: usize>(p: &Program) -> [Insn; N] {
    let mut out = [stmt(0, 0); N];
    let mut i = 0;
    while i < N {
        out[i] = p.insns[i];
        i += 1;
    }
    out
}

/// A program as the kernel's `struct sock_filter` array, in native byte order: the bytes the CLI
/// sends and the helper's framing check reads back.
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend(i.code.to_ne_bytes());
        out.extend([i.jt, i.jf]);
        out.extend(i.k.to_ne_bytes());
    }
    out
}

#[cfg(any(test, feature = "interp"))]
pub mod interp {
    //! A seccomp BPF interpreter for tests and fuzzing: runs a program on a `seccomp_data` the
    //! way the kernel does, so compiled filters can be checked against what their rules mean.
    //! It knows only the instructions this compiler emits, and panics on any other.
    #![allow(clippy::panic)]
    use super::*;

    pub struct Data {
        pub nr: u32,
        pub arch: u32,
        pub args: [u64; 6],
    }

    impl Data {
        pub fn native(nr: u32, args: [u64; 6]) -> Data {
            Data {
                nr,
                arch: AUDIT_ARCH_X86_64,
                args,
            }
        }

        fn word(&self, off: u32) -> u32 {
            match off {
                0 => self.nr,
                4 => self.arch,
                o if (16..64).contains(&o) && o % 4 == 0 => {
                    let a = self.args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load from offset {o}"),
            }
        }
    }

    /// The return value of `prog` on `d`; panics on anything the kernel would reject.
    pub fn run(prog: &[Insn], d: &Data) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => a = d.word(i.k),
                ALU_AND_K => a &= i.k,
                RET_K => return i.k,
                JEQ_K | JGT_K | JGE_K | JSET_K => {
                    let t = match i.code {
                        JEQ_K => a == i.k,
                        JGT_K => a > i.k,
                        JGE_K => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                c => panic!("opcode {c:#x}"),
            }
            assert!(pc < prog.len(), "ran off the end of the program");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interp::{Data, run};
    use super::*;

    const EPERM: Action = Action::Errno(1);

    fn compiled(rules: &[Rule], default: Action) -> Vec<Insn> {
        compile(&[rules], default).unwrap().as_slice().to_vec()
    }

    #[test]
    fn the_prologue_kills_foreign_abis_and_lets_minus_one_through() {
        let p = compiled(&[], Action::Allow);
        assert_eq!(run(&p, &Data::native(39, [0; 6])), RET_ALLOW);
        let i386 = Data {
            nr: 20,
            arch: 0x4000_0003,
            args: [0; 6],
        };
        assert_eq!(run(&p, &i386), RET_KILL_PROCESS);
        assert_eq!(
            run(&p, &Data::native(39 | X32_BIT, [0; 6])),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&p, &Data::native(u32::MAX, [0; 6])), RET_ALLOW);
    }

    #[test]
    fn conditional_rules_come_before_the_unconditional_one() {
        let c = [Cond {
            arg: 1,
            width: Width::Low32,
            op: Op::Eq,
            value: 0x5412,
        }];
        let rules = [
            Rule {
                nr: 16,
                conds: &[],
                action: Action::Log,
            },
            Rule {
                nr: 16,
                conds: &c,
                action: EPERM,
            },
            Rule {
                nr: 16,
                conds: &[],
                action: Action::Trap,
            },
        ];
        let p = compiled(&rules, Action::Allow);
        assert_eq!(
            run(&p, &Data::native(16, [0, 0x5412, 0, 0, 0, 0])),
            ret_value(EPERM)
        );
        // The high half is ignored for a Low32 condition (CVE-2019-10063).
        assert_eq!(
            run(&p, &Data::native(16, [0, 0x1_0000_5412, 0, 0, 0, 0])),
            ret_value(EPERM)
        );
        assert_eq!(run(&p, &Data::native(16, [0, 0x5413, 0, 0, 0, 0])), RET_LOG);
        assert_eq!(run(&p, &Data::native(17, [0; 6])), RET_ALLOW);
    }

    /// A reference for what a rule list means.
    fn reference(rules: &[(u32, Vec<Cond>, Action)], default: Action, d: &Data) -> u32 {
        let holds = |c: &Cond| {
            let a = d.args[c.arg as usize];
            let (a, v) = match c.width {
                Width::Low32 => (a & 0xffff_ffff, c.value & 0xffff_ffff),
                Width::Full64 => (a, c.value),
            };
            match c.op {
                Op::Eq => a == v,
                Op::Ne => a != v,
                Op::Lt => a < v,
                Op::Le => a <= v,
                Op::Gt => a > v,
                Op::Ge => a >= v,
                Op::MaskedEq { mask } => {
                    let m = match c.width {
                        Width::Low32 => mask & 0xffff_ffff,
                        Width::Full64 => mask,
                    };
                    a & m == v
                }
            }
        };
        for (nr, conds, act) in rules {
            if *nr == d.nr && !conds.is_empty() && conds.iter().all(holds) {
                return ret_value(*act);
            }
        }
        for (nr, conds, act) in rules {
            if *nr == d.nr && conds.is_empty() {
                return ret_value(*act);
            }
        }
        ret_value(default)
    }

    /// A tiny deterministic generator (xorshift), so the test needs no crate and repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Values that sit on the boundaries the comparisons care about.
        fn value(&mut self, near: &[u64]) -> u64 {
            match self.below(4) {
                0 => self.next(),
                _ => {
                    let base = near[self.below(near.len() as u64) as usize];
                    match self.below(5) {
                        0 => base.wrapping_add(1),
                        1 => base.wrapping_sub(1),
                        2 => base ^ (1 << 32),
                        3 => base ^ 0x8000_0000,
                        _ => base,
                    }
                }
            }
        }
    }

    #[test]
    fn compiled_programs_agree_with_the_reference_on_random_rules() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let actions = [
            Action::Allow,
            EPERM,
            Action::Errno(38),
            Action::KillProcess,
            Action::Log,
            Action::Trap,
        ];
        for _round in 0..300 {
            let n = rng.below(12) as usize;
            let mut rules: Vec<(u32, Vec<Cond>, Action)> = Vec::new();
            let mut interesting = vec![0u64, u64::MAX, 1 << 32];
            for _ in 0..n {
                let nr = rng.below(6) as u32;
                let nconds = if rng.below(2) == 0 {
                    0
                } else {
                    1 + rng.below(3) as usize
                };
                let mut conds = Vec::new();
                for _ in 0..nconds {
                    let value = rng.value(&[0, 0xffff_ffff, 1 << 32, 0x5412]);
                    interesting.push(value);
                    let op = match rng.below(7) {
                        0 => Op::Eq,
                        1 => Op::Ne,
                        2 => Op::Lt,
                        3 => Op::Le,
                        4 => Op::Gt,
                        5 => Op::Ge,
                        _ => Op::MaskedEq { mask: rng.next() },
                    };
                    let width = if rng.below(2) == 0 {
                        Width::Low32
                    } else {
                        Width::Full64
                    };
                    // MaskedEq's value only makes sense inside the mask.
                    let value = match op {
                        Op::MaskedEq { mask } => value & mask,
                        _ => value,
                    };
                    conds.push(Cond {
                        arg: rng.below(6) as u8,
                        width,
                        op,
                        value,
                    });
                }
                rules.push((nr, conds, actions[rng.below(6) as usize]));
            }
            let default = actions[rng.below(6) as usize];
            let rs: Vec<Rule> = rules
                .iter()
                .map(|(nr, c, a)| Rule {
                    nr: *nr,
                    conds: c,
                    action: *a,
                })
                .collect();
            let prog = compiled(&rs, default);
            for _ in 0..200 {
                let mut args = [0u64; 6];
                for a in &mut args {
                    *a = rng.value(&interesting);
                }
                let d = Data::native(rng.below(7) as u32, args);
                assert_eq!(
                    run(&prog, &d),
                    reference(&rules, default, &d),
                    "rules {rules:?} default {default:?} nr {} args {args:x?}",
                    d.nr
                );
            }
        }
    }

    #[test]
    fn long_lists_group_and_limits_hold() {
        // 400 unconditional rules of one action: groups of at most 200 jumps behind one ret.
        let rules: Vec<Rule> = (0..400)
            .map(|nr| Rule {
                nr,
                conds: &[],
                action: Action::Allow,
            })
            .collect();
        let p = compiled(&rules, EPERM);
        assert!(p.len() < 420, "{}", p.len());
        for nr in [0, 199, 200, 399] {
            assert_eq!(run(&p, &Data::native(nr, [0; 6])), RET_ALLOW);
        }
        assert_eq!(run(&p, &Data::native(400, [0; 6])), ret_value(EPERM));

        let c = [Cond {
            arg: 0,
            width: Width::Full64,
            op: Op::MaskedEq { mask: 1 },
            value: 1,
        }; 6];
        let many: Vec<Rule> = (0..700)
            .map(|nr| Rule {
                nr,
                conds: &c,
                action: Action::Allow,
            })
            .collect();
        assert!(matches!(
            compile(&[&many], EPERM),
            Err(CompileError::TooLong)
        ));
        let bad = [Cond {
            arg: 6,
            width: Width::Low32,
            op: Op::Eq,
            value: 0,
        }];
        let r = [Rule {
            nr: 1,
            conds: &bad,
            action: Action::Allow,
        }];
        assert!(matches!(compile(&[&r], EPERM), Err(CompileError::BadArg)));
    }

    #[test]
    fn bytes_are_sock_filters_in_native_order() {
        let p = compiled(&[], Action::Allow);
        let bytes = to_bytes(&p);
        assert_eq!(bytes.len(), p.len() * 8);
        assert_eq!(&bytes[..8], {
            let mut b = LD_W_ABS.to_ne_bytes().to_vec();
            b.extend([0, 0]);
            b.extend(OFF_ARCH.to_ne_bytes());
            b
        });
    }
}
