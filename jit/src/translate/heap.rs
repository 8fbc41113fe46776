//! Heap access in compiled code: record fields on the instruction's inline cache, lists
//! indexed by an int, `for` over ranges and lists, each read in the heap's slot array (its
//! layout probed at start: `HeapLayout`); maps by int keys and a list's `push` through pure
//! helpers (`PURE_HELPERS`). Anything else goes to the VM.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, FuncRef, InstBuilder, types};
use molt_vm::InlineCache;
use molt_vm::value::tag;

use super::{Gen, flags};
use crate::{CTX_CACHES, SHARED_HEAP_OBJS, SHARED_HEAP_SLOW, SHARED_LIST_ITEMS, SHARED_MAP_ENTRIES};

impl Gen<'_, '_> {
    /// Checks that `r` holds a record and that this instruction's inline cache is for its
    /// type (and that the heap needs no VM attention: lazy conversions, guarded writes); goes
    /// to `fail` otherwise. Returns the object's address and the cache's value (a field
    /// index, or a method's function slot).
    pub(super) fn cached_record(&mut self, pc: usize, r: u16, fail: Block) -> (ir::Value, ir::Value) {
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
        let key = self.b.ins().uload32(flags(), caches, at + InlineCache::KEY_OFFSET);
        let value = self.b.ins().uload32(flags(), caches, at + InlineCache::VALUE_OFFSET);
        let ty1 = self.b.ins().iadd_imm_s(ty, 1);
        let hit = self.b.ins().icmp(IntCC::Equal, key, ty1);
        let ok = self.b.ins().band(is_record, hit);
        let found = self.b.create_block();
        self.b.ins().brif(ok, found, &[], fail, &[]);
        self.b.switch_to_block(found);
        (obj, value)
    }

    /// `GetIndex` of a list by an int in range, in place; of a map by an int key, by a pure
    /// helper (`molt_jit_map_get_int`); the rest (other keys, strings, errors) goes to the VM.
    pub(super) fn get_index(&mut self, pc: usize, dst: u16, obj: u16, index: u16) {
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let next = self.next(pc);
        let (o, other) = self.list_or_other(obj, Some(index), false, slow);
        let at = self.list_item_address(o, index, slow);
        let (lo, hi) = self.load_value(at, 0);
        self.store_value(dst, lo, hi);
        self.b.ins().jump(next, &[]);
        // Not a list: a map?
        self.b.switch_to_block(other);
        self.continue_if_object_is(o, self.heap.map_tag, slow);
        let (key, out, zero) = (self.payload(index), self.register_address(dst), self.b.ins().iconst(types::I64, 0));
        self.pure_call(self.helpers.map_get_int, [o, key, out, zero], next, slow);
        self.b.switch_to_block(slow);
        let packed = dst as u64 | (obj as u64) << 16 | (index as u64) << 32;
        self.call_helper(self.helpers.get_index, pc, packed, 0);
        self.b.ins().jump(next, &[]);
    }

    /// `SetIndex` of a list by an int in range, in place; of a map by an int key when it
    /// needs no memory, by a pure helper (`molt_jit_map_set_int`); only while the heap needs
    /// no VM attention (writes journaled by an update running Molt code). The rest (growing
    /// a map, other keys, strings, errors) goes to the VM.
    pub(super) fn set_index(&mut self, pc: usize, obj: u16, index: u16, src: u16) {
        let slow = self.step_block(pc);
        let next = self.next(pc);
        let (o, other) = self.list_or_other(obj, Some(index), true, slow);
        let at = self.list_item_address(o, index, slow);
        let regs = self.regs();
        let (lo, hi) = self.load_value(regs, Self::off(src));
        self.b.ins().store(flags(), lo, at, 0);
        self.b.ins().store(flags(), hi, at, 8);
        self.b.ins().jump(next, &[]);
        // Not a list: a map?
        self.b.switch_to_block(other);
        self.continue_if_object_is(o, self.heap.map_tag, slow);
        let (key, value) = (self.payload(index), self.register_address(src));
        let limit = self.b.ins().load(types::I64, flags(), self.shared, SHARED_MAP_ENTRIES);
        self.pure_call(self.helpers.map_set_int, [o, key, value, limit], next, slow);
    }

    /// `CallMethod` of a map's `has` (`which` 0) or `remove` (1) with one int argument, by a
    /// pure helper when the receiver is a map and the heap needs no VM attention; otherwise on
    /// to `general` (the call as any other).
    pub(super) fn map_method_int(&mut self, dst: u16, base: u16, which: u64, next: Block, general: Block) {
        let o = self.checked_object(base, Some(base + 1), true, general);
        self.continue_if_object_is(o, self.heap.map_tag, general);
        let (key, out) = (self.payload(base + 1), self.register_address(dst));
        let which = self.b.ins().iconst(types::I64, which as i64);
        self.pure_call(self.helpers.map_method_int, [o, key, out, which], next, general);
    }

