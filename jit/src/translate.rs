//! Bytecode to Cranelift IR. One IR block per instruction; registers are loads and stores on
//! the frame (`regs + 16 * r`: tag byte at 0, payload at 8), so no value lives only in a
//! machine register across a call into the VM, and the interpreter can take over anywhere.
//! The fast paths (ints, fused compares, counting loops, moves, constants) are inline; every
//! other instruction, and every fast path whose guard fails (a value of another type, an
//! overflow, an interrupt), is handed to the VM's `tier_step`, which runs that one
//! instruction in the interpreter before compiled code continues at the pc it returns. Only
//! update points with an update waiting leave compiled code ("resume at this pc").

use std::rc::Rc;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, Block, FuncRef, InstBuilder, JumpTableData, MemFlagsData, types};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use molt_vm::opcodes::{ArithOp, CmpOp};
use molt_vm::signals::Signals;
use molt_vm::tier::Feedback;
use molt_vm::value::tag;
use molt_vm::{Instr, OperandKind, Proto, Value};

use crate::{
    CTX_CONSTS, CTX_PC, CTX_REGS, CTX_SHARED, EXIT_ERROR, EXIT_RESUME, EXIT_RETURNED, EXIT_RETURNED_NIL, HeapLayout,
    SHARED_GLOBALS, SHARED_SIGNALS, SHARED_TASK_BUDGET, STEP_ERROR,
};

mod call_prefix;
mod calls;
mod heap;
mod inline;
mod loops;

pub(crate) use inline::Inlined;
use loops::{IntLoop, TypedLoop};

/// Registers are 16 bytes (shifts by 4 below rely on it).
const _: () = assert!(tag::SIZE == 16);

type IntOp = fn(&mut Gen, ir::Value, ir::Value) -> (ir::Value, ir::Value);
type FloatOp = fn(&mut Gen, ir::Value, ir::Value) -> ir::Value;

/// The int comparison of an operator (signed).
fn int_cc(op: CmpOp) -> IntCC {
    match op {
        CmpOp::Eq => IntCC::Equal,
        CmpOp::Ne => IntCC::NotEqual,
        CmpOp::Lt => IntCC::SignedLessThan,
        CmpOp::Le => IntCC::SignedLessThanOrEqual,
        CmpOp::Gt => IntCC::SignedGreaterThan,
        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
    }
}

/// The float comparison of an operator: ordered (false with a NaN) except `!=`, which holds
/// with a NaN, as Rust's float operators do.
fn float_cc(op: CmpOp) -> FloatCC {
    match op {
        CmpOp::Eq => FloatCC::Equal,
        CmpOp::Ne => FloatCC::NotEqual,
        CmpOp::Lt => FloatCC::LessThan,
        CmpOp::Le => FloatCC::LessThanOrEqual,
        CmpOp::Gt => FloatCC::GreaterThan,
        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
    }
}

/// The VM helpers (see `HELPERS` in lib.rs), declared in the function being built.
pub struct Helpers {
    pub step: FuncRef,
    pub get_field: FuncRef,
    pub set_field: FuncRef,
    pub call_func: FuncRef,
    pub get_index: FuncRef,
    /// A pure helper (`PURE_HELPERS`): called without the ctx.
    pub map_get_int: FuncRef,
    pub map_method_int: FuncRef,
    pub map_set_int: FuncRef,
    pub list_push: FuncRef,
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
    pub len: Option<u32>,
    /// Method names: a map's `has` and `remove` by an int key.
    pub has: Option<u32>,
    pub remove: Option<u32>,
    /// A list's `push`.
    pub push: Option<u32>,
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
    /// Counting loops compiled a second time over machine registers (`loops::int`), with the
    /// block that checks whether the specialised version can be entered.
    int_loops: Vec<(IntLoop, Block)>,
    /// Counting loops compiled a second time, typed (`loops::typed`), with their entry.
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

