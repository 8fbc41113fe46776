//! Molt's compiled tier: bytecode functions translated to machine code with Cranelift.
//!
//! The contract with the VM (`molt_vm::tier`): compiled code runs on the frame's registers
//! (the interpreter's own, in the VM's value stack) and returns how it left. It does the
//! instructions in `translate.rs` on fast paths (ints, fused compares, counting loops, moves,
//! constants); every other instruction, and every fast path whose guard fails (a value of
//! another type, an overflow to report, an interrupt), goes to `Vm::tier_step`, which runs
//! that one instruction in the interpreter, so it does exactly what it always does (a call
//! runs the callee, compiled or not, through the function table). At an update point with an
//! update waiting, compiled code leaves for the interpreter, which hands over to the update
//! engine. So compiled and interpreted code behave the same, and DSU rules hold unchanged:
//! compiled code belongs to one `Function` (one version of the code) and is dropped with it.

mod code;
mod translate;

pub use code::Jit;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;

use molt_vm::func_table::TierSlot;
use molt_vm::heap::Obj;
use molt_vm::tier::{CompiledCode, Exit};
use molt_vm::value::tag;
use molt_vm::{InlineCache, RuntimeError, Value, Vm};

/// What compiled code gets: one pointer to this, at the offsets below (compiled code reads
/// them, and builds a callee's ctx for a direct call itself); the helpers use the rest.
///
/// A direct call (compiled code calling a compiled function, `translate::Gen::call_func`)
/// does not push an interpreter frame: the callee's ctx is a *virtual frame* (its function
/// slot, registers, return register, and, while it calls further, the pc of that call). Every
/// helper first makes the chain of virtual frames real (`materialize`), so the VM always sees
/// the whole stack of frames whenever it runs (traces, collections, updates); a callee whose
/// frame was made real is popped by its caller through `molt_jit_call_exit`. A function's slot
/// cannot change while a virtual frame of it exists: the table changes only inside the VM,
/// which materializes first.
#[repr(C)]
struct Ctx {
    /// The frame's registers, `vm.stack[base..]`; rewritten after every helper.
    regs: *mut Value,
    /// What every activation of this chain shares.
    shared: *mut Shared,
    base: usize,
    /// Direct calls still allowed below this activation (see `MAX_DIRECT_DEPTH`).
    budget: usize,
    /// The caller's ctx (null for the chain's root).
    parent: *mut Ctx,
    /// The function slot a virtual frame runs.
    slot: usize,
    /// On entry: where to start (0, or a loop head: on-stack replacement). While this
    /// activation is in a direct call: the pc after the call instruction. (One field: a
    /// direct call writes one zero.)
    pc: usize,
    /// Absolute stack index of the register the result goes to.
    ret: usize,
    /// Nonzero when the VM has an interpreter frame for this activation.
    real: usize,
    /// This activation's inline caches (its function's, shared with the interpreter).
    caches: *const InlineCache,
    /// Its function's constants (strings: objects of that function's version).
    consts: *const Value,
}
pub(crate) const CTX_REGS: i32 = std::mem::offset_of!(Ctx, regs) as i32;
pub(crate) const CTX_SHARED: i32 = std::mem::offset_of!(Ctx, shared) as i32;
pub(crate) const CTX_BASE: i32 = std::mem::offset_of!(Ctx, base) as i32;
pub(crate) const CTX_BUDGET: i32 = std::mem::offset_of!(Ctx, budget) as i32;
pub(crate) const CTX_PARENT: i32 = std::mem::offset_of!(Ctx, parent) as i32;
pub(crate) const CTX_SLOT: i32 = std::mem::offset_of!(Ctx, slot) as i32;
pub(crate) const CTX_PC: i32 = std::mem::offset_of!(Ctx, pc) as i32;
pub(crate) const CTX_RET: i32 = std::mem::offset_of!(Ctx, ret) as i32;
pub(crate) const CTX_REAL: i32 = std::mem::offset_of!(Ctx, real) as i32;
pub(crate) const CTX_CACHES: i32 = std::mem::offset_of!(Ctx, caches) as i32;
pub(crate) const CTX_CONSTS: i32 = std::mem::offset_of!(Ctx, consts) as i32;
pub(crate) const CTX_SIZE: u32 = std::mem::size_of::<Ctx>() as u32;

