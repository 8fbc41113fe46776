//! Heap access in compiled code: record fields on the instruction's inline cache, lists
//! indexed by an int, `for` over ranges and lists, each read in the heap's slot array (its
//! layout probed at start: `HeapLayout`). Anything else goes to the VM.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, Block, InstBuilder, types};
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
        let (list_block, other) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(is_list, list_block, &[], other, &[]);
        self.b.switch_to_block(other);
        let next = self.next(pc);
        self.map_get_int(o, index, dst, next, slow);
        self.b.switch_to_block(list_block);
        let len = self.b.ins().load(types::I64, flags(), o, h.list_len_offset);
        let i = self.payload(index);
        // Unsigned: a negative index is out of range too.
        let in_range = self.b.ins().icmp(IntCC::UnsignedLessThan, i, len);
        let found = self.b.create_block();
        self.b.ins().brif(in_range, found, &[], slow, &[]);
        self.b.switch_to_block(found);
        let items = self.b.ins().load(types::I64, flags(), o, h.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(i, 4); // * tag::SIZE
        let at = self.b.ins().iadd(items, at);
        let lo = self.b.ins().load(types::I64, flags(), at, 0);
        let hi = self.b.ins().load(types::I64, flags(), at, 8);
        let regs = self.regs();
        self.b.ins().store(flags(), lo, regs, Self::off(dst));
        self.b.ins().store(flags(), hi, regs, Self::off(dst) + 8);
        self.b.ins().jump(next, &[]);
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
        let h = self.heap;
        let slow = self.step_block(pc);
        let next = self.next(pc);
        let (t, ti) = (self.tag(obj), self.tag(index));
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, ti, tag::INT as i64);
        let heap_slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, heap_slow, 0);
        let ok = self.b.ins().band(is_obj, is_int);
        let ok = self.b.ins().band(ok, quiet);
        let obj_block = self.b.create_block();
        self.b.ins().brif(ok, obj_block, &[], slow, &[]);
        self.b.switch_to_block(obj_block);
        let (o, is_list) = self.heap_object(obj, h.list_tag);
        let (list_block, other) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(is_list, list_block, &[], other, &[]);
        // A map.
        self.b.switch_to_block(other);
        let otag = self.b.ins().uload8(types::I32, flags(), o, 0);
        let is_map = self.b.ins().icmp_imm_u(IntCC::Equal, otag, h.map_tag as i64);
        let map = self.b.create_block();
        self.b.ins().brif(is_map, map, &[], slow, &[]);
        self.b.switch_to_block(map);
        let key = self.payload(index);
        let regs = self.regs();
        let value = self.b.ins().iadd_imm_s(regs, Self::off(src) as i64);
        let limit = self.b.ins().load(types::I64, flags(), self.shared, SHARED_MAP_ENTRIES);
        let call = self.b.ins().call(self.helpers.map_set_int, &[o, key, value, limit]);
        let done = self.b.inst_results(call)[0];
        self.b.ins().brif(done, next, &[], slow, &[]);
        // A list.
        self.b.switch_to_block(list_block);
        let len = self.b.ins().load(types::I64, flags(), o, h.list_len_offset);
        let i = self.payload(index);
        // Unsigned: a negative index is out of range too.
        let in_range = self.b.ins().icmp(IntCC::UnsignedLessThan, i, len);
        let store = self.b.create_block();
        self.b.ins().brif(in_range, store, &[], slow, &[]);
        self.b.switch_to_block(store);
        let items = self.b.ins().load(types::I64, flags(), o, h.list_ptr_offset);
        let at = self.b.ins().ishl_imm_u(i, 4); // * tag::SIZE
        let at = self.b.ins().iadd(items, at);
        let regs = self.regs();
        let (lo, hi) = self.load_value(regs, Self::off(src));
        self.b.ins().store(flags(), lo, at, 0);
        self.b.ins().store(flags(), hi, at, 8);
        self.b.ins().jump(next, &[]);
    }

    /// The object at `obj` (in the heap's slot array) indexed by the int in register `index`
    /// into `dst`, when it is a map holding that key: on to `found`; otherwise `missed`.
    pub(super) fn map_get_int(&mut self, obj: ir::Value, index: u16, dst: u16, found: Block, missed: Block) {
        let otag = self.b.ins().uload8(types::I32, flags(), obj, 0);
        let is_map = self.b.ins().icmp_imm_u(IntCC::Equal, otag, self.heap.map_tag as i64);
        let map = self.b.create_block();
        self.b.ins().brif(is_map, map, &[], missed, &[]);
        self.b.switch_to_block(map);
        let key = self.payload(index);
        let regs = self.regs();
        let out = self.b.ins().iadd_imm_s(regs, Self::off(dst) as i64);
        let zero = self.b.ins().iconst(types::I64, 0);
        let call = self.b.ins().call(self.helpers.map_get_int, &[obj, key, out, zero]);
        let hit = self.b.inst_results(call)[0];
        self.b.ins().brif(hit, found, &[], missed, &[]);
    }

    /// `CallMethod` of a map's `has` (`which` 0) or `remove` (1) with one int argument, by a
    /// pure helper when the receiver is a map and the heap needs no VM attention; otherwise on
    /// to `general` (the call as any other).
    pub(super) fn map_method_int(&mut self, dst: u16, base: u16, which: u64, next: Block, general: Block) {
        let (t, tk) = (self.tag(base), self.tag(base + 1));
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        let is_int = self.b.ins().icmp_imm_u(IntCC::Equal, tk, tag::INT as i64);
        let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
        let ok = self.b.ins().band(is_obj, is_int);
        let ok = self.b.ins().band(ok, quiet);
        let obj_block = self.b.create_block();
        self.b.ins().brif(ok, obj_block, &[], general, &[]);
        self.b.switch_to_block(obj_block);
        let (o, is_map) = self.heap_object(base, self.heap.map_tag);
        let map = self.b.create_block();
        self.b.ins().brif(is_map, map, &[], general, &[]);
        self.b.switch_to_block(map);
        let key = self.payload(base + 1);
        let regs = self.regs();
        let out = self.b.ins().iadd_imm_s(regs, Self::off(dst) as i64);
        let which = self.b.ins().iconst(types::I64, which as i64);
        let call = self.b.ins().call(self.helpers.map_method_int, &[o, key, out, which]);
        let done = self.b.inst_results(call)[0];
        self.b.ins().brif(done, next, &[], general, &[]);
    }

    /// `CallMethod` of a list's `push` with one argument, by a pure helper when the receiver
    /// is a list with room and the heap needs no VM attention (writes journaled); otherwise on
    /// to `general` (the call as any other).
    pub(super) fn list_push(&mut self, dst: u16, base: u16, next: Block, general: Block) {
        let t = self.tag(base);
        let is_obj = self.b.ins().icmp_imm_u(IntCC::Equal, t, tag::OBJ as i64);
        let slow = self.b.ins().load(types::I64, flags(), self.shared, SHARED_HEAP_SLOW);
        let quiet = self.b.ins().icmp_imm_u(IntCC::Equal, slow, 0);
        let ok = self.b.ins().band(is_obj, quiet);
        let obj_block = self.b.create_block();
        self.b.ins().brif(ok, obj_block, &[], general, &[]);
        self.b.switch_to_block(obj_block);
        let (o, is_list) = self.heap_object(base, self.heap.list_tag);
        let list = self.b.create_block();
        self.b.ins().brif(is_list, list, &[], general, &[]);
        self.b.switch_to_block(list);
        let regs = self.regs();
        let src = self.b.ins().iadd_imm_s(regs, Self::off(base + 1) as i64);
        let limit = self.b.ins().load(types::I64, flags(), self.shared, SHARED_LIST_ITEMS);
        let zero = self.b.ins().iconst(types::I64, 0);
        let call = self.b.ins().call(self.helpers.list_push, &[o, src, limit, zero]);
        let done = self.b.inst_results(call)[0];
        let pushed = self.b.create_block();
        self.b.ins().brif(done, pushed, &[], general, &[]);
        self.b.switch_to_block(pushed);
        let nil = self.b.ins().iconst(types::I64, tag::NIL as i64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.store_value(dst, nil, zero);
        self.b.ins().jump(next, &[]);
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
