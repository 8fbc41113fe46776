//! Counting loops over ints, compiled a second time with their registers in machine
//! registers. The first translation keeps every register in the frame (memory): a loop like
//! `for i in 1..n { s += i; }` then carries `s` and the loop counter from one iteration to the
//! next through a store and a load, and that chain (store forwarding, ~5 cycles) bounds the
//! loop. A loop whose body does only int arithmetic and moves gets a second, specialised
//! version: it is entered when the registers the body reads are ints (checked when the loop
//! starts, and at each back-edge of the general version, so a loop entered from the
//! interpreter mid-way gets there too). It keeps their values in Cranelift variables,
//! still writing every result to the frame (so the frame is always exact), and leaves for the
//! general version at the same instruction on anything else: an overflow, a signal, the
//! update point of the back-edge. Since the frame is always up to date, leaving is a jump.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, types};
use cranelift_frontend::Variable;
use molt_vm::Instr;
use molt_vm::signals::Signals;
use molt_vm::value::tag;

use super::{Body, IntArith, IntStep, body, counting_back_edge};
use crate::translate::{Gen, Intrinsics, flags};
use crate::{SHARED_GLOBALS, SHARED_SIGNALS};

/// One specialisable loop: `ForPrep` at `prep`, body `start..back`, back-edge at `back`
/// (a `ForLoop`, or an `UpdateForLoop` followed by its `ForLoop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntLoop {
    pub prep: usize,
    pub start: usize,
    pub back: usize,
    /// Where the loop continues when it ends (after the back-edge).
    pub done: usize,
    pub base: u16,
    pub var: u16,
    /// Registers the body reads before writing them: must hold ints to enter.
    pub inputs: Vec<u16>,
    /// Every register the loop uses (kept in variables).
    pub regs: Vec<u16>,
    /// Globals the body reads before writing them: must hold ints to enter.
    pub global_inputs: Vec<u32>,
    /// Every global the loop uses (kept in variables, written through to the globals).
    pub globals: Vec<u32>,
}

/// The loops of `code` whose bodies are straight-line int arithmetic.
pub fn find(code: &[Instr]) -> Vec<IntLoop> {
    let mut out = Vec::new();
    for (prep, ins) in code.iter().enumerate() {
        let Instr::ForPrep { base, var, .. } = *ins else { continue };
        let start = prep + 1;
        let mut pc = start;
        let mut inputs: Vec<u16> = Vec::new();
        let mut written: Vec<u16> = vec![var];
        let mut regs: Vec<u16> = vec![base, base + 1, var];
        let (mut global_inputs, mut globals): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        while let Some(Body::Int(step)) = code.get(pc).map(|i| body(i, &[], Intrinsics::default())) {
            let i = &code[pc];
            match step {
                IntStep::GetGlobal { g, .. } | IntStep::SetGlobal { g, .. } if Gen::global_offset(g).is_none() => break,
                IntStep::GetGlobal { g, .. } if !globals.contains(&g) => {
                    global_inputs.push(g);
                    globals.push(g);
                }
                IntStep::SetGlobal { g, .. } if !globals.contains(&g) => globals.push(g),
                _ => {}
            }
            let regs_used = i.reg_use();
            for r in regs_used.reads() {
                if !written.contains(&r) && !inputs.contains(&r) && r != base && r != base + 1 {
                    inputs.push(r);
                }
                if !regs.contains(&r) {
                    regs.push(r);
                }
            }
            if let Some(d) = regs_used.writes().next() {
                // The loop's own state is the back-edge's to write.
                if d == base || d == base + 1 || d == var {
                    break;
                }
                written.push(d);
                if !regs.contains(&d) {
                    regs.push(d);
                }
            }
            pc += 1;
        }
        let Some((back, done)) = counting_back_edge(code, pc, base, var, start) else { continue };
        if back == start {
            continue; // an empty body gains nothing
        }
        out.push(IntLoop { prep, start, back, done, base, var, inputs, regs, global_inputs, globals });
    }
    out
}

/// The int version's values: the loop's registers and globals as Cranelift variables.
struct Vars {
    regs: Vec<(u16, Variable)>,
    globals: Vec<(u32, Variable)>,
    /// The globals' address (read when the loop is entered: nothing adds a global inside).
    at: ir::Value,
}

impl Vars {
    fn reg(&self, r: u16) -> Variable {
        self.regs.iter().find(|(x, _)| *x == r).expect("a loop register").1
    }
    fn global(&self, g: u32) -> Variable {
        self.globals.iter().find(|(x, _)| *x == g).expect("a loop global").1
    }
}

fn global_at(g: u32) -> i32 {
    Gen::global_offset(g).expect("find admits only globals at an offset")
}

impl IntLoop {
    /// The registers the loop writes: the body's and the loop's own counter and variable.
    fn written(&self, code: &[Instr]) -> Vec<u16> {
        let mut out = vec![self.base + 1, self.var];
        for i in &code[self.start..self.back] {
            out.extend(i.reg_use().writes().filter(|d| !out.contains(d)).collect::<Vec<_>>());
        }
        out
    }