    /// `CallMethod` of a list's `push` with one argument, by a pure helper when the receiver
    /// is a list with room and the heap needs no VM attention (writes journaled); otherwise on
    /// to `general` (the call as any other).
    pub(super) fn list_push(&mut self, dst: u16, base: u16, next: Block, general: Block) {
        let o = self.checked_object(base, None, true, general);
        self.continue_if_object_is(o, self.heap.list_tag, general);
        let src = self.register_address(base + 1);
        let limit = self.b.ins().load(types::I64, flags(), self.shared, SHARED_LIST_ITEMS);
        let zero = self.b.ins().iconst(types::I64, 0);
        let pushed = self.b.create_block();
        self.pure_call(self.helpers.list_push, [o, src, limit, zero], pushed, general);
        self.b.switch_to_block(pushed);
        let nil = self.b.ins().iconst(types::I64, tag::NIL as i64);
        self.store_value(dst, nil, zero);
        self.b.ins().jump(next, &[]);
    }

    /// The heap object register `r` refers to (its address in the slot array), continuing in
    /// a new block when `r` holds an object, `int` (if any) an int, and (if `quiet`) the heap
    /// needs no VM attention; otherwise `otherwise`.
    fn checked_object(&mut self, r: u16, int: Option<u16>, quiet: bool, otherwise: Block) -> ir::Value {
        let t = self.tag(r);
        let mut ok = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        if let Some(i) = int {
            let ti = self.tag(i);
            let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, ti, tag::INT as i64);
            ok = self.b.ins().band(ok, is_int);
        }
        if quiet {
            let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
            let is_quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
            ok = self.b.ins().band(ok, is_quiet);
        }
        self.continue_if(ok, otherwise);
        self.heap_object(r, self.heap.list_tag).0
    }

    /// `checked_object`, then: continuing in a new block when it is a list; the object's
    /// address, and the block where anything else goes on.
    fn list_or_other(&mut self, r: u16, int: Option<u16>, quiet: bool, otherwise: Block) -> (ir::Value, Block) {
        let o = self.checked_object(r, int, quiet, otherwise);
        let other = self.b.create_block();
        self.continue_if_object_is(o, self.heap.list_tag, other);
        (o, other)
    }

    /// Continues in a new block when the object at `o` has tag `want`, else in `otherwise`.
    fn continue_if_object_is(&mut self, o: ir::Value, want: u8, otherwise: Block) {
        let otag = self.b.ins().uload8(types::I32, flags(), o, 0);
        let is = self.b.ins().icmp_imm_u(IntCC::Equal, otag, want as i64);
        self.continue_if(is, otherwise);
    }

    /// The address of item `R[index]` (an int) of the list at `o`, continuing in a new block
    /// when it is in range, else in `out_of_range`.
    fn list_item_address(&mut self, o: ir::Value, index: u16, out_of_range: Block) -> ir::Value {
        let len = self.b.ins().load(types::I64, flags(), o, self.heap.list_len_offset);
        let i = self.payload(index);
        // Unsigned: a negative index is out of range too.
        let in_range = self.b.ins().icmp(IntCC::UnsignedLessThan, i, len);
        self.continue_if(in_range, out_of_range);
        let items = self.b.ins().load(types::I64, flags(), o, self.heap.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(i, 4); // * tag::SIZE
        self.b.ins().iadd(items, at)
    }

    /// The address of register `r` (where a pure helper reads or writes a value).
    fn register_address(&mut self, r: u16) -> ir::Value {
        let regs = self.regs();
        self.b.ins().iadd_imm_s(regs, Self::off(r) as i64)
    }

    /// Calls pure helper `helper` (`PURE_HELPERS`), going on to `done` when it returns
    /// non-zero, else to `otherwise`.
    fn pure_call(&mut self, helper: FuncRef, args: [ir::Value; 4], done: Block, otherwise: Block) {
        let call = self.b.ins().call(helper, &args);
        let result = self.b.inst_results(call)[0];
        self.b.ins().brif(result, done, &[], otherwise, &[]);
    }

    /// `IterNext` over a range or a list, in place; maps iterate over a list made by
    /// `IterPrep`, so they are lists here too. Anything else (a string, iterated in place)
    /// goes to the VM.
    pub(super) fn iter_next(&mut self, pc: usize, base: u16, var: u16, exit: u32) {
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
    pub(super) fn heap_object(&mut self, r: u16, want: u8) -> (ir::Value, ir::Value) {
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
    pub(super) fn field(&mut self, pc: usize, obj: u16, reg: u16, write: bool, name: u32) {
        let (helper, packed) = if write {
            (self.helpers.set_field, obj as u64 | (reg as u64) << 16)
        } else {
            (self.helpers.get_field, reg as u64 | (obj as u64) << 16)
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
}
