//! Small methods inlined at their call sites. A `CallMethod` whose inline cache met one
//! record type, calling a method whose code, once the receiver's type is known, reads and
//! writes `self`'s fields, moves, loads constants, takes `not`, adds an int constant (an
//! overflow or another type is a guard), branches forward on an int comparison (both ints
//! is a guard) and returns, runs that method's code in place: no frame, no call. Its
//! registers are Cranelift variables only (nothing can look at them: no helper runs, no
//! error can happen once the guards held).
//!
//! The inlined code is guarded: the receiver must be a record of the type the cache met, the
//! heap must need no VM attention, the method's table slot must still hold the function
//! that was inlined (an update that changes or removes the method replaces it there), and
//! the interpreter's call would have had room (the frame limit, the register stack). Every
//! guard comes before any effect, and a failed one makes the call as the general code does.
//! Machine code is shared by content between versions, so it keeps the inlined function's
//! allocation (a `Weak`) for that identity check to stay sound.

use std::rc::{Rc, Weak};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, types};
use cranelift_frontend::Variable;
use molt_vm::func_table::TierSlot;
use molt_vm::tier::Feedback;
use molt_vm::value::tag;
use molt_vm::{Function, Instr, Value};

use super::{Gen, flags};
use crate::{SHARED_HEAP_OBJS, SHARED_HEAP_SLOW, SHARED_TIER_SLOTS};

/// At most this many instructions are inlined per method.
const MAX_INLINED: usize = 12;

/// A method to inline at a call site: the receiver's type slot, the method's table slot.
pub(super) struct Inlinee {
    pub ty: u32,
    pub slot: u32,
    pub func: Rc<Function>,
    /// Per instruction: whether it can run (`inlinable`).
    reached: Vec<bool>,
}

/// The method the `CallMethod` at `pc` (with `argc` arguments) can inline, if any.
pub(super) fn candidate(feedback: Feedback, pc: usize, argc: u16) -> Option<Inlinee> {
    let (ty, slot) = feedback.field(pc)?;
    let func = feedback.function(slot)?.clone();
    let reached = inlinable(&func, ty, argc)?;
    Some(Inlinee { ty, slot, func, reached })
}

/// How the inliner treats one instruction of a method.
enum Step {
    /// Writes register `dst` from the registers it reads; no guard, no effect.
    Pure {
        dst: u16,
        reads: [Option<u16>; 2],
    },
    /// `AddImm` on an int (a guard: the type and the overflow).
    AddImm {
        dst: u16,
        a: u16,
        value: i64,
    },
    /// A fused int compare-and-branch (a guard: both ints), jumping forward to `target` when
    /// the comparison `holds` is false.
    Branch {
        a: u16,
        b: u16,
        op: IntCC,
        target: usize,
    },
    /// A forward jump.
    Jump {
        target: usize,
    },
    /// A write of one of `self`'s fields (the only effect).
    SetField {
        src: u16,
    },
    Return {
        src: Option<u16>,
    },
}

