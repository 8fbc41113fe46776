//! A called function's quick returns, inlined at the call site. Many calls end in a few
//! instructions: `fib(n)` returns `n` when `n < 2`, a lookup returns early on a hit. At a
//! `CallFunc` of a known function, the callee's code is followed from its start while it
//! only computes on its registers (int arithmetic, constants, moves, fused compares and
//! forward jumps): every path that reaches a `return` that way returns at the call site, with
//! no call, no frame and no ctx; every other path (anything else the callee would do, a guard
//! that fails) makes the call as the general code does, from the callee's start. Nothing the
//! prefix computes is written anywhere before it returns, so starting over is always right.
//!
//! Guarded by the callee's identity in its table slot (an update that changes the function
//! replaces it there), as inlined methods are (the compiled code keeps a `Weak` to it), and
//! by room for the call the interpreter would have made: at the frame limit, or where the
//! callee's registers would grow the stack, the call is made (and raises what it raises).

use std::rc::Rc;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, types};
use molt_vm::func_table::TierSlot;
use molt_vm::tier::Feedback;
use molt_vm::value::tag;
use molt_vm::{Effects, Function, Instr, Value};

use super::{Gen, flags, int_cc};
use crate::SHARED_TIER_SLOTS;

/// At most this many callee instructions are inlined per call site (over all paths).
const MAX_PREFIX: usize = 24;

/// A callee register along one path of the prefix.
#[derive(Clone, Copy)]
enum Reg {
    Int(ir::Value),
    /// Any value: its two words.
    Words(ir::Value, ir::Value),
}

/// Whether instruction `ins` is one the prefix follows (returns and jumps included).
fn followed(ins: &Instr, consts: &[Value]) -> bool {
    use Instr::*;
    match *ins {
        LoadConst { k, .. } => matches!(consts.get(k as usize), Some(Value::Int(_))),
        LoadInt { .. } | LoadNil { .. } | LoadTrue { .. } | LoadFalse { .. } | Move { .. } | AddImm { .. } => true,
        Add { .. } | Sub { .. } | Mul { .. } | Return { .. } | ReturnNil {} => true,
        JumpIfNotLt { .. } | JumpIfNotLe { .. } | JumpIfNotGt { .. } | JumpIfNotGe { .. } | Jump { .. } => true,
        GetGlobal { .. }
        | SetGlobal { .. }
        | LoadFunc { .. }
        | LoadNative { .. }
        | Closure { .. }
        | Div { .. }
        | Mod { .. }
        | Neg { .. }
        | Not { .. }
        | Eq { .. }
        | Ne { .. }
        | Lt { .. }
        | Le { .. }
        | Gt { .. }
        | Ge { .. }
        | Range { .. }
        | Loop { .. }
        | JumpIfFalse { .. }
        | JumpIfTrue { .. }
        | NewList { .. }
        | NewMap { .. }
        | NewRecord { .. }
        | GetField { .. }
        | SetField { .. }
        | GetIndex { .. }
        | SetIndex { .. }
        | Call { .. }
        | CallFunc { .. }
        | CallMethod { .. }
        | CallNative { .. }
        | IterPrep { .. }
        | IterNext { .. }
        | ForPrep { .. }
        | ForLoop { .. }
        | Update { .. }
        | UpdateLoop { .. }
        | UpdateForLoop { .. } => false,
    }
}

/// Whether some path from `pc` reaches a return through followed instructions only, in at
/// most `left` steps, jumping only forward.
fn reaches_return(f: &Function, pc: usize, left: usize) -> bool {
    let Some(ins) = f.proto.code.get(pc) else { return false };
    if left == 0 || !followed(ins, &f.consts) {
        return false;
    }
    if ins.effects().contains(Effects::RETURNS) {
        return true;
    }
    let jump = ins.target();
    if jump.is_some_and(|t| t <= pc) {
        return false;
    }
    let falls = !ins.effects().contains(Effects::ENDS);
    (falls && reaches_return(f, pc + 1, left - 1)) || jump.is_some_and(|t| reaches_return(f, t, left - 1))
}