/// The part of the ctx every activation of one `Compiled::run` shares: the VM and pointers
/// into it, refreshed after every helper (so a direct call copies one pointer, not these).
#[repr(C)]
struct Shared {
    /// The VM's signal word.
    signals: *const AtomicU32,
    vm: *mut Vm,
    /// Where the error goes when compiled code leaves with `EXIT_ERROR`: a local of the
    /// `Compiled::run` that started this chain.
    error: *mut Option<RuntimeError>,
    /// `vm.funcs.tier_slots()`, `vm.stack.len()`, `vm.heap.objs_ptr()`, `vm.tier_heap_slow()`.
    tier_slots: *const TierSlot,
    stack_len: usize,
    heap_objs: *const Obj,
    heap_slow: usize,
    /// `vm.globals`, by slot.
    globals: *mut Value,
    /// `vm.tasks.budget`: the reductions left to the running task, counted down by compiled
    /// code at calls and loop back-edges once tasks exist (as the interpreter counts them).
    task_budget: *mut u32,
    /// `vm.heap.limits.map_entries`: a map may not grow past it.
    map_entries: usize,
    /// `vm.heap.limits.list_items`: a list may not grow past it.
    list_items: usize,
}
pub(crate) const SHARED_SIGNALS: i32 = std::mem::offset_of!(Shared, signals) as i32;
pub(crate) const SHARED_TIER_SLOTS: i32 = std::mem::offset_of!(Shared, tier_slots) as i32;
pub(crate) const SHARED_STACK_LEN: i32 = std::mem::offset_of!(Shared, stack_len) as i32;
pub(crate) const SHARED_HEAP_OBJS: i32 = std::mem::offset_of!(Shared, heap_objs) as i32;
pub(crate) const SHARED_HEAP_SLOW: i32 = std::mem::offset_of!(Shared, heap_slow) as i32;
pub(crate) const SHARED_GLOBALS: i32 = std::mem::offset_of!(Shared, globals) as i32;
pub(crate) const SHARED_TASK_BUDGET: i32 = std::mem::offset_of!(Shared, task_budget) as i32;
pub(crate) const SHARED_MAP_ENTRIES: i32 = std::mem::offset_of!(Shared, map_entries) as i32;
pub(crate) const SHARED_LIST_ITEMS: i32 = std::mem::offset_of!(Shared, list_items) as i32;

/// Compiled code calls compiled code directly (a native call, no interpreter in between) up
/// to this depth below one `Compiled::run`; deeper calls go through the VM, which nests runs
/// only up to `tier::MAX_TIER_DEPTH`. Each direct level is one small native frame.
const MAX_DIRECT_DEPTH: usize = 200;

/// Where compiled code finds a record's type slot and fields in the heap's slot array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeapLayout {
    pub obj_size: i64,
    pub record_tag: u8,
    pub ty_offset: i32,
    /// The offset of the fields' data pointer (in the `Box<[Value]>`).
    pub fields_offset: i32,
    pub list_tag: u8,
    /// The offsets of a list's data pointer and length (in its `Vec<Value>`).
    pub list_ptr_offset: i32,
    pub list_len_offset: i32,
    pub map_tag: u8,
}

