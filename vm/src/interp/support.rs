//! The interpreter's slow paths and services: errors and stack traces, built-in calls,
//! arithmetic and comparisons beyond the fast paths, indexing, the compiled tier's entry, and
//! lazy conversions. The loop itself is in `interp.rs`.

use std::rc::Rc;

use crate::heap::Obj;
use crate::native::NativeCtx;
use crate::signals::Signals;
use crate::tier::{Exit, JIT_THRESHOLD, JitMode, MAX_TIER_DEPTH};
use crate::{Function, MAX_FRAMES, RuntimeError, TraceFrame, Value, Vm};

/// A runtime error message from a slow path.
pub(crate) type Res<T> = Result<T, String>;

/// A call of `callee` with `argc` arguments must match its arity.
#[inline(always)]
pub(super) fn check_arity(callee: &Function, argc: usize) -> Res<()> {
    if callee.proto.arity as usize == argc {
        return Ok(());
    }
    let expected = crate::error::arguments(callee.proto.arity as usize);
    Err(format!("<fn {}> expects {expected} but got {argc}", display_name(callee)))
}

impl Vm {
    /// Builds a runtime error with the stack trace at `pc` in the top frame. Unwinds nothing:
    /// the caller truncates the frames.
    pub(crate) fn raise(&mut self, message: String, pc: usize) -> RuntimeError {
        if let Some(f) = self.frames.last_mut() {
            f.pc = pc;
        }
        let trace = self
            .frames
            .iter()
            .rev()
            // Prelude functions (`list.map`, `list.filter` written in Molt) are built-ins to the
            // user: their frames are not shown.
            .filter(|f| &*f.func.file != crate::PRELUDE_FILE)
            .map(|f| {
                let i = f.pc.saturating_sub(1).min(f.func.proto.lines.len().saturating_sub(1));
                TraceFrame {
                    function: display_name(&f.func).to_string(),
                    file: f.func.file.to_string(),
                    line: f.func.proto.lines.get(i).copied().unwrap_or(0),
                }
            })
            .collect();
        RuntimeError { message, trace }
    }

