//! Bytecode to Cranelift IR. One IR block per instruction; registers are loads and stores on
//! the frame (`regs + 16 * r`: tag byte at 0, payload at 8), so no value lives only in a
//! machine register across a call into the VM, and the interpreter can take over anywhere.
//! The fast paths (ints, fused compares, counting loops, moves, constants) are inline; every
//! other instruction, and every fast path whose guard fails (a value of another type, an
//! overflow, an interrupt), is handed to the VM's `tier_step`, which runs that one
//! instruction in the interpreter before compiled code continues at the pc it returns. Only
//! update points with an update waiting leave compiled code ("resume at this pc").

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, Block, FuncRef, InstBuilder, JumpTableData, MemFlagsData, types};
use cranelift_codegen::isa::TargetFrontendConfig;
use std::rc::Rc;

use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use molt_vm::func_table::TierSlot;
use molt_vm::signals::Signals;
use molt_vm::tier::Feedback;
use molt_vm::value::tag;
use molt_vm::{InlineCache, Instr, OperandKind, Proto, Value};

use crate::int_loops::{self, IntLoop};

mod call_prefix;
mod inline;
mod typed_loops;
use crate::{
    CTX_BASE, CTX_BUDGET, CTX_CACHES, CTX_CONSTS, CTX_PARENT, CTX_PC, CTX_REAL, CTX_REGS, CTX_RET, CTX_SHARED,
    CTX_SLOT, EXIT_ERROR, EXIT_RESUME, EXIT_RETURNED, EXIT_RETURNED_NIL, HeapLayout, SHARED_GLOBALS, SHARED_HEAP_OBJS,
    SHARED_HEAP_SLOW, SHARED_SIGNALS, SHARED_STACK_LEN, SHARED_TIER_SLOTS, STEP_ERROR,
};
pub(crate) use inline::Inlined;
use typed_loops::TypedLoop;

/// Registers are 16 bytes (shifts by 4 below rely on it).
const _: () = assert!(tag::SIZE == 16);

type IntOp = fn(&mut Gen, ir::Value, ir::Value) -> (ir::Value, ir::Value);
type FloatOp = fn(&mut Gen, ir::Value, ir::Value) -> ir::Value;

/// The float comparison with the meaning of an int one: ordered (false with a NaN) except
/// `!=`, which holds with a NaN, as Rust's float operators do.
fn float_cc(cc: IntCC) -> FloatCC {
    match cc {
        IntCC::SignedLessThan => FloatCC::LessThan,
        IntCC::SignedLessThanOrEqual => FloatCC::LessThanOrEqual,
        IntCC::SignedGreaterThan => FloatCC::GreaterThan,
        IntCC::SignedGreaterThanOrEqual => FloatCC::GreaterThanOrEqual,
        IntCC::Equal => FloatCC::Equal,
        _ => FloatCC::NotEqual,
    }
}

/// The VM helpers (see `HELPERS` in lib.rs), declared in the function being built.
pub struct Helpers {
    pub step: FuncRef,
    pub get_field: FuncRef,
    pub set_field: FuncRef,
    pub call_func: FuncRef,
    pub get_index: FuncRef,
    pub call_native: FuncRef,
    pub call_exit: FuncRef,
    pub sync: FuncRef,
    pub arith: FuncRef,
    pub builtin_method: FuncRef,
    pub new_record: FuncRef,
}

/// What generated code calls and reads: the VM helpers, the heap's layout, the built-ins
/// compiled inline.
pub struct Runtime {
    pub helpers: Helpers,
    pub heap: HeapLayout,
    pub intrinsics: Intrinsics,
}

/// Built-in functions compiled inline, by their index in the VM's table (the same for every
/// function a `Jit` compiles: built-ins are registered once, before any code runs).
#[derive(Clone, Copy, Default)]
pub struct Intrinsics {
    pub sqrt: Option<u32>,
}