impl HeapLayout {
    /// Read from a real record: `Obj` is `repr(C, u8)` (tag byte first, then the variant's
    /// fields as a `repr(C)` struct); only the order of a boxed slice's pointer and length is
    /// not fixed by the language, so it is found by comparing both words with the pointer.
    fn probe() -> Result<HeapLayout, String> {
        let fields: Box<[Value]> = vec![Value::Int(7), Value::Nil].into_boxed_slice();
        let data = fields.as_ptr() as usize;
        let obj = Obj::Record { ty: 0x5eed, fields };
        let at = &obj as *const Obj as usize;
        // SAFETY: offset 0 of a `repr(C, u8)` enum is its initialised tag byte.
        let record_tag = unsafe { *(at as *const u8) };
        let Obj::Record { ty, fields } = &obj else { return Err("the record probe is not a record".into()) };
        let ty_offset = (ty as *const u32 as usize - at) as i32;
        let boxed = fields as *const Box<[Value]> as usize;
        // SAFETY: a `Box<[Value]>` is two initialised words (data pointer and length).
        let words = unsafe { std::ptr::read_unaligned(boxed as *const [usize; 2]) };
        let in_box = match words {
            [p, 2] if p == data => 0,
            [2, p] if p == data => 8,
            _ => return Err("unexpected layout of a boxed slice".into()),
        };
        // A list: find the vector's pointer and length among its three words (capacity 5,
        // length 2, so all three differ).
        let mut items = Vec::with_capacity(5);
        items.extend([Value::Int(1), Value::Int(2)]);
        let data = items.as_ptr() as usize;
        let list = Obj::List(items);
        let list_at = &list as *const Obj as usize;
        // SAFETY: offset 0 of a `repr(C, u8)` enum is its initialised tag byte.
        let list_tag = unsafe { *(list_at as *const u8) };
        let Obj::List(items) = &list else { return Err("the list probe is not a list".into()) };
        let vec_at = items as *const Vec<Value> as usize;
        // SAFETY: a `Vec<Value>` is three initialised words (pointer, capacity, length, in
        // some order).
        let words = unsafe { std::ptr::read_unaligned(vec_at as *const [usize; 3]) };
        let word = |w: usize| words.iter().position(|&x| x == w).map(|i| (vec_at - list_at + 8 * i) as i32);
        let (Some(list_ptr_offset), Some(list_len_offset)) = (word(data), word(2)) else {
            return Err("unexpected layout of a vector".into());
        };
        let map = Obj::Map(Default::default());
        // SAFETY: offset 0 of a `repr(C, u8)` enum is its initialised tag byte.
        let map_tag = unsafe { *(&map as *const Obj as *const u8) };
        Ok(HeapLayout {
            obj_size: std::mem::size_of::<Obj>() as i64,
            map_tag,
            record_tag,
            ty_offset,
            fields_offset: (boxed - at) as i32 + in_box,
            list_tag,
            list_ptr_offset,
            list_len_offset,
        })
    }
}

/// The signature every compiled function has: (ctx) -> exit code (see `decode_exit`).
pub(crate) type Entry = unsafe extern "C" fn(*mut Ctx) -> u64;

/// Exit codes: kind in the high 32 bits; in the low 32, the returned register's offset in the
/// frame (`16 * r`, what a direct caller copies from) or the pc to resume at.
pub(crate) const EXIT_RETURNED: u64 = 0;
pub(crate) const EXIT_RETURNED_NIL: u64 = 1;
pub(crate) const EXIT_RESUME: u64 = 2;
pub(crate) const EXIT_ERROR: u64 = 3;
/// What `molt_jit_step` returns when the instruction raised an error.
pub(crate) const STEP_ERROR: u64 = u64::MAX;

fn decode_exit(code: u64, error: &mut Option<RuntimeError>) -> Exit {
    let low = (code & 0xffff_ffff) as usize;
    match code >> 32 {
        EXIT_RETURNED => Exit::Returned((low / tag::SIZE as usize) as u16),
        EXIT_RETURNED_NIL => Exit::ReturnedNil,
        EXIT_ERROR => Exit::Error(error.take().unwrap_or_else(|| RuntimeError::new("compiled code failed"))),
        _ => Exit::Resume(low),
    }
}