/// The inliner's view of instruction `pc` of `f` (a method of record type `ty`), `None` when
/// it is not inlinable.
fn step(f: &Function, ty: u32, pc: usize) -> Option<Step> {
    let field_of_self = |obj: u16| {
        obj == 0 && f.caches.get(pc).is_some_and(|c| c.get().0 == ty + 1 && c.get().1 < (i32::MAX / 16) as u32)
    };
    let forward =
        |target: u32| (target as usize > pc && (target as usize) < f.proto.code.len()).then_some(target as usize);
    let pure = |dst: u16, reads: [Option<u16>; 2]| Some(Step::Pure { dst, reads });
    let branch = |a: u16, b: u16, op: IntCC, target: u32| Some(Step::Branch { a, b, op, target: forward(target)? });
    match f.proto.code[pc] {
        Instr::Return { src } => Some(Step::Return { src: Some(src) }),
        Instr::ReturnNil {} => Some(Step::Return { src: None }),
        Instr::Move { dst, src } => pure(dst, [Some(src), None]),
        Instr::Not { dst, a } => pure(dst, [Some(a), None]),
        Instr::LoadInt { dst, .. } | Instr::LoadTrue { dst } | Instr::LoadFalse { dst } | Instr::LoadNil { dst } => {
            pure(dst, [None, None])
        }
        Instr::LoadConst { dst, k } if matches!(f.consts.get(k as usize), Some(Value::Int(_) | Value::Float(_))) => {
            pure(dst, [None, None])
        }
        Instr::GetField { dst, obj, .. } if field_of_self(obj) => pure(dst, [None, None]),
        Instr::SetField { obj, src, .. } if field_of_self(obj) => Some(Step::SetField { src }),
        Instr::AddImm { dst, a, value } => Some(Step::AddImm { dst, a, value: value as i64 }),
        // `JumpIfNotX a b t`: on to the next instruction when `a X b`, else to `t`.
        Instr::JumpIfNotLt { a, b, target } => branch(a, b, IntCC::SignedLessThan, target),
        Instr::JumpIfNotLe { a, b, target } => branch(a, b, IntCC::SignedLessThanOrEqual, target),
        Instr::JumpIfNotGt { a, b, target } => branch(a, b, IntCC::SignedGreaterThan, target),
        Instr::JumpIfNotGe { a, b, target } => branch(a, b, IntCC::SignedGreaterThanOrEqual, target),
        Instr::Jump { target } => Some(Step::Jump { target: forward(target)? }),
        // Guards failed, or not inlinable.
        Instr::LoadConst { .. }
        | Instr::GetGlobal { .. }
        | Instr::SetGlobal { .. }
        | Instr::LoadFunc { .. }
        | Instr::LoadNative { .. }
        | Instr::Closure { .. }
        | Instr::Add { .. }
        | Instr::Sub { .. }
        | Instr::Mul { .. }
        | Instr::Div { .. }
        | Instr::Mod { .. }
        | Instr::Neg { .. }
        | Instr::Eq { .. }
        | Instr::Ne { .. }
        | Instr::Lt { .. }
        | Instr::Le { .. }
        | Instr::Gt { .. }
        | Instr::Ge { .. }
        | Instr::Range { .. }
        | Instr::Loop { .. }
        | Instr::JumpIfFalse { .. }
        | Instr::JumpIfTrue { .. }
        | Instr::NewList { .. }
        | Instr::NewMap { .. }
        | Instr::NewRecord { .. }
        | Instr::GetField { .. }
        | Instr::SetField { .. }
        | Instr::GetIndex { .. }
        | Instr::SetIndex { .. }
        | Instr::Call { .. }
        | Instr::CallFunc { .. }
        | Instr::CallMethod { .. }
        | Instr::CallNative { .. }
        | Instr::IterPrep { .. }
        | Instr::IterNext { .. }
        | Instr::ForPrep { .. }
        | Instr::ForLoop { .. }
        | Instr::Update { .. }
        | Instr::UpdateLoop { .. }
        | Instr::UpdateForLoop { .. } => None,
    }
}