    /// The globals the body writes.
    fn written_globals(&self, code: &[Instr]) -> Vec<u32> {
        let mut out = Vec::new();
        for i in &code[self.start..self.back] {
            if let Instr::SetGlobal { g, .. } = *i
                && !out.contains(&g)
            {
                out.push(g);
            }
        }
        out
    }
}

impl Gen<'_, '_> {
    /// Fills each int loop's entry check and its specialised blocks (see `find`). Inside,
    /// values live in Cranelift variables only: the frame and the globals are written when
    /// the loop is left (an overflow, a signal or update point at the back-edge, the end), by
    /// a store of every value the loop wrote. Nothing else runs inside (no helper, no
    /// allocation, no other task), so nothing can see the frame before then.
    pub(in crate::translate) fn finish_int_loops(&mut self) {
        for (l, check) in std::mem::take(&mut self.int_loops) {
            let written = l.written(self.code);
            let written_globals = l.written_globals(self.code);
            // The check: the registers and globals the body reads first hold ints (the loop's
            // own state does: `ForPrep` and `ForLoop` checked it), and so do those it writes,
            // since leaving writes them back as ints (a loop entered with a register still nil
            // gets here at the next iteration).
            self.b.switch_to_block(check);
            let mut ok = self.b.ins().iconst(types::I8, 1);
            for &r in l.inputs.iter().chain(&written) {
                if r != l.base + 1 && r != l.var {
                    let is_int = self.is_int(r);
                    ok = self.b.ins().band(ok, is_int);
                }
            }
            let at = self.b.ins().load(types::I64, flags(), self.shared, SHARED_GLOBALS);
            for &g in l.global_inputs.iter().chain(&written_globals) {
                let t = self.b.ins().uload8(types::I32, flags(), at, global_at(g));
                let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::INT as i64);
                ok = self.b.ins().band(ok, is_int);
            }
            let enter = self.b.create_block();
            // Registers or globals that are not ints: the typed version, if there is one.
            let otherwise = self.typed_loop_entry(l.start).unwrap_or(self.blocks[l.start]);
            self.b.ins().brif(ok, enter, &[], otherwise, &[]);
            self.b.switch_to_block(enter);
            let mut vars = Vars { regs: Vec::new(), globals: Vec::new(), at };
            for &r in &l.regs {
                let v = self.b.declare_var(types::I64);
                let p = self.payload(r);
                self.b.def_var(v, p);
                vars.regs.push((r, v));
            }
            for &g in &l.globals {
                let v = self.b.declare_var(types::I64);
                let p = self.b.ins().load(types::I64, flags(), at, global_at(g) + tag::PAYLOAD_OFFSET);
                self.b.def_var(v, p);
                vars.globals.push((g, v));
            }
            let signals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_SIGNALS);
            let blocks: Vec<Block> = (l.start..=l.back).map(|_| self.b.create_block()).collect();
            self.b.ins().jump(blocks[0], &[]);
            let leave = |g: &mut Self, target: Block| g.leave_int_loop(&vars, &written, &written_globals, target);
            for pc in l.start..l.back {
                self.b.switch_to_block(blocks[pc - l.start]);
                let next = blocks[pc + 1 - l.start];
                let general = self.blocks[pc];
                let value = |g: &mut Self, r: u16| g.b.use_var(vars.reg(r));
                // On overflow the general version redoes the instruction (and raises).
                let checked = |g: &mut Self, r: ir::Value, overflow: ir::Value| {
                    let (fine, exit) = (g.b.create_block(), g.b.create_block());
                    g.b.set_cold_block(exit);
                    g.b.ins().brif(overflow, exit, &[], fine, &[]);
                    g.b.switch_to_block(exit);
                    leave(g, general);
                    g.b.switch_to_block(fine);
                    r
                };
                let Body::Int(step) = body(&self.code[pc], &[], Intrinsics::default()) else {
                    unreachable!("find admits only int steps")
                };
                let (dst, result) = match step {
                    IntStep::GetGlobal { dst, g } => (dst, self.b.use_var(vars.global(g))),
                    IntStep::SetGlobal { g, src } => {
                        let v = value(self, src);
                        self.b.def_var(vars.global(g), v);
                        self.b.ins().jump(next, &[]);
                        continue;
                    }
                    IntStep::Move { dst, src } => (dst, value(self, src)),
                    IntStep::Load { dst, value: k } => (dst, self.b.ins().iconst(types::I64, k)),
                    IntStep::AddImm { dst, a, value: k } => {
                        let x = value(self, a);
                        let y = self.b.ins().iconst(types::I64, k);
                        let (r, o) = self.b.ins().sadd_overflow(x, y);
                        (dst, checked(self, r, o))
                    }
                    IntStep::Arith { op, dst, a, b } => {
                        let (x, y) = (value(self, a), value(self, b));
                        let (r, o) = match op {
                            IntArith::Add => self.b.ins().sadd_overflow(x, y),
                            IntArith::Sub => self.b.ins().ssub_overflow(x, y),
                            IntArith::Mul => self.b.ins().smul_overflow(x, y),
                        };
                        (dst, checked(self, r, o))
                    }
                };
                self.b.def_var(vars.reg(dst), result);
                self.b.ins().jump(next, &[]);
            }
            // The back-edge: signals (and the update point) go to the general version.
            self.b.switch_to_block(blocks[l.back - l.start]);
            // With tasks, the general version counts the reduction.
            let mut bits = Signals::ATTENTION | Signals::COLLECT | Signals::TASKS;
            if matches!(self.code[l.back], Instr::UpdateForLoop { .. }) {
                bits |= Signals::UPDATE;
            }
            let word = self.b.ins().atomic_load(types::I32, flags(), signals);
            let set = self.b.ins().band_imm_u(word, bits as i64);
            let clear = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
            let (step, signalled) = (self.b.create_block(), self.b.create_block());
            self.b.set_cold_block(signalled);
            self.b.ins().brif(clear, step, &[], signalled, &[]);
            self.b.switch_to_block(signalled);
            leave(self, self.blocks[l.back]);
            self.b.switch_to_block(step);
            let cur = self.b.use_var(vars.reg(l.base + 1));
            let end = self.b.use_var(vars.reg(l.base));
            let nxt = self.b.ins().iadd_imm_s(cur, 1);
            let more = self.b.ins().icmp(IntCC::SignedLessThan, nxt, end);
            let (again, finished) = (self.b.create_block(), self.b.create_block());
            self.b.ins().brif(more, again, &[], finished, &[]);
            self.b.switch_to_block(finished);
            leave(self, self.blocks[l.done]);
            self.b.switch_to_block(again);
            self.b.def_var(vars.reg(l.base + 1), nxt);
            self.b.def_var(vars.reg(l.var), nxt);
            self.b.ins().jump(blocks[0], &[]);
        }
    }

    /// Leaves an int loop for `target`: every register and global it wrote goes back to the
    /// frame and the globals (as ints: the entry checked they held ints, and the loop writes
    /// only ints).
    fn leave_int_loop(&mut self, vars: &Vars, written: &[u16], written_globals: &[u32], target: Block) {
        for &r in written {
            let v = self.b.use_var(vars.reg(r));
            self.store_int(r, v);
        }
        for &g in written_globals {
            let v = self.b.use_var(vars.global(g));
            let int_tag = self.b.ins().iconst(types::I64, tag::INT as i64);
            self.b.ins().store(flags(), int_tag, vars.at, global_at(g));
            self.b.ins().store(flags(), v, vars.at, global_at(g) + tag::PAYLOAD_OFFSET);
        }
        self.b.ins().jump(target, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_summing_loop_and_its_inputs() {
        // s = 0; for i in 1..n + 1 { s += i; }
        let code = [
            Instr::LoadInt { dst: 1, value: 0 },
            Instr::LoadInt { dst: 3, value: 1 },
            Instr::AddImm { dst: 2, a: 0, value: 1 },
            Instr::ForPrep { base: 2, var: 4, exit: 6 },
            Instr::Add { dst: 1, a: 1, b: 4 },
            Instr::ForLoop { base: 2, var: 4, target: 4 },
            Instr::Return { src: 1 },
        ];
        let loops = find(&code);
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        assert_eq!((l.prep, l.start, l.back, l.done), (3, 4, 5, 6));
        assert_eq!(l.inputs, vec![1]);
        assert_eq!(l.regs, vec![2, 3, 4, 1]);
    }

    #[test]
    fn finds_a_loop_over_globals_and_which_it_reads_first() {
        // for i in 0..n { total += i; last = i; }
        let code = [
            Instr::ForPrep { base: 1, var: 3, exit: 6 },
            Instr::GetGlobal { dst: 4, g: 7 },
            Instr::Add { dst: 4, a: 4, b: 3 },
            Instr::SetGlobal { g: 7, src: 4 },
            Instr::SetGlobal { g: 9, src: 3 },
            Instr::ForLoop { base: 1, var: 3, target: 1 },
            Instr::ReturnNil {},
        ];
        let loops = find(&code);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].global_inputs, vec![7], "`last` is written before it is read");
        assert_eq!(loops[0].globals, vec![7, 9]);
        assert_eq!(loops[0].written(&code), vec![2, 3, 4]);
        assert_eq!(loops[0].written_globals(&code), vec![7, 9]);
    }

    #[test]
    fn skips_loops_with_other_instructions() {
        let code = [
            Instr::ForPrep { base: 2, var: 4, exit: 4 },
            Instr::GetIndex { dst: 1, obj: 0, index: 4 },
            Instr::ForLoop { base: 2, var: 4, target: 1 },
            Instr::ReturnNil {},
        ];
        assert!(find(&code).is_empty());
    }
}
