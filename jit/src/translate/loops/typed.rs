//! Counting loops compiled a second time, typed: what each register holds is known from one
//! instruction to the next. The general translation checks every operand's tag at every
//! use and reloads every value from the frame, because each of its fast paths joins its slow
//! path (a VM helper, after which anything may have changed) at the next instruction. A loop
//! whose body is straight-line arithmetic, field and list access gets a second version with
//! no slow paths at all: each instruction's guards *leave* for the general version of that
//! instruction (a side exit: a jump, as every result is still written to the frame, so the
//! frame is always exact). Along the body nothing else runs, so what a guard established
//! holds until the register is written again: a value's tag once checked, a record's fields
//! once its type is checked, the heap's state once per iteration.
//!
//! What to expect where the body cannot tell comes from the interpreter (`Feedback`): the
//! record type each field access met (its inline cache: the field's index is then a
//! constant) and the arithmetic that met floats. A guess that turns out wrong costs a side
//! exit, never a wrong result; an instruction with no guess (a field access the interpreter
//! never ran) ends the typed version there.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, MemFlagsData, types};
use molt_vm::opcodes::ArithOp;
use molt_vm::signals::Signals;
use molt_vm::tier::Feedback;
use molt_vm::value::tag;
use molt_vm::{Instr, Value};

use super::{Body, body, counting_back_edge};
use crate::translate::{FloatOp, Gen, Intrinsics, flags};
use crate::{SHARED_GLOBALS, SHARED_HEAP_OBJS, SHARED_HEAP_SLOW, SHARED_SIGNALS};

/// One loop. A counting loop: `ForPrep` just before `start`, the body `start..back`, the
/// back-edge at `back` (a `ForLoop`, or an `UpdateForLoop` followed by its `ForLoop`), `done`
/// after it. A loop over a list: `IterNext` at `start` (leaving for `done`), the body after
/// it, the back-edge (`Loop` or `UpdateLoop` to `start`) at `back`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedLoop {
    pub start: usize,
    pub back: usize,
    pub done: usize,
    pub base: u16,
    pub var: u16,
    pub over_list: bool,
}

/// The register an instruction of a typed body writes (`Some(None)`: none), or `None` when
/// the typed version does not handle the instruction.
fn body_write(i: &Instr, consts: &[Value], intrinsics: Intrinsics) -> Option<Option<u16>> {
    match body(i, consts, intrinsics) {
        Body::Int(_) | Body::Typed => Some(i.reg_use().writes().next()),
        Body::Other => None,
    }
}

/// The end of a body starting at `start` the typed version handles: the first instruction
/// that is not one it handles, or that writes the loop's own state (`base`, `base + 1`).
fn body_end(code: &[Instr], start: usize, base: u16, consts: &[Value], intrinsics: Intrinsics) -> usize {
    let mut pc = start;
    while let Some(write) = code.get(pc).and_then(|i| body_write(i, consts, intrinsics)) {
        if write.is_some_and(|d| d == base || d == base + 1) {
            break;
        }
        pc += 1;
    }
    pc
}

/// The loops of `code` whose bodies the typed version handles.
pub fn find(code: &[Instr], consts: &[Value], intrinsics: Intrinsics) -> Vec<TypedLoop> {
    let mut out = Vec::new();
    for (at, ins) in code.iter().enumerate() {
        if let Instr::IterNext { base, var, exit } = *ins {
            let back = body_end(code, at + 1, base, consts, intrinsics);
            // `Loop` back to the `IterNext`, or `UpdateLoop` (followed by that `Loop`).
            let closes = code
                .get(back)
                .is_some_and(|i| matches!(i.unfused().unwrap_or(*i), Instr::Loop { target } if target as usize == at));
            if closes && exit as usize == back + 1 && back > at + 1 {
                out.push(TypedLoop { start: at, back, done: back + 1, base, var, over_list: true });
            }
            continue;
        }
        let Instr::ForPrep { base, var, .. } = *ins else { continue };
        let start = at + 1;
        let pc = body_end(code, start, base, consts, intrinsics);
        let Some((back, done)) = counting_back_edge(code, pc, base, var, start) else { continue };
        if back > start {
            out.push(TypedLoop { start, back, done, base, var, over_list: false });
        }
    }
    out
}

