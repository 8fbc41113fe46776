//! Small methods inlined at their call sites. A `CallMethod` whose inline cache met one
//! record type, calling a method that is one straight run of instructions that cannot fail
//! once the receiver's type is known (reads and writes of `self`'s fields, moves, constants,
//! `not`, a return), runs that method's code in place: no frame, no call. Its registers are
//! SSA values only (nothing can look at them: no helper runs, no error can happen).
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
}

/// The method the `CallMethod` at `pc` (with `argc` arguments) can inline, if any.
pub(super) fn candidate(feedback: Feedback, pc: usize, argc: u16) -> Option<Inlinee> {
    let (ty, slot) = feedback.field(pc)?;
    let func = feedback.function(slot)?.clone();
    inlinable(&func, ty, argc).then_some(Inlinee { ty, slot, func })
}

/// Whether `f`, a method of record type `ty` called with `argc` arguments, is one straight
/// run of instructions the inliner handles, ending in a return, reading only registers it
/// wrote (or its parameters), touching fields of `self` (never reassigned) through inline
/// caches for `ty`.
fn inlinable(f: &Function, ty: u32, argc: u16) -> bool {
    let code = &f.proto.code;
    if f.proto.arity as usize != argc as usize + 1 || code.len() > MAX_INLINED {
        return false;
    }
    let mut written = vec![false; f.proto.nregs as usize];
    for w in written.iter_mut().take(f.proto.arity as usize) {
        *w = true;
    }
    let field_of_self = |pc: usize, obj: u16| {
        obj == 0 && f.caches.get(pc).is_some_and(|c| c.get().0 == ty + 1 && c.get().1 < (i32::MAX / 16) as u32)
    };
    for (pc, ins) in code.iter().enumerate() {
        let read = |r: u16| written.get(r as usize).copied().unwrap_or(false);
        let dst = match *ins {
            Instr::Return { src } => return read(src),
            Instr::ReturnNil {} => return true,
            Instr::Move { dst, src } if read(src) => dst,
            Instr::Not { dst, a } if read(a) => dst,
            Instr::LoadInt { dst, .. }
            | Instr::LoadTrue { dst }
            | Instr::LoadFalse { dst }
            | Instr::LoadNil { dst } => dst,
            Instr::LoadConst { dst, k }
                if matches!(f.consts.get(k as usize), Some(Value::Int(_) | Value::Float(_))) =>
            {
                dst
            }
            Instr::GetField { dst, obj, .. } if field_of_self(pc, obj) => dst,
            Instr::SetField { obj, src, .. } if field_of_self(pc, obj) && read(src) => continue,
            // Guards failed, or not inlinable.
            Instr::Move { .. }
            | Instr::LoadConst { .. }
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
            | Instr::AddImm { .. }
            | Instr::Neg { .. }
            | Instr::Not { .. }
            | Instr::Eq { .. }
            | Instr::Ne { .. }
            | Instr::Lt { .. }
            | Instr::Le { .. }
            | Instr::Gt { .. }
            | Instr::Ge { .. }
            | Instr::JumpIfNotLt { .. }
            | Instr::JumpIfNotLe { .. }
            | Instr::JumpIfNotGt { .. }
            | Instr::JumpIfNotGe { .. }
            | Instr::Range { .. }
            | Instr::Jump { .. }
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
            | Instr::UpdateForLoop { .. } => return false,
        };
        if dst == 0 || dst as usize >= written.len() {
            return false; // `self` stays the receiver
        }
        written[dst as usize] = true;
    }
    false
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
        let fields = self.b.ins().load(types::I64, flags(), obj, self.heap.fields_offset);
        // The method's registers: `self` and the arguments, then what it writes.
        let f = &m.func;
        let mut r: Vec<Option<(ir::Value, ir::Value)>> = vec![None; f.proto.nregs as usize];
        r[0] = Some((lo, hi));
        for (i, slot) in r.iter_mut().enumerate().take(f.proto.arity as usize).skip(1) {
            *slot = Some(self.load_value(regs, Self::off(base + i as u16)));
        }
        let word = |g: &mut Self, v: i64| g.b.ins().iconst(types::I64, v);
        // (`inlinable` checked that every register read was written.)
        let value = |g: &mut Self, r: &[Option<(ir::Value, ir::Value)>], i: u16| match r.get(i as usize) {
            Some(Some(v)) => *v,
            _ => (word(g, tag::NIL as i64), word(g, 0)),
        };
        for (pc, ins) in f.proto.code.iter().enumerate() {
            let (d, v) = match *ins {
                Instr::Return { src } => {
                    let (lo, hi) = value(self, &r, src);
                    self.store_value(dst, lo, hi);
                    break;
                }
                Instr::ReturnNil {} => {
                    let (lo, hi) = (word(self, tag::NIL as i64), word(self, 0));
                    self.store_value(dst, lo, hi);
                    break;
                }
                Instr::Move { dst: d, src } => (d, value(self, &r, src)),
                Instr::Not { dst: d, a } => {
                    let (lo, hi) = value(self, &r, a);
                    let t = self.b.ins().band_imm_u(lo, 0xff);
                    let is_nil = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::NIL as i64);
                    let is_bool = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::BOOL as i64);
                    let b = self.b.ins().band_imm_u(hi, 0xff);
                    let is_false = self.b.ins().icmp_imm_u(IntCC::Equal, b, 0);
                    let false_bool = self.b.ins().band(is_bool, is_false);
                    let falsy = self.b.ins().bor(is_nil, false_bool);
                    (d, (word(self, tag::BOOL as i64), self.b.ins().uextend(types::I64, falsy)))
                }
                Instr::LoadInt { dst: d, value: k } => (d, (word(self, tag::INT as i64), word(self, k as i64))),
                Instr::LoadTrue { dst: d } => (d, (word(self, tag::BOOL as i64), word(self, 1))),
                Instr::LoadFalse { dst: d } => (d, (word(self, tag::BOOL as i64), word(self, 0))),
                Instr::LoadNil { dst: d } => (d, (word(self, tag::NIL as i64), word(self, 0))),
                Instr::LoadConst { dst: d, k } => match f.consts.get(k as usize) {
                    Some(Value::Float(x)) => (d, (word(self, tag::FLOAT as i64), word(self, x.to_bits() as i64))),
                    Some(Value::Int(i)) => (d, (word(self, tag::INT as i64), word(self, *i))),
                    _ => (d, (word(self, tag::NIL as i64), word(self, 0))), // not inlinable
                },
                Instr::GetField { dst: d, .. } => {
                    let index = f.caches.get(pc).map_or(0, |c| c.get().1 as i32);
                    (d, self.load_value(fields, index * tag::SIZE))
                }
                Instr::SetField { src, .. } => {
                    let index = f.caches.get(pc).map_or(0, |c| c.get().1 as i32);
                    let (lo, hi) = value(self, &r, src);
                    self.b.ins().store(flags(), lo, fields, index * tag::SIZE);
                    self.b.ins().store(flags(), hi, fields, index * tag::SIZE + 8);
                    continue;
                }
                // Not inlinable (see `inlinable`): the general call.
                Instr::GetGlobal { .. }
                | Instr::SetGlobal { .. }
                | Instr::LoadFunc { .. }
                | Instr::LoadNative { .. }
                | Instr::Closure { .. }
                | Instr::Add { .. }
                | Instr::Sub { .. }
                | Instr::Mul { .. }
                | Instr::Div { .. }
                | Instr::Mod { .. }
                | Instr::AddImm { .. }
                | Instr::Neg { .. }
                | Instr::Eq { .. }
                | Instr::Ne { .. }
                | Instr::Lt { .. }
                | Instr::Le { .. }
                | Instr::Gt { .. }
                | Instr::Ge { .. }
                | Instr::JumpIfNotLt { .. }
                | Instr::JumpIfNotLe { .. }
                | Instr::JumpIfNotGt { .. }
                | Instr::JumpIfNotGe { .. }
                | Instr::Range { .. }
                | Instr::Jump { .. }
                | Instr::Loop { .. }
                | Instr::JumpIfFalse { .. }
                | Instr::JumpIfTrue { .. }
                | Instr::NewList { .. }
                | Instr::NewMap { .. }
                | Instr::NewRecord { .. }
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
                | Instr::UpdateForLoop { .. } => {
                    self.b.ins().jump(general, &[]);
                    return;
                }
            };
            if let Some(slot) = r.get_mut(d as usize) {
                *slot = Some(v);
            }
        }
        self.b.ins().jump(next, &[]);
        self.inlined.push(Rc::downgrade(&m.func));
    }
}

/// What compiled code keeps of the functions it inlined (see the module's comment).
pub(crate) type Inlined = Vec<Weak<Function>>;
