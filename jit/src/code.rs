//! Where compiled code lives, and when it is freed. Cranelift frees machine code a whole module
//! at a time (`JITModule::free_memory`), so functions are compiled into a module of a batch of
//! at most `FUNCTIONS_PER_MODULE`; each compiled function holds its module (`Rc<CodeModule>`),
//! and a module is freed when its last function is dropped, that is when no `Function` of any
//! version uses that code any more (no frame, table slot, closure or running activation can
//! reach it: see docs/jit.md, "Memory"). Code is shared by content across versions, and the most
//! recently compiled functions are kept a while after their last user goes, so a program that
//! alternates between versions does not compile the same code again and again.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use cranelift_codegen::ir::{AbiParam, UserFuncName, types};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use molt_vm::tier::{Builtins, CompiledCode, Exit, Feedback, TierCompiler};
use molt_vm::{InlineCache, Proto, Value, Vm};

use crate::translate::Intrinsics;
use crate::{Compiled, Entry, HELPERS, HeapLayout, PURE_HELPERS, translate};

/// The longest function the tier compiles (about 0.2 s of compile time at this size; a
/// function of 6,000 instructions took tens of seconds and gigabytes).
const MAX_INSTRUCTIONS: usize = 1000;

/// Functions compiled into one module before a new one is started.
const FUNCTIONS_PER_MODULE: usize = 64;
/// Compiled functions kept alive after their last user is gone (most recent first out last).
const RECENT: usize = 64;

/// A Cranelift module and its helpers' declarations.
pub(crate) struct CodeModule {
    module: RefCell<Option<JITModule>>,
    helpers: Vec<FuncId>,
    functions: Cell<usize>,
    bytes: Cell<usize>,
    /// Bytes of machine code in modules not freed yet (shared with the `Jit`).
    live: Rc<Cell<usize>>,
}

impl Drop for CodeModule {
    fn drop(&mut self) {
        self.live.set(self.live.get() - self.bytes.get());
        if let Some(module) = self.module.get_mut().take() {
            // SAFETY: a module is dropped when the last `Compiled` holding it is (the `Jit`
            // holds only the module it is filling, and drops it before starting another).
            // A `Compiled` is dropped when no `Function` holds its `SharedCode`, and the VM
            // keeps the `Function` of every running or suspended compiled activation (its
            // frame, the function table for a virtual frame, the caller's `Rc` for a run,
            // `Vm::retired` for frames an update moved), so none of this code runs or will
            // be called again.
            unsafe { module.free_memory() };
        }
    }
}

/// The Cranelift compiler.
pub struct Jit {
    isa: Arc<dyn TargetIsa>,
    /// The module being filled.
    current: Rc<CodeModule>,
    heap: HeapLayout,
    /// Compiled code by content (`content_key`), while something uses it: an update relinks
    /// every function, and unchanged ones get their code back without compiling again.
    by_content: HashMap<Vec<u8>, Weak<Compiled>>,
    /// The last `RECENT` functions compiled, kept alive.
    recent: VecDeque<Rc<Compiled>>,
    fctx: FunctionBuilderContext,
    live: Rc<Cell<usize>>,
    /// Functions compiled so far, and their total code size (for reports).
    pub compiled: usize,
    pub code_bytes: usize,
    /// (function, compile time in microseconds, code bytes), in compile order.
    log: Vec<(String, u64, usize)>,
}