/// What the typed version knows a register holds (and has written to the frame).
#[derive(Clone, Copy)]
enum Known {
    Int(ir::Value),
    Float(ir::Value),
    /// A value of any type: its two words (tag word, payload).
    Any {
        lo: ir::Value,
        hi: ir::Value,
    },
    /// A record of type slot `ty`, checked this iteration, with its fields' address.
    Record {
        lo: ir::Value,
        hi: ir::Value,
        ty: u32,
        fields: ir::Value,
    },
}

/// The state along one iteration of the body.
struct Iteration {
    known: Vec<Option<Known>>,
    /// The heap's slot array, once read (nothing allocates along the body).
    objs: Option<ir::Value>,
    /// The globals' address, once read (nothing adds a global along the body).
    globals: Option<ir::Value>,
    /// Whether the heap was checked to need no VM attention (lazy conversions, guarded
    /// writes) this iteration.
    quiet: bool,
}

impl Gen<'_, '_> {
    /// Fills each typed loop's blocks; `entry` is the block its `loop_entry` maps to.
    pub(in crate::translate) fn finish_typed_loops(&mut self, feedback: Feedback) {
        for (l, entry) in std::mem::take(&mut self.typed_loops) {
            self.b.switch_to_block(entry);
            let mut it = Iteration { known: vec![None; self.nregs], objs: None, globals: None, quiet: false };
            let mut pc = l.start;
            let mut going = true;
            if l.over_list {
                going = self.typed_list_next(&mut it, &l).is_some();
                pc += 1;
            }
            while going && pc < l.back {
                going = self.typed_instr(&mut it, feedback, pc).is_some();
                pc += 1;
            }
            if going {
                self.typed_back_edge(&mut it, &l, entry);
            }
        }
    }

    /// Continues in a new block when `cond` holds; otherwise the general version of the
    /// instruction at `pc` takes over (nothing of it was done yet).
    fn side_exit_unless(&mut self, cond: ir::Value, pc: usize) {
        let general = self.blocks[pc];
        self.continue_if(cond, general);
    }

    /// Ends the typed version at `pc`: the general version does the rest of the iteration.
    fn leave<T>(&mut self, pc: usize) -> Option<T> {
        let general = self.blocks[pc];
        self.b.ins().jump(general, &[]);
        None
    }

    fn known(&mut self, it: &mut Iteration, r: u16) -> Known {
        if let Some(k) = it.known[r as usize] {
            return k;
        }
        let regs = self.regs();
        let (lo, hi) = self.load_value(regs, Self::off(r));
        let k = Known::Any { lo, hi };
        it.known[r as usize] = Some(k);
        k
    }

    fn tag_is(&mut self, lo: ir::Value, t: u8) -> ir::Value {
        let low = self.b.ins().band_imm_u(lo, 0xff);
        self.b.ins().icmp_imm_u(IntCC::Equal, low, t as i64)
    }

    /// Register `r` := `k`, in the frame too.
    fn set(&mut self, it: &mut Iteration, r: u16, k: Known) {
        match k {
            Known::Int(v) => self.store_int(r, v),
            Known::Float(v) => self.store_float(r, v),
            Known::Any { lo, hi } | Known::Record { lo, hi, .. } => self.store_value(r, lo, hi),
        }
        it.known[r as usize] = Some(k);
    }