/// Runs `op` on the VM behind `ctx` for compiled code: returns its result, or `STEP_ERROR`
/// with the error left where the ctx points, and refreshes the ctx's pointers into the VM
/// (the stack may have moved). The chain of virtual frames is made real first. Never unwinds
/// into the generated code: a panic becomes a runtime error.
fn with_vm(ctx: *mut Ctx, op: impl FnOnce(&mut Vm) -> Result<u64, RuntimeError>) -> u64 {
    // SAFETY: `ctx` is the ctx of the compiled activation calling this helper, alive on its
    // caller's native stack (or in `Compiled::run`) for the whole call; its parents are the
    // ctxs of the activations suspended in direct calls below it, alive as long. Nothing else
    // refers to them while this runs.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: `ctx.shared` is a local of the `Compiled::run` that started this chain, alive
    // until it returns; compiled code only reads it.
    let shared = unsafe { &mut *ctx.shared };
    // SAFETY: `shared.vm` comes from the `&mut Vm` given to `Compiled::run`, which does not
    // use it while compiled code runs; the generated code touches the VM only through `regs`
    // and the pointers in `shared`, re-derived below before it continues, so this is the only
    // live reference to the VM.
    let vm = unsafe { &mut *shared.vm };
    let error = match catch_unwind(AssertUnwindSafe(|| {
        if ctx.real == 0 {
            materialize(ctx, vm)?;
        }
        op(&mut *vm)
    })) {
        Ok(Ok(r)) => {
            vm.tier_poll();
            refresh(shared, vm);
            ctx.regs = vm.stack.as_mut_ptr().wrapping_add(ctx.base);
            return r;
        }
        Ok(Err(e)) => e,
        Err(_) => RuntimeError::new("internal error in the compiled tier"),
    };
    // SAFETY: `shared.error` points to a local of the `Compiled::run` that started this chain
    // of compiled activations, alive until it returns, and read only after the code returns.
    unsafe { *shared.error = Some(error) };
    STEP_ERROR
}

/// The shared pointers into the VM, after the VM ran.
fn refresh(shared: &mut Shared, vm: &mut Vm) {
    shared.signals = vm.signals.word();
    shared.tier_slots = vm.funcs.tier_slots();
    shared.stack_len = vm.stack.len();
    shared.heap_objs = vm.heap.objs_ptr();
    shared.heap_slow = vm.tier_heap_slow() as usize;
    shared.globals = vm.globals.as_mut_ptr();
    shared.task_budget = &mut vm.tasks.budget;
    shared.map_entries = vm.heap.limits.map_entries;
    shared.list_items = vm.heap.limits.list_items;
}

/// Pushes an interpreter frame for every virtual frame from the chain's last real one up to
/// `ctx`, outermost first, and saves the pc of the call the last real one is in.
fn materialize(ctx: &mut Ctx, vm: &mut Vm) -> Result<(), RuntimeError> {
    if ctx.parent.is_null() {
        return Err(RuntimeError::new("internal error: a virtual frame without a caller"));
    }
    // SAFETY: see `with_vm`: the parent ctx outlives this call, and no other reference to it
    // is live (its activation is suspended in the direct call that led here).
    let parent = unsafe { &mut *ctx.parent };
    if parent.real == 0 {
        materialize(parent, vm)?;
    } else {
        vm.tier_set_top_pc(parent.pc);
    }
    vm.tier_push_frame(ctx.slot as u32, ctx.base, ctx.ret, ctx.pc)?;
    ctx.real = 1;
    Ok(())
}

/// The helpers compiled code calls, all `(ctx, pc, a, b) -> u64`: `STEP_ERROR` on an error.
/// `molt_jit_step` runs any instruction and returns the pc to continue at; the others run
/// one kind of instruction (operands packed in `a` and `b`) and return 0.
extern "C" fn molt_jit_step(ctx: *mut Ctx, pc: u64, _: u64, _: u64) -> u64 {
    with_vm(ctx, |vm| vm.tier_step(pc as usize).map(|next| next as u64))
}

/// `GetField`: a = dst | obj << 16, b = name.
extern "C" fn molt_jit_get_field(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    with_vm(ctx, |vm| vm.tier_get_field(pc as usize, a as u16, (a >> 16) as u16, b as u32).map(|()| 0))
}

