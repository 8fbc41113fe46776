//! The Molt virtual machine: bytecode (`opcodes`, `program`), the `.mbc` format and its
//! verifier, values and the heap, the interpreter, and linking programs into a running VM.

pub mod disasm;
pub mod error;
pub mod frame_stack;
pub mod func_table;
pub mod heap;
pub mod inspect;
mod interp;
pub mod limits;
pub mod link;
pub mod map;
pub mod mbc;
pub mod native;
pub mod opcodes;
pub mod ops;
pub mod print;
pub mod program;
pub mod signals;
pub mod tasks;
pub mod tier;
pub mod type_rt;
pub mod update;
pub mod value;
pub mod verify;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use indexmap::IndexSet;
use rustc_hash::FxHashMap;

pub use error::{RuntimeError, TraceFrame};
pub use heap::{Heap, Obj};
pub use native::{BuiltinKind, MethodImpl, NativeCtx, NativeDef, NativeFn, Reads};
pub use opcodes::{Effects, Instr, OperandKind};
pub use program::{Const, FnKind, LocalInfo, LocalRole, Program, Proto, TypeDef, UpdatePoint};
pub use type_rt::{Forward, TypeLayout, TypeRt};
pub use value::{ObjRef, Value};

/// The file name the prelude (built-in methods written in Molt) is compiled under; stack traces
/// leave its frames out.
pub const PRELUDE_FILE: &str = "<prelude>";

/// A function as the VM runs it: its code linked to the VM's slots, its constants made values,
/// and an inline cache per instruction (field index or method slot, keyed by record type).
pub struct Function {
    pub proto: Proto,
    pub consts: Vec<Value>,
    /// Per instruction: (record type slot + 1, field index or function slot); 0 = empty.
    pub caches: Vec<InlineCache>,
    /// Per instruction: whether the interpreter met a float there (arithmetic). The tier
    /// specialises on it (see `tier::Feedback`).
    pub floats: Box<[Cell<bool>]>,
    /// Function-table slot.
    pub slot: u32,
    /// Source file path, for stack traces.
    pub file: Rc<str>,
    /// Compiled code, once the tier compiled it (`Some(None)`: it declined).
    pub jit: std::cell::OnceCell<Option<Box<dyn tier::CompiledCode>>>,
    /// Calls so far (counted only while the tier is on and the function is not compiled).
    pub calls: Cell<u32>,
    /// The compiled code's `direct_entry` once compiled (0: none), kept here so a compiled
    /// call reaches it without going through `jit`.
    pub tier_entry: Cell<usize>,
    /// The lambdas this code creates (`Closure` targets), of the same version: a closure
    /// made by old code runs old code, however many updates later (set once the whole
    /// version is linked).
    pub lambdas: std::cell::OnceCell<Vec<(u32, Rc<Function>)>>,
}

/// An instruction's inline cache: the record type it last saw (type slot + 1; 0: none) and
/// what that type resolved to (a field index, or a method's function slot). `repr(C)`:
/// compiled code reads and fills it too (at `KEY_OFFSET` and `VALUE_OFFSET`).
#[derive(Default, Debug)]
#[repr(C)]
pub struct InlineCache {
    key: Cell<u32>,
    value: Cell<u32>,
}

impl InlineCache {
    /// Where compiled code finds the key and the value.
    pub const KEY_OFFSET: i32 = std::mem::offset_of!(InlineCache, key) as i32;
    pub const VALUE_OFFSET: i32 = std::mem::offset_of!(InlineCache, value) as i32;

    #[inline(always)]
    pub fn get(&self) -> (u32, u32) {
        (self.key.get(), self.value.get())
    }

    #[inline(always)]
    pub fn set(&self, (key, value): (u32, u32)) {
        self.key.set(key);
        self.value.set(value);
    }
}