    /// The int in `r`, guarding that it is one (`None`: it cannot be, the typed version ends).
    fn int_of(&mut self, it: &mut Iteration, pc: usize, r: u16) -> Option<ir::Value> {
        match self.known(it, r) {
            Known::Int(v) => Some(v),
            Known::Any { lo, hi } => {
                let is_int = self.tag_is(lo, tag::INT);
                self.side_exit_unless(is_int, pc);
                it.known[r as usize] = Some(Known::Int(hi));
                Some(hi)
            }
            Known::Float(_) | Known::Record { .. } => self.leave(pc),
        }
    }

    /// The number in `r` as a float (an int converted, as the interpreter does), guarding
    /// that an unknown value is a float.
    fn float_of(&mut self, it: &mut Iteration, pc: usize, r: u16) -> Option<ir::Value> {
        match self.known(it, r) {
            Known::Float(v) => Some(v),
            Known::Int(v) => Some(self.b.ins().fcvt_from_sint(types::F64, v)),
            Known::Any { lo, hi } => {
                let is_float = self.tag_is(lo, tag::FLOAT);
                self.side_exit_unless(is_float, pc);
                let f = self.b.ins().bitcast(types::F64, MemFlagsData::new(), hi);
                it.known[r as usize] = Some(Known::Float(f));
                Some(f)
            }
            Known::Record { .. } => self.leave(pc),
        }
    }

    /// The two words of the value in `r`.
    fn words_of(&mut self, it: &mut Iteration, r: u16) -> (ir::Value, ir::Value) {
        match self.known(it, r) {
            Known::Int(v) => (self.b.ins().iconst(types::I64, tag::INT as i64), v),
            Known::Float(v) => {
                let bits = self.b.ins().bitcast(types::I64, MemFlagsData::new(), v);
                (self.b.ins().iconst(types::I64, tag::FLOAT as i64), bits)
            }
            Known::Any { lo, hi } | Known::Record { lo, hi, .. } => (lo, hi),
        }
    }

    /// The address of the globals' values.
    fn globals(&mut self, it: &mut Iteration) -> ir::Value {
        if let Some(g) = it.globals {
            return g;
        }
        let g = self.b.ins().load(types::I64, flags(), self.shared, SHARED_GLOBALS);
        it.globals = Some(g);
        g
    }