/// `SetField`: a = obj | src << 16, b = name.
extern "C" fn molt_jit_set_field(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    with_vm(ctx, |vm| vm.tier_set_field(pc as usize, a as u16, b as u32, (a >> 16) as u16).map(|()| 0))
}

/// `CallFunc`: a = dst | base << 16 | argc << 32, b = function slot. Returns the callee's
/// entry for the caller to call directly (then `molt_jit_call_exit`), or 0: the callee ran.
extern "C" fn molt_jit_call_func(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    let (dst, base, argc) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    // SAFETY: as in `with_vm`: the live ctx of the compiled code calling this helper.
    let direct = unsafe { (*ctx).budget } > 0;
    with_vm(ctx, |vm| vm.tier_call_func(pc as usize, dst, b as u32, base, argc, direct).map(|e| e as u64))
}

/// After a direct call: `a` is 0 when the callee returned with a real frame (its value
/// already copied to the destination register: this pops the frame), else its exit code (a
/// resume: the callee is finished in the interpreter; errors the caller passes on itself).
extern "C" fn molt_jit_call_exit(ctx: *mut Ctx, _pc: u64, a: u64, _: u64) -> u64 {
    if a == 0 {
        return with_vm(ctx, |vm| {
            vm.frames.pop();
            Ok(0)
        });
    }
    let exit = decode_exit(a, &mut None);
    with_vm(ctx, |vm| vm.tier_call_exit(exit).map(|()| 0))
}

/// Makes the chain of virtual frames real (what `with_vm` does first), before compiled code
/// leaves for the interpreter at `pc`.
extern "C" fn molt_jit_sync(ctx: *mut Ctx, pc: u64, _: u64, _: u64) -> u64 {
    with_vm(ctx, |vm| {
        vm.tier_set_top_pc(pc as usize);
        Ok(0)
    })
}

/// `GetIndex`: a = dst | obj << 16 | index << 32.
extern "C" fn molt_jit_get_index(ctx: *mut Ctx, pc: u64, a: u64, _: u64) -> u64 {
    let (dst, obj, index) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    with_vm(ctx, |vm| vm.tier_get_index(pc as usize, dst, obj, index).map(|()| 0))
}

/// `CallNative`: a = dst | base << 16 | argc << 32, b = built-in.
extern "C" fn molt_jit_call_native(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    let (dst, base, argc) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    with_vm(ctx, |vm| vm.tier_call_native(pc as usize, dst, b as u32, base, argc).map(|()| 0))
}

/// `Add`/`Sub`/`Mul` on a non-number: a = dst | a << 16 | b << 32, b = the operator (0, 1, 2).
extern "C" fn molt_jit_arith(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    let (dst, x, y) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    with_vm(ctx, |vm| vm.tier_arith(pc as usize, dst, x, y, b as u8).map(|()| 0))
}

/// `CallMethod` on a built-in type: a = dst | base << 16 | argc << 32, b = the name. Returns
/// 1 when done, 0 when the VM has to step the instruction.
extern "C" fn molt_jit_builtin_method(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    let (dst, base, argc) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    with_vm(ctx, |vm| vm.tier_builtin_method(pc as usize, dst, base, b as u32, argc).map(u64::from))
}

/// `NewRecord`: a = dst | base << 16 | n << 32, b = the type slot.
extern "C" fn molt_jit_new_record(ctx: *mut Ctx, pc: u64, a: u64, b: u64) -> u64 {
    let (dst, base, n) = (a as u16, (a >> 16) as u16, (a >> 32) as u16);
    with_vm(ctx, |vm| vm.tier_new_record(pc as usize, dst, b as u32, base, n).map(|()| 0))
}

