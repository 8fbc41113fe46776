//! The interface to an optional compiled tier. The VM knows compiled code only through these
//! traits; the Cranelift JIT (`molt-jit`) implements them. Compiled code works on the
//! interpreter's own frame registers, so the interpreter can take over at any instruction.
//! What compiled code does not do itself (a type it does not expect, an overflow to report,
//! a call, a heap access) it hands to `Vm::tier_step`, which runs that one instruction in the
//! interpreter; at an update point with an update waiting it exits to the interpreter.

use crate::{Proto, RuntimeError, Value, Vm};

/// Nested compiled activations (compiled code calling, through the interpreter, other
/// compiled code) allowed at once: deeper calls run interpreted, so the native stack stays
/// bounded whatever the Molt recursion depth. Each level takes a few native frames (a few KiB
/// in a release build, tens in a debug build): an embedder running compiled code should give
/// the VM's thread a large stack, as the `molt` binary does.
pub const MAX_TIER_DEPTH: u32 = 100;

/// How compiled code left a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It returned the value in this register.
    Returned(u16),
    /// It returned nil.
    ReturnedNil,
    /// The interpreter continues the frame at this pc (nothing of that instruction was done).
    Resume(usize),
    /// A runtime error, raised (with its stack trace) by an instruction it handed over.
    Error(RuntimeError),
}

pub trait CompiledCode {
    /// Runs the function on the top frame of `vm`, whose registers start at `vm.stack[base]`
    /// (`nregs` of them), from instruction `pc` (0, or a loop head: on-stack replacement).
    /// `caches`: the running function's inline caches (its version's, shared with the
    /// interpreter); `consts`: its constants (strings are objects of its version's).
    fn run(&self, vm: &mut Vm, caches: &[crate::InlineCache], consts: &[Value], base: usize, pc: usize) -> Exit;
    /// Size of the machine code in bytes.
    fn code_size(&self) -> usize;
    /// An opaque nonzero token the tier's own compiled code may use to call this code
    /// directly (see `Vm::tier_call_func`), or 0 when it has none.
    fn direct_entry(&self) -> usize {
        0
    }
}

/// What the interpreter saw of a function before the tier compiled it: the inline caches
/// (the record type each field access met, and its field index) and the instructions that
/// met a float. The tier may specialise on it, but must guard whatever it assumes: it is a
/// guess about the future, and machine code is shared by content between versions with other
/// histories.
#[derive(Clone, Copy)]
pub struct Feedback<'a> {
    pub caches: &'a [crate::InlineCache],
    pub floats: &'a [std::cell::Cell<bool>],
    /// The function table as it is now (by slot), for the methods a call site met.
    pub funcs: &'a [Option<std::rc::Rc<crate::Function>>],
}

impl Feedback<'_> {
    /// The record type slot and field index the field access at `pc` met last, if any.
    pub fn field(&self, pc: usize) -> Option<(u32, u32)> {
        let (key, value) = self.caches.get(pc)?.get();
        (key != 0).then(|| (key - 1, value))
    }

    /// The function now in table slot `slot`.
    pub fn function(&self, slot: u32) -> Option<&std::rc::Rc<crate::Function>> {
        self.funcs.get(slot as usize)?.as_ref()
    }

    /// Whether the instruction at `pc` met a float.
    pub fn float(&self, pc: usize) -> bool {
        self.floats.get(pc).is_some_and(std::cell::Cell::get)
    }
}

/// The VM's built-ins, for a tier that compiles some of them inline (`sqrt`, `len`, a map's
/// `has`): the built-in functions (`CallNative` operands index them) and the interned names
/// (`CallMethod` operands index them).
#[derive(Clone, Copy)]
pub struct Builtins<'a> {
    pub natives: &'a [crate::NativeDef],
    pub names: &'a indexmap::IndexSet<String>,
}

impl Builtins<'_> {
    /// The built-in function called `name`, by slot.
    pub fn native(&self, name: &str) -> Option<u32> {
        self.natives.iter().position(|n| n.name == name).map(|i| i as u32)
    }

    /// The interned name `name` (a method's), if any code or built-in uses it.
    pub fn name(&self, name: &str) -> Option<u32> {
        self.names.get_index_of(name).map(|i| i as u32)
    }
}

/// A compiler for the tier: `None` when it does not handle this function (it stays
/// interpreted).
pub trait TierCompiler {
    fn compile(
        &mut self,
        proto: &Proto,
        consts: &[Value],
        builtins: Builtins,
        feedback: Feedback,
    ) -> Option<Box<dyn CompiledCode>>;
    /// Whether compiled code would beat the interpreter on this function (`--jit on` asks;
    /// `--jit always` compiles everything).
    fn worth_compiling(&self, _proto: &Proto) -> bool {
        true
    }
    /// What was compiled so far: (function, compile time in microseconds, code bytes).
    fn report(&self) -> Vec<(String, u64, usize)> {
        Vec::new()
    }
    /// Bytes of machine code in memory now (code of dead versions is freed).
    fn live_code_bytes(&self) -> usize {
        0
    }
}

/// `molt run --jit off|on|always`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JitMode {
    #[default]
    Off,
    /// Compile a function once it has been called `JIT_THRESHOLD` times.
    On,
    /// Compile every function at its first call (for testing).
    Always,
}

/// Calls before a function is compiled under `JitMode::On`.
pub const JIT_THRESHOLD: u32 = 1000;
