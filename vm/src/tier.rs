//! The interface to an optional compiled tier. The VM knows compiled code only through these
//! traits; the Cranelift JIT (`molt-jit`) implements them. Compiled code works on the
//! interpreter's own frame registers, so the interpreter can take over at any instruction:
//! anything the compiled code does not handle (a type it does not expect, an overflow to
//! report, a pending update, an interrupt) is an exit to the interpreter at that pc.

use std::sync::atomic::AtomicU32;

use crate::{Proto, Value};

/// How compiled code left a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It returned the value in this register.
    Returned(u16),
    /// It returned nil.
    ReturnedNil,
    /// The interpreter continues the frame at this pc (nothing of that instruction was done).
    Resume(usize),
}

/// What compiled code polls: the VM's signal word (`crate::signals::Signals`), for
/// `INTERRUPT` at loop back-edges and `UPDATE` at update points.
pub struct Flags<'a> {
    pub signals: &'a AtomicU32,
}

pub trait CompiledCode {
    /// Runs the function on its frame's registers (exactly `nregs` values).
    fn run(&self, regs: &mut [Value], flags: &Flags) -> Exit;
    /// Size of the machine code in bytes.
    fn code_size(&self) -> usize;
}

/// A compiler for the tier: `None` when it does not handle this function (it stays
/// interpreted).
pub trait TierCompiler {
    fn compile(&mut self, proto: &Proto, consts: &[Value]) -> Option<Box<dyn CompiledCode>>;
    /// What was compiled so far: (function, compile time in microseconds, code bytes).
    fn report(&self) -> Vec<(String, u64, usize)> {
        Vec::new()
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