/// `GetIndex` of a map by an int key, without the VM (a lookup only reads the map: no
/// helper's frame making, panic catching and refreshing, so that compiled code can keep
/// several lookups in flight): `obj` is the map's slot in the heap's slot array, `out` the
/// destination register. Returns 1 with the value written, 0 when the key is absent (or the
/// object is not a map): the VM then does the instruction (its error).
extern "C" fn molt_jit_map_get_int(obj: u64, key: u64, out: u64, _: u64) -> u64 {
    // SAFETY: compiled code passes the address of a slot of the heap's slot array (a live
    // `Obj`: the handle came from a register holding a `Value::Obj`), and nothing changes the
    // heap while this runs.
    let Obj::Map(m) = (unsafe { &*(obj as *const Obj) }) else { return 0 };
    let Some(v) = m.get_int(key as i64) else { return 0 };
    // SAFETY: `out` is the address of a register of the running frame (below its register
    // count, inside `vm.stack`), which compiled code owns while it runs.
    unsafe { std::ptr::write(out as *mut Value, v) };
    1
}

/// A map's `has` (`which` 0) or `remove` (`which` 1) by an int key, without the VM, as
/// `molt_jit_map_get_int`: compiled code checked that the heap needs no VM attention (no
/// update running Molt code, whose writes are journaled). Returns 1 with the result written
/// to `out`, 0 when the object is not a map (the VM then does the call).
extern "C" fn molt_jit_map_method_int(obj: u64, key: u64, out: u64, which: u64) -> u64 {
    // SAFETY: as in `molt_jit_map_get_int`; the map is changed only by this call, while no
    // other reference to the heap is in use (compiled code holds none across a call).
    let Obj::Map(m) = (unsafe { &mut *(obj as *mut Obj) }) else { return 0 };
    let key = molt_vm::map::Key::Int(key as i64);
    let v = if which == 0 { Value::Bool(m.contains(&key)) } else { m.remove(&key).unwrap_or(Value::Nil) };
    // SAFETY: as in `molt_jit_map_get_int`.
    unsafe { std::ptr::write(out as *mut Value, v) };
    1
}

/// `SetIndex` of a map by an int key, without the VM, when the map needs no memory for it
/// (the key is there, or there is room without growing, below the size limit `limit`), as
/// `molt_jit_map_get_int`: compiled code checked that the heap needs no VM attention (writes
/// are not journaled). `src` is the register holding the value. Returns 1 when done, 0 when
/// the VM has to do it (growing the map counts its memory and may be refused).
extern "C" fn molt_jit_map_set_int(obj: u64, key: u64, src: u64, limit: u64) -> u64 {
    // SAFETY: as in `molt_jit_map_method_int`.
    let Obj::Map(m) = (unsafe { &mut *(obj as *mut Obj) }) else { return 0 };
    // SAFETY: `src` is the address of a register of the running frame (an initialised
    // `Value`), which compiled code owns while it runs.
    let v = unsafe { std::ptr::read(src as *const Value) };
    let key = key as i64;
    if m.get_int(key).is_none() && (m.len() as u64 >= limit || m.growth_bytes() != 0) {
        return 0;
    }
    u64::from(m.insert(molt_vm::map::Key::Int(key), v).is_ok())
}

/// A list's `push` without the VM, when the list has room without growing (below the size
/// limit `limit`), as `molt_jit_map_set_int`. Returns 1 when pushed, 0 when the VM has to
/// do it (growing counts the list's memory and may be refused).
extern "C" fn molt_jit_list_push(obj: u64, src: u64, limit: u64, _: u64) -> u64 {
    // SAFETY: as in `molt_jit_map_method_int`.
    let Obj::List(items) = (unsafe { &mut *(obj as *mut Obj) }) else { return 0 };
    if items.len() >= items.capacity() || items.len() as u64 >= limit {
        return 0;
    }
    // SAFETY: as in `molt_jit_map_set_int`.
    items.push(unsafe { std::ptr::read(src as *const Value) });
    1
}

type Helper = extern "C" fn(*mut Ctx, u64, u64, u64) -> u64;
type PureHelper = extern "C" fn(u64, u64, u64, u64) -> u64;