/// An interpreter frame.
#[derive(Clone)]
pub struct Frame {
    pub func: Rc<Function>,
    pub pc: usize,
    pub base: usize,
    /// Absolute stack index where the result goes.
    pub ret: usize,
    /// Distinguishes this frame from earlier ones at the same depth (`FrameStack::push`).
    pub serial: u64,
}

/// Deepest call nesting before `stack overflow`.
pub const MAX_FRAMES: usize = 100_000;

pub struct Vm {
    pub stack: Vec<Value>,
    pub frames: frame_stack::FrameStack,
    pub heap: Heap,
    pub globals: Vec<Value>,
    pub global_names: IndexSet<String>,
    /// The function table: calls go through it. Slots only grow; `None` is a removed function.
    pub funcs: func_table::FuncTable,
    pub func_names: IndexSet<String>,
    /// Record types by slot. A type whose layout changes gets a new slot, so old instances
    /// keep pointing at their old layout until they are transformed.
    pub types: Vec<TypeRt>,
    /// The current slot of each type name.
    pub type_slots: std::collections::HashMap<String, u32>,
    /// Interned field and method names.
    pub syms: IndexSet<String>,
    pub natives: Vec<NativeDef>,
    native_index: FxHashMap<&'static str, u32>,
    pub builtin_methods: FxHashMap<(BuiltinKind, u32), MethodImpl>,
    /// What each built-in method reads, as it declared when registered (`Reads`).
    pub method_reads: FxHashMap<(BuiltinKind, u32), Reads>,
    /// The running program version: 1 at start, +1 per applied update.
    pub version: u32,
    pub out: Box<dyn Write>,
    pub args: Vec<String>,
    /// Polled at safepoints: an interrupt (raised from another thread) or an update waiting
    /// for an update point (raised by the VM itself).
    pub signals: Arc<signals::Signals>,
    /// Status requests from other threads (`inspect.rs`).
    pub(crate) questions: Arc<inspect::Questions>,
    /// When the VM was made (`Status::uptime_ms`).
    pub(crate) started: std::time::Instant,
    /// The compiled tier, if one is installed, and when it compiles.
    pub jit: Option<Box<dyn tier::TierCompiler>>,
    /// Set with `set_jit_mode`.
    pub jit_mode: tier::JitMode,
    /// Compiled activations running now (see `tier::MAX_TIER_DEPTH`).
    pub(crate) tier_depth: u32,
    /// Frames and registers past which a call is a `stack overflow`: `MAX_FRAMES` and
    /// `64 * MAX_FRAMES`, except while a lazy conversion runs (see `convert_lazy`).
    pub frame_limit: usize,
    pub(crate) register_limit: usize,
    /// Functions an update took from frames while compiled code was running, by frame (depth
    /// and serial): a compiled activation suspended in that frame may still run their code and
    /// read their inline caches. At most one per depth (the one the frame's activation started
    /// with); dropped when a compiled activation starts at that depth or below (the suspended
    /// ones there have ended), when another frame takes the depth, or when no compiled code
    /// runs at all.
    pub(crate) retired: Vec<(usize, u64, Rc<Function>)>,
    /// The last version of each function an update removed, by slot: old code (a closure, a
    /// function value, a frame finishing in old code) that still calls it runs that version
    /// (DSU.md: old code stays alive as long as something uses it).
    pub(crate) removed_funcs: rustc_hash::FxHashMap<u32, Rc<Function>>,
    /// (type name, method name symbol) -> function slot, for every method ever linked (like
    /// function slots, forever): how old code finds a method an update removed.
    pub(crate) method_slots: FxHashMap<(String, u32), u32>,
    /// Global slots an update removed whose value old code may still read (dropped when
    /// none can: `update/old_code.rs`).
    pub(crate) removed_globals: rustc_hash::FxHashSet<u32>,
    /// Dynamic software updating: settings, the pending update, events.
    pub dsu: update::UpdateState,
    /// Old type slots whose instances still wait for a lazy conversion.
    pub lazy_slots: Vec<u32>,
    /// Tasks (green threads) and their scheduler.
    pub tasks: tasks::Scheduler,
    /// Native code (a built-in's callback, a transformer, an embedder's call) between the
    /// running code and the scheduler: a task cannot be suspended while it is above zero.
    pub(crate) callback_depth: u32,
}