    /// A loop back-edge's safepoint: an interrupt, a status request or a due collection
    /// hands the instruction to the interpreter; with tasks, it is a reduction. One test of
    /// the signal word decides when nothing is asked (the common case).
    fn back_edge_checks(&mut self, pc: usize) {
        let bail = self.fallback(pc);
        self.safepoint(bail);
    }

    /// A safepoint's checks (a back-edge, a call compiled code makes itself): an interrupt,
    /// a status request or a due collection goes to `otherwise` (the interpreter or the VM's
    /// call, which handle them); with tasks the safepoint is a reduction (`reduction`). One
    /// test of the signal word when nothing is asked.
    pub(super) fn safepoint(&mut self, otherwise: Block) {
        let word = self.signal_word();
        let set = self.b.ins().band_imm_u(word, (Signals::ATTENTION | Signals::COLLECT | Signals::TASKS) as i64);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
        let (on, asked) = (self.b.create_block(), self.b.create_block());
        self.b.set_cold_block(asked);
        self.b.ins().brif(quiet, on, &[], asked, &[]);
        self.b.switch_to_block(asked);
        let vm_bits = self.b.ins().band_imm_u(word, (Signals::ATTENTION | Signals::COLLECT) as i64);
        let only_tasks = self.b.ins().icmp_imm_u(IntCC::Equal, vm_bits, 0);
        let count = self.b.create_block();
        self.b.ins().brif(only_tasks, count, &[], otherwise, &[]);
        self.b.switch_to_block(count);
        self.count_reduction(otherwise);
        self.b.ins().jump(on, &[]);
        self.b.switch_to_block(on);
    }

    /// With tasks (`Signals::TASKS`), a call or a loop back-edge is a reduction: while the
    /// running task has more than one left, compiled code counts it; the last one goes to
    /// `otherwise` (the interpreter, or the VM's call), which counts it and may switch tasks,
    /// exactly where the interpreter alone would have.
    pub(super) fn reduction(&mut self, otherwise: Block) {
        self.with_tasks(|g| g.count_reduction(otherwise));
    }

    /// A built-in function called inline (`sqrt`, `len`): with tasks, it uses one of the
    /// running task's reductions as the interpreter's call does (never switching there: the
    /// next call or back-edge does).
    pub(super) fn native_reduction(&mut self) {
        self.with_tasks(|g| {
            let at = g.b.ins().load(types::I64, flags(), g.shared, SHARED_TASK_BUDGET);
            let left = g.b.ins().uload32(flags(), at, 0);
            let fewer = g.b.ins().iadd_imm_s(left, -1);
            let zero = g.b.ins().iconst(types::I64, 0);
            let some = g.b.ins().icmp_imm_u(IntCC::NotEqual, left, 0);
            let fewer = g.b.ins().select(some, fewer, zero);
            g.b.ins().istore32(flags(), fewer, at, 0);
        });
    }

    /// Runs `count` (out of line) only with tasks (`Signals::TASKS`), then continues.
    fn with_tasks(&mut self, count: impl FnOnce(&mut Self)) {
        let word = self.signal_word();
        let set = self.b.ins().band_imm_u(word, Signals::TASKS as i64);
        let none = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
        let (on, tasks) = (self.b.create_block(), self.b.create_block());
        self.b.set_cold_block(tasks);
        self.b.ins().brif(none, on, &[], tasks, &[]);
        self.b.switch_to_block(tasks);
        count(self);
        self.b.ins().jump(on, &[]);
        self.b.switch_to_block(on);
    }