/// Helpers that do not touch the VM (same machine signature as `HELPERS`; after them in
/// `Helpers` order).
pub(crate) const PURE_HELPERS: [(&str, PureHelper); 4] = [
    ("molt_jit_map_get_int", molt_jit_map_get_int),
    ("molt_jit_map_method_int", molt_jit_map_method_int),
    ("molt_jit_map_set_int", molt_jit_map_set_int),
    ("molt_jit_list_push", molt_jit_list_push),
];

/// Every helper by name, in `Helpers` order.
pub(crate) const HELPERS: [(&str, Helper); 11] = [
    ("molt_jit_step", molt_jit_step),
    ("molt_jit_get_field", molt_jit_get_field),
    ("molt_jit_set_field", molt_jit_set_field),
    ("molt_jit_call_func", molt_jit_call_func),
    ("molt_jit_get_index", molt_jit_get_index),
    ("molt_jit_call_native", molt_jit_call_native),
    ("molt_jit_call_exit", molt_jit_call_exit),
    ("molt_jit_sync", molt_jit_sync),
    ("molt_jit_arith", molt_jit_arith),
    ("molt_jit_builtin_method", molt_jit_builtin_method),
    ("molt_jit_new_record", molt_jit_new_record),
];

/// One compiled function, shared by every `Function` with the same linked code (see
/// `code::Jit`). Its machine code lives in a module of a batch of functions, freed when the
/// last of them is dropped (`code::CodeModule`).
pub(crate) struct Compiled {
    entry: Entry,
    nregs: usize,
    /// Instructions (one inline cache each).
    ncode: usize,
    /// Constants the code may read (`LoadConst` operands are below this).
    nconsts: usize,
    size: usize,
    /// Keeps the machine code's module alive.
    _module: Rc<code::CodeModule>,
    /// The functions its code inlined (their allocations: see `translate::inline`).
    _inlined: translate::Inlined,
}

impl CompiledCode for Compiled {
    fn run(&self, vm: &mut Vm, caches: &[InlineCache], consts: &[Value], base: usize, entry: usize) -> Exit {
        if vm.stack.len() < base + self.nregs || caches.len() < self.ncode || consts.len() < self.nconsts {
            return Exit::Resume(0);
        }
        let budget = MAX_DIRECT_DEPTH.min(vm.frame_limit.saturating_sub(vm.frames.len()));
        let mut error = None;
        let mut shared = Shared {
            signals: std::ptr::null(),
            vm: std::ptr::null_mut(),
            error: &mut error,
            tier_slots: std::ptr::null(),
            stack_len: 0,
            heap_objs: std::ptr::null(),
            heap_slow: 1,
            globals: std::ptr::null_mut(),
            task_budget: std::ptr::null_mut(),
            map_entries: 0,
            list_items: 0,
        };
        refresh(&mut shared, vm);
        let regs = vm.stack.as_mut_ptr().wrapping_add(base);
        shared.vm = vm;
        let mut ctx = Ctx {
            regs,
            shared: &mut shared,
            base,
            budget,
            parent: std::ptr::null_mut(),
            slot: 0,
            pc: entry,
            ret: 0,
            real: 1,
            caches: caches.as_ptr(),
            consts: consts.as_ptr(),
        };
        // SAFETY: `entry` was produced by `Jit::compile` for a verified function with
        // `nregs` registers, and `vm.stack[base..base + nregs]` exists (checked above, and by
        // the VM after each step, which only grows the stack). The generated code reads and
        // writes only `regs[0..nregs]` (every register operand is below nregs, checked by the
        // verifier), as 16-byte `Value`s in the `repr(C, u8)` layout (tag byte at 0, payload
        // at 8), writing only valid values (tags NIL/BOOL/INT/FLOAT with their payloads, or
        // whole copies of other registers). It reloads `regs` from the ctx after every call
        // to a helper (helpers never unwind). It calls other compiled code directly only
        // with the entry of a `TierSlot` (after checking its arity, and that its registers
        // lie below `stack_len`) or one `molt_jit_call_func` returned (whose frame that helper
        // pushed), with a ctx built as this one is, the caller's as its parent. It reads
        // constants only below `nconsts` (checked above; the callee of a direct call gets its
        // own function's, from its `TierSlot`, whose code has the same constants: code is
        // shared by content only). The signal word is read with atomic loads.
        let code = unsafe { (self.entry)(&mut ctx) };
        decode_exit(code, &mut error)
    }