struct Gen<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    code: &'a [Instr],
    consts: &'a [Value],
    nregs: usize,
    /// Per pc: whether some instruction jumps there.
    jump_target: Vec<bool>,
    /// The `Ctx` pointer (the function's one parameter).
    ctx: ir::Value,
    /// Its `shared` pointer (the same for the whole activation).
    shared: ir::Value,
    /// The frame's registers: reloaded from the ctx after every step (the stack may move).
    regs: Variable,
    helpers: Helpers,
    blocks: Vec<Block>,
    /// Per pc, the block that hands the instruction to the VM (made when first needed).
    slow: Vec<Option<Block>>,
    /// Continues at the pc in its parameter (after a step that may jump).
    dispatch: Option<Block>,
    /// Blocks that leave for the interpreter at an update point: (block, pc).
    exits: Vec<(Block, usize)>,
    error: Option<Block>,
    /// The signature of compiled code, for direct calls.
    entry_sig: ir::SigRef,
    /// Where a direct call builds the callee's ctx (made when first needed).
    callee_ctx: Option<ir::StackSlot>,
    heap: HeapLayout,
    intrinsics: Intrinsics,
    /// Counting loops compiled a second time over machine registers (`int_loops`), with the
    /// block that checks whether the specialised version can be entered.
    int_loops: Vec<(IntLoop, Block)>,
    /// Counting loops compiled a second time, typed (`typed_loops`), with their entry.
    typed_loops: Vec<(TypedLoop, Block)>,
    /// What the interpreter saw of the function (see `tier::Feedback`).
    feedback: Feedback<'a>,
    /// The methods inlined (see `inline`).
    inlined: Inlined,
}

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl Gen<'_, '_> {
    /// An update point: nothing to do unless an update waits for it, then the interpreter
    /// takes over at this pc.
    fn update_point(&mut self, pc: usize) {
        let clear = self.flag_clear(Signals::UPDATE);
        self.guard(clear, pc);
    }

    /// A range loop back-edge (see `ForLoop`); `done` is where a finished loop continues.
    fn for_loop(&mut self, pc: usize, base: u16, var: u16, target: u32, done: Block) {
        let clear = self.flag_clear(Signals::INTERRUPT | Signals::COLLECT);
        self.guard(clear, pc);
        let ints = self.both_int(base, base + 1);
        self.guard(ints, pc);
        let cur = self.payload(base + 1);
        let end = self.payload(base);
        // cur < end, so cur + 1 cannot overflow.
        let nxt = self.b.ins().iadd_imm_s(cur, 1);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, nxt, end);
        let again = self.b.create_block();
        self.b.ins().brif(more, again, &[], done, &[]);
        self.b.switch_to_block(again);
        self.store_int(base + 1, nxt);
        self.store_int(var, nxt);
        // A loop with an int version tries it at each iteration (it may have been entered
        // mid-way, from the interpreter).
        let t = self.loop_entry(target as usize);
        self.b.ins().jump(t, &[]);
    }

    /// Where a loop body starting at `start` is entered: the int version's check when it has
    /// one, else the body.
    fn loop_entry(&self, start: usize) -> Block {
        if let Some((_, check)) = self.int_loops.iter().find(|(l, _)| l.start == start) {
            return *check;
        }
        self.typed_loops.iter().find(|(l, _)| l.start == start).map_or(self.blocks[start], |(_, entry)| *entry)
    }

    /// Fills each int loop's entry check and its specialised blocks (see `int_loops`).
    fn finish_int_loops(&mut self) {
        for (l, check) in std::mem::take(&mut self.int_loops) {
            let vars: Vec<Variable> = l.regs.iter().map(|_| self.b.declare_var(types::I64)).collect();
            let var = |r: u16| vars[l.regs.iter().position(|&x| x == r).expect("a loop register")];
            // The check: the registers the body reads first hold ints (the loop's own state
            // does: `ForPrep` and `ForLoop` checked it).
            self.b.switch_to_block(check);
            let mut ok = self.b.ins().iconst(types::I8, 1);
            for &r in &l.inputs {
                let is_int = self.is_int(r);
                ok = self.b.ins().band(ok, is_int);
            }
            let enter = self.b.create_block();
            self.b.ins().brif(ok, enter, &[], self.blocks[l.start], &[]);
            self.b.switch_to_block(enter);
            for &r in &l.regs {
                let v = self.payload(r);
                self.b.def_var(var(r), v);
            }
            let signals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_SIGNALS);
            let blocks: Vec<Block> = (l.start..=l.back).map(|_| self.b.create_block()).collect();
            self.b.ins().jump(blocks[0], &[]);
            for pc in l.start..l.back {
                self.b.switch_to_block(blocks[pc - l.start]);
                let next = blocks[pc + 1 - l.start];
                let general = self.blocks[pc];
                let value = |g: &mut Self, r: u16| g.b.use_var(var(r));
                let checked = |g: &mut Self, r: ir::Value, overflow: ir::Value| {
                    let fine = g.b.create_block();
                    // On overflow the general version redoes the instruction (and raises).
                    g.b.ins().brif(overflow, general, &[], fine, &[]);
                    g.b.switch_to_block(fine);
                    r
                };
                let (dst, result) = match self.code[pc] {
                    Instr::Move { dst, src } => (dst, value(self, src)),
                    Instr::LoadInt { dst, value: k } => (dst, self.b.ins().iconst(types::I64, k as i64)),
                    Instr::AddImm { dst, a, value: k } => {
                        let x = value(self, a);
                        let y = self.b.ins().iconst(types::I64, k as i64);
                        let (r, o) = self.b.ins().sadd_overflow(x, y);
                        (dst, checked(self, r, o))
                    }
                    Instr::Add { dst, a, b } | Instr::Sub { dst, a, b } | Instr::Mul { dst, a, b } => {
                        let (x, y) = (value(self, a), value(self, b));
                        let (r, o) = match self.code[pc] {
                            Instr::Add { .. } => self.b.ins().sadd_overflow(x, y),
                            Instr::Sub { .. } => self.b.ins().ssub_overflow(x, y),
                            _ => self.b.ins().smul_overflow(x, y),
                        };
                        (dst, checked(self, r, o))
                    }
                    _ => unreachable!("int_loops::find admits only these"),
                };
                // The frame stays exact: every result is written through.
                self.b.def_var(var(dst), result);
                self.store_int(dst, result);
                self.b.ins().jump(next, &[]);
            }
            // The back-edge: signals (and the update point) go to the general version.
            self.b.switch_to_block(blocks[l.back - l.start]);
            let mut bits = Signals::INTERRUPT | Signals::COLLECT;
            if matches!(self.code[l.back], Instr::UpdateForLoop { .. }) {
                bits |= Signals::UPDATE;
            }
            let word = self.b.ins().atomic_load(types::I32, flags(), signals);
            let set = self.b.ins().band_imm_u(word, bits as i64);
            let clear = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
            let step = self.b.create_block();
            self.b.ins().brif(clear, step, &[], self.blocks[l.back], &[]);
            self.b.switch_to_block(step);
            let cur = self.b.use_var(var(l.base + 1));
            let end = self.b.use_var(var(l.base));
            let nxt = self.b.ins().iadd_imm_s(cur, 1);
            let more = self.b.ins().icmp(IntCC::SignedLessThan, nxt, end);
            let again = self.b.create_block();
            self.b.ins().brif(more, again, &[], self.blocks[l.done], &[]);
            self.b.switch_to_block(again);
            self.b.def_var(var(l.base + 1), nxt);
            self.b.def_var(var(l.var), nxt);
            let regs = self.regs();
            self.b.ins().store(flags(), nxt, regs, Self::off(l.base + 1) + tag::PAYLOAD_OFFSET);
            self.b.ins().store(flags(), nxt, regs, Self::off(l.var) + tag::PAYLOAD_OFFSET);
            self.b.ins().jump(blocks[0], &[]);
        }
    }

    fn off(r: u16) -> i32 {
        r as i32 * tag::SIZE
    }

    /// The offset of global `g` in the array of globals (`None` past what an offset can
    /// reach: the VM does those).
    fn global_offset(g: u32) -> Option<i32> {
        i32::try_from(g as i64 * tag::SIZE as i64 + 8).ok().map(|o| o - 8)
    }

    /// The 16 bytes of a value at `at + offset`, as two words.
    fn load_value(&mut self, at: ir::Value, offset: i32) -> (ir::Value, ir::Value) {
        let lo = self.b.ins().load(types::I64, flags(), at, offset);
        let hi = self.b.ins().load(types::I64, flags(), at, offset + 8);
        (lo, hi)
    }

    /// Register `r` := the value in the two words.
    fn store_value(&mut self, r: u16, lo: ir::Value, hi: ir::Value) {
        let regs = self.regs();
        self.b.ins().store(flags(), lo, regs, Self::off(r));
        self.b.ins().store(flags(), hi, regs, Self::off(r) + 8);
    }

    fn tag(&mut self, r: u16) -> ir::Value {
        let regs = self.regs();
        self.b.ins().uload8(types::I32, flags(), regs, Self::off(r))
    }

    fn payload(&mut self, r: u16) -> ir::Value {
        let regs = self.regs();
        self.b.ins().load(types::I64, flags(), regs, Self::off(r) + tag::PAYLOAD_OFFSET)
    }

    /// Writes the tag as a whole word (the bytes after it are padding): a later 8- or
    /// 16-byte load of the value then reads from whole stores, which the CPU forwards.
    fn set_tag(&mut self, r: u16, t: u8) {
        let v = self.b.ins().iconst(types::I64, t as i64);
        let regs = self.regs();
        self.b.ins().store(flags(), v, regs, Self::off(r));
    }

    fn store_int(&mut self, r: u16, v: ir::Value) {
        self.set_tag(r, tag::INT);
        let regs = self.regs();
        self.b.ins().store(flags(), v, regs, Self::off(r) + tag::PAYLOAD_OFFSET);
    }

    /// `c`: a truth value, as an i8 (a comparison's result) or a wider int.
    fn store_bool(&mut self, r: u16, c: ir::Value) {
        self.set_tag(r, tag::BOOL);
        let regs = self.regs();
        // `istore8` takes a wider int only; an i8 is stored as it is (one byte either way).
        if self.b.func.dfg.value_type(c) == types::I8 {
            self.b.ins().store(flags(), c, regs, Self::off(r) + tag::PAYLOAD_OFFSET);
        } else {
            self.b.ins().istore8(flags(), c, regs, Self::off(r) + tag::PAYLOAD_OFFSET);
        }
    }

    fn exit(&mut self, kind: u64, low: u64) {
        let code = self.b.ins().iconst(types::I64, ((kind << 32) | low) as i64);
        self.b.ins().return_(&[code]);
    }

    fn regs(&mut self) -> ir::Value {
        self.b.use_var(self.regs)
    }

    /// Where a failed guard at `pc` goes: the VM runs the instruction (`step_block`), except
    /// at update points, which leave compiled code (the update engine may move the frame).
    fn fallback(&mut self, pc: usize) -> Block {
        use Instr::*;
        if matches!(self.code[pc], Update { .. } | UpdateLoop { .. } | UpdateForLoop { .. }) {
            let bail = self.b.create_block();
            self.b.set_cold_block(bail);
            self.exits.push((bail, pc));
            return bail;
        }
        self.step_block(pc)
    }

    /// The block that hands the instruction at `pc` to the VM and continues at the pc the VM
    /// returns (or leaves with the error it raised).
    fn step_block(&mut self, pc: usize) -> Block {
        if let Some(b) = self.slow[pc] {
            return b;
        }
        let block = self.b.create_block();
        self.b.set_cold_block(block);
        self.slow[pc] = Some(block);
        block
    }

    /// Fills the blocks made by `fallback` and `step_block` (after the instructions: the
    /// builder fills one block at a time).
    fn finish_slow_paths(&mut self) {
        for (block, pc) in std::mem::take(&mut self.exits) {
            self.b.switch_to_block(block);
            // The interpreter needs this activation's frame (it may be a virtual one).
            self.call_helper(self.helpers.sync, pc, 0, 0);
            self.exit(EXIT_RESUME, pc as u64);
        }
        for pc in 0..self.slow.len() {
            if let Some(block) = self.slow[pc] {
                self.fill_step(block, pc);
            }
        }
        if let Some(e) = self.error {
            self.b.switch_to_block(e);
            self.exit(EXIT_ERROR, 0);
        }
    }

    fn fill_step(&mut self, block: Block, pc: usize) {
        self.b.switch_to_block(block);
        let next = self.call_helper(self.helpers.step, pc, 0, 0);
        let falls_through = self.b.ins().icmp_imm_u(IntCC::Equal, next, pc as i64 + 1);
        let dispatch = self.dispatch_block();
        let after = self.next(pc);
        self.b.ins().brif(falls_through, after, &[], dispatch, &[ir::BlockArg::Value(next)]);
    }

    /// Calls a VM helper for the instruction at `pc`; leaves with the error if it failed,
    /// else continues (in a new block) with its result, registers reloaded.
    fn call_helper(&mut self, helper: FuncRef, pc: usize, a: u64, b: u64) -> ir::Value {
        let a = self.b.ins().iconst(types::I64, a as i64);
        let b = self.b.ins().iconst(types::I64, b as i64);
        self.call_helper_with(helper, pc, a, b)
    }

    /// `call_helper` with operands computed at run time.
    fn call_helper_with(&mut self, helper: FuncRef, pc: usize, a: ir::Value, b: ir::Value) -> ir::Value {
        let at = self.b.ins().iconst(types::I64, pc as i64);
        let call = self.b.ins().call(helper, &[self.ctx, at, a, b]);
        let result = self.b.inst_results(call)[0];
        // The stack may have grown (moved) under the helper.
        let regs = self.b.ins().load(types::I64, flags(), self.ctx, CTX_REGS);
        self.b.def_var(self.regs, regs);
        let failed = self.b.ins().icmp_imm_u(IntCC::Equal, result, STEP_ERROR as i64);
        let fine = self.b.create_block();
        let error = self.error_block();
        self.b.ins().brif(failed, error, &[], fine, &[]);
        self.b.switch_to_block(fine);
        result
    }

    /// An instruction done by one VM helper (three 16-bit operands packed, one 32-bit), then
    /// on to the next.
    fn helper_op(&mut self, helper: FuncRef, pc: usize, small: [u16; 3], wide: u32) {
        let packed = small[0] as u64 | (small[1] as u64) << 16 | (small[2] as u64) << 32;
        self.call_helper(helper, pc, packed, wide as u64);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// The one block that leaves with the error a helper raised.
    fn error_block(&mut self) -> Block {
        if let Some(e) = self.error {
            return e;
        }
        let e = self.b.create_block();
        self.b.set_cold_block(e);
        self.error = Some(e);
        e
    }

    /// One block that jumps to the instruction whose pc is its parameter.
    fn dispatch_block(&mut self) -> Block {
        if let Some(d) = self.dispatch {
            return d;
        }
        let d = self.b.create_block();
        self.b.append_block_param(d, types::I64);
        self.dispatch = Some(d);
        d
    }

    /// Fills the dispatch block, once every instruction block exists.
    fn finish_dispatch(&mut self) {
        let Some(d) = self.dispatch else { return };
        self.b.switch_to_block(d);
        let next = self.b.block_params(d)[0];
        let outside = self.b.create_block();
        let table: Vec<_> = self.blocks.iter().map(|&blk| self.b.func.dfg.block_call(blk, &[])).collect();
        let default = self.b.func.dfg.block_call(outside, &[]);
        let jt = self.b.create_jump_table(JumpTableData::new(default, &table));
        let index = self.b.ins().ireduce(types::I32, next);
        self.b.ins().br_table(index, jt);
        // A pc past the code cannot come back from a verified function; fail if it does.
        self.b.switch_to_block(outside);
        self.exit(EXIT_ERROR, 0);
    }

    /// Hands the instruction at `pc` to the VM.
    fn step(&mut self, pc: usize) {
        let block = self.step_block(pc);
        self.b.ins().jump(block, &[]);
    }

    /// Continues in a new block when `cond` holds, else the instruction goes to its fallback.
    fn guard(&mut self, cond: ir::Value, pc: usize) {
        let ok = self.b.create_block();
        let bail = self.fallback(pc);
        self.b.ins().brif(cond, ok, &[], bail, &[]);
        self.b.switch_to_block(ok);
    }

    /// Both registers hold ints.
    fn both_int(&mut self, a: u16, b: u16) -> ir::Value {
        let ta = self.tag(a);
        let tb = self.tag(b);
        let ia = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::INT as i64);
        let ib = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::INT as i64);
        self.b.ins().band(ia, ib)
    }

    fn is_int(&mut self, a: u16) -> ir::Value {
        let t = self.tag(a);
        self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::INT as i64)
    }

    /// The signal bit `bit` (`Signals::INTERRUPT`, `Signals::UPDATE`) is clear.
    fn flag_clear(&mut self, bit: u32) -> ir::Value {
        let signals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_SIGNALS);
        let word = self.b.ins().atomic_load(types::I32, flags(), signals);
        let set = self.b.ins().band_imm_u(word, bit as i64);
        self.b.ins().icmp_imm_u(IntCC::Equal, set, 0)
    }

    fn next(&self, pc: usize) -> Block {
        self.blocks[(pc + 1).min(self.blocks.len() - 1)]
    }

    fn float_payload(&mut self, r: u16) -> ir::Value {
        let regs = self.regs();
        self.b.ins().load(types::F64, flags(), regs, Self::off(r) + tag::PAYLOAD_OFFSET)
    }

    fn store_float(&mut self, r: u16, v: ir::Value) {
        self.set_tag(r, tag::FLOAT);
        let regs = self.regs();
        self.b.ins().store(flags(), v, regs, Self::off(r) + tag::PAYLOAD_OFFSET);
    }

    /// Splits on the operand types: continues in the returned blocks (both ints, both
    /// floats); anything else goes to the instruction's fallback.
    fn by_type(&mut self, pc: usize, a: u16, b: u16) -> (Block, Block) {
        let (ta, tb) = (self.tag(a), self.tag(b));
        let ia = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::INT as i64);
        let ib = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::INT as i64);
        let ints = self.b.ins().band(ia, ib);
        let (int_block, not_int, float_block) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(ints, int_block, &[], not_int, &[]);
        self.b.switch_to_block(not_int);
        let fa = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::FLOAT as i64);
        let fb = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::FLOAT as i64);
        let floats = self.b.ins().band(fa, fb);
        let bail = self.fallback(pc);
        self.b.ins().brif(floats, float_block, &[], bail, &[]);
        (int_block, float_block)
    }

    /// Stores an int result unless its operation overflowed (then the VM reports it), and goes
    /// on to the next instruction.
    fn store_int_checked(&mut self, pc: usize, dst: u16, r: ir::Value, overflow: ir::Value) {
        let fine = self.b.ins().icmp_imm_u(IntCC::Equal, overflow, 0);
        self.guard(fine, pc);
        self.store_int(dst, r);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// `dst := a op b`: ints with the overflow check (`int_op` gives result and overflow
    /// flag; `None` leaves ints to the VM, as for division); floats, and an int with a float
    /// (converted, as the interpreter does), with `float_op`; anything else through
    /// `molt_jit_arith` (`op`: its operator; `None`: the VM steps it).
    fn arith(&mut self, pc: usize, ins: (u16, u16, u16), int_op: Option<IntOp>, float_op: FloatOp, op: Option<u8>) {
        let (dst, a, b) = ins;
        let next = self.next(pc);
        let (ta, tb) = (self.tag(a), self.tag(b));
        let ia = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::INT as i64);
        let ib = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::INT as i64);
        let ints = self.b.ins().band(ia, ib);
        let (int_block, not_int, convert, other) =
            (self.b.create_block(), self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.set_cold_block(other);
        self.b.ins().brif(ints, int_block, &[], not_int, &[]);
        self.b.switch_to_block(int_block);
        match int_op {
            Some(op) => {
                let (x, y) = (self.payload(a), self.payload(b));
                let (r, overflow) = op(self, x, y);
                self.store_int_checked(pc, dst, r, overflow);
            }
            None => self.step(pc),
        }
        self.b.switch_to_block(not_int);
        let fa = self.b.ins().icmp_imm_u(IntCC::Equal, ta, tag::FLOAT as i64);
        let fb = self.b.ins().icmp_imm_u(IntCC::Equal, tb, tag::FLOAT as i64);
        let na = self.b.ins().bor(ia, fa);
        let nb = self.b.ins().bor(ib, fb);
        let numbers = self.b.ins().band(na, nb);
        self.b.ins().brif(numbers, convert, &[], other, &[]);
        self.b.switch_to_block(convert);
        let x = self.as_float(a, ia);
        let y = self.as_float(b, ib);
        let r = float_op(self, x, y);
        self.store_float(dst, r);
        self.b.ins().jump(next, &[]);
        self.b.switch_to_block(other);
        match op {
            Some(op) => {
                let packed = dst as u64 | (a as u64) << 16 | (b as u64) << 32;
                self.call_helper(self.helpers.arith, pc, packed, op as u64);
                self.b.ins().jump(next, &[]);
            }
            None => self.step(pc),
        }
    }

    /// Int `/` (truncating) or `%` (the dividend's sign), as Rust's: the result, and whether
    /// the VM must do it instead (division by zero, `MIN / -1`: its errors). The machine
    /// division never sees those operands (it would trap).
    fn int_divide(&mut self, x: ir::Value, y: ir::Value, modulo: bool) -> (ir::Value, ir::Value) {
        let zero = self.b.ins().icmp_imm_u(IntCC::Equal, y, 0);
        let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
        let min = self.b.ins().icmp_imm_s(IntCC::Equal, x, i64::MIN);
        let overflow = self.b.ins().band(minus_one, min);
        let bad = self.b.ins().bor(zero, overflow);
        let one = self.b.ins().iconst(types::I64, 1);
        let divisor = self.b.ins().select(bad, one, y);
        let r = if modulo { self.b.ins().srem(x, divisor) } else { self.b.ins().sdiv(x, divisor) };
        (r, bad)
    }

    /// `sqrt(R[a])` of an int or a float, inline (as the built-in: a float, NaN below zero);
    /// anything else goes to the VM (the built-in's error).
    fn sqrt(&mut self, pc: usize, dst: u16, a: u16) {
        let t = self.tag(a);
        let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::INT as i64);
        let is_float = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::FLOAT as i64);
        let number = self.b.ins().bor(is_int, is_float);
        self.guard(number, pc);
        let x = self.as_float(a, is_int);
        let r = self.b.ins().sqrt(x);
        self.store_float(dst, r);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// Register `r`, a number, as a float (`is_int`: whether it holds an int).
    fn as_float(&mut self, r: u16, is_int: ir::Value) -> ir::Value {
        let p = self.payload(r);
        let converted = self.b.ins().fcvt_from_sint(types::F64, p);
        let bits = self.b.ins().bitcast(types::F64, MemFlagsData::new(), p);
        self.b.ins().select(is_int, converted, bits)
    }

    /// `a cc b` on two ints or two floats, as an i8 truth value, continuing in the returned
    /// block (both paths join there).
    fn test(&mut self, pc: usize, a: u16, b: u16, cc: IntCC) -> ir::Value {
        let (int_block, float_block) = self.by_type(pc, a, b);
        let join = self.b.create_block();
        let truth = self.b.append_block_param(join, types::I8);
        self.b.switch_to_block(int_block);
        let (x, y) = (self.payload(a), self.payload(b));
        let c = self.b.ins().icmp(cc, x, y);
        self.b.ins().jump(join, &[ir::BlockArg::Value(c)]);
        self.b.switch_to_block(float_block);
        let (x, y) = (self.float_payload(a), self.float_payload(b));
        let c = self.b.ins().fcmp(float_cc(cc), x, y);
        self.b.ins().jump(join, &[ir::BlockArg::Value(c)]);
        self.b.switch_to_block(join);
        truth
    }

    fn compare(&mut self, pc: usize, dst: u16, a: u16, b: u16, cc: IntCC) {
        let c = self.test(pc, a, b, cc);
        self.store_bool(dst, c);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// Jump to `target` unless `a cc b`.
    fn branch_unless(&mut self, pc: usize, a: u16, b: u16, target: u32, cc: IntCC) {
        let (next, target) = (self.next(pc), self.blocks[target as usize]);
        if let Some(k) = self.constant_before(pc, b) {
            // `n < 2`: only `a`'s type is unknown (an int; anything else goes to the VM).
            let is_int = self.is_int(a);
            let bail = self.fallback(pc);
            let ints = self.b.create_block();
            self.b.ins().brif(is_int, ints, &[], bail, &[]);
            self.b.switch_to_block(ints);
            let x = self.payload(a);
            let c = self.b.ins().icmp_imm_s(cc, x, k);
            self.b.ins().brif(c, next, &[], target, &[]);
            return;
        }
        let c = self.test(pc, a, b, cc);
        self.b.ins().brif(c, next, &[], target, &[]);
    }

    /// The int constant register `r` holds at `pc` when the instruction just before set it
    /// (`LoadInt`, always done inline) and nothing else can lead to `pc` (not a jump target,
    /// so neither a jump nor a step the VM finishes elsewhere continues here).
    fn constant_before(&self, pc: usize, r: u16) -> Option<i64> {
        match self.code.get(pc.checked_sub(1)?)? {
            Instr::LoadInt { dst, value } if *dst == r && !self.jump_target[pc] => Some(*value as i64),
            _ => None,
        }
    }

    /// The register is false or nil.
    fn falsy(&mut self, r: u16) -> ir::Value {
        let t = self.tag(r);
        let is_nil = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::NIL as i64);
        let is_bool = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::BOOL as i64);
        let regs = self.regs();
        let p = self.b.ins().uload8(types::I32, flags(), regs, Self::off(r) + tag::PAYLOAD_OFFSET);
        let p_false = self.b.ins().icmp_imm_u(IntCC::Equal, p, 0);
        let false_bool = self.b.ins().band(is_bool, p_false);
        self.b.ins().bor(is_nil, false_bool)
    }

    /// Checks that `r` holds a record and that this instruction's inline cache is for its
    /// type (and that the heap needs no VM attention: lazy conversions, guarded writes); goes
    /// to `fail` otherwise. Returns the object's address and the cache's value (a field
    /// index, or a method's function slot).
    fn cached_record(&mut self, pc: usize, r: u16, fail: Block) -> (ir::Value, ir::Value) {
        let h = self.heap;
        let t = self.tag(r);
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
        let ok = self.b.ins().band(is_obj, quiet);
        let obj_block = self.b.create_block();
        self.b.ins().brif(ok, obj_block, &[], fail, &[]);
        self.b.switch_to_block(obj_block);
        let (obj, is_record) = self.heap_object(r, self.heap.record_tag);
        let ty = self.b.ins().uload32(flags(), obj, h.ty_offset);
        let caches = self.b.ins().load(types::I64, flags(), self.ctx, CTX_CACHES);
        let at = (pc * std::mem::size_of::<InlineCache>()) as i32;
        let key = self.b.ins().uload32(flags(), caches, at);
        let value = self.b.ins().uload32(flags(), caches, at + 4);
        let ty1 = self.b.ins().iadd_imm_s(ty, 1);
        let hit = self.b.ins().icmp(IntCC::Equal, key, ty1);
        let ok = self.b.ins().band(is_record, hit);
        let found = self.b.create_block();
        self.b.ins().brif(ok, found, &[], fail, &[]);
        self.b.switch_to_block(found);
        (obj, value)
    }

    /// `GetIndex` of a list by an int in range, in place; the rest (maps, strings, errors)
    /// goes to the VM.
    fn get_index(&mut self, pc: usize, dst: u16, obj: u16, index: u16) {
        let h = self.heap;
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let (t, ti) = (self.tag(obj), self.tag(index));
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, ti, tag::INT as i64);
        let ok = self.b.ins().band(is_obj, is_int);
        let obj_block = self.b.create_block();
        self.b.ins().brif(ok, obj_block, &[], slow, &[]);
        self.b.switch_to_block(obj_block);
        let (o, is_list) = self.heap_object(obj, self.heap.list_tag);
        let len = self.b.ins().load(types::I64, flags(), o, h.list_len_offset);
        let i = self.payload(index);
        // Unsigned: a negative index is out of range too.
        let in_range = self.b.ins().icmp(IntCC::UnsignedLessThan, i, len);
        let ok = self.b.ins().band(is_list, in_range);
        let found = self.b.create_block();
        self.b.ins().brif(ok, found, &[], slow, &[]);
        self.b.switch_to_block(found);
        let items = self.b.ins().load(types::I64, flags(), o, h.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(i, 4); // * tag::SIZE
        let at = self.b.ins().iadd(items, at);
        let lo = self.b.ins().load(types::I64, flags(), at, 0);
        let hi = self.b.ins().load(types::I64, flags(), at, 8);
        let regs = self.regs();
        self.b.ins().store(flags(), lo, regs, Self::off(dst));
        self.b.ins().store(flags(), hi, regs, Self::off(dst) + 8);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
        self.b.switch_to_block(slow);
        let packed = dst as u64 | (obj as u64) << 16 | (index as u64) << 32;
        self.call_helper(self.helpers.get_index, pc, packed, 0);
        self.b.ins().jump(next, &[]);
    }

    /// `IterNext` over a range or a list, in place; maps iterate over a list made by
    /// `IterPrep`, so they are lists here too. Anything else (a string, iterated in place)
    /// goes to the VM.
    fn iter_next(&mut self, pc: usize, base: u16, var: u16, exit: u32) {
        let h = self.heap;
        let slow = self.step_block(pc);
        let (next, done) = (self.next(pc), self.blocks[exit as usize]);
        let cur_int = self.is_int(base + 1);
        let check_range = self.b.create_block();
        self.b.ins().brif(cur_int, check_range, &[], slow, &[]);
        self.b.switch_to_block(check_range);
        let cur = self.payload(base + 1);
        let nxt = self.b.ins().iadd_imm_s(cur, 1);
        let (range, not_range, list) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let over_range = self.is_int(base);
        self.b.ins().brif(over_range, range, &[], not_range, &[]);
        // A range: the state is its end; cur < end, so cur + 1 cannot overflow.
        self.b.switch_to_block(range);
        let end = self.payload(base);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, cur, end);
        let (item, item_block) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(more, item, &[], done, &[]);
        self.b.switch_to_block(item);
        self.store_int(var, cur);
        self.store_int(base + 1, nxt);
        self.b.ins().jump(next, &[]);
        // A list: the state is the list itself.
        self.b.switch_to_block(not_range);
        let t = self.tag(base);
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        self.b.ins().brif(is_obj, list, &[], slow, &[]);
        self.b.switch_to_block(list);
        let (o, is_list) = self.heap_object(base, self.heap.list_tag);
        let list_block = self.b.create_block();
        self.b.ins().brif(is_list, list_block, &[], slow, &[]);
        self.b.switch_to_block(list_block);
        let len = self.b.ins().load(types::I64, flags(), o, h.list_len_offset);
        // Unsigned: a negative position is past the end too (the interpreter's `get`).
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, cur, len);
        self.b.ins().brif(more, item_block, &[], done, &[]);
        self.b.switch_to_block(item_block);
        let items = self.b.ins().load(types::I64, flags(), o, h.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(cur, 4); // * tag::SIZE
        let at = self.b.ins().iadd(items, at);
        let (lo, hi) = self.load_value(at, 0);
        self.store_value(var, lo, hi);
        self.store_int(base + 1, nxt);
        self.b.ins().jump(next, &[]);
    }

    /// The heap object register `r` (which holds a `Value::Obj`) refers to: its address in the
    /// slot array, and whether its tag is `want`.
    fn heap_object(&mut self, r: u16, want: u8) -> (ir::Value, ir::Value) {
        let regs = self.regs();
        let handle = self.b.ins().uload32(flags(), regs, Self::off(r) + tag::PAYLOAD_OFFSET);
        let objs = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_OBJS);
        let offset = self.b.ins().imul_imm_s(handle, self.heap.obj_size);
        let obj = self.b.ins().iadd(objs, offset);
        let otag = self.b.ins().uload8(types::I32, flags(), obj, 0);
        let is = self.b.ins().icmp_imm_u(IntCC::Equal, otag, want as i64);
        (obj, is)
    }

    /// The address of field `index` of the record at `obj`.
    fn field_address(&mut self, obj: ir::Value, index: ir::Value) -> ir::Value {
        let fields = self.b.ins().load(types::I64, flags(), obj, self.heap.fields_offset);
        let offset = self.b.ins().ishl_imm_u(index, 4); // * tag::SIZE
        self.b.ins().iadd(fields, offset)
    }

    /// `GetField` / `SetField` (`write`) on the inline cache's type, in place; the rest (a
    /// miss, which fills the cache; errors) goes to the VM.
    fn field(&mut self, pc: usize, ins: Instr) {
        let (obj, reg, write, helper, packed, name) = match ins {
            Instr::GetField { dst, obj, name } => {
                (obj, dst, false, self.helpers.get_field, dst as u64 | (obj as u64) << 16, name)
            }
            Instr::SetField { obj, name, src } => {
                (obj, src, true, self.helpers.set_field, obj as u64 | (src as u64) << 16, name)
            }
            _ => return self.step(pc),
        };
        let slow = self.b.create_block();
        let (o, index) = self.cached_record(pc, obj, slow);
        let at = self.field_address(o, index);
        let regs = self.regs();
        if write {
            let lo = self.b.ins().load(types::I64, flags(), regs, Self::off(reg));
            let hi = self.b.ins().load(types::I64, flags(), regs, Self::off(reg) + 8);
            self.b.ins().store(flags(), lo, at, 0);
            self.b.ins().store(flags(), hi, at, 8);
        } else {
            let lo = self.b.ins().load(types::I64, flags(), at, 0);
            let hi = self.b.ins().load(types::I64, flags(), at, 8);
            self.b.ins().store(flags(), lo, regs, Self::off(reg));
            self.b.ins().store(flags(), hi, regs, Self::off(reg) + 8);
        }
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
        self.b.switch_to_block(slow);
        self.call_helper(helper, pc, packed, name as u64);
        self.b.ins().jump(next, &[]);
    }

    /// Checks whether the function in table slot `slot` (an IR value) can be called directly
    /// with `argc` arguments at register `base`: compiled, that arity, its registers on the
    /// stack, no signal waiting, direct calls allowed deeper. Continues in `direct` (see
    /// `direct_block`) or `slow`. Each check is its own branch (a compare and a jump, all
    /// predictable), and what the call needs next is handed over loaded.
    fn direct_call_checks(&mut self, slot: ir::Value, argc: u16, base: u16, direct: Block, slow: Block) {
        let slots = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TIER_SLOTS);
        let offset = self.b.ins().imul_imm_s(slot, std::mem::size_of::<TierSlot>() as i64);
        let ts = self.b.ins().iadd(slots, offset);
        let entry = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, entry) as i32);
        let compiled = self.b.ins().icmp_imm_u(IntCC::NotEqual, entry, 0);
        self.continue_if(compiled, slow);
        let arity = self.b.ins().uload32(flags(), ts, std::mem::offset_of!(TierSlot, arity) as i32);
        let fits_arity = self.b.ins().icmp_imm_u(IntCC::Equal, arity, argc as i64);
        self.continue_if(fits_arity, slow);
        let nregs = self.b.ins().uload32(flags(), ts, std::mem::offset_of!(TierSlot, nregs) as i32);
        let frame_base = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BASE);
        let callee_base = self.b.ins().iadd_imm_s(frame_base, base as i64);
        let top = self.b.ins().iadd(callee_base, nregs);
        let stack_len = self.b.ins().load(types::I64, flags(), self.shared, SHARED_STACK_LEN);
        let fits_stack = self.b.ins().icmp(IntCC::UnsignedLessThan, top, stack_len);
        self.continue_if(fits_stack, slow);
        let quiet = self.flag_clear(Signals::INTERRUPT | Signals::COLLECT);
        self.continue_if(quiet, slow);
        let budget = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BUDGET);
        let deeper = self.b.ins().icmp_imm_u(IntCC::NotEqual, budget, 0);
        let caches = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, caches) as i32);
        let consts = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, consts) as i32);
        let virtual_frame = self.b.ins().iconst(types::I64, 0);
        let args = [entry, virtual_frame, slot, frame_base, budget, caches, consts].map(ir::BlockArg::Value);
        self.b.ins().brif(deeper, direct, &args, slow, &[]);
    }

    /// For a call made inline (no frame): continues when the interpreter's call would not
    /// have failed for room, else in `otherwise` (the general call, which raises the error):
    /// a frame is left under the frame limit (the direct-call budget says so), and the
    /// callee's `nregs` registers at `base` fit without growing the stack (so the register
    /// limit cannot be met).
    fn room_for_call(&mut self, base: u16, nregs: u32, otherwise: Block) {
        let budget = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BUDGET);
        let deeper = self.b.ins().icmp_imm_u(IntCC::NotEqual, budget, 0);
        self.continue_if(deeper, otherwise);
        let frame_base = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BASE);
        let top = self.b.ins().iadd_imm_s(frame_base, base as i64 + nregs as i64);
        let stack_len = self.b.ins().load(types::I64, flags(), self.shared, SHARED_STACK_LEN);
        let fits = self.b.ins().icmp(IntCC::UnsignedLessThan, top, stack_len);
        self.continue_if(fits, otherwise);
    }

    /// Continues in a new block when `cond` holds, else in `otherwise`.
    fn continue_if(&mut self, cond: ir::Value, otherwise: Block) {
        let ok = self.b.create_block();
        self.b.ins().brif(cond, ok, &[], otherwise, &[]);
        self.b.switch_to_block(ok);
    }

    /// A block taking (entry, real frame?, slot, this frame's base, its direct-call budget,
    /// the callee's inline caches and constants) that makes the direct call (`direct_call`).
    fn direct_block(&mut self) -> Block {
        let block = self.b.create_block();
        for _ in 0..7 {
            self.b.append_block_param(block, types::I64);
        }
        block
    }

    /// The arguments of `direct_block` for a call the VM handed back (`entry`, a real frame).
    fn handed_back_args(&mut self, entry: ir::Value, slot: ir::Value) -> [ir::BlockArg; 7] {
        let real_frame = self.b.ins().iconst(types::I64, 1);
        let frame_base = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BASE);
        let budget = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BUDGET);
        let slots = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TIER_SLOTS);
        let offset = self.b.ins().imul_imm_s(slot, std::mem::size_of::<TierSlot>() as i64);
        let ts = self.b.ins().iadd(slots, offset);
        let caches = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, caches) as i32);
        let consts = self.b.ins().load(types::I64, flags(), ts, std::mem::offset_of!(TierSlot, consts) as i32);
        [entry, real_frame, slot, frame_base, budget, caches, consts].map(ir::BlockArg::Value)
    }

    /// `CallFunc`. When the function in the slot is compiled, takes `argc` arguments and
    /// its registers fit on the stack (and no signal waits, and direct calls may nest
    /// deeper), it is called directly: a native call, with a virtual frame (see `Ctx` in
    /// lib.rs). Otherwise the VM pushes the callee's frame and either hands back its entry
    /// (then called directly too, with a real frame) or runs it to completion.
    fn call_func(&mut self, pc: usize, dst: u16, f: u32, base: u16, argc: u16) {
        let next = self.next(pc);
        if let Some(callee) = call_prefix::candidate(self.feedback, f, argc) {
            if std::env::var_os("MOLT_JIT_REPORT").is_some() {
                eprintln!("jit: quick returns of {} inlined at instruction {pc}", callee.proto.name);
            }
            let general = self.b.create_block();
            self.inline_prefix(dst, base, f, &callee, general, next);
            self.b.switch_to_block(general);
        }
        let (slow, direct) = (self.b.create_block(), self.direct_block());
        let slot = self.b.ins().iconst(types::I64, f as i64);
        self.direct_call_checks(slot, argc, base, direct, slow);
        // Slow path: the VM pushes a real frame, then hands back the entry or runs the callee.
        self.b.switch_to_block(slow);
        let packed = dst as u64 | (base as u64) << 16 | (argc as u64) << 32;
        let entry = self.call_helper(self.helpers.call_func, pc, packed, f as u64);
        let handed = self.b.create_block();
        self.b.ins().brif(entry, handed, &[], next, &[]);
        self.b.switch_to_block(handed);
        let slot = self.b.ins().iconst(types::I64, f as i64);
        let args = self.handed_back_args(entry, slot);
        self.b.ins().jump(direct, &args);
        self.direct_call(direct, pc, dst, base);
    }

    /// `CallMethod` on a record whose method the inline cache holds: called directly as
    /// `call_func` does (the receiver is argument 0); anything else goes to the VM.
    fn call_method(&mut self, pc: usize, dst: u16, base: u16, argc: u16, name: u32) {
        if let Some(m) = inline::candidate(self.feedback, pc, argc) {
            if std::env::var_os("MOLT_JIT_REPORT").is_some() {
                eprintln!("jit: inlined {} at instruction {pc}", m.func.proto.name);
            }
            let (general, next) = (self.b.create_block(), self.next(pc));
            self.inline_method(dst, base, &m, general, next);
            self.b.switch_to_block(general);
        }
        let step = self.step_block(pc);
        let (slow, direct) = (self.b.create_block(), self.direct_block());
        self.b.set_cold_block(slow);
        let (_, slot) = self.cached_record(pc, base, slow);
        self.direct_call_checks(slot, argc + 1, base, direct, step);
        // Not a record's cached method: a built-in type's method runs in the VM directly,
        // the rest (methods of records missing the cache, prelude methods) is stepped.
        self.b.switch_to_block(slow);
        let packed = dst as u64 | (base as u64) << 16 | (argc as u64) << 32;
        let done = self.call_helper(self.helpers.builtin_method, pc, packed, name as u64);
        let next = self.next(pc);
        self.b.ins().brif(done, next, &[], step, &[]);
        self.direct_call(direct, pc, dst, base);
    }

    /// Fills `direct` (see `direct_block`): the callee's ctx built from this one, the native
    /// call, and what its exit code says.
    fn direct_call(&mut self, direct: Block, pc: usize, dst: u16, base: u16) {
        let next = self.next(pc);
        self.b.switch_to_block(direct);
        let params = self.b.block_params(direct).to_vec();
        let (entry, real, slot_no, frame_base, budget, caches, consts) =
            (params[0], params[1], params[2], params[3], params[4], params[5], params[6]);
        let slot = match self.callee_ctx {
            Some(s) => s,
            None => {
                let data = ir::StackSlotData::new(ir::StackSlotKind::ExplicitSlot, crate::CTX_SIZE, 3);
                let s = self.b.create_sized_stack_slot(data);
                self.callee_ctx = Some(s);
                s
            }
        };
        let callee = self.b.ins().stack_addr(types::I64, slot, 0);
        let regs = self.regs();
        let callee_regs = self.b.ins().iadd_imm_s(regs, Self::off(base) as i64);
        self.b.ins().store(flags(), callee_regs, callee, CTX_REGS);
        self.b.ins().store(flags(), self.shared, callee, CTX_SHARED);
        let callee_base = self.b.ins().iadd_imm_s(frame_base, base as i64);
        self.b.ins().store(flags(), callee_base, callee, CTX_BASE);
        let ret = self.b.ins().iadd_imm_s(frame_base, dst as i64);
        self.b.ins().store(flags(), ret, callee, CTX_RET);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.ins().store(flags(), zero, callee, CTX_PC);
        let budget = self.b.ins().iadd_imm_s(budget, -1);
        self.b.ins().store(flags(), budget, callee, CTX_BUDGET);
        self.b.ins().store(flags(), self.ctx, callee, CTX_PARENT);
        self.b.ins().store(flags(), slot_no, callee, CTX_SLOT);
        self.b.ins().store(flags(), real, callee, CTX_REAL);
        self.b.ins().store(flags(), caches, callee, CTX_CACHES);
        self.b.ins().store(flags(), consts, callee, CTX_CONSTS);
        // This activation is now in the call after `pc` (for its frame, if made real).
        let after = self.b.ins().iconst(types::I64, pc as i64 + 1);
        self.b.ins().store(flags(), after, self.ctx, CTX_PC);
        let call = self.b.ins().call_indirect(self.entry_sig, entry, &[callee]);
        let code = self.b.inst_results(call)[0];
        // The stack may have moved under the callee: its ctx has the current registers
        // (every activation keeps its ctx's `regs` current after its calls, for its caller).
        let callee_regs = self.b.ins().load(types::I64, flags(), callee, CTX_REGS);
        let regs = self.b.ins().iadd_imm_s(callee_regs, -(Self::off(base) as i64));
        self.b.def_var(self.regs, regs);
        self.b.ins().store(flags(), regs, self.ctx, CTX_REGS);
        let kind = self.b.ins().ushr_imm_u(code, 32);
        let (returned, returned_nil, other, resume, popped) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        // Kind 0 (a value) is a code below 2^32; offsets are far below 2^31, so one compare
        // with an immediate tells.
        const _: () = assert!(EXIT_RETURNED == 0);
        let is_value = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, code, 1 << 31);
        self.b.ins().brif(is_value, returned, &[], other, &[]);
        self.b.switch_to_block(other);
        let is_nil = self.b.ins().icmp_imm_u(IntCC::Equal, kind, EXIT_RETURNED_NIL as i64);
        let not_nil = self.b.create_block();
        self.b.ins().brif(is_nil, returned_nil, &[], not_nil, &[]);
        self.b.switch_to_block(not_nil);
        let failed = self.b.ins().icmp_imm_u(IntCC::Equal, kind, EXIT_ERROR as i64);
        let error = self.error_block();
        self.b.ins().brif(failed, error, &[], resume, &[]);
        // Returned: the value goes from the callee's register to `dst`, here (a copy in Rust
        // would read the value with loads spanning the stores that wrote it, which stalls).
        self.b.switch_to_block(returned);
        // Returned: the low word of the code is the register's offset (the high word is 0).
        let from = self.b.ins().iadd(callee_regs, code);
        let lo = self.b.ins().load(types::I64, flags(), from, 0);
        let hi = self.b.ins().load(types::I64, flags(), from, 8);
        self.b.ins().store(flags(), lo, regs, Self::off(dst));
        self.b.ins().store(flags(), hi, regs, Self::off(dst) + 8);
        self.b.ins().jump(popped, &[]);
        self.b.switch_to_block(returned_nil);
        let nil = self.b.ins().iconst(types::I64, tag::NIL as i64);
        self.b.ins().store(flags(), nil, regs, Self::off(dst));
        self.b.ins().jump(popped, &[]);
        // A real frame is popped by the VM; a virtual one has nothing to pop.
        self.b.switch_to_block(popped);
        let real = self.b.ins().load(types::I64, flags(), callee, CTX_REAL);
        let pop = self.b.create_block();
        self.b.ins().brif(real, pop, &[], next, &[]);
        self.b.switch_to_block(pop);
        self.call_helper(self.helpers.call_exit, pc, 0, 0);
        self.b.ins().jump(next, &[]);
        // Left at an update point (after making its frame real): the VM finishes the callee
        // in the interpreter.
        self.b.switch_to_block(resume);
        let unused = self.b.ins().iconst(types::I64, 0);
        self.call_helper_with(self.helpers.call_exit, pc, code, unused);
        self.b.ins().jump(next, &[]);
    }

    fn instr(&mut self, pc: usize, ins: Instr, consts: &[Value]) {
        use Instr::*;
        match ins {
            Move { dst, src } => {
                let regs = self.regs();
                let lo = self.b.ins().load(types::I64, flags(), regs, Self::off(src));
                let hi = self.b.ins().load(types::I64, flags(), regs, Self::off(src) + 8);
                self.b.ins().store(flags(), lo, regs, Self::off(dst));
                self.b.ins().store(flags(), hi, regs, Self::off(dst) + 8);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            LoadNil { dst } => {
                self.set_tag(dst, tag::NIL);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            LoadTrue { dst } | LoadFalse { dst } => {
                let v = self.b.ins().iconst(types::I32, matches!(ins, LoadTrue { .. }) as i64);
                self.store_bool(dst, v);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            LoadInt { dst, value } => {
                let v = self.b.ins().iconst(types::I64, value as i64);
                self.store_int(dst, v);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            LoadConst { dst, k } => {
                match consts.get(k as usize) {
                    Some(Value::Int(i)) => {
                        let v = self.b.ins().iconst(types::I64, *i);
                        self.store_int(dst, v);
                    }
                    Some(Value::Float(f)) => {
                        self.set_tag(dst, tag::FLOAT);
                        let v = self.b.ins().iconst(types::I64, f.to_bits() as i64);
                        let regs = self.regs();
                        self.b.ins().store(flags(), v, regs, Self::off(dst) + tag::PAYLOAD_OFFSET);
                    }
                    // A string: an object of the running function's version (code is shared
                    // between versions), read from its constants.
                    Some(_) => {
                        let table = self.b.ins().load(types::I64, flags(), self.ctx, CTX_CONSTS);
                        let (lo, hi) = self.load_value(table, k as i32 * tag::SIZE);
                        self.store_value(dst, lo, hi);
                    }
                    None => return self.step(pc),
                }
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            Add { dst, a, b } => {
                let (int_op, float_op): (IntOp, FloatOp) =
                    (|g, x, y| g.b.ins().sadd_overflow(x, y), |g, x, y| g.b.ins().fadd(x, y));
                self.arith(pc, (dst, a, b), Some(int_op), float_op, Some(0))
            }
            Sub { dst, a, b } => {
                let (int_op, float_op): (IntOp, FloatOp) =
                    (|g, x, y| g.b.ins().ssub_overflow(x, y), |g, x, y| g.b.ins().fsub(x, y));
                self.arith(pc, (dst, a, b), Some(int_op), float_op, Some(1))
            }
            Mul { dst, a, b } => {
                let (int_op, float_op): (IntOp, FloatOp) =
                    (|g, x, y| g.b.ins().smul_overflow(x, y), |g, x, y| g.b.ins().fmul(x, y));
                self.arith(pc, (dst, a, b), Some(int_op), float_op, Some(2))
            }
            Div { dst, a, b } => {
                let int_op: IntOp = |g, x, y| g.int_divide(x, y, false);
                self.arith(pc, (dst, a, b), Some(int_op), |g, x, y| g.b.ins().fdiv(x, y), None)
            }
            Mod { dst, a, b } => {
                // Ints inline; floats (Cranelift has no `frem`) and errors through the VM.
                let ints = self.both_int(a, b);
                self.guard(ints, pc);
                let (x, y) = (self.payload(a), self.payload(b));
                let (r, bad) = self.int_divide(x, y, true);
                self.store_int_checked(pc, dst, r, bad);
            }
            AddImm { dst, a, value } => {
                let int = self.is_int(a);
                self.guard(int, pc);
                let x = self.payload(a);
                let y = self.b.ins().iconst(types::I64, value as i64);
                let (r, overflow) = self.b.ins().sadd_overflow(x, y);
                self.store_int_checked(pc, dst, r, overflow);
            }
            Neg { dst, a } => {
                let int = self.is_int(a);
                self.guard(int, pc);
                let x = self.payload(a);
                let zero = self.b.ins().iconst(types::I64, 0);
                let (r, overflow) = self.b.ins().ssub_overflow(zero, x);
                self.store_int_checked(pc, dst, r, overflow);
            }
            Lt { dst, a, b } => self.compare(pc, dst, a, b, IntCC::SignedLessThan),
            Le { dst, a, b } => self.compare(pc, dst, a, b, IntCC::SignedLessThanOrEqual),
            Gt { dst, a, b } => self.compare(pc, dst, a, b, IntCC::SignedGreaterThan),
            Ge { dst, a, b } => self.compare(pc, dst, a, b, IntCC::SignedGreaterThanOrEqual),
            Eq { dst, a, b } => self.compare(pc, dst, a, b, IntCC::Equal),
            Ne { dst, a, b } => self.compare(pc, dst, a, b, IntCC::NotEqual),
            JumpIfNotLt { a, b, target } => self.branch_unless(pc, a, b, target, IntCC::SignedLessThan),
            JumpIfNotLe { a, b, target } => self.branch_unless(pc, a, b, target, IntCC::SignedLessThanOrEqual),
            JumpIfNotGt { a, b, target } => self.branch_unless(pc, a, b, target, IntCC::SignedGreaterThan),
            JumpIfNotGe { a, b, target } => self.branch_unless(pc, a, b, target, IntCC::SignedGreaterThanOrEqual),
            Jump { target } => {
                let t = self.blocks[target as usize];
                self.b.ins().jump(t, &[]);
            }
            Loop { target } => {
                // The interpreter raises the interrupt: hand over before jumping back.
                let clear = self.flag_clear(Signals::INTERRUPT | Signals::COLLECT);
                self.guard(clear, pc);
                let t = self.loop_entry(target as usize);
                self.b.ins().jump(t, &[]);
            }
            JumpIfFalse { cond, target } | JumpIfTrue { cond, target } => {
                let f = self.falsy(cond);
                let (next, target) = (self.next(pc), self.blocks[target as usize]);
                if matches!(ins, JumpIfFalse { .. }) {
                    self.b.ins().brif(f, target, &[], next, &[]);
                } else {
                    self.b.ins().brif(f, next, &[], target, &[]);
                }
            }
            ForPrep { base, var, exit } => {
                let ints = self.both_int(base, base + 1);
                self.guard(ints, pc);
                let start = self.payload(base + 1);
                let end = self.payload(base);
                let more = self.b.ins().icmp(IntCC::SignedLessThan, start, end);
                let body = self.b.create_block();
                let exit = self.blocks[exit as usize];
                self.b.ins().brif(more, body, &[], exit, &[]);
                self.b.switch_to_block(body);
                self.store_int(var, start);
                let next = self.loop_entry(pc + 1);
                self.b.ins().jump(next, &[]);
            }
            ForLoop { base, var, target } => {
                let done = self.next(pc);
                self.for_loop(pc, base, var, target, done);
            }
            UpdateLoop { target, .. } => {
                self.update_point(pc);
                let clear = self.flag_clear(Signals::INTERRUPT | Signals::COLLECT);
                self.guard(clear, pc);
                let t = self.loop_entry(target as usize);
                self.b.ins().jump(t, &[]);
            }
            UpdateForLoop { base, var, target, .. } => {
                self.update_point(pc);
                // When the loop is done, skip the plain `ForLoop` that follows.
                let done = self.blocks[pc + 2];
                self.for_loop(pc, base, var, target, done);
            }
            // The register's offset in the frame: what the caller of a direct call copies from.
            Return { src } => self.exit(EXIT_RETURNED, Self::off(src) as u64),
            ReturnNil {} => self.exit(EXIT_RETURNED_NIL, 0),
            Update { .. } => {
                self.update_point(pc);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            GetField { .. } | SetField { .. } => self.field(pc, ins),
            CallFunc { dst, f, base, argc } => self.call_func(pc, dst, f, base, argc),
            CallMethod { dst, base, argc, name } => self.call_method(pc, dst, base, argc, name),
            GetIndex { dst, obj, index } => self.get_index(pc, dst, obj, index),
            GetGlobal { dst, g } => {
                let Some(at) = Self::global_offset(g) else { return self.step(pc) };
                let globals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_GLOBALS);
                let (lo, hi) = self.load_value(globals, at);
                self.store_value(dst, lo, hi);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            SetGlobal { g, src } => {
                let Some(at) = Self::global_offset(g) else { return self.step(pc) };
                let globals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_GLOBALS);
                let regs = self.regs();
                let (lo, hi) = self.load_value(regs, Self::off(src));
                self.b.ins().store(flags(), lo, globals, at);
                self.b.ins().store(flags(), hi, globals, at + 8);
                let next = self.next(pc);
                self.b.ins().jump(next, &[]);
            }
            IterNext { base, var, exit } => self.iter_next(pc, base, var, exit),
            NewRecord { dst, ty, base, n } => self.helper_op(self.helpers.new_record, pc, [dst, base, n], ty),
            CallNative { dst, native, base, argc: 1 } if Some(native) == self.intrinsics.sqrt => {
                self.sqrt(pc, dst, base)
            }
            CallNative { dst, native, base, argc } => {
                self.helper_op(self.helpers.call_native, pc, [dst, base, argc], native)
            }
            _ => self.step(pc),
        }
    }
}

/// The functions `build` would inline into `proto` given `feedback` (by address): compiled
/// code that inlines a function is guarded by that function's identity, so it can be shared
/// only with functions that would inline the same ones (`code::content_key`).
pub(crate) fn inlined_identities(proto: &Proto, feedback: Feedback) -> Vec<usize> {
    let mut out = Vec::new();
    for (pc, ins) in proto.code.iter().enumerate() {
        let f = match *ins {
            Instr::CallFunc { f, argc, .. } => call_prefix::candidate(feedback, f, argc).map(|c| Rc::as_ptr(&c)),
            Instr::CallMethod { argc, .. } => inline::candidate(feedback, pc, argc).map(|m| Rc::as_ptr(&m.func)),
            _ => None,
        };
        out.extend(f.map(|f| f as usize));
    }
    out
}

/// Per pc, whether an instruction jumps there.
fn jump_targets(code: &[Instr]) -> Vec<bool> {
    let mut targets = vec![false; code.len() + 1];
    for ins in code {
        for (_, kind, value) in ins.operands() {
            if kind == OperandKind::Jump
                && let Some(t) = targets.get_mut(value as usize)
            {
                *t = true;
            }
        }
    }
    targets
}

/// Builds the IR of `proto` into `func`, calling `helpers` (declared in `func`).
pub fn build(
    func: &mut ir::Function,
    fctx: &mut FunctionBuilderContext,
    proto: &Proto,
    consts: &[Value],
    feedback: Feedback,
    config: TargetFrontendConfig,
    runtime: Runtime,
) -> Result<Inlined, String> {
    let Runtime { helpers, heap, intrinsics } = runtime;
    if proto.code.is_empty() {
        return Err("empty function".into());
    }
    let mut b = FunctionBuilder::new(func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    let blocks: Vec<Block> = (0..proto.code.len()).map(|_| b.create_block()).collect();
    b.switch_to_block(entry);
    let ctx = b.block_params(entry)[0];
    let regs = b.declare_var(types::I64);
    let first = b.ins().load(types::I64, flags(), ctx, CTX_REGS);
    b.def_var(regs, first);
    let shared = b.ins().load(types::I64, flags(), ctx, CTX_SHARED);
    let slow = vec![None; proto.code.len()];
    let mut sig = ir::Signature::new(config.default_call_conv);
    sig.params.push(ir::AbiParam::new(types::I64));
    sig.returns.push(ir::AbiParam::new(types::I64));
    let entry_sig = b.import_signature(sig);
    let mut g = Gen {
        b: &mut b,
        code: &proto.code,
        consts,
        nregs: proto.nregs as usize,
        jump_target: jump_targets(&proto.code),
        ctx,
        shared,
        regs,
        helpers,
        blocks,
        slow,
        dispatch: None,
        exits: Vec::new(),
        error: None,
        entry_sig,
        callee_ctx: None,
        heap,
        intrinsics,
        int_loops: Vec::new(),
        typed_loops: Vec::new(),
        feedback,
        inlined: Vec::new(),
    };
    for l in int_loops::find(&proto.code) {
        let check = g.b.create_block();
        g.int_loops.push((l, check));
    }
    for l in typed_loops::find(&proto.code, consts, intrinsics.sqrt) {
        if g.int_loops.iter().all(|(i, _)| i.start != l.start) {
            if std::env::var_os("MOLT_JIT_REPORT").is_some() {
                eprintln!("jit: {}: typed loop over instructions {}..{}", proto.name, l.start, l.back);
            }
            let entry = g.b.create_block();
            g.typed_loops.push((l, entry));
        }
    }
    // Start at instruction 0, or at the loop head the interpreter hands over (OSR).
    let entry_pc = g.b.ins().load(types::I64, flags(), ctx, CTX_PC);
    let at_start = g.b.ins().icmp_imm_u(IntCC::Equal, entry_pc, 0);
    let dispatch = g.dispatch_block();
    let first_block = g.blocks[0];
    g.b.ins().brif(at_start, first_block, &[], dispatch, &[ir::BlockArg::Value(entry_pc)]);
    for (pc, ins) in proto.code.iter().enumerate() {
        let block = g.blocks[pc];
        g.b.switch_to_block(block);
        g.instr(pc, *ins, consts);
    }
    g.finish_int_loops();
    g.finish_typed_loops(feedback);
    g.finish_slow_paths();
    g.finish_dispatch();
    let inlined = std::mem::take(&mut g.inlined);
    b.seal_all_blocks();
    b.finalize(config);
    Ok(inlined)
}
