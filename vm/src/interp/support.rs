//! The interpreter's slow paths and services: errors and stack traces, built-in calls,
//! arithmetic and comparisons beyond the fast paths, indexing, the compiled tier's entry, and
//! lazy conversions. The loop itself is in `interp.rs`.

use std::rc::Rc;

use crate::heap::Obj;
use crate::native::NativeCtx;
use crate::signals::Signals;
use crate::{Function, RuntimeError, TraceFrame, Value, Vm};

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
        if message == crate::tasks::SUSPEND {
            // The task waits: it runs the instruction again when it resumes.
            if let Some(f) = self.frames.last_mut() {
                f.pc = pc - 1;
            }
            return RuntimeError::suspend();
        }
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
        let mut e = RuntimeError::new(message);
        e.trace = trace;
        e
    }

    /// A safepoint saw `Signals::ATTENTION`: answers status requests; returns whether the
    /// program is to stop (an interrupt, consumed).
    #[cold]
    #[inline(never)]
    pub(crate) fn attention(&mut self) -> bool {
        if self.signals.load() & Signals::INSPECT != 0 {
            self.answer_inspections();
        }
        self.signals.take_interrupt()
    }

    /// `attention` at a loop back-edge whose pc is `pc` (saved first: a status request
    /// reports where the task stands).
    #[cold]
    #[inline(never)]
    pub(crate) fn attention_at(&mut self, pc: usize) -> bool {
        if let Some(f) = self.frames.last_mut() {
            f.pc = pc;
        }
        self.attention()
    }

    /// The function a call of table slot `slot` runs: the newest version, or for a function
    /// an update removed, its last version (only old code can still call it).
    #[inline(always)]
    pub(crate) fn callee(&self, slot: u32) -> Option<Rc<Function>> {
        match &self.funcs[slot as usize] {
            Some(c) => Some(c.clone()),
            None => self.removed_funcs.get(&slot).cloned(),
        }
    }

    /// A record of type slot `ty` whose `n` fields are the registers from `start`.
    #[inline]
    pub(super) fn new_record(&mut self, ty: u32, start: usize, n: usize) -> Res<Value> {
        if n != self.types[ty as usize].field_names.len() {
            return Err(format!("record layout of {} changed under running code", self.types[ty as usize].name));
        }
        let fields: Box<[Value]> = self.stack[start..start + n].into();
        let obj = self.heap.alloc_record(ty, fields);
        // Old code (an old frame, a live closure) building a type that an update changed: the
        // record is converted at once, so no code sees its old shape.
        if self.types[ty as usize].forward.is_some() {
            self.convert_new_record(obj)?;
        }
        Ok(Value::Obj(obj))
    }

    pub(crate) fn call_native(&mut self, n: u32, start: usize, argc: usize) -> Res<Value> {
        let def = self.natives[n as usize];
        // `sleep` and `read_line` block only their task once tasks exist; before, the plain
        // built-in blocks the program (its only task).
        if let Some(op) = def.task
            && (!matches!(op, crate::tasks::TaskOp::Sleep | crate::tasks::TaskOp::ReadLine)
                || self.can_wait() && self.tasks.active)
        {
            return self.task_op(op, start, argc);
        }
        if self.tasks.active {
            self.tasks.budget = self.tasks.budget.saturating_sub(1);
        }
        self.call_native_fn(def.f, start, argc, def.reads != crate::Reads::Values)
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
    pub(super) fn before_frame(&mut self, top: usize) -> Res<()> {
        if self.frames.len() >= self.frame_limit {
            return Err("stack overflow".into());
        }
        let signals = self.signals.load();
        if signals != 0 {
            if signals & Signals::ATTENTION != 0 && self.attention() {
                return Err("interrupted".into());
            }
            // A call is a reduction: a task that used its budget lets the next one run; the
            // call is made when it runs again.
            if signals & Signals::TASKS != 0 && self.reduce() {
                return Err(crate::tasks::SUSPEND.into());
            }
        }
        if self.stack.len() <= top {
            if top >= self.register_limit {
                return Err("stack overflow".into());
            }
            self.stack.resize((top + 1).max(self.stack.len() * 2), Value::Nil);
        }
        if self.heap.should_collect() {
            self.safepoint_collect(top)?;
        }
        Ok(())
    }

    /// For old code (`caller` is not its function's current version): the slot of method
    /// `name` of type slot `ty` when an update removed it, so that the call runs its last
    /// version, as calls of removed functions do (DSU.md: old code runs while it is used).
    /// New code calling a method its type does not have gets the error.
    pub(super) fn removed_method(&self, caller: &Rc<Function>, ty: u32, name: u32) -> Option<u32> {
        // A task that has not switched yet in a per-task transition runs old code too.
        let current = !self.in_old_version()
            && self.funcs.get(caller.slot as usize).and_then(|f| f.as_ref()).is_some_and(|f| Rc::ptr_eq(f, caller));
        if current || self.removed_funcs.is_empty() {
            return None;
        }
        let slot = *self.method_slots.get(&(self.types[ty as usize].name.clone(), name))?;
        self.removed_funcs.contains_key(&slot).then_some(slot)
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

    /// Records reachable from `roots` that still owe a lazy conversion.
    pub(crate) fn owed_conversions(&self, roots: &[Value]) -> Vec<crate::ObjRef> {
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

    /// Calls a built-in. `looks_inside`: it may look inside the records it is given (`print`,
    /// `str`), so instances reachable from its arguments that still owe a lazy conversion are
    /// converted first. Built-in methods and numeric functions do not: they store, compare by
    /// identity or read plain values (walking their arguments made `push` in a loop
    /// quadratic while conversions were owed).
    pub(super) fn call_native_fn(
        &mut self,
        f: crate::NativeFn,
        start: usize,
        argc: usize,
        looks_inside: bool,
    ) -> Res<Value> {
        if looks_inside && !self.lazy_slots.is_empty() {
            let owed = self.owed_conversions(&self.stack[start..start + argc]);
            for r in owed {
                self.convert_lazy(r)?;
            }
        }
        let version = self.code_version();
        let mut ctx = NativeCtx {
            heap: &mut self.heap,
            types: &self.types,
            funcs: &self.funcs,
            natives: &self.natives,
            out: &mut *self.out,
            version,
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
            return self.heap.alloc_concat(&a, &b);
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
            let t = &self.types[*ty as usize];
            if t.forward.is_some() {
                // A transformer's `old` (or an instance it reached): new code, such as a
                // method of the new version, reading it as if it had the new fields.
                return format!(
                    "{} has no field '{field}': this instance still has the fields of the running version ({}), as a transformer's `old` does (not those of an older or the new version; a method of the new version expects the new fields)",
                    t.name,
                    t.field_names.join(", ")
                );
            }
            return format!("{} has no field '{field}'", t.name);
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
                    let found = match i {
                        Value::Int(k) => m.get_int(k),
                        _ => m.get(&self.key(i)?),
                    };
                    return found.ok_or_else(|| format!("key not found: {}", self.repr(i)));
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
                    return self.heap.map_insert(r, key, v);
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