impl Default for Vm {
    fn default() -> Self {
        Vm::new()
    }
}

impl Vm {
    pub fn new() -> Vm {
        let mut vm = Vm {
            stack: Vec::with_capacity(1024),
            frames: Default::default(),
            heap: Heap::new(),
            globals: Vec::new(),
            global_names: IndexSet::new(),
            funcs: Default::default(),
            func_names: IndexSet::new(),
            types: Vec::new(),
            type_slots: Default::default(),
            syms: IndexSet::new(),
            natives: Vec::new(),
            native_index: FxHashMap::default(),
            builtin_methods: FxHashMap::default(),
            method_reads: FxHashMap::default(),
            version: 1,
            out: Box::new(std::io::BufWriter::new(std::io::stdout())),
            args: Vec::new(),
            signals: Arc::new(signals::Signals::new()),
            questions: Default::default(),
            started: std::time::Instant::now(),
            jit: None,
            tier_depth: 0,
            frame_limit: MAX_FRAMES,
            register_limit: 64 * MAX_FRAMES,
            retired: Vec::new(),
            removed_funcs: Default::default(),
            method_slots: Default::default(),
            removed_globals: Default::default(),
            jit_mode: tier::JitMode::Off,
            dsu: Default::default(),
            lazy_slots: Vec::new(),
            tasks: Default::default(),
            callback_depth: 0,
        };
        vm.register_tasks();
        vm
    }

    /// When the installed tier compiles (`jit_mode`), with the signal that lets hot loops
    /// move into compiled code when it is `On` (setting the field alone leaves that off).
    pub fn set_jit_mode(&mut self, mode: tier::JitMode) {
        self.jit_mode = mode;
        self.signals.set_tier(mode == tier::JitMode::On);
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        self.syms.insert_full(name.to_string()).0 as u32
    }

    pub fn register_native(&mut self, def: NativeDef) {
        let i = self.natives.len() as u32;
        self.native_index.insert(def.name, i);
        self.natives.push(def);
    }

    pub fn native_index(&self, name: &str) -> Option<u32> {
        self.native_index.get(name).copied()
    }

    /// Registers method `name` of `kind` with what it reads (a method written in Molt may
    /// call anything: `Reads::World`).
    pub fn register_method(&mut self, kind: BuiltinKind, name: &str, m: MethodImpl, reads: Reads) {
        let sym = self.intern(name);
        self.builtin_methods.insert((kind, sym), m);
        self.method_reads.insert((kind, sym), reads);
    }