    fn code_size(&self) -> usize {
        self.size
    }

    fn direct_entry(&self) -> usize {
        self.entry as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout compiled code relies on, read from real values.
    #[test]
    fn value_layout() {
        // Reads the tag byte and the payload word of a value through its address; only the
        // bytes each variant initialises are read.
        fn tag(v: &Value) -> u8 {
            // SAFETY: offset 0 of a `repr(C, u8)` enum is its initialised tag byte.
            unsafe { *(v as *const Value as *const u8) }
        }
        fn word(v: &Value) -> u64 {
            // SAFETY: for Int and Float (the only variants passed here) the 8 bytes at offset
            // 8 are the initialised payload.
            unsafe { std::ptr::read_unaligned((v as *const Value as *const u8).add(8) as *const u64) }
        }
        fn byte8(v: &Value) -> u8 {
            // SAFETY: for Bool, offset 8 is the initialised bool payload.
            unsafe { *(v as *const Value as *const u8).add(8) }
        }
        use molt_vm::value::tag as t;
        assert_eq!(std::mem::size_of::<Value>(), t::SIZE as usize);
        assert_eq!(tag(&Value::Nil), t::NIL);
        assert_eq!((tag(&Value::Bool(true)), byte8(&Value::Bool(true))), (t::BOOL, 1));
        assert_eq!((tag(&Value::Int(-2)), word(&Value::Int(-2)) as i64), (t::INT, -2));
        assert_eq!((tag(&Value::Float(2.5)), f64::from_bits(word(&Value::Float(2.5)))), (t::FLOAT, 2.5));
        let obj = Value::Obj(molt_vm::ObjRef(0xabcd));
        assert_eq!((tag(&obj), word(&obj) as u32), (t::OBJ, 0xabcd));
    }

    /// Compiled code reads records where the probe says they are: check it against the
    /// heap's own accessors on a real heap.
    #[test]
    fn heap_layout() {
        let layout = HeapLayout::probe().expect("a layout");
        let mut heap = molt_vm::heap::Heap::new();
        heap.alloc(Obj::Str("x".into()));
        let r = heap.alloc(Obj::Record { ty: 77, fields: vec![Value::Int(5), Value::Int(9)].into_boxed_slice() });
        let at = heap.objs_ptr() as usize + r.0 as usize * layout.obj_size as usize;
        // SAFETY: `at` is the address of slot `r` of the heap's live slot array (nothing was
        // allocated since `objs_ptr`), a record: its tag byte, its `u32` type slot and its
        // fields' data pointer are initialised, at the probed offsets.
        let (tag, ty, second) = unsafe {
            let fields = *((at + layout.fields_offset as usize) as *const *const Value);
            (*(at as *const u8), *((at + layout.ty_offset as usize) as *const u32), *fields.add(1))
        };
        assert_eq!((tag, ty), (layout.record_tag, 77));
        assert!(matches!(second, Value::Int(9)));
        let l = heap.alloc(Obj::List(vec![Value::Int(3), Value::Int(4), Value::Int(6)]));
        let at = heap.objs_ptr() as usize + l.0 as usize * layout.obj_size as usize;
        // SAFETY: slot `l` of the live slot array is a list: tag byte, data pointer and length
        // are initialised, at the probed offsets; the length is 3, so item 2 exists.
        let (tag, len, third) = unsafe {
            let items = *((at + layout.list_ptr_offset as usize) as *const *const Value);
            (*(at as *const u8), *((at + layout.list_len_offset as usize) as *const usize), *items.add(2))
        };
        assert_eq!((tag, len), (layout.list_tag, 3));
        assert!(matches!(third, Value::Int(6)));
    }
}