    pub(super) fn call_native(&mut self, n: u32, start: usize, argc: usize) -> Res<Value> {
        let f = self.natives[n as usize].f;
        self.call_native_fn(f, start, argc)
    }

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
            let compiled = self.jit.as_mut().and_then(|c| c.compile(&func.proto, &func.consts));
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
        self.tier_depth += 1;
        let exit = code.run(self, &func.caches, base, pc);
        self.tier_depth -= 1;
        if self.tier_depth == 0 && !self.retired.is_empty() {
            self.retired.clear();
        }
        Some(exit)
    }

    /// Pushes a frame for `callee`, whose arguments start at `new_base`, returning into
    /// `ret`. Calls are safepoints: the collector may run, an interrupt stops the program
    /// (Ctrl-C ends a recursion that has no loop).
    #[inline(always)]
    pub(super) fn enter_frame(&mut self, callee: Rc<Function>, new_base: usize, ret: usize) -> Res<()> {
        self.before_frame(new_base + callee.proto.nregs as usize)?;
        self.frames.push(callee, new_base, ret);
        Ok(())
    }

    /// What every call checks and may do before its frame is pushed; `top`: the end of the
    /// callee's registers.
    #[inline(always)]
    fn before_frame(&mut self, top: usize) -> Res<()> {
        if self.frames.len() >= MAX_FRAMES {
            return Err("stack overflow".into());
        }
        if self.signals.load() & Signals::INTERRUPT != 0 && self.signals.take_interrupt() {
            return Err("interrupted".into());
        }
        if self.stack.len() <= top {
            if top >= 64 * MAX_FRAMES {
                return Err("stack overflow".into());
            }
            self.stack.resize((top + 1).max(self.stack.len() * 2), Value::Nil);
        }
        if self.heap.should_collect() {
            self.collect_garbage(top);
        }
        Ok(())
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
            _ => {
                let msg = format!("function '{}' was removed by an update", self.func_names[f as usize]);
                return Err(self.raise(msg, pc + 1));
            }
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
        match self.get_index(o, i) {
            Ok(v) => {
                self.stack[base + dst as usize] = v;
                Ok(())
            }
            Err(msg) => Err(self.raise(msg, pc + 1)),
        }
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
        match self.call_native(native, base + b as usize, argc as usize) {
            Ok(v) => {
                self.stack[base + dst as usize] = v;
                Ok(())
            }
            Err(msg) => Err(self.raise(msg, pc + 1)),
        }
    }

    /// `R[obj].name` for the instruction before `pc` (its inline cache).
    #[inline(always)]
    pub(super) fn get_field(&mut self, func: &Function, pc: usize, v: Value, name: u32) -> Res<Value> {
        if !self.lazy_slots.is_empty() {
            self.lazy_touch(v, pc)?;
        }
        let cache = &func.caches[pc - 1];
        if let Value::Obj(o) = v {
            if let Obj::Record { ty, fields } = self.heap.get(o) {
                let (ct, idx) = cache.get();
                if ct == *ty + 1 {
                    return Ok(fields[idx as usize]);
                }
                if let Some(&idx) = self.types[*ty as usize].fields.get(&name) {
                    cache.set((*ty + 1, idx));
                    return Ok(fields[idx as usize]);
                }
            }
        }
        Err(self.field_error(v, name, "read"))
    }

    /// `R[obj].name := val` for the instruction before `pc` (its inline cache).
    #[inline(always)]
    pub(super) fn set_field(&mut self, func: &Function, pc: usize, v: Value, name: u32, val: Value) -> Res<()> {
        if !self.lazy_slots.is_empty() {
            self.lazy_touch(v, pc)?;
        }
        let cache = &func.caches[pc - 1];
        if let Value::Obj(o) = v {
            self.heap.before_write(o)?;
            let types = &self.types;
            if let Obj::Record { ty, fields } = self.heap.get_mut(o) {
                let (ct, idx) = cache.get();
                if ct == *ty + 1 {
                    fields[idx as usize] = val;
                    return Ok(());
                }
                if let Some(&idx) = types[*ty as usize].fields.get(&name) {
                    cache.set((*ty + 1, idx));
                    fields[idx as usize] = val;
                    return Ok(());
                }
            }
        }
        Err(self.field_error(v, name, "set"))
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
        match self.get_field(&func, pc + 1, v, name) {
            Ok(x) => {
                self.stack[base + dst as usize] = x;
                Ok(())
            }
            Err(msg) => Err(self.raise(msg, pc + 1)),
        }
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

    /// Records reachable from `roots` that still owe a lazy conversion.
    pub(super) fn owed_conversions(&self, roots: &[Value]) -> Vec<crate::ObjRef> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut stack: Vec<Value> = roots.to_vec();
        let mut owed = Vec::new();
        while let Some(v) = stack.pop() {
            let Value::Obj(o) = v else { continue };
            if !seen.insert(o.0) {
                continue;
            }
            match self.heap.get(o) {
                Obj::List(items) => stack.extend_from_slice(items),
                Obj::Map(m) => stack.extend(m.values_for_gc()),
                Obj::Record { ty, fields } => {
                    if self.types[*ty as usize].forward.is_some() {
                        owed.push(o);
                    }
                    stack.extend_from_slice(fields);
                }
                Obj::Closure { captures, .. } => stack.extend_from_slice(captures),
                _ => {}
            }
        }
        owed
    }

    /// Converts `v` now if it is an instance still owed a lazy conversion.
    pub(super) fn lazy_touch(&mut self, v: Value, pc: usize) -> Res<()> {
        if let Value::Obj(o) = v {
            if let Obj::Record { ty, .. } = self.heap.get(o) {
                if self.types[*ty as usize].forward.is_some() {
                    self.frames.last_mut().unwrap().pc = pc;
                    return self.convert_lazy(o);
                }
            }
        }
        Ok(())
    }

    pub(super) fn call_native_fn(&mut self, f: crate::NativeFn, start: usize, argc: usize) -> Res<Value> {
        // A built-in may look inside any value it gets: instances reachable from its
        // arguments that still owe a lazy conversion are converted first.
        if !self.lazy_slots.is_empty() {
            let owed = self.owed_conversions(&self.stack[start..start + argc]);
            for r in owed {
                self.convert_lazy(r)?;
            }
        }
        let mut ctx = NativeCtx {
            heap: &mut self.heap,
            types: &self.types,
            funcs: &self.funcs,
            natives: &self.natives,
            out: &mut *self.out,
            version: self.version,
            args: &self.args,
        };
        f(&mut ctx, &self.stack[start..start + argc])
    }

    pub(crate) fn key(&self, v: Value) -> Res<crate::map::Key> {
        self.heap.key_of(v).map_err(|t| format!("map key must be nil, bool, int or string, not {t}"))
    }

    pub(super) fn arith_slow(&mut self, op: &str, x: Value, y: Value) -> Res<Value> {
        if let ("+", Some(a), Some(b)) = (op, self.heap.str_of(x), self.heap.str_of(y)) {
            let (a, b) = (a.clone(), b.clone());
            return Ok(self.heap.alloc_concat(&a, &b));
        }
        Err(format!("cannot apply '{op}' to {} and {}", self.type_of(x), self.type_of(y)))
    }

    pub(super) fn divide(&self, x: Value, y: Value, modulo: bool) -> Res<Value> {
        let op = if modulo { "%" } else { "/" };
        let (p, q) = match (x, y) {
            (Value::Int(i), Value::Int(j)) => {
                if j == 0 {
                    return Err("division by zero".into());
                }
                let r = if modulo { i.checked_rem(j) } else { i.checked_div(j) };
                return r.map(Value::Int).ok_or_else(|| "integer overflow".into());
            }
            (Value::Float(p), Value::Float(q)) => (p, q),
            (Value::Int(i), Value::Float(q)) => (i as f64, q),
            (Value::Float(p), Value::Int(j)) => (p, j as f64),
            _ => return Err(format!("cannot apply '{op}' to {} and {}", self.type_of(x), self.type_of(y))),
        };
        Ok(Value::Float(if modulo { p % q } else { p / q }))
    }

    pub(super) fn compare_slow(&self, x: Value, y: Value) -> Res<Option<std::cmp::Ordering>> {
        crate::ops::compare(&self.heap, &self.types, x, y)
    }

    /// `==`: by value for nil, bools, numbers and strings; by identity otherwise.
    pub fn values_equal(&self, x: Value, y: Value) -> bool {
        crate::ops::values_equal(&self.heap, x, y)
    }

    pub(super) fn field_error(&self, v: Value, name: u32, verb: &str) -> String {
        let field = &self.syms[name as usize];
        if let Value::Obj(o) = v
            && let Obj::Record { ty, .. } = self.heap.get(o)
        {
            return format!("{} has no field '{field}'", self.types[*ty as usize].name);
        }
        format!("cannot {verb} field '{field}' of {}", self.type_of(v))
    }

    pub(super) fn list_index(&self, i: Value, len: usize, what: &str) -> Res<usize> {
        match i {
            Value::Int(n) if n >= 0 && (n as usize) < len => Ok(n as usize),
            Value::Int(n) => Err(format!("{what} index {n} out of range (length {len})")),
            _ => Err(format!("{what} index must be int, not {}", self.type_of(i))),
        }
    }

    pub(super) fn get_index(&mut self, o: Value, i: Value) -> Res<Value> {
        if let Value::Obj(r) = o {
            match self.heap.get(r) {
                Obj::List(items) => return Ok(items[self.list_index(i, items.len(), "list")?]),
                Obj::Map(m) => {
                    let key = self.key(i)?;
                    return m.get(&key).ok_or_else(|| format!("key not found: {}", self.repr(i)));
                }
                Obj::Str(s) => {
                    let n = s.chars().count();
                    let idx = self.list_index(i, n, "string")?;
                    let c = s.chars().nth(idx).map(String::from).unwrap_or_default();
                    return Ok(self.heap.alloc_string(c));
                }
                _ => {}
            }
        }
        Err(format!("cannot index {}", self.type_of(o)))
    }

    pub(super) fn set_index(&mut self, o: Value, i: Value, v: Value) -> Res<()> {
        if let Value::Obj(r) = o {
            self.heap.before_write(r)?;
            match self.heap.get(r) {
                Obj::List(items) => {
                    let idx = self.list_index(i, items.len(), "list")?;
                    if let Obj::List(items) = self.heap.get_mut(r) {
                        items[idx] = v;
                    }
                    return Ok(());
                }
                Obj::Map(_) => {
                    let key = self.key(i)?;
                    if let Obj::Map(m) = self.heap.get_mut(r) {
                        m.insert(key, i, v);
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(format!("cannot index {}", self.type_of(o)))
    }
}

/// A function's name as traces and messages show it (`lambda` for lambdas).
pub(crate) fn display_name(f: &Function) -> &str {
    if f.proto.kind == crate::FnKind::Lambda { "lambda" } else { &f.proto.name }
}