/// The function a `CallFunc` of table slot `slot` with `argc` arguments would run now, when
/// its start can return without a call.
pub(super) fn candidate(feedback: Feedback, slot: u32, argc: u16) -> Option<Rc<Function>> {
    let f = feedback.function(slot)?;
    (f.proto.arity as usize == argc as usize && reaches_return(f, 0, MAX_PREFIX)).then(|| f.clone())
}

impl Gen<'_, '_> {
    /// The prefix of `f` (in table slot `slot`) inlined at a `CallFunc` (arguments at `base`,
    /// result to `dst`): returns continue at `next`, everything else in `general`.
    pub(super) fn inline_prefix(
        &mut self,
        dst: u16,
        base: u16,
        slot: u32,
        f: &Rc<Function>,
        general: Block,
        next: Block,
    ) {
        let slots = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TIER_SLOTS);
        let at = slot as i64 * std::mem::size_of::<TierSlot>() as i64;
        let ts = self.b.ins().iadd_imm_s(slots, at);
        let func = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, func) as i32);
        let same = self.b.ins().icmp_imm_u(IntCC::Equal, func, Rc::as_ptr(f) as i64);
        self.continue_if(same, general);
        let regs = self.regs();
        let mut state: Vec<Option<Reg>> = vec![None; f.proto.nregs as usize];
        for (i, r) in state.iter_mut().enumerate().take(f.proto.arity as usize) {
            let (lo, hi) = self.load_value(regs, Self::off(base + i as u16));
            *r = Some(Reg::Words(lo, hi));
        }
        let mut left = MAX_PREFIX;
        self.prefix_path(f, 0, state, &mut left, (dst, base), general, next);
        self.inlined.push(Rc::downgrade(f));
    }

    /// The int in callee register `r` along this path, guarding it is one.
    fn prefix_int(&mut self, state: &mut [Option<Reg>], r: u16, general: Block) -> Option<ir::Value> {
        match *state.get(r as usize)? {
            Some(Reg::Int(v)) => Some(v),
            Some(Reg::Words(lo, hi)) => {
                let t = self.b.ins().band_imm_u(lo, 0xff);
                let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::INT as i64);
                self.continue_if(is_int, general);
                state[r as usize] = Some(Reg::Int(hi));
                Some(hi)
            }
            None => None,
        }
    }

    /// Emits one path of the prefix from callee instruction `pc`; leaves for `general` where
    /// the prefix stops.
    #[allow(clippy::too_many_arguments)]
    fn prefix_path(
        &mut self,
        f: &Function,
        mut pc: usize,
        mut state: Vec<Option<Reg>>,
        left: &mut usize,
        (dst, base): (u16, u16),
        general: Block,
        next: Block,
    ) {
        use Instr::*;
        let word = |g: &mut Self, v: i64| g.b.ins().iconst(types::I64, v);
        let words = |g: &mut Self, t: u8, p: i64| Reg::Words(word(g, t as i64), word(g, p));
        while let Some(&ins) = f.proto.code.get(pc) {
            // A path that can no longer return quickly makes the call now (not after more
            // work that the callee will redo).
            if *left == 0 || !reaches_return(f, pc, *left) {
                break;
            }
            *left -= 1;
            let set = |state: &mut Vec<Option<Reg>>, d: u16, v: Reg| {
                if let Some(s) = state.get_mut(d as usize) {
                    *s = Some(v);
                }
            };
            match ins {
                Return { src } => {
                    let (lo, hi) = match state.get(src as usize).copied().flatten() {
                        Some(Reg::Int(v)) => (word(self, tag::INT as i64), v),
                        Some(Reg::Words(lo, hi)) => (lo, hi),
                        None => break,
                    };
                    // Only a path that returns here needs it: the others make the call.
                    self.room_for_call(base, f.proto.nregs as u32, general);
                    self.store_value(dst, lo, hi);
                    self.b.ins().jump(next, &[]);
                    return;
                }
                ReturnNil {} => {
                    self.room_for_call(base, f.proto.nregs as u32, general);
                    let (lo, hi) = (word(self, tag::NIL as i64), word(self, 0));
                    self.store_value(dst, lo, hi);
                    self.b.ins().jump(next, &[]);
                    return;
                }
                LoadInt { dst: d, value } => {
                    let v = word(self, value as i64);
                    set(&mut state, d, Reg::Int(v));
                }
                LoadConst { dst: d, k } => {
                    let Some(Value::Int(i)) = f.consts.get(k as usize) else { break };
                    let v = word(self, *i);
                    set(&mut state, d, Reg::Int(v));
                }
                LoadNil { dst: d } => set(&mut state, d, words(self, tag::NIL, 0)),
                LoadTrue { dst: d } => set(&mut state, d, words(self, tag::BOOL, 1)),
                LoadFalse { dst: d } => set(&mut state, d, words(self, tag::BOOL, 0)),
                Move { dst: d, src } => {
                    let Some(v) = state.get(src as usize).copied().flatten() else { break };
                    set(&mut state, d, v);
                }
                AddImm { dst: d, a, value } => {
                    let Some(x) = self.prefix_int(&mut state, a, general) else { break };
                    let y = word(self, value as i64);
                    let (r, overflow) = self.b.ins().sadd_overflow(x, y);
                    self.prefix_unless_overflow(overflow, general);
                    set(&mut state, d, Reg::Int(r));
                }
                Add { .. } | Sub { .. } | Mul { .. } => {
                    let Some((op, d, a, b)) = ins.arith() else { break };
                    let Some(x) = self.prefix_int(&mut state, a, general) else { break };
                    let Some(y) = self.prefix_int(&mut state, b, general) else { break };
                    let (r, overflow) = self.int_arith(op, x, y);
                    self.prefix_unless_overflow(overflow, general);
                    set(&mut state, d, Reg::Int(r));
                }
                Jump { target } if target as usize > pc => {
                    pc = target as usize;
                    continue;
                }
                JumpIfNotLt { a, b, target }
                | JumpIfNotLe { a, b, target }
                | JumpIfNotGt { a, b, target }
                | JumpIfNotGe { a, b, target }
                    if target as usize > pc =>
                {
                    let Some((op, ..)) = ins.fused_compare() else { break };
                    let Some(x) = self.prefix_int(&mut state, a, general) else { break };
                    let Some(y) = self.prefix_int(&mut state, b, general) else { break };
                    let holds = self.b.ins().icmp(int_cc(op), x, y);
                    let (on, off) = (self.b.create_block(), self.b.create_block());
                    self.b.ins().brif(holds, on, &[], off, &[]);
                    self.b.switch_to_block(off);
                    self.prefix_path(f, target as usize, state.clone(), left, (dst, base), general, next);
                    self.b.switch_to_block(on);
                }
                // A backward jump, or not followed.
                GetGlobal { .. }
                | SetGlobal { .. }
                | LoadFunc { .. }
                | LoadNative { .. }
                | Closure { .. }
                | Div { .. }
                | Mod { .. }
                | Neg { .. }
                | Not { .. }
                | Eq { .. }
                | Ne { .. }
                | Lt { .. }
                | Le { .. }
                | Gt { .. }
                | Ge { .. }
                | JumpIfNotLt { .. }
                | JumpIfNotLe { .. }
                | JumpIfNotGt { .. }
                | JumpIfNotGe { .. }
                | Range { .. }
                | Jump { .. }
                | Loop { .. }
                | JumpIfFalse { .. }
                | JumpIfTrue { .. }
                | NewList { .. }
                | NewMap { .. }
                | NewRecord { .. }
                | GetField { .. }
                | SetField { .. }
                | GetIndex { .. }
                | SetIndex { .. }
                | Call { .. }
                | CallFunc { .. }
                | CallMethod { .. }
                | CallNative { .. }
                | IterPrep { .. }
                | IterNext { .. }
                | ForPrep { .. }
                | ForLoop { .. }
                | Update { .. }
                | UpdateLoop { .. }
                | UpdateForLoop { .. } => break,
            }
            pc += 1;
        }
        // Not followed further: the call, from the callee's start.
        self.b.ins().jump(general, &[]);
    }

    fn prefix_unless_overflow(&mut self, overflow: ir::Value, general: Block) {
        let fine = self.b.ins().icmp_imm_u(IntCC::Equal, overflow, 0);
        self.continue_if(fine, general);
    }
}