    /// The heap object a value's payload refers to (its tag was checked to be `Obj`).
    fn object_at(&mut self, it: &mut Iteration, hi: ir::Value) -> ir::Value {
        let objs = match it.objs {
            Some(o) => o,
            None => {
                let o = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_OBJS);
                it.objs = Some(o);
                o
            }
        };
        // The handle is the payload's low 32 bits (the rest of the word is padding).
        let handle = self.b.ins().band_imm_u(hi, 0xffff_ffff);
        let offset = self.b.ins().imul_imm_s(handle, self.heap.obj_size);
        self.b.ins().iadd(objs, offset)
    }

    /// The list in `r` (its address and length), guarding that it is one.
    fn typed_list(&mut self, it: &mut Iteration, pc: usize, r: u16) -> Option<(ir::Value, ir::Value)> {
        let (lo, hi) = match self.known(it, r) {
            Known::Any { lo, hi } => (lo, hi),
            _ => return self.leave(pc),
        };
        let is_obj = self.tag_is(lo, tag::OBJ);
        self.side_exit_unless(is_obj, pc);
        let list = self.object_at(it, hi);
        let otag = self.b.ins().uload8(types::I32, flags(), list, 0);
        let is_list = self.b.ins().icmp_imm_u(IntCC::Equal, otag, self.heap.list_tag as i64);
        self.side_exit_unless(is_list, pc);
        let len = self.b.ins().load(types::I64, flags(), list, self.heap.list_len_offset);
        Some((list, len))
    }

    /// Item `i` (in range) of the list at `list`, as two words.
    fn list_item(&mut self, list: ir::Value, i: ir::Value) -> (ir::Value, ir::Value) {
        let items = self.b.ins().load(types::I64, flags(), list, self.heap.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(i, 4); // * tag::SIZE
        let at = self.b.ins().iadd(items, at);
        self.load_value(at, 0)
    }

    /// The fields of the record of type slot `ty` in `r`, guarding that it is one.
    fn record_fields(&mut self, it: &mut Iteration, pc: usize, r: u16, ty: u32) -> Option<ir::Value> {
        let (lo, hi) = match self.known(it, r) {
            Known::Record { ty: t, fields, .. } if t == ty => return Some(fields),
            Known::Any { lo, hi } => (lo, hi),
            _ => return self.leave(pc),
        };
        let is_obj = self.tag_is(lo, tag::OBJ);
        self.side_exit_unless(is_obj, pc);
        if !it.quiet {
            let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
            let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
            self.side_exit_unless(quiet, pc);
            it.quiet = true;
        }
        let obj = self.object_at(it, hi);
        let otag = self.b.ins().uload8(types::I32, flags(), obj, 0);
        let is_record = self.b.ins().icmp_imm_u(IntCC::Equal, otag, self.heap.record_tag as i64);
        self.side_exit_unless(is_record, pc);
        let t = self.b.ins().uload32(flags(), obj, self.heap.ty_offset);
        let is_ty = self.b.ins().icmp_imm_u(IntCC::Equal, t, ty as i64);
        self.side_exit_unless(is_ty, pc);
        let fields = self.b.ins().load(types::I64, flags(), obj, self.heap.fields_offset);
        it.known[r as usize] = Some(Known::Record { lo, hi, ty, fields });
        Some(fields)
    }

    /// One body instruction; `None` when the typed version ended there.
    fn typed_instr(&mut self, it: &mut Iteration, feedback: Feedback, pc: usize) -> Option<()> {
        use Instr::*;
        match self.code[pc] {
            Move { dst, src } => {
                let k = self.known(it, src);
                self.set(it, dst, k);
            }
            LoadInt { dst, value } => {
                let v = self.b.ins().iconst(types::I64, value as i64);
                self.set(it, dst, Known::Int(v));
            }
            LoadConst { dst, k } => {
                let known = match self.consts.get(k as usize) {
                    Some(Value::Int(i)) => Known::Int(self.b.ins().iconst(types::I64, *i)),
                    Some(Value::Float(f)) => Known::Float(self.b.ins().f64const(*f)),
                    _ => return self.leave(pc),
                };
                self.set(it, dst, known);
            }
            AddImm { dst, a, value } => {
                let float = match self.known(it, a) {
                    Known::Float(_) => true,
                    Known::Any { .. } => feedback.float(pc),
                    _ => false,
                };
                if float {
                    let x = self.float_of(it, pc, a)?;
                    let y = self.b.ins().f64const(value as f64);
                    let r = self.b.ins().fadd(x, y);
                    self.set(it, dst, Known::Float(r));
                } else {
                    let x = self.int_of(it, pc, a)?;
                    let y = self.b.ins().iconst(types::I64, value as i64);
                    let (r, overflow) = self.b.ins().sadd_overflow(x, y);
                    let fine = self.b.ins().icmp_imm_u(IntCC::Equal, overflow, 0);
                    self.side_exit_unless(fine, pc);
                    self.set(it, dst, Known::Int(r));
                }
            }
            Add { .. } | Sub { .. } | Mul { .. } | Div { .. } | Mod { .. } => self.typed_arith(it, feedback, pc)?,
            Neg { dst, a } => match self.known(it, a) {
                Known::Float(_) => {
                    let x = self.float_of(it, pc, a)?;
                    let r = self.b.ins().fneg(x);
                    self.set(it, dst, Known::Float(r));
                }
                Known::Any { .. } if feedback.float(pc) => {
                    let x = self.float_of(it, pc, a)?;
                    let r = self.b.ins().fneg(x);
                    self.set(it, dst, Known::Float(r));
                }
                _ => {
                    let x = self.int_of(it, pc, a)?;
                    let fine = self.b.ins().icmp_imm_s(IntCC::NotEqual, x, i64::MIN);
                    self.side_exit_unless(fine, pc);
                    let r = self.b.ins().ineg(x);
                    self.set(it, dst, Known::Int(r));
                }
            },
            GetField { dst, obj, .. } => {
                let Some((ty, index)) = feedback.field(pc) else { return self.leave(pc) };
                let fields = self.record_fields(it, pc, obj, ty)?;
                let (lo, hi) = self.load_value(fields, index as i32 * tag::SIZE);
                self.set(it, dst, Known::Any { lo, hi });
            }
            SetField { obj, src, .. } => {
                let Some((ty, index)) = feedback.field(pc) else { return self.leave(pc) };
                let fields = self.record_fields(it, pc, obj, ty)?;
                let (lo, hi) = self.words_of(it, src);
                self.b.ins().store(flags(), lo, fields, index as i32 * tag::SIZE);
                self.b.ins().store(flags(), hi, fields, index as i32 * tag::SIZE + 8);
            }
            GetIndex { dst, obj, index } => {
                let (list, len) = self.typed_list(it, pc, obj)?;
                let i = self.int_of(it, pc, index)?;
                // Unsigned: a negative index is out of range too.
                let in_range = self.b.ins().icmp(IntCC::UnsignedLessThan, i, len);
                self.side_exit_unless(in_range, pc);
                let (lo, hi) = self.list_item(list, i);
                self.set(it, dst, Known::Any { lo, hi });
            }
            GetGlobal { dst, g } => {
                let Some(at) = Self::global_offset(g) else { return self.leave(pc) };
                let globals = self.globals(it);
                let (lo, hi) = self.load_value(globals, at);
                self.set(it, dst, Known::Any { lo, hi });
            }
            SetGlobal { g, src } => {
                let Some(at) = Self::global_offset(g) else { return self.leave(pc) };
                let globals = self.globals(it);
                let (lo, hi) = self.words_of(it, src);
                self.b.ins().store(flags(), lo, globals, at);
                self.b.ins().store(flags(), hi, globals, at + 8);
            }
            // `find` admits only `sqrt` (of an int or a float: a float) and `len`.
            CallNative { dst, native, base, .. } if self.intrinsics.len == Some(native) => {
                let (_, len) = self.typed_list(it, pc, base)?;
                self.set(it, dst, Known::Int(len));
                self.native_reduction();
            }
            CallNative { dst, base, .. } => {
                let x = self.float_of(it, pc, base)?;
                let r = self.b.ins().sqrt(x);
                self.set(it, dst, Known::Float(r));
                self.native_reduction();
            }
            // Not in a typed body (`Body::Other`).
            LoadNil { .. }
            | LoadTrue { .. }
            | LoadFalse { .. }
            | LoadFunc { .. }
            | LoadNative { .. }
            | Closure { .. }
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
            | SetIndex { .. }
            | Call { .. }
            | CallFunc { .. }
            | CallMethod { .. }
            | Return { .. }
            | ReturnNil {}
            | IterPrep { .. }
            | IterNext { .. }
            | ForPrep { .. }
            | ForLoop { .. }
            | Update { .. }
            | UpdateLoop { .. }
            | UpdateForLoop { .. } => return self.leave(pc),
        }
        Some(())
    }

    /// `dst := a op b` for `+ - * / %` (the instruction at `pc`): on floats when either
    /// operand is one or the interpreter met floats here, else on ints (overflow, a zero
    /// divisor and `MIN / -1` leave for the general version, which reports them).
    fn typed_arith(&mut self, it: &mut Iteration, feedback: Feedback, pc: usize) -> Option<()> {
        let Some((op, dst, a, b)) = self.code[pc].arith() else { return self.leave(pc) };
        let (ka, kb) = (self.known(it, a), self.known(it, b));
        let is_float = |k: Known| matches!(k, Known::Float(_));
        let is_int = |k: Known| matches!(k, Known::Int(_));
        let float = is_float(ka) || is_float(kb) || (feedback.float(pc) && !(is_int(ka) && is_int(kb)));
        if float {
            let float_op: FloatOp = match op {
                ArithOp::Add => |g, x, y| g.b.ins().fadd(x, y),
                ArithOp::Sub => |g, x, y| g.b.ins().fsub(x, y),
                ArithOp::Mul => |g, x, y| g.b.ins().fmul(x, y),
                ArithOp::Div => |g, x, y| g.b.ins().fdiv(x, y),
                ArithOp::Mod => return self.leave(pc), // no float remainder in Cranelift: the VM does it
            };
            let x = self.float_of(it, pc, a)?;
            let y = self.float_of(it, pc, b)?;
            let r = float_op(self, x, y);
            self.set(it, dst, Known::Float(r));
        } else {
            let x = self.int_of(it, pc, a)?;
            let y = self.int_of(it, pc, b)?;
            let (r, bad) = self.int_arith(op, x, y);
            let fine = self.b.ins().icmp_imm_u(IntCC::Equal, bad, 0);
            self.side_exit_unless(fine, pc);
            self.set(it, dst, Known::Int(r));
        }
        Some(())
    }

    /// `IterNext` over a list at the head of a loop over a list: the next item into the
    /// loop's variable, or the loop is done (anything but a list: the general version).
    fn typed_list_next(&mut self, it: &mut Iteration, l: &TypedLoop) -> Option<()> {
        let pc = l.start;
        let cur = self.int_of(it, pc, l.base + 1)?;
        let (list, len) = self.typed_list(it, pc, l.base)?;
        // Unsigned: a negative position is past the end too (as the interpreter's `get`).
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, cur, len);
        let item = self.b.create_block();
        let done = self.blocks[l.done];
        self.b.ins().brif(more, item, &[], done, &[]);
        self.b.switch_to_block(item);
        let (vlo, vhi) = self.list_item(list, cur);
        self.set(it, l.var, Known::Any { lo: vlo, hi: vhi });
        let nxt = self.b.ins().iadd_imm_s(cur, 1);
        self.set(it, l.base + 1, Known::Int(nxt));
        Some(())
    }

    /// Continues when no signal in `bits` is up; otherwise the general version of the
    /// instruction at `pc` (a back-edge) hands them to the VM.
    fn typed_signals_clear(&mut self, bits: u32, pc: usize) {
        let signals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_SIGNALS);
        let word = self.b.ins().atomic_load(types::I32, flags(), signals);
        let set = self.b.ins().band_imm_u(word, bits as i64);
        let clear = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
        self.side_exit_unless(clear, pc);
    }

    /// The back-edge: signals (and the fused update point) leave for the general version,
    /// which hands them to the VM; otherwise the counter steps (a counting loop) and the
    /// next iteration starts typed again (knowing nothing: the frame holds it all).
    fn typed_back_edge(&mut self, it: &mut Iteration, l: &TypedLoop, entry: Block) {
        // With tasks, the general version counts the reduction.
        let mut bits = Signals::ATTENTION | Signals::COLLECT | Signals::TASKS;
        if matches!(self.code[l.back], Instr::UpdateForLoop { .. } | Instr::UpdateLoop { .. }) {
            bits |= Signals::UPDATE;
        }
        self.typed_signals_clear(bits, l.back);
        if l.over_list {
            self.b.ins().jump(entry, &[]);
            return;
        }
        let Some(cur) = self.int_of(it, l.back, l.base + 1) else { return };
        let Some(end) = self.int_of(it, l.back, l.base) else { return };
        // cur < end, so cur + 1 cannot overflow.
        let nxt = self.b.ins().iadd_imm_s(cur, 1);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, nxt, end);
        let again = self.b.create_block();
        let done = self.blocks[l.done];
        self.b.ins().brif(more, again, &[], done, &[]);
        self.b.switch_to_block(again);
        self.store_int(l.base + 1, nxt);
        self.store_int(l.var, nxt);
        self.b.ins().jump(entry, &[]);
    }
}
