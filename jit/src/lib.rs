//! Molt's compiled tier: bytecode functions translated to machine code with Cranelift.
//!
//! The contract with the VM (`molt_vm::tier`): compiled code gets the frame's registers (the
//! interpreter's own) and two flags; it returns how it left. It handles the instructions in
//! `translate.rs` on the fast paths (ints, fused compares, counting loops); on anything else
//! (a value of another type, an overflow to report, a pending update, an interrupt) it exits
//! to the interpreter at that instruction, which then does exactly what it always does. So
//! compiled and interpreted code behave the same, and DSU rules hold unchanged: compiled code
//! belongs to one `Function` (one version of the code) and is dropped with it.
//!
//! This first version compiles only functions whose every instruction it knows (no calls, no
//! heap access); the others stay interpreted.

mod translate;

use std::sync::atomic::AtomicU32;

use cranelift_codegen::ir::{AbiParam, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Module, default_libcall_names};
use molt_vm::tier::{CompiledCode, Exit, Flags, TierCompiler};
use molt_vm::{Proto, Value};

/// The signature every compiled function has: (registers, the VM's signal word) ->
/// exit code (see `decode_exit`).
type Entry = unsafe extern "C" fn(*mut Value, *const AtomicU32) -> u64;

/// Exit codes: kind in the high 32 bits, register or pc in the low 32.
pub(crate) const EXIT_RETURNED: u64 = 0;
pub(crate) const EXIT_RETURNED_NIL: u64 = 1;
pub(crate) const EXIT_RESUME: u64 = 2;

fn decode_exit(code: u64) -> Exit {
    let low = (code & 0xffff_ffff) as usize;
    match code >> 32 {
        EXIT_RETURNED => Exit::Returned(low as u16),
        EXIT_RETURNED_NIL => Exit::ReturnedNil,
        _ => Exit::Resume(low),
    }
}

/// One compiled function. Its machine code lives in the compiler's module, which is never
/// freed (Cranelift frees memory per module only): see docs/progress.md.
struct Compiled {
    entry: Entry,
    nregs: usize,
    size: usize,
}

impl CompiledCode for Compiled {
    fn run(&self, regs: &mut [Value], flags: &Flags) -> Exit {
        if regs.len() < self.nregs {
            return Exit::Resume(0);
        }
        // SAFETY: `entry` was produced by `Jit::compile` for a verified function with
        // `nregs` registers; the generated code reads and writes only `regs[0..nregs]` (every
        // register operand is below nregs, checked by the verifier), as 16-byte `Value`s in
        // the `repr(C, u8)` layout (tag byte at 0, payload at 8), and writes only valid
        // values (tags NIL/BOOL/INT/FLOAT with their payloads). The flags are read with
        // atomic loads. It calls nothing and cannot unwind.
        let code = unsafe { (self.entry)(regs.as_mut_ptr(), flags.signals) };
        decode_exit(code)
    }

    fn code_size(&self) -> usize {
        self.size
    }
}

/// The Cranelift compiler.
pub struct Jit {
    module: JITModule,
    fctx: FunctionBuilderContext,
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
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("this machine is not supported by the JIT: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        Ok(Jit { module, fctx: FunctionBuilderContext::new(), compiled: 0, code_bytes: 0, log: Vec::new() })
    }

    fn try_compile(&mut self, proto: &Proto, consts: &[Value]) -> Result<Compiled, String> {
        if !translate::supported(proto, consts) {
            return Err("unsupported instructions".into());
        }
        let ptr = self.module.target_config().pointer_type();
        let mut sig = self.module.make_signature();
        sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
        sig.returns.push(AbiParam::new(types::I64));
        let id = self.module.declare_anonymous_function(&sig).map_err(|e| e.to_string())?;
        let mut ctx = self.module.make_context();
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        translate::build(&mut ctx.func, &mut self.fctx, proto, consts, self.module.target_config())?;
        self.module.define_function(id, &mut ctx).map_err(|e| format!("{e:?}"))?;
        let size = ctx.compiled_code().map_or(0, |c| c.code_info().total_size as usize);
        self.module.clear_context(&mut ctx);
        self.module.finalize_definitions().map_err(|e| e.to_string())?;
        let ptr = self.module.get_finalized_function(id);
        // SAFETY: `ptr` is the finalized code of a function declared with exactly the
        // signature `Entry` mirrors (two pointer parameters, one i64 result, the host's
        // default call convention, which is what `extern "C"` uses).
        let entry: Entry = unsafe { std::mem::transmute::<*const u8, Entry>(ptr) };
        self.compiled += 1;
        self.code_bytes += size;
        Ok(Compiled { entry, nregs: proto.nregs as usize, size })
    }
}

impl TierCompiler for Jit {
    fn compile(&mut self, proto: &Proto, consts: &[Value]) -> Option<Box<dyn CompiledCode>> {
        let started = std::time::Instant::now();
        let compiled = self.try_compile(proto, consts).ok()?;
        self.log.push((proto.name.clone(), started.elapsed().as_micros() as u64, compiled.size));
        Some(Box::new(compiled))
    }

    fn report(&self) -> Vec<(String, u64, usize)> {
        self.log.clone()
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
    }
}