    /// The names of the registered built-in functions (for the compiler's resolver).
    pub fn native_names(&self) -> Vec<&'static str> {
        self.natives.iter().map(|n| n.name).collect()
    }

    pub fn func_slot(&self, name: &str) -> Option<u32> {
        let slot = self.func_names.get_index_of(name)? as u32;
        self.funcs.get(slot as usize)?.as_ref()?;
        Some(slot)
    }

    /// How `print` shows `v`, after converting the instances reachable from it that still
    /// owe a lazy conversion (as a built-in does before it looks at values). For embedders:
    /// `to_string` and `repr` show the heap as it is, where such an instance still has its
    /// fields from before the update.
    pub fn show(&mut self, v: Value) -> Result<String, String> {
        if !self.lazy_slots.is_empty() {
            for r in self.owed_conversions(&[v]) {
                self.convert_lazy(r)?;
            }
        }
        Ok(self.to_string(v))
    }

    /// `str(v)`, cut at the string limit (with `...`) for messages and displays.
    pub fn to_string(&self, v: Value) -> String {
        let f = |v| native::function_name(&self.funcs, &self.natives, &self.heap, v);
        print::Printer { heap: &self.heap, types: &self.types, func_name: &f }.to_string(v)
    }

    /// How `v` prints inside a container, cut at the string limit (with `...`).
    pub fn repr(&self, v: Value) -> String {
        let f = |v| native::function_name(&self.funcs, &self.natives, &self.heap, v);
        print::Printer { heap: &self.heap, types: &self.types, func_name: &f }.repr(v)
    }

    pub fn type_of(&self, v: Value) -> &str {
        native::type_of(&self.heap, &self.types, v)
    }

    /// A collection at a safepoint (a loop back-edge, a call, an update point): the
    /// out-of-memory error when the live data is still over the heap limit after it (or
    /// collections are paused, and the heap is over it).
    pub(crate) fn safepoint_collect(&mut self, top: usize) -> Result<(), String> {
        self.collect_garbage(top);
        match self.heap.over_limit() {
            Some(msg) => Err(msg),
            None => Ok(()),
        }
    }

    /// Runs a garbage collection now. `top` is one past the highest live register.
    pub fn collect_garbage(&mut self, top: usize) {
        if self.heap.pause_gc {
            return;
        }
        self.signals.set_collect(false);
        let top = top.min(self.stack.len());
        let stack = &self.stack[..top];
        // Both tables during a per-task transition.
        let other = self.dsu.transition_funcs();
        let funcs = self.funcs.iter().flatten().chain(other);
        let funcs = funcs.flat_map(|f| f.consts.iter().copied());
        let frames = self.frames.iter().flat_map(|f| f.func.consts.iter().copied());
        // Code that old code can still run: removed functions and outdated layouts' transformers.
        let removed = self.removed_funcs.values().flat_map(|f| f.consts.iter().copied());
        let forwards = self.types.iter().filter_map(|t| t.forward.as_ref()?.transform.as_ref());
        let forwards = forwards.flat_map(|f| f.consts.iter().copied());
        // Functions compiled code still runs in frames an update moved to identical new code
        // (`Vm::retired`): that code reads its own function's constants.
        let retired = self.retired.iter().flat_map(|(_, _, f)| f.consts.iter().copied());
        let roots = stack.iter().copied().chain(self.globals.iter().copied()).chain(funcs).chain(frames);
        let roots = roots.chain(removed).chain(forwards).chain(retired).chain(self.tasks.roots());
        self.heap.collect(roots);
        if self.tasks.active {
            self.tasks.prune(&self.heap);
            self.tasks.waits.prune_sockets(&self.heap);
        }
        if self.heap.trace_code {
            self.drop_unreachable_old_code();
        }
    }

    /// Calls function slot `slot` with `args` and runs it to completion.
    pub fn call_slot(&mut self, slot: u32, args: &[Value]) -> Result<Value, RuntimeError> {
        let func = match self.funcs.get(slot as usize) {
            Some(Some(f)) => f.clone(),
            _ => return Err(RuntimeError::new("call of a removed function")),
        };
        self.call_function(func, args)
    }

    /// Calls `func` (this very version of it) with `args` and runs it to completion.
    pub fn call_function(&mut self, func: Rc<Function>, args: &[Value]) -> Result<Value, RuntimeError> {
        if func.proto.arity as usize != args.len() {
            return Err(RuntimeError::new(format!(
                "<fn {}> expects {} but got {}",
                func.proto.name,
                error::arguments(func.proto.arity as usize),
                args.len()
            )));
        }
        let base = self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize);
        let ret = base;
        let need = base + 1 + func.proto.nregs as usize;
        if self.stack.len() < need {
            self.stack.resize(need, Value::Nil);
        }
        let base = base + 1;
        self.stack[base..base + args.len()].copy_from_slice(args);
        let depth = self.frames.len();
        self.frames.push(func, base, ret);
        self.callback_depth += 1;
        let result = self.execute(depth);
        self.callback_depth -= 1;
        if result.is_err() {
            self.frames.truncate(depth);
        }
        result
    }

    /// Flushes program output.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}
