//! The entry points for compiled code (`molt_vm::tier`): compiling a function when due,
//! running its code, and the operations compiled code hands to the VM (`tier_*`): calls and
//! their exits, frames for activations compiled code started itself, the heap and stack
//! accesses it does not do inline, and any instruction at all (`tier_step`).

use std::rc::Rc;

use super::methods::{MethodTarget, builtin_kind};
use super::support::check_arity;
use crate::tier::{Exit, JIT_THRESHOLD, JitMode, MAX_TIER_DEPTH};
use crate::{Function, RuntimeError, Value, Vm};

impl Vm {
    /// `func`'s compiled code, compiling it first when due (by the `--jit` mode and its call
    /// count); `None` when it stays interpreted.
    #[inline]
    fn compiled_code<'f>(&mut self, func: &'f Function) -> Option<&'f dyn crate::tier::CompiledCode> {
        if let Some(code) = func.jit.get() {
            return code.as_deref();
        }
        self.compile_when_due(func)
    }

    fn compile_when_due<'f>(&mut self, func: &'f Function) -> Option<&'f dyn crate::tier::CompiledCode> {
        {
            let due = match self.jit_mode {
                JitMode::Always => true,
                JitMode::On => {
                    let n = func.calls.get() + 1;
                    func.calls.set(n);
                    if n < JIT_THRESHOLD {
                        return None;
                    }
                    // Hot, but compiled only where it pays; otherwise it stays interpreted.
                    if !self.jit.as_ref().is_some_and(|c| c.worth_compiling(&func.proto)) {
                        let _ = func.jit.set(None);
                        return None;
                    }
                    true
                }
                JitMode::Off => false,
            };
            if !due {
                return None;
            }
            let feedback = crate::tier::Feedback { caches: &func.caches, floats: &func.floats, funcs: &self.funcs };
            let builtins = crate::tier::Builtins { natives: &self.natives, names: &self.syms };
            let compiled = self.jit.as_mut().and_then(|c| c.compile(&func.proto, &func.consts, builtins, feedback));
            func.tier_entry.set(compiled.as_ref().map_or(0, |c| c.direct_entry()));
            let _ = func.jit.set(compiled);
            self.funcs.compiled(func);
        }
        func.jit.get()?.as_deref()
    }

    /// Runs `func`'s compiled code on its frame (compiling it first when due); `None` when it
    /// has none.
    /// `pc`: where to start (0, or a loop head for on-stack replacement).
    pub(super) fn run_compiled(&mut self, func: &Rc<Function>, base: usize, pc: usize) -> Option<Exit> {
        let code = self.compiled_code(func)?;
        if self.tier_depth >= MAX_TIER_DEPTH || self.stack.len() < base + func.proto.nregs as usize {
            return None;
        }
        if !self.retired.is_empty() {
            let depth = self.frames.len().saturating_sub(1);
            self.retired.retain(|(d, _, _)| *d < depth);
        }
        self.tier_depth += 1;
        let exit = code.run(self, &func.caches, &func.consts, base, pc);
        self.tier_depth -= 1;
        if self.tier_depth == 0 && !self.retired.is_empty() {
            self.retired.clear();
        }
        Some(exit)
    }

    /// `CallFunc` at `pc` of the top frame, for compiled code. Pushes the callee's frame;
    /// when `direct` and the callee has compiled code, returns that code's `direct_entry` for
    /// the caller to call itself (then `tier_call_exit` with how it left). Otherwise the callee
    /// (compiled or not) runs to completion here, through the function table, and this returns
    /// 0.
    pub fn tier_call_func(
        &mut self,
        pc: usize,
        dst: u16,
        f: u32,
        b: u16,
        argc: u16,
        direct: bool,
    ) -> Result<usize, RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let (nregs, mut entry) = match self.funcs.get(f as usize) {
            Some(Some(c)) => match check_arity(c, argc as usize) {
                Ok(()) => (c.proto.nregs as usize, c.tier_entry.get()),
                Err(msg) => return Err(self.raise(msg, pc + 1)),
            },
            _ => return self.tier_call_removed(pc, f, base + b as usize, argc, base + dst as usize).map(|()| 0),
        };
        let (new_base, ret) = (base + b as usize, base + dst as usize);
        if entry == 0
            && let Some(Some(c)) = self.funcs.get(f as usize)
            && c.jit.get().is_none()
        {
            let c = c.clone();
            self.compiled_code(&c);
            entry = c.tier_entry.get();
        }
        if let Err(msg) = self.before_frame(new_base + nregs) {
            return Err(self.raise(msg, pc + 1));
        }
        // Pushed from the table slot itself: no reference count changes in a recursion.
        if let Some(Some(c)) = self.funcs.get(f as usize) {
            self.frames.push_ref(c, new_base, ret);
        }
        if entry != 0 && direct {
            return Ok(entry);
        }
        let depth = self.frames.len() - 1;
        if entry != 0 {
            let func = self.frames[depth].func.clone();
            if let Some(exit) = self.run_compiled(&func, new_base, 0) {
                return self.tier_call_exit(exit).map(|()| 0);
            }
        }
        self.execute_interpreted(depth).map(|_| 0)
    }

    /// A call of a function an update removed, by old code: runs its last version (see
    /// `Vm::removed_funcs`) to completion, or fails as the interpreter does.
    fn tier_call_removed(
        &mut self,
        pc: usize,
        f: u32,
        new_base: usize,
        argc: u16,
        ret: usize,
    ) -> Result<(), RuntimeError> {
        let Some(callee) = self.callee(f) else {
            let msg = format!("function '{}' was removed by an update", self.func_names[f as usize]);
            return Err(self.raise(msg, pc + 1));
        };
        let entered = check_arity(&callee, argc as usize).and_then(|()| self.enter_frame(callee, new_base, ret));
        if let Err(msg) = entered {
            return Err(self.raise(msg, pc + 1));
        }
        let depth = self.frames.len() - 1;
        self.execute(depth).map(|_| ())
    }

    /// The pc of the top frame, for compiled code that made it real (see `tier_push_frame`).
    pub fn tier_set_top_pc(&mut self, pc: usize) {
        if let Some(f) = self.frames.last_mut() {
            f.pc = pc;
        }
    }

    /// An interpreter frame for an activation compiled code started without one (a direct
    /// call of the function in `slot`, which has not changed since): registers at `base`,
    /// result into `ret`, at `pc`.
    pub fn tier_push_frame(&mut self, slot: u32, base: usize, ret: usize, pc: usize) -> Result<(), RuntimeError> {
        match self.funcs.get(slot as usize) {
            Some(Some(f)) => {
                self.frames.push_ref(f, base, ret);
                self.tier_set_top_pc(pc);
                Ok(())
            }
            _ => Err(RuntimeError::new("internal error: a compiled call of a removed function")),
        }
    }

    /// Whether compiled code must leave record field access to the VM: instances owe lazy
    /// conversions, or writes are guarded (an update is running Molt code).
    pub fn tier_heap_slow(&self) -> bool {
        !self.lazy_slots.is_empty() || !matches!(self.heap.guard, crate::heap::WriteGuard::Off)
    }

    /// For compiled code after each call into the VM: raises `Signals::COLLECT` when the
    /// heap is due a collection, so its next inline safepoint takes the slow path.
    #[inline]
    pub fn tier_poll(&self) {
        if self.heap.should_collect() {
            self.signals.set_collect(true);
        }
    }

    /// How a callee entered by `tier_call_func` left its compiled code: a return pops its
    /// frame into the caller's destination register; a resume finishes it in the interpreter.
    pub fn tier_call_exit(&mut self, exit: Exit) -> Result<(), RuntimeError> {
        match exit {
            Exit::Returned(src) => {
                self.tier_return(Some(src));
                Ok(())
            }
            Exit::ReturnedNil => {
                self.tier_return(None);
                Ok(())
            }
            Exit::Error(e) => Err(e),
            Exit::Resume(at) => {
                let depth = self.frames.len() - 1;
                self.frames[depth].pc = at;
                self.execute_interpreted(depth).map(|_| ())
            }
        }
    }

    /// A callee entered by `tier_call_func` returned (the value in register `src`, or nil):
    /// pops its frame into the caller's destination register.
    #[inline]
    pub fn tier_return(&mut self, src: Option<u16>) {
        if let Some(done) = self.frames.pop() {
            self.stack[done.ret] = match src {
                Some(r) => self.stack[done.base + r as usize],
                None => Value::Nil,
            };
        }
    }

    /// `GetIndex` at `pc` of the top frame, for compiled code.
    pub fn tier_get_index(&mut self, pc: usize, dst: u16, obj: u16, index: u16) -> Result<(), RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let (o, i) = (self.stack[base + obj as usize], self.stack[base + index as usize]);
        let result = self.get_index(o, i);
        self.tier_store(pc, base + dst as usize, result)
    }

    /// `CallNative` at `pc` of the top frame, for compiled code.
    pub fn tier_call_native(
        &mut self,
        pc: usize,
        dst: u16,
        native: u32,
        b: u16,
        argc: u16,
    ) -> Result<(), RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let result = self.call_native(native, base + b as usize, argc as usize);
        self.tier_store(pc, base + dst as usize, result)
    }

    /// The top frame's register base, for the tier entry points. Saves `pc` (after the
    /// instruction) in the frame, as the interpreter would have it.
    fn tier_base(&mut self, pc: usize) -> Result<usize, RuntimeError> {
        let f = self.frames.last_mut().ok_or_else(|| RuntimeError::new("no frame to run"))?;
        f.pc = pc;
        Ok(f.base)
    }

    /// `tier_base`, and the top frame's function (for its inline caches).
    fn tier_frame(&mut self, pc: usize) -> Result<(Rc<Function>, usize), RuntimeError> {
        let base = self.tier_base(pc)?;
        Ok((self.frames[self.frames.len() - 1].func.clone(), base))
    }

    /// `GetField` at `pc` of the top frame, for compiled code (as `tier_step`, without the
    /// interpreter loop's entry cost).
    pub fn tier_get_field(&mut self, pc: usize, dst: u16, obj: u16, name: u32) -> Result<(), RuntimeError> {
        let (func, base) = self.tier_frame(pc + 1)?;
        let v = self.stack[base + obj as usize];
        let result = self.get_field(&func, pc + 1, v, name);
        self.tier_store(pc, base + dst as usize, result)
    }

    /// `SetField` at `pc` of the top frame, for compiled code.
    pub fn tier_set_field(&mut self, pc: usize, obj: u16, name: u32, src: u16) -> Result<(), RuntimeError> {
        let (func, base) = self.tier_frame(pc + 1)?;
        let (v, val) = (self.stack[base + obj as usize], self.stack[base + src as usize]);
        self.set_field(&func, pc + 1, v, name, val).map_err(|msg| self.raise(msg, pc + 1))
    }

    /// Runs the one instruction at `pc` of the top frame in the interpreter, for compiled code
    /// that does not handle it itself; returns the pc to continue at. A call runs the callee
    /// to completion. Never used for `Return` or update points (they change frames).
    pub fn tier_step(&mut self, pc: usize) -> Result<usize, RuntimeError> {
        let depth = self.frames.len();
        match self.frames.last_mut() {
            Some(f) => f.pc = pc,
            None => return Err(RuntimeError::new("no frame to run")),
        }
        self.execute_impl::<true>(depth, true)?;
        Ok(self.frames.last().map_or(pc, |f| f.pc))
    }

    /// `Add`/`Sub`/`Mul` (`op`: 0, 1, 2) at `pc` for compiled code, when an operand is not a
    /// number (string concatenation, or the error).
    pub fn tier_arith(&mut self, pc: usize, dst: u16, a: u16, b: u16, op: u8) -> Result<(), RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let sym = ["+", "-", "*"].get(op as usize).copied().unwrap_or("?");
        let (x, y) = (self.stack[base + a as usize], self.stack[base + b as usize]);
        if !self.lazy_slots.is_empty() {
            for v in [x, y] {
                if let Err(e) = self.lazy_touch(v, pc + 1) {
                    return self.tier_store(pc, base + dst as usize, Err(e));
                }
            }
        }
        let result = self.arith_slow(sym, x, y);
        self.tier_store(pc, base + dst as usize, result)
    }

    /// `CallMethod` at `pc` for compiled code, when the receiver is a string, list, map or
    /// range whose method is a built-in function: calls it and returns true. False (nothing
    /// done) for everything else, which compiled code hands to `tier_step`.
    pub fn tier_builtin_method(
        &mut self,
        pc: usize,
        dst: u16,
        b: u16,
        name: u32,
        argc: u16,
    ) -> Result<bool, RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let start = base + b as usize;
        let recv = self.stack[start];
        let Some(kind) = builtin_kind(self, recv) else { return Ok(false) };
        // A prelude method or an error: the VM steps the instruction (and raises the error).
        let Ok(MethodTarget::Native(f)) = self.builtin_method(kind, recv, name, argc) else { return Ok(false) };
        match self.call_native_fn(f, start, argc as usize + 1, false) {
            Ok(v) => {
                self.stack[base + dst as usize] = v;
                Ok(true)
            }
            Err(msg) => Err(self.raise(msg, pc + 1)),
        }
    }

    /// `NewRecord` at `pc` for compiled code.
    pub fn tier_new_record(&mut self, pc: usize, dst: u16, ty: u32, b: u16, n: u16) -> Result<(), RuntimeError> {
        let base = self.tier_base(pc + 1)?;
        let result = self.new_record(ty, base + b as usize, n as usize);
        self.tier_store(pc, base + dst as usize, result)
    }

    /// The result of the instruction at `pc` (compiled code's), into the register at `at`, or
    /// its error raised there.
    fn tier_store(&mut self, pc: usize, at: usize, result: Result<Value, String>) -> Result<(), RuntimeError> {
        match result {
            Ok(v) => {
                self.stack[at] = v;
                Ok(())
            }
            Err(msg) => Err(self.raise(msg, pc + 1)),
        }
    }
}