/// Which instructions of `f` can run, if `f`, a method of record type `ty` called with
/// `argc` arguments, is inlinable: every instruction that can run is one the inliner handles
/// (`step`), jumps go forward only, every path ends in a return, reads only registers written
/// on every path to it (or its parameters), touches fields of `self` (never reassigned)
/// through inline caches for `ty`, and every guard (an int type or overflow check) comes
/// before the first field write in code order, so that on any path a failed guard has done
/// nothing yet and the general call can start over.
fn inlinable(f: &Function, ty: u32, argc: u16) -> Option<Vec<bool>> {
    let code = &f.proto.code;
    let nregs = f.proto.nregs as usize;
    if f.proto.arity as usize != argc as usize + 1 || code.len() > MAX_INLINED || nregs == 0 {
        return None;
    }
    // Per instruction: the registers written on every path to it (None: not reached).
    let mut written: Vec<Option<Vec<bool>>> = vec![None; code.len()];
    let mut entry = vec![false; nregs];
    entry.iter_mut().take(f.proto.arity as usize).for_each(|w| *w = true);
    written[0] = Some(entry);
    let mut effect_seen = false;
    let merge = |at: &mut Option<Vec<bool>>, w: &[bool]| match at {
        Some(v) => v.iter_mut().zip(w).for_each(|(x, y)| *x &= *y),
        None => *at = Some(w.to_vec()),
    };
    for pc in 0..code.len() {
        let Some(mut w) = written[pc].clone() else { continue };
        let read = |r: u16, w: &[bool]| w.get(r as usize).copied().unwrap_or(false);
        let write = |r: u16, w: &mut Vec<bool>| -> bool {
            if r == 0 || r as usize >= w.len() {
                return false; // `self` stays the receiver
            }
            w[r as usize] = true;
            true
        };
        let ok = |c: bool| c.then_some(());
        let falls_through = match step(f, ty, pc)? {
            Step::Pure { dst, reads } => {
                ok(reads.iter().flatten().all(|&r| read(r, &w)) && write(dst, &mut w))?;
                true
            }
            Step::AddImm { dst, a, .. } => {
                ok(!effect_seen && read(a, &w) && write(dst, &mut w))?;
                true
            }
            Step::Branch { a, b, target, .. } => {
                ok(!effect_seen && read(a, &w) && read(b, &w))?;
                merge(&mut written[target], &w);
                true
            }
            Step::Jump { target } => {
                merge(&mut written[target], &w);
                false
            }
            Step::SetField { src } => {
                effect_seen = true;
                ok(read(src, &w))?;
                true
            }
            Step::Return { src } => {
                ok(src.is_none_or(|r| read(r, &w)))?;
                false
            }
        };
        if falls_through {
            ok(pc + 1 < code.len())?; // falls off the end
            merge(&mut written[pc + 1], &w);
        }
    }
    Some(written.iter().map(Option::is_some).collect())
}
impl Gen<'_, '_> {
    /// The inlined call of `m` by the `CallMethod` at `pc` (receiver at `base`, result to
    /// `dst`); continues at the next instruction, or in `general` (nothing done) when a guard
    /// fails.
    pub(super) fn inline_method(&mut self, dst: u16, base: u16, m: &Inlinee, general: Block, next: Block) {
        let regs = self.regs();
        let (lo, hi) = self.load_value(regs, Self::off(base));
        let low = self.b.ins().band_imm_u(lo, 0xff);
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, low, tag::OBJ as i64);
        self.continue_if(is_obj, general);
        let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
        self.continue_if(quiet, general);
        let objs = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_OBJS);
        let handle = self.b.ins().band_imm_u(hi, 0xffff_ffff);
        let offset = self.b.ins().imul_imm_s(handle, self.heap.obj_size);
        let obj = self.b.ins().iadd(objs, offset);
        let otag = self.b.ins().uload8(types::I32, flags(), obj, 0);
        let is_record = self.b.ins().icmp_imm_u(IntCC::Equal, otag, self.heap.record_tag as i64);
        self.continue_if(is_record, general);
        let t = self.b.ins().uload32(flags(), obj, self.heap.ty_offset);
        let is_ty = self.b.ins().icmp_imm_u(IntCC::Equal, t, m.ty as i64);
        self.continue_if(is_ty, general);
        // The method is still the one inlined.
        let slots = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TIER_SLOTS);
        let at = m.slot as i64 * std::mem::size_of::<TierSlot>() as i64;
        let ts = self.b.ins().iadd_imm_s(slots, at);
        let func = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, func) as i32);
        let same = self.b.ins().icmp_imm_u(IntCC::Equal, func, Rc::as_ptr(&m.func) as i64);
        self.continue_if(same, general);
        self.room_for_call(base, m.func.proto.nregs as u32, general);
        // The body's own guards (ints, no overflow) come after the call was counted.
        let general = self.refunding(general);
        let fields = self.b.ins().load(types::I64, flags(), obj, self.heap.fields_offset);
        // The method's registers as variables (two words each): `self` and the arguments,
        // the rest nil until written (`inlinable` checked none is read before that).
        let f = &m.func;
        let nregs = f.proto.nregs as usize;
        let vars: Vec<(Variable, Variable)> =
            (0..nregs).map(|_| (self.b.declare_var(types::I64), self.b.declare_var(types::I64))).collect();
        let word = |g: &mut Self, v: i64| g.b.ins().iconst(types::I64, v);
        for (i, &(vlo, vhi)) in vars.iter().enumerate() {
            let (l, h) = match i {
                0 => (lo, hi),
                i if i < f.proto.arity as usize => self.load_value(regs, Self::off(base + i as u16)),
                _ => (word(self, tag::NIL as i64), word(self, 0)),
            };
            self.b.def_var(vlo, l);
            self.b.def_var(vhi, h);
        }
        let value = |g: &mut Self, r: u16| (g.b.use_var(vars[r as usize].0), g.b.use_var(vars[r as usize].1));
        let blocks: Vec<Block> = (0..f.proto.code.len()).map(|_| self.b.create_block()).collect();
        self.b.ins().jump(blocks[0], &[]);
        for pc in 0..f.proto.code.len() {
            if !m.reached[pc] {
                continue;
            }
            self.b.switch_to_block(blocks[pc]);
            // `inlinable` checked that every reached instruction has a step and that none but
            // a return or a jump is the last.
            let following = blocks.get(pc + 1).copied().unwrap_or(general);
            let (d, v) = match step(f, m.ty, pc) {
                Some(Step::Return { src }) => {
                    let (l, h) = match src {
                        Some(r) => value(self, r),
                        None => (word(self, tag::NIL as i64), word(self, 0)),
                    };
                    self.store_value(dst, l, h);
                    self.b.ins().jump(next, &[]);
                    continue;
                }
                Some(Step::Jump { target }) => {
                    self.b.ins().jump(blocks[target], &[]);
                    continue;
                }
                Some(Step::Branch { a, b, op, target }) => {
                    let ((la, x), (lb, y)) = (value(self, a), value(self, b));
                    let ta = self.b.ins().band_imm_u(la, 0xff);
                    let tb = self.b.ins().band_imm_u(lb, 0xff);
                    let ia = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::INT as i64);
                    let ib = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::INT as i64);
                    let ints = self.b.ins().band(ia, ib);
                    self.continue_if(ints, general);
                    let holds = self.b.ins().icmp(op, x, y);
                    self.b.ins().brif(holds, following, &[], blocks[target], &[]);
                    continue;
                }
                Some(Step::SetField { src }) => {
                    let index = f.caches.get(pc).map_or(0, |c| c.get().1 as i32);
                    let (l, h) = value(self, src);
                    self.b.ins().store(flags(), l, fields, index * tag::SIZE);
                    self.b.ins().store(flags(), h, fields, index * tag::SIZE + 8);
                    self.b.ins().jump(following, &[]);
                    continue;
                }
                Some(Step::AddImm { dst: d, a, value: k }) => {
                    let (la, x) = value(self, a);
                    let t = self.b.ins().band_imm_u(la, 0xff);
                    let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::INT as i64);
                    self.continue_if(is_int, general);
                    let y = word(self, k);
                    let (r, overflow) = self.b.ins().sadd_overflow(x, y);
                    let fine = self.b.ins().icmp_imm_u(IntCC::Equal, overflow, 0);
                    self.continue_if(fine, general);
                    (d, (word(self, tag::INT as i64), r))
                }
                Some(Step::Pure { dst: d, .. }) => (d, self.pure_step(f, pc, fields, &value)),
                None => (0, (word(self, 0), word(self, 0))), // not reached (`inlinable`)
            };
            self.b.def_var(vars[d as usize].0, v.0);
            self.b.def_var(vars[d as usize].1, v.1);
            self.b.ins().jump(following, &[]);
        }
        self.inlined.push(Rc::downgrade(&m.func));
    }

    /// The two words an inlined method's `Step::Pure` instruction at `pc` computes.
    fn pure_step(
        &mut self,
        f: &Function,
        pc: usize,
        fields: ir::Value,
        value: &dyn Fn(&mut Self, u16) -> (ir::Value, ir::Value),
    ) -> (ir::Value, ir::Value) {
        let word = |g: &mut Self, v: i64| g.b.ins().iconst(types::I64, v);
        match f.proto.code[pc] {
            Instr::Move { src, .. } => value(self, src),
            Instr::Not { a, .. } => {
                let (lo, hi) = value(self, a);
                let t = self.b.ins().band_imm_u(lo, 0xff);
                let is_nil = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::NIL as i64);
                let is_bool = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::BOOL as i64);
                let b = self.b.ins().band_imm_u(hi, 0xff);
                let is_false = self.b.ins().icmp_imm_u(IntCC::Equal, b, 0);
                let false_bool = self.b.ins().band(is_bool, is_false);
                let falsy = self.b.ins().bor(is_nil, false_bool);
                (word(self, tag::BOOL as i64), self.b.ins().uextend(types::I64, falsy))
            }
            Instr::LoadInt { value: k, .. } => (word(self, tag::INT as i64), word(self, k as i64)),
            Instr::LoadTrue { .. } => (word(self, tag::BOOL as i64), word(self, 1)),
            Instr::LoadFalse { .. } => (word(self, tag::BOOL as i64), word(self, 0)),
            Instr::LoadConst { k, .. } => match f.consts.get(k as usize) {
                Some(Value::Float(x)) => (word(self, tag::FLOAT as i64), word(self, x.to_bits() as i64)),
                Some(Value::Int(i)) => (word(self, tag::INT as i64), word(self, *i)),
                _ => (word(self, tag::NIL as i64), word(self, 0)), // not inlinable (`step`)
            },
            Instr::GetField { .. } => {
                let index = f.caches.get(pc).map_or(0, |c| c.get().1 as i32);
                self.load_value(fields, index * tag::SIZE)
            }
            Instr::LoadNil { .. } => (word(self, tag::NIL as i64), word(self, 0)),
            // `step` calls no other instruction pure.
            _ => (word(self, tag::NIL as i64), word(self, 0)),
        }
    }
}

/// What compiled code keeps of the functions it inlined (see the module's comment).
pub(crate) type Inlined = Vec<Weak<Function>>;