impl Jit {
    /// A compiler for the host machine, or why there is none.
    pub fn new() -> Result<Jit, String> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| format!("{k}: {e}"));
        set(&mut flags, "opt_level", "speed")?;
        // Cranelift's IR verifier checks every function before compiling it (about half of
        // the compile time: nbody's `advance` 14.4 -> 6.9 ms): on in debug builds (every test
        // run, CI), off in release builds.
        set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("this machine is not supported by the JIT: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        if isa.pointer_type() != types::I64 {
            return Err("the JIT needs a 64-bit machine".into());
        }
        let live = Rc::new(Cell::new(0));
        Ok(Jit {
            current: new_module(&isa, &live)?,
            isa,
            heap: HeapLayout::probe()?,
            by_content: HashMap::new(),
            recent: VecDeque::new(),
            fctx: FunctionBuilderContext::new(),
            live,
            compiled: 0,
            code_bytes: 0,
            log: Vec::new(),
        })
    }

    fn try_compile(
        &mut self,
        proto: &Proto,
        consts: &[Value],
        intrinsics: Intrinsics,
        feedback: Feedback,
    ) -> Result<Compiled, String> {
        // Compile time grows faster than linearly with a function's size (every instruction
        // can continue at any other through the dispatch block), and very long functions are
        // rarely the hot ones: they stay interpreted.
        if proto.code.len() > MAX_INSTRUCTIONS {
            return Err(format!(
                "too large ({} instructions, the tier compiles at most {MAX_INSTRUCTIONS})",
                proto.code.len()
            ));
        }
        if self.current.functions.get() >= FUNCTIONS_PER_MODULE {
            self.current = new_module(&self.isa, &self.live)?;
        }
        let code = self.current.clone();
        let mut guard = code.module.borrow_mut();
        let module = guard.as_mut().ok_or("the code module is gone")?;
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        let id = module.declare_anonymous_function(&sig).map_err(|e| e.to_string())?;
        let mut ctx = module.make_context();
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let refs: Vec<_> = code.helpers.iter().map(|&h| module.declare_func_in_func(h, &mut ctx.func)).collect();
        let helpers = translate::Helpers {
            step: refs[0],
            get_field: refs[1],
            set_field: refs[2],
            call_func: refs[3],
            get_index: refs[4],
            call_native: refs[5],
            call_exit: refs[6],
            sync: refs[7],
            arith: refs[8],
            builtin_method: refs[9],
            new_record: refs[10],
            map_get_int: refs[11],
            map_method_int: refs[12],
            map_set_int: refs[13],
            list_push: refs[14],
        };
        let target = module.target_config();
        let runtime = translate::Runtime { helpers, heap: self.heap, intrinsics };
        let inlined = translate::build(&mut ctx.func, &mut self.fctx, proto, consts, feedback, target, runtime)?;
        // MOLT_JIT_DISASM=1 (a tool for working on the tier): each function's machine code.
        let disasm = std::env::var_os("MOLT_JIT_DISASM").is_some();
        ctx.set_disasm(disasm);
        module.define_function(id, &mut ctx).map_err(|e| format!("{e:?}"))?;
        if let Some(text) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()).filter(|_| disasm) {
            eprintln!("; {} ({} registers)\n{text}", proto.name, proto.nregs);
        }
        let size = ctx.compiled_code().map_or(0, |c| c.code_info().total_size as usize);
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(|e| e.to_string())?;
        let ptr = module.get_finalized_function(id);
        drop(guard);
        // SAFETY: `ptr` is the finalized code of a function declared with exactly the
        // signature `Entry` mirrors (one pointer parameter, one i64 result, the host's
        // default call convention, which is what `extern "C"` uses). It stays valid while
        // `code` (the module) lives, which the `Compiled` below holds.
        let entry: Entry = unsafe { std::mem::transmute::<*const u8, Entry>(ptr) };
        code.functions.set(code.functions.get() + 1);
        code.bytes.set(code.bytes.get() + size);
        self.live.set(self.live.get() + size);
        self.compiled += 1;
        self.code_bytes += size;
        Ok(Compiled {
            entry,
            nregs: proto.nregs as usize,
            ncode: proto.code.len(),
            nconsts: consts.len(),
            size,
            _inlined: inlined,
            _module: code,
        })
    }
}

