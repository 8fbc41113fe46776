//! Calls in compiled code: direct calls of compiled functions (a native call with a virtual
//! frame, see `Ctx` in lib.rs), the checks before them, and the room an inlined call must
//! leave as a real one would. `call_prefix` and `inline` make some calls without a call.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, types};
use molt_vm::func_table::TierSlot;
use molt_vm::signals::Signals;
use molt_vm::value::tag;

use super::{Gen, call_prefix, flags, inline};
use crate::{
    CTX_BASE, CTX_BUDGET, CTX_CACHES, CTX_CONSTS, CTX_PARENT, CTX_PC, CTX_REAL, CTX_REGS, CTX_RET, CTX_SHARED,
    CTX_SLOT, EXIT_ERROR, EXIT_RETURNED, EXIT_RETURNED_NIL, SHARED_STACK_LEN, SHARED_TASK_BUDGET, SHARED_TIER_SLOTS,
};

impl Gen<'_, '_> {
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
        self.safepoint(slow);
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
    pub(super) fn room_for_call(&mut self, base: u16, nregs: u32, otherwise: Block) {
        let budget = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BUDGET);
        let deeper = self.b.ins().icmp_imm_u(IntCC::NotEqual, budget, 0);
        self.continue_if(deeper, otherwise);
        let frame_base = self.b.ins().load(types::I64, flags(), self.ctx, CTX_BASE);
        let top = self.b.ins().iadd_imm_s(frame_base, base as i64 + nregs as i64);
        let stack_len = self.b.ins().load(types::I64, flags(), self.shared, SHARED_STACK_LEN);
        let fits = self.b.ins().icmp(IntCC::UnsignedLessThan, top, stack_len);
        self.continue_if(fits, otherwise);
        // The call is a reduction, as the interpreter's would be: counted last, so that no
        // check above sends a counted call on to `otherwise`, which counts it again.
        self.reduction(otherwise);
    }

    /// A block that gives back the reduction `room_for_call` counted (with tasks) and goes on
    /// to `to`: where inlined code that passed it finds, before any effect, that it must make
    /// the call after all (which counts it).
    pub(super) fn refunding(&mut self, to: Block) -> Block {
        let refund = self.b.create_block();
        self.b.set_cold_block(refund);
        let here = self.b.current_block().expect("inside a block");
        self.b.switch_to_block(refund);
        let word = self.signal_word();
        let set = self.b.ins().band_imm_u(word, Signals::TASKS as i64);
        let none = self.b.ins().icmp_imm_u(IntCC::Equal, set, 0);
        let give = self.b.create_block();
        self.b.ins().brif(none, to, &[], give, &[]);
        self.b.switch_to_block(give);
        let at = self.b.ins().load(types::I64, flags(), self.shared, SHARED_TASK_BUDGET);
        let left = self.b.ins().uload32(flags(), at, 0);
        let more = self.b.ins().iadd_imm_s(left, 1);
        self.b.ins().istore32(flags(), more, at, 0);
        self.b.ins().jump(to, &[]);
        self.b.switch_to_block(here);
        refund
    }

    /// Continues in a new block when `cond` holds, else in `otherwise`.
    pub(super) fn continue_if(&mut self, cond: ir::Value, otherwise: Block) {
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
    pub(super) fn call_func(&mut self, pc: usize, dst: u16, f: u32, base: u16, argc: u16) {
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
    pub(super) fn call_method(&mut self, pc: usize, dst: u16, base: u16, argc: u16, name: u32) {
        let map_method = [self.intrinsics.has, self.intrinsics.remove].iter().position(|&m| m == Some(name));
        if let (Some(which), 1) = (map_method, argc) {
            let (general, next) = (self.b.create_block(), self.next(pc));
            self.map_method_int(dst, base, which as u64, next, general);
            self.b.switch_to_block(general);
        }
        if self.intrinsics.push == Some(name) && argc == 1 {
            let (general, next) = (self.b.create_block(), self.next(pc));
            self.list_push(dst, base, next, general);
            self.b.switch_to_block(general);
        }
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
}
