//! The interpreter loop. Register machine: each frame owns `nregs` slots of one value stack;
//! a call's arguments are already in place as the callee's first registers (Lua style).
//! Safepoints (calls, loop back-edges, update points) are where the collector may run.

use std::rc::Rc;

use crate::heap::Obj;
use crate::map::Map;
use crate::signals::Signals;
use crate::tier::{Exit, JitMode};
use crate::{Function, Instr, RuntimeError, Value, Vm};

mod methods;
mod support;
mod tier_entry;

pub(crate) use support::display_name;

use methods::MethodTarget;
use support::check_arity;

impl Vm {
    /// Runs the top frame until the frame count drops back to `stop_depth`; returns the value
    /// the frame at `stop_depth` returned.
    pub(crate) fn execute(&mut self, stop_depth: usize) -> Result<Value, RuntimeError> {
        self.execute_impl::<false>(stop_depth, true)
    }

    /// `execute`, continuing the top frame in the interpreter at its saved pc (after its
    /// compiled code left it: it is not entered again there).
    pub(crate) fn execute_interpreted(&mut self, stop_depth: usize) -> Result<Value, RuntimeError> {
        self.execute_impl::<false>(stop_depth, false)
    }

    /// The interpreter. With `STEP` it runs exactly one instruction of the top frame (a call
    /// in it runs to completion) and saves the next pc in the frame: `tier_step`, for compiled
    /// code. Without, the `STEP` tests compile away.
    /// `compiled_entry`: whether the top frame, when at its start, may run its compiled code
    /// (frames entered later always may).
    pub(crate) fn execute_impl<const STEP: bool>(
        &mut self,
        stop_depth: usize,
        mut compiled_entry: bool,
    ) -> Result<Value, RuntimeError> {
        let mut stepped = false;
        // The outer loop (re)loads the top frame after a call or return; the inner loop runs
        // its code with the frame's state in locals.
        'frames: loop {
            if STEP && stepped {
                return Ok(Value::Nil);
            }
            let (func, mut pc, base): (Rc<Function>, usize, usize) = {
                let f = self.frames.last().unwrap();
                (f.func.clone(), f.pc, f.base)
            };
            let code: &[Instr] = &func.proto.code;
            // How compiled code of this frame left: continue here, or the frame is done.
            macro_rules! compiled_exit {
                ($exit:expr) => {
                    match $exit {
                        Exit::Resume(at) => pc = at,
                        Exit::Error(e) => return Err(e),
                        Exit::Returned(src) => {
                            let v = self.stack[base + src as usize];
                            let done = self.frames.pop().unwrap();
                            self.stack[done.ret] = v;
                            if self.frames.len() <= stop_depth {
                                return Ok(v);
                            }
                            continue 'frames;
                        }
                        Exit::ReturnedNil => {
                            let done = self.frames.pop().unwrap();
                            self.stack[done.ret] = Value::Nil;
                            if self.frames.len() <= stop_depth {
                                return Ok(Value::Nil);
                            }
                            continue 'frames;
                        }
                    }
                };
            }
            // A function entered at its start may run in compiled code.
            if !STEP && pc == 0 && compiled_entry && self.jit_mode != JitMode::Off {
                if let Some(exit) = self.run_compiled(&func, base, 0) {
                    compiled_exit!(exit);
                }
            }
            compiled_entry = true;

            macro_rules! r {
                ($i:expr) => {
                    self.stack[base + $i as usize]
                };
            }
            // Raise a runtime error at the current instruction.
            macro_rules! throw {
                ($msg:expr) => {{
                    let msg: String = $msg.into();
                    return Err(self.raise(msg, pc));
                }};
            }
            macro_rules! tri {
                ($e:expr) => {
                    match $e {
                        Ok(v) => v,
                        Err(msg) => throw!(msg),
                    }
                };
            }
            // Switch execution to the frame now on top of `self.frames`.
            macro_rules! enter {
                () => {{
                    continue 'frames;
                }};
            }
            // Push a frame for `callee` whose arguments start at absolute index `new_base`.
            macro_rules! push_frame {
                ($callee:expr, $new_base:expr, $ret:expr) => {{
                    self.frames.last_mut().unwrap().pc = pc;
                    tri!(self.enter_frame($callee, $new_base, $ret));
                    if STEP {
                        // One step of the caller: the callee runs to completion.
                        self.execute_impl::<false>(self.frames.len() - 1, true)?;
                        continue 'frames; // the caller's pc is saved: the step is done
                    }
                    enter!();
                }};
            }
            macro_rules! check_arity {
                ($callee:expr, $argc:expr) => {
                    tri!(check_arity(&$callee, $argc as usize))
                };
            }
            // Int and float fast paths as nested matches on the registers in place: reading the
            // tag and the payload separately (not copying the 16-byte value first) lets each
            // load be forwarded from the store that wrote it, and keeps values out of memory
            // temporaries. Everything else goes to a cold path.
            // The operands of an operation's slow path (strings, errors). An instance that
            // owes a lazy conversion is converted first, so that an error names its new type.
            macro_rules! slow_args {
                ($a:expr, $b:expr) => {{
                    if !self.lazy_slots.is_empty() {
                        tri!(self.lazy_touch(r!($a), pc));
                        tri!(self.lazy_touch(r!($b), pc));
                    }
                    (r!($a), r!($b))
                }};
            }
            // Feedback for the tier: this instruction met a float (see `tier::Feedback`). Only
            // float paths pay for it (one store).
            macro_rules! saw_float {
                () => {
                    if let Some(seen) = func.floats.get(pc - 1) {
                        seen.set(true);
                    }
                };
            }
            macro_rules! arith {
            ($dst:expr, $a:expr, $b:expr, $op:tt, $checked:ident, $sym:expr) => {{
                let v = match r!($a) {
                    Value::Int(i) => match r!($b) {
                        Value::Int(j) => match i.$checked(j) {
                            Some(k) => Value::Int(k),
                            None => throw!("integer overflow"),
                        },
                        Value::Float(q) => { saw_float!(); Value::Float(i as f64 $op q) }
                        _ => { let (x, y) = slow_args!($a, $b); tri!(self.arith_slow($sym, x, y)) }
                    },
                    Value::Float(p) => match r!($b) {
                        Value::Float(q) => { saw_float!(); Value::Float(p $op q) }
                        Value::Int(j) => { saw_float!(); Value::Float(p $op j as f64) }
                        _ => { let (x, y) = slow_args!($a, $b); tri!(self.arith_slow($sym, x, y)) }
                    },
                    _ => { let (x, y) = slow_args!($a, $b); tri!(self.arith_slow($sym, x, y)) }
                };
                r!($dst) = v;
            }};
        }
            // `R[a] op R[b]` for the ordering operators.
            macro_rules! holds {
                ($a:expr, $b:expr, $op:tt) => {
                    match r!($a) {
                        Value::Int(i) => match r!($b) {
                            Value::Int(j) => i $op j,
                            _ => {
                                let (x, y) = slow_args!($a, $b);
                                tri!(self.compare_slow(x, y)).is_some_and(|o| o $op std::cmp::Ordering::Equal)
                            }
                        },
                        _ => {
                            let (x, y) = slow_args!($a, $b);
                            tri!(self.compare_slow(x, y)).is_some_and(|o| o $op std::cmp::Ordering::Equal)
                        }
                    }
                };
            }
            macro_rules! compare {
                ($dst:expr, $a:expr, $b:expr, $op:tt) => {{
                    let b = holds!($a, $b, $op);
                    r!($dst) = Value::Bool(b);
                }};
            }

            // A loop back-edge is a safepoint: the collector may run (`collect_point`, before
            // `pc` moves to the loop's head, so that an out-of-memory error names the
            // back-edge's line), an interrupt stops here (`back_edge`, at the head).
            // `$signals` is the signal word, loaded once per instruction.
            // With the tier on (`Signals::TIER`), a hot loop moves into compiled code at its
            // head (on-stack replacement: the frame's registers are already where compiled code
            // wants them).
            macro_rules! collect_point {
                () => {{
                    if self.heap.should_collect() {
                        tri!(self.safepoint_collect(base + func.proto.nregs as usize));
                    }
                }};
            }
            macro_rules! back_edge {
                ($signals:expr) => {{
                    if $signals != 0 {
                        if $signals & Signals::ATTENTION != 0 && self.attention_at(pc) {
                            throw!("interrupted");
                        }
                        // A back-edge is a reduction: a task that used its budget lets the
                        // next one run, from the loop's head.
                        if $signals & Signals::TASKS != 0 && self.reduce() {
                            self.frames.last_mut().unwrap().pc = pc;
                            return Err(RuntimeError::suspend());
                        }
                        if !STEP && $signals & Signals::TIER != 0 && !matches!(func.jit.get(), Some(None)) {
                            let n = func.calls.get().saturating_add(1);
                            func.calls.set(n);
                            if n >= crate::tier::JIT_THRESHOLD {
                                self.frames.last_mut().unwrap().pc = pc;
                                if let Some(exit) = self.run_compiled(&func, base, pc) {
                                    compiled_exit!(exit);
                                }
                            }
                        }
                    }
                }};
            }

            // An update point: hand over to the update engine when an update waits for one.
            macro_rules! update_point {
                ($point:expr, $signals:expr) => {{
                    // `signals != 0` first: the same test the back-edge makes, so a fused update
                    // point adds nothing to a loop iteration when no signal is up.
                    if $signals != 0 && self.update_point_taken($point, pc, $signals)? {
                        // The frame may have moved to new code: reload it.
                        continue 'frames;
                    }
                }};
            }

            // Range loop back-edge; true when the loop is done (execution falls through).
            macro_rules! for_loop {
                ($b:expr, $var:expr, $target:expr, $signals:expr) => {{
                    if let (Value::Int(cur), Value::Int(end)) = (r!($b + 1), r!($b)) {
                        let next = cur + 1;
                        if next < end {
                            r!($b + 1) = Value::Int(next);
                            r!($var) = Value::Int(next);
                            collect_point!();
                            pc = $target as usize;
                            back_edge!($signals);
                            false
                        } else {
                            true
                        }
                    } else {
                        throw!("corrupt loop state");
                    }
                }};
            }

            // Fused compare-and-branch: jump unless `R[a] op R[b]`.
            macro_rules! jump_unless {
                ($a:expr, $b:expr, $target:expr, $op:tt) => {{
                    if !holds!($a, $b, $op) {
                        pc = $target as usize;
                    }
                }};
            }

            // Call the function value `callee` with `argc` arguments at absolute `args`.
            macro_rules! call_value {
                ($callee:expr, $args:expr, $argc:expr, $ret:expr) => {{
                    let callee: Value = $callee;
                    let args: usize = $args;
                    let ret: usize = $ret;
                    match callee {
                        Value::Func(slot) => {
                            let target = match self.callee(slot) {
                                Some(c) => c,
                                None => throw!(format!(
                                    "function '{}' was removed by an update",
                                    self.func_names[slot as usize]
                                )),
                            };
                            check_arity!(target, $argc);
                            push_frame!(target, args, ret);
                        }
                        Value::Native(n) => {
                            let v = tri!(self.call_native(n, args, $argc as usize));
                            self.stack[ret] = v;
                        }
                        Value::Obj(o) => {
                            let (target, captures) = match self.heap.get(o) {
                                Obj::Closure { func: t, captures } => (t.clone(), captures.len()),
                                _ => throw!(format!("cannot call {}", self.type_of(callee))),
                            };
                            check_arity!(target, $argc);
                            let cap_start = args + $argc as usize;
                            let need = cap_start + captures + 1;
                            if self.stack.len() < need {
                                self.stack.resize(need, Value::Nil);
                            }
                            if let Obj::Closure { captures, .. } = self.heap.get(o) {
                                self.stack[cap_start..cap_start + captures.len()].copy_from_slice(captures);
                            }
                            push_frame!(target, args, ret);
                        }
                        _ => throw!(format!("cannot call {}", self.type_of(callee))),
                    }
                }};
            }

            loop {
                if STEP {
                    if stepped {
                        self.frames.last_mut().unwrap().pc = pc;
                        return Ok(Value::Nil);
                    }
                    stepped = true;
                }
                let ins = code[pc];
                pc += 1;
                match ins {
                    Instr::Move { dst, src } => r!(dst) = r!(src),
                    Instr::LoadNil { dst } => r!(dst) = Value::Nil,
                    Instr::LoadTrue { dst } => r!(dst) = Value::Bool(true),
                    Instr::LoadFalse { dst } => r!(dst) = Value::Bool(false),
                    Instr::LoadInt { dst, value } => r!(dst) = Value::Int(value as i64),
                    Instr::LoadConst { dst, k } => r!(dst) = func.consts[k as usize],
                    Instr::GetGlobal { dst, g } => r!(dst) = self.globals[g as usize],
                    Instr::SetGlobal { g, src } => self.globals[g as usize] = r!(src),
                    Instr::LoadFunc { dst, f } => r!(dst) = Value::Func(f),
                    Instr::LoadNative { dst, native } => r!(dst) = Value::Native(native),
                    Instr::Closure { dst, f, base: b, n } => {
                        // The lambda of this code's own version (not the newest).
                        let own = func.lambdas.get().and_then(|ls| ls.iter().find(|(s, _)| *s == f));
                        let target = match own.map(|(_, l)| l).or(self.funcs[f as usize].as_ref()) {
                            Some(t) => t.clone(),
                            None => throw!("lambda code was removed"),
                        };
                        let start = base + b as usize;
                        let captures: Box<[Value]> = self.stack[start..start + n as usize].into();
                        let obj = self.heap.alloc(Obj::Closure { func: target, captures });
                        r!(dst) = Value::Obj(obj);
                    }
                    Instr::Add { dst, a, b } => arith!(dst, a, b, +, checked_add, "+"),
                    Instr::Sub { dst, a, b } => arith!(dst, a, b, -, checked_sub, "-"),
                    Instr::Mul { dst, a, b } => arith!(dst, a, b, *, checked_mul, "*"),
                    Instr::Div { dst, a, b } => {
                        r!(dst) = match self.divide(r!(a), r!(b), false) {
                            Ok(v @ Value::Float(_)) => {
                                saw_float!();
                                v
                            }
                            Ok(v) => v,
                            // The error again after owed conversions, to name their new types.
                            Err(_) => {
                                let (x, y) = slow_args!(a, b);
                                tri!(self.divide(x, y, false))
                            }
                        };
                    }
                    Instr::Mod { dst, a, b } => {
                        r!(dst) = match self.divide(r!(a), r!(b), true) {
                            Ok(v) => v,
                            // The error again after owed conversions, to name their new types.
                            Err(_) => {
                                let (x, y) = slow_args!(a, b);
                                tri!(self.divide(x, y, true))
                            }
                        };
                    }
                    Instr::AddImm { dst, a, value } => {
                        let x = r!(a);
                        r!(dst) = match x {
                            Value::Int(i) => match i.checked_add(value as i64) {
                                Some(k) => Value::Int(k),
                                None => throw!("integer overflow"),
                            },
                            Value::Float(p) => {
                                saw_float!();
                                Value::Float(p + value as f64)
                            }
                            _ => {
                                let (x, _) = slow_args!(a, a);
                                tri!(self.arith_slow("+", x, Value::Int(value as i64)))
                            }
                        };
                    }
                    Instr::Neg { dst, a } => {
                        r!(dst) = match r!(a) {
                            Value::Int(i) => match i.checked_neg() {
                                Some(k) => Value::Int(k),
                                None => throw!("integer overflow"),
                            },
                            Value::Float(f) => {
                                saw_float!();
                                Value::Float(-f)
                            }
                            v => {
                                let _ = slow_args!(a, a);
                                throw!(format!("cannot apply '-' to {}", self.type_of(v)))
                            }
                        };
                    }
                    Instr::Not { dst, a } => r!(dst) = Value::Bool(!r!(a).truthy()),
                    Instr::Eq { dst, a, b } => {
                        let eq = self.values_equal(r!(a), r!(b));
                        r!(dst) = Value::Bool(eq);
                    }
                    Instr::Ne { dst, a, b } => {
                        let eq = self.values_equal(r!(a), r!(b));
                        r!(dst) = Value::Bool(!eq);
                    }
                    Instr::Lt { dst, a, b } => compare!(dst, a, b, <),
                    Instr::Le { dst, a, b } => compare!(dst, a, b, <=),
                    Instr::Gt { dst, a, b } => compare!(dst, a, b, >),
                    Instr::Ge { dst, a, b } => compare!(dst, a, b, >=),
                    Instr::JumpIfNotLt { a, b, target } => jump_unless!(a, b, target, <),
                    Instr::JumpIfNotLe { a, b, target } => jump_unless!(a, b, target, <=),
                    Instr::JumpIfNotGt { a, b, target } => jump_unless!(a, b, target, >),
                    Instr::JumpIfNotGe { a, b, target } => jump_unless!(a, b, target, >=),
                    Instr::Range { dst, a, b } => match (r!(a), r!(b)) {
                        (Value::Int(x), Value::Int(y)) => {
                            let obj = self.heap.alloc(Obj::Range(x, y));
                            r!(dst) = Value::Obj(obj);
                        }
                        (x, y) => throw!(format!("cannot apply '..' to {} and {}", self.type_of(x), self.type_of(y))),
                    },
                    Instr::Jump { target } => pc = target as usize,
                    Instr::Loop { target } => {
                        collect_point!();
                        pc = target as usize;
                        back_edge!(self.signals.load());
                    }
                    Instr::JumpIfFalse { cond, target } => {
                        if !r!(cond).truthy() {
                            pc = target as usize;
                        }
                    }
                    Instr::JumpIfTrue { cond, target } => {
                        if r!(cond).truthy() {
                            pc = target as usize;
                        }
                    }
                    Instr::NewList { dst, base: b, n } => {
                        let start = base + b as usize;
                        tri!(self.heap.check_list(n as usize, 0, "a list literal"));
                        let items = self.stack[start..start + n as usize].to_vec();
                        r!(dst) = self.heap.alloc_list(items);
                    }
                    Instr::NewMap { dst, base: b, n } => {
                        let start = base + b as usize;
                        let mut m = Map::with_capacity(n as usize);
                        for i in 0..n as usize {
                            let (k, v) = (self.stack[start + 2 * i], self.stack[start + 2 * i + 1]);
                            let key = tri!(self.key(k));
                            tri!(m.insert(key, v).map_err(|_| crate::limits::refused(m.growth_bytes())));
                            if m.len() > self.heap.limits.map_entries {
                                throw!(self.heap.limits.map_error(m.len()));
                            }
                        }
                        r!(dst) = Value::Obj(self.heap.alloc(Obj::Map(Box::new(m))));
                    }
                    Instr::NewRecord { dst, ty, base: b, n } => {
                        r!(dst) = tri!(self.new_record(ty, base + b as usize, n as usize));
                    }
                    Instr::GetField { dst, obj, name } => {
                        let v = r!(obj);
                        r!(dst) = tri!(self.get_field(&func, pc, v, name));
                    }
                    Instr::SetField { obj, name, src } => {
                        let (v, val) = (r!(obj), r!(src));
                        tri!(self.set_field(&func, pc, v, name, val));
                    }
                    Instr::GetIndex { dst, obj, index } => {
                        let (o, i) = (r!(obj), r!(index));
                        r!(dst) = tri!(self.get_index(o, i));
                    }
                    Instr::SetIndex { obj, index, src } => {
                        let (o, i, v) = (r!(obj), r!(index), r!(src));
                        tri!(self.set_index(o, i, v));
                    }
                    Instr::CallFunc { dst, f, base: b, argc } => {
                        let callee = match self.callee(f) {
                            Some(c) => c,
                            None => {
                                throw!(format!("function '{}' was removed by an update", self.func_names[f as usize]))
                            }
                        };
                        check_arity!(callee, argc);
                        push_frame!(callee, base + b as usize, base + dst as usize);
                    }
                    Instr::Call { dst, base: b, argc } => {
                        let callee = r!(b);
                        call_value!(callee, base + b as usize + 1, argc, base + dst as usize);
                    }
                    Instr::CallMethod { dst, base: b, name, argc } => {
                        let recv = r!(b);
                        if !self.lazy_slots.is_empty() {
                            tri!(self.lazy_touch(recv, pc));
                        }
                        let start = base + b as usize;
                        let ret = base + dst as usize;
                        let cache = &func.caches[pc - 1];
                        // The hot path inline: a record's method through a warm cache, of the
                        // right arity. Everything else (and its errors) is `resolve_method`.
                        let cached = match recv {
                            Value::Obj(o) => match self.heap.get(o) {
                                Obj::Record { ty, .. } => match cache.get() {
                                    (ct, slot) if ct == ty + 1 => self.callee(slot),
                                    _ => None,
                                },
                                _ => None,
                            },
                            _ => None,
                        };
                        match cached {
                            Some(callee) if callee.proto.arity as usize == argc as usize + 1 => {
                                push_frame!(callee, start, ret)
                            }
                            _ => match tri!(self.resolve_method(&func, cache, recv, name, argc)) {
                                MethodTarget::Function(callee) => push_frame!(callee, start, ret),
                                MethodTarget::Native(f) => {
                                    let v = tri!(self.call_native_fn(f, start, argc as usize + 1, false));
                                    self.stack[ret] = v;
                                }
                                MethodTarget::Task(op) => {
                                    let v = tri!(self.task_op(op, start, argc as usize + 1));
                                    self.stack[ret] = v;
                                }
                                MethodTarget::Field(f) => call_value!(f, start + 1, argc, ret),
                            },
                        }
                    }
                    Instr::CallNative { dst, native, base: b, argc } => {
                        let v = tri!(self.call_native(native, base + b as usize, argc as usize));
                        r!(dst) = v;
                    }
                    Instr::Return { src } => {
                        let v = r!(src);
                        let done = self.frames.pop().unwrap();
                        self.stack[done.ret] = v;
                        if self.frames.len() <= stop_depth {
                            return Ok(v);
                        }
                        enter!();
                    }
                    Instr::ReturnNil {} => {
                        let done = self.frames.pop().unwrap();
                        self.stack[done.ret] = Value::Nil;
                        if self.frames.len() <= stop_depth {
                            return Ok(Value::Nil);
                        }
                        enter!();
                    }
                    Instr::ForPrep { base: b, var, exit } => match (r!(b + 1), r!(b)) {
                        (Value::Int(start), Value::Int(end)) => {
                            if start < end {
                                r!(var) = Value::Int(start);
                            } else {
                                pc = exit as usize;
                            }
                        }
                        (x, y) => throw!(format!("cannot apply '..' to {} and {}", self.type_of(x), self.type_of(y))),
                    },
                    Instr::ForLoop { base: b, var, target } => {
                        for_loop!(b, var, target, self.signals.load());
                    }
                    Instr::UpdateForLoop { point, base: b, var, target } => {
                        let signals = self.signals.load();
                        update_point!(point, signals);
                        if for_loop!(b, var, target, signals) {
                            pc += 1; // past the plain `ForLoop` that follows
                        }
                    }
                    Instr::IterPrep { base: b, src } => {
                        let v = r!(src);
                        let (state, start) = match v {
                            Value::Obj(o) => match self.heap.get(o) {
                                Obj::Range(a, z) => (Value::Int(*z), Value::Int(*a)),
                                Obj::List(_) => (v, Value::Int(0)),
                                Obj::Map(m) => {
                                    // A snapshot of the keys.
                                    tri!(self.heap.check_list(m.len(), 0, "iterating over a map"));
                                    let keys: Vec<Value> = m.iter().map(|(k, _)| k).collect();
                                    (self.heap.alloc_list(keys), Value::Int(0))
                                }
                                // A string is iterated in place (it cannot change): the state
                                // is the string and the byte offset of the next character.
                                Obj::Str(_) => (v, Value::Int(0)),
                                _ => throw!(format!("cannot iterate over {}", self.type_of(v))),
                            },
                            _ => throw!(format!("cannot iterate over {}", self.type_of(v))),
                        };
                        r!(b) = state;
                        r!(b + 1) = start;
                    }
                    Instr::IterNext { base: b, var, exit } => {
                        let cur = match r!(b + 1) {
                            Value::Int(i) => i,
                            _ => throw!("corrupt loop state"),
                        };
                        match r!(b) {
                            Value::Int(end) => {
                                if cur < end {
                                    r!(var) = Value::Int(cur);
                                    r!(b + 1) = Value::Int(cur + 1);
                                } else {
                                    pc = exit as usize;
                                }
                            }
                            Value::Obj(o) => {
                                let item = match self.heap.get(o) {
                                    Obj::List(items) => items.get(cur as usize).map(|x| (*x, cur + 1)),
                                    Obj::Str(s) => match s.get(cur as usize..).and_then(|t| t.chars().next()) {
                                        Some(c) => {
                                            let next = cur + c.len_utf8() as i64;
                                            Some((self.heap.alloc_str(c.encode_utf8(&mut [0; 4])), next))
                                        }
                                        None => None,
                                    },
                                    _ => None,
                                };
                                match item {
                                    Some((x, next)) => {
                                        r!(var) = x;
                                        r!(b + 1) = Value::Int(next);
                                    }
                                    None => pc = exit as usize,
                                }
                            }
                            _ => throw!("corrupt loop state"),
                        }
                    }
                    Instr::Update { point } => {
                        update_point!(point, self.signals.load());
                        if self.heap.should_collect() {
                            tri!(self.safepoint_collect(base + func.proto.nregs as usize));
                        }
                    }
                    Instr::UpdateLoop { point, target } => {
                        let signals = self.signals.load();
                        update_point!(point, signals);
                        collect_point!();
                        pc = target as usize;
                        back_edge!(signals);
                    }
                }
            }
        }
    }
}