/// A new module with the helpers declared.
fn new_module(isa: &Arc<dyn TargetIsa>, live: &Rc<Cell<usize>>) -> Result<Rc<CodeModule>, String> {
    let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
    for (name, f) in HELPERS {
        builder.symbol(name, f as *const u8);
    }
    for (name, f) in PURE_HELPERS {
        builder.symbol(name, f as *const u8);
    }
    let mut module = JITModule::new(builder);
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(types::I64); 4]);
    sig.returns.push(AbiParam::new(types::I64));
    let mut helpers = Vec::new();
    for name in HELPERS.iter().map(|h| h.0).chain(PURE_HELPERS.iter().map(|h| h.0)) {
        helpers.push(module.declare_function(name, Linkage::Import, &sig).map_err(|e| e.to_string())?);
    }
    Ok(Rc::new(CodeModule {
        module: RefCell::new(Some(module)),
        helpers,
        functions: Cell::new(0),
        bytes: Cell::new(0),
        live: live.clone(),
    }))
}

/// Compiled code shared by every `Function` with the same linked code.
struct SharedCode(Rc<Compiled>);

impl CompiledCode for SharedCode {
    fn run(&self, vm: &mut Vm, caches: &[InlineCache], consts: &[Value], base: usize, entry: usize) -> Exit {
        self.0.run(vm, caches, consts, base, entry)
    }

    fn code_size(&self) -> usize {
        self.0.size
    }

    fn direct_entry(&self) -> usize {
        self.0.entry as usize
    }
}

/// What compiled code depends on: the linked instructions, the constants (ints and floats are
/// built into the code) and the register count; `Jit::compile` adds the functions it inlines.
fn content_key(proto: &Proto, consts: &[Value]) -> Vec<u8> {
    let mut key = Vec::with_capacity(proto.code.len() * 8 + consts.len() * 9 + 2);
    key.extend_from_slice(&proto.nregs.to_le_bytes());
    for ins in &proto.code {
        ins.encode(&mut key);
    }
    for c in consts {
        match c {
            Value::Int(i) => {
                key.push(1);
                key.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                key.push(2);
                key.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            _ => key.push(0), // loaded through the VM, not built in
        }
    }
    key
}

impl TierCompiler for Jit {
    fn compile(
        &mut self,
        proto: &Proto,
        consts: &[Value],
        builtins: Builtins,
        feedback: Feedback,
    ) -> Option<Box<dyn CompiledCode>> {
        let mut key = content_key(proto, consts);
        for f in translate::inlined_identities(proto, feedback) {
            key.extend_from_slice(&f.to_le_bytes());
        }
        if let Some(code) = self.by_content.get(&key).and_then(Weak::upgrade) {
            return Some(Box::new(SharedCode(code)));
        }
        let started = std::time::Instant::now();
        let intrinsics = Intrinsics {
            sqrt: builtins.native("sqrt"),
            len: builtins.native("len"),
            has: builtins.name("has"),
            remove: builtins.name("remove"),
            push: builtins.name("push"),
        };
        let compiled = match self.try_compile(proto, consts, intrinsics, feedback) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                if std::env::var_os("MOLT_JIT_REPORT").is_some() {
                    eprintln!("jit: {} not compiled: {e}", proto.name);
                }
                return None;
            }
        };
        self.log.push((proto.name.clone(), started.elapsed().as_micros() as u64, compiled.size));
        if self.by_content.len() >= 2 * RECENT && self.by_content.len().is_power_of_two() {
            self.by_content.retain(|_, code| code.strong_count() > 0);
        }
        self.by_content.insert(key, Rc::downgrade(&compiled));
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(compiled.clone());
        Some(Box::new(SharedCode(compiled)))
    }

    fn report(&self) -> Vec<(String, u64, usize)> {
        self.log.clone()
    }

    fn live_code_bytes(&self) -> usize {
        self.live.get()
    }

    // `worth_compiling`: the default (every hot function). Calls, field and list access
    // are inline now, so call-heavy code gains too.
}