    /// Counts one reduction when more than one is left (continuing in a new block), else
    /// goes to `otherwise`.
    fn count_reduction(&mut self, otherwise: Block) {
        let at = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TASK_BUDGET);
        let left = self.b.ins().uload32(flags(), at, 0);
        let more = self.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, left, 1);
        let count = self.b.create_block();
        self.b.ins().brif(more, count, &[], otherwise, &[]);
        self.b.switch_to_block(count);
        let fewer = self.b.ins().iadd_imm_s(left, -1);
        self.b.ins().istore32(flags(), fewer, at, 0);
    }

    /// The VM's signal word (an atomic load).
    pub(super) fn signal_word(&mut self) -> ir::Value {
        let signals = self.b.ins().load(types::I64, flags(), self.shared, SHARED_SIGNALS);
        self.b.ins().atomic_load(types::I32, flags(), signals)
    }

    /// A range loop back-edge (see `ForLoop`); `done` is where a finished loop continues.
    fn for_loop(&mut self, pc: usize, base: u16, var: u16, target: u32, done: Block) {
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
        // Only a step that goes round again is a back-edge (and, with tasks, a reduction), as
        // in the interpreter; nothing was written yet, so the interpreter can redo the step.
        self.back_edge_checks(pc);
        self.store_int(base + 1, nxt);
        self.store_int(var, nxt);
        // A loop with an int version tries it at each iteration (it may have been entered
        // mid-way, from the interpreter).
        let t = self.loop_entry(target as usize);
        self.b.ins().jump(t, &[]);
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
        if self.code[pc].update_point().is_some() {
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

    /// Int `x op y`: the result, and whether the VM must do it instead (an overflow, or a
    /// division's errors: see `int_divide`).
    fn int_arith(&mut self, op: ArithOp, x: ir::Value, y: ir::Value) -> (ir::Value, ir::Value) {
        match op {
            ArithOp::Add => self.b.ins().sadd_overflow(x, y),
            ArithOp::Sub => self.b.ins().ssub_overflow(x, y),
            ArithOp::Mul => self.b.ins().smul_overflow(x, y),
            ArithOp::Div => self.int_divide(x, y, false),
            ArithOp::Mod => self.int_divide(x, y, true),
        }
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
        self.native_reduction();
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// `len(R[a])` of a list, inline; anything else (strings, maps, errors) goes to the VM.
    fn list_len(&mut self, pc: usize, dst: u16, a: u16) {
        let t = self.tag(a);
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        self.guard(is_obj, pc);
        let (o, is_list) = self.heap_object(a, self.heap.list_tag);
        self.guard(is_list, pc);
        let len = self.b.ins().load(types::I64, flags(), o, self.heap.list_len_offset);
        self.store_int(dst, len);
        self.native_reduction();
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

    /// `a op b` on two ints or two floats, as an i8 truth value, continuing in the returned
    /// block (both paths join there).
    fn test(&mut self, pc: usize, a: u16, b: u16, op: CmpOp) -> ir::Value {
        let (int_block, float_block) = self.by_type(pc, a, b);
        let join = self.b.create_block();
        let truth = self.b.append_block_param(join, types::I8);
        self.b.switch_to_block(int_block);
        let (x, y) = (self.payload(a), self.payload(b));
        let c = self.b.ins().icmp(int_cc(op), x, y);
        self.b.ins().jump(join, &[ir::BlockArg::Value(c)]);
        self.b.switch_to_block(float_block);
        let (x, y) = (self.float_payload(a), self.float_payload(b));
        let c = self.b.ins().fcmp(float_cc(op), x, y);
        self.b.ins().jump(join, &[ir::BlockArg::Value(c)]);
        self.b.switch_to_block(join);
        truth
    }

    fn compare(&mut self, pc: usize, dst: u16, a: u16, b: u16, op: CmpOp) {
        let c = self.test(pc, a, b, op);
        self.store_bool(dst, c);
        let next = self.next(pc);
        self.b.ins().jump(next, &[]);
    }

    /// Jump to `target` unless `a op b`.
    fn branch_unless(&mut self, pc: usize, a: u16, b: u16, target: u32, op: CmpOp) {
        let (next, target) = (self.next(pc), self.blocks[target as usize]);
        if let Some(k) = self.constant_before(pc, b) {
            // `n < 2`: only `a`'s type is unknown (an int; anything else goes to the VM).
            let is_int = self.is_int(a);
            let bail = self.fallback(pc);
            let ints = self.b.create_block();
            self.b.ins().brif(is_int, ints, &[], bail, &[]);
            self.b.switch_to_block(ints);
            let x = self.payload(a);
            let c = self.b.ins().icmp_imm_s(int_cc(op), x, k);
            self.b.ins().brif(c, next, &[], target, &[]);
            return;
        }
        let c = self.test(pc, a, b, op);
        self.b.ins().brif(c, next, &[], target, &[]);
    }

    /// The int constant register `r` holds at `pc` when the instruction just before set it
    /// (`LoadInt`, always done inline) and nothing else can lead to `pc` (not a jump target,
    /// so neither a jump nor a step the VM finishes elsewhere continues here).
    fn constant_before(&self, pc: usize, r: u16) -> Option<i64> {
        let Instr::LoadInt { dst, value } = *self.code.get(pc.checked_sub(1)?)? else { return None };
        (dst == r && !self.jump_target[pc]).then_some(value as i64)
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
            Lt { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Lt),
            Le { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Le),
            Gt { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Gt),
            Ge { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Ge),
            Eq { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Eq),
            Ne { dst, a, b } => self.compare(pc, dst, a, b, CmpOp::Ne),
            JumpIfNotLt { a, b, target } => self.branch_unless(pc, a, b, target, CmpOp::Lt),
            JumpIfNotLe { a, b, target } => self.branch_unless(pc, a, b, target, CmpOp::Le),
            JumpIfNotGt { a, b, target } => self.branch_unless(pc, a, b, target, CmpOp::Gt),
            JumpIfNotGe { a, b, target } => self.branch_unless(pc, a, b, target, CmpOp::Ge),
            Jump { target } => {
                let t = self.blocks[target as usize];
                self.b.ins().jump(t, &[]);
            }
            Loop { target } => {
                // The interpreter raises the interrupt: hand over before jumping back.
                self.back_edge_checks(pc);
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
                self.back_edge_checks(pc);
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
            GetField { dst, obj, name } => self.field(pc, obj, dst, false, name),
            SetField { obj, name, src } => self.field(pc, obj, src, true, name),
            CallFunc { dst, f, base, argc } => self.call_func(pc, dst, f, base, argc),
            CallMethod { dst, base, argc, name } => self.call_method(pc, dst, base, argc, name),
            GetIndex { dst, obj, index } => self.get_index(pc, dst, obj, index),
            SetIndex { obj, index, src } => self.set_index(pc, obj, index, src),
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
            CallNative { dst, native, base, argc: 1 } if self.intrinsics.sqrt == Some(native) => {
                self.sqrt(pc, dst, base)
            }
            CallNative { dst, native, base, argc: 1 } if self.intrinsics.len == Some(native) => {
                self.list_len(pc, dst, base)
            }
            CallNative { dst, native, base, argc } => {
                self.helper_op(self.helpers.call_native, pc, [dst, base, argc], native)
            }
            // The VM runs the rest (`step`).
            LoadFunc { .. }
            | LoadNative { .. }
            | Closure { .. }
            | Not { .. }
            | Range { .. }
            | NewList { .. }
            | NewMap { .. }
            | Call { .. }
            | IterPrep { .. } => self.step(pc),
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
            Instr::Move { .. }
            | Instr::LoadNil { .. }
            | Instr::LoadTrue { .. }
            | Instr::LoadFalse { .. }
            | Instr::LoadInt { .. }
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
            | Instr::CallNative { .. }
            | Instr::Return { .. }
            | Instr::ReturnNil {}
            | Instr::IterPrep { .. }
            | Instr::IterNext { .. }
            | Instr::ForPrep { .. }
            | Instr::ForLoop { .. }
            | Instr::Update { .. }
            | Instr::UpdateLoop { .. }
            | Instr::UpdateForLoop { .. } => None,
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
    for l in loops::int::find(&proto.code) {
        let check = g.b.create_block();
        g.int_loops.push((l, check));
    }
    for l in loops::typed::find(&proto.code, consts, intrinsics) {
        // Also for an int loop: entered when its registers are not all ints.
        if std::env::var_os("MOLT_JIT_REPORT").is_some() {
            eprintln!("jit: {}: typed loop over instructions {}..{}", proto.name, l.start, l.back);
        }
        let entry = g.b.create_block();
        g.typed_loops.push((l, entry));
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
