//! The heap: objects in a slot array addressed by `ObjRef`, collected by a tracing mark-sweep
//! collector. Handles never move, so an update can replace a record's contents in place and
//! every reference still sees the same object. Collection happens only at safepoints (calls,
//! loop back-edges, update points), never inside an allocation, so native code can hold
//! handles in Rust locals freely.

use std::rc::Rc;

use crate::map::{Key, Map};
use crate::{Function, ObjRef, Value};

/// `repr(C, u8)`: a one-byte tag (the variant's index) at offset 0 and each variant's fields
/// as a `repr(C)` struct after it, so compiled code can read a record's type slot and fields
/// (the JIT finds the offsets from real objects and tests them).
#[derive(Clone)]
#[repr(C, u8)]
pub enum Obj {
    /// An empty slot; holds the next free slot (or `u32::MAX`).
    Free(u32),
    Str(Rc<str>),
    List(Vec<Value>),
    Map(Box<Map>),
    Record {
        ty: u32,
        fields: Box<[Value]>,
    },
    /// A lambda: the exact code it was created from, and its captured values.
    Closure {
        func: Rc<Function>,
        captures: Box<[Value]>,
    },
    Range(i64, i64),
}

const NONE: u32 = u32::MAX;
/// Collect once this many objects were allocated since the last collection, at the least.
const MIN_GC_THRESHOLD: usize = 1 << 18;

/// A record's contents before an update converted it: (record, type slot, fields).
pub type OldContents = (ObjRef, u32, Box<[Value]>);

/// Write checks during an update. "Existed before the update" is a heap generation
/// (`Heap::new_generation`, started when the update begins): transformers may not write to
/// such objects; new globals' initialisers and `migrate` may, and their writes are journaled so
/// a rollback can undo them.
#[derive(Default)]
pub enum WriteGuard {
    #[default]
    Off,
    /// Objects born before `generation` are read-only.
    Frozen { generation: u32 },
    /// The first write to each object born before `generation` saves its contents.
    Journal { generation: u32, saved: Vec<(ObjRef, Obj)>, seen: rustc_hash::FxHashSet<u32> },
}

impl WriteGuard {
    pub fn journal(generation: u32) -> WriteGuard {
        WriteGuard::Journal { generation, saved: Vec::new(), seen: Default::default() }
    }

    /// Undoes journaled writes (a rollback).
    pub fn restore(self, heap: &mut Heap) {
        if let WriteGuard::Journal { saved, .. } = self {
            for (r, obj) in saved.into_iter().rev() {
                heap.objs[r.0 as usize] = obj;
            }
        }
    }
}

pub struct Heap {
    objs: Vec<Obj>,
    /// Set during an update: checked by every write to an object.
    pub guard: WriteGuard,
    /// While set, collections are skipped (an update in progress).
    pub pause_gc: bool,
    marks: Vec<bool>,
    /// Per slot, the generation its object was allocated in. Recorded from the start (one
    /// store per allocation), so that an update's pause never has to build it for the whole
    /// heap (4 MB of fresh pages at a million objects, ~2 ms of page faults).
    births: Vec<u32>,
    generation: u32,
    free: u32,
    live: usize,
    since_gc: usize,
    next_gc: usize,
    pub collections: u64,
    /// Set by the VM while removed functions or globals may still be reachable by old code:
    /// the next collection records the code that live values refer to (`seen`).
    pub trace_code: bool,
    pub seen: SeenCode,
}

/// Code that live values refer to, found by a collection with `trace_code` set.
#[derive(Default)]
pub struct SeenCode {
    /// Function values (`Value::Func`), by slot.
    pub func_values: rustc_hash::FxHashSet<u32>,
    /// The functions of live closures (one per distinct function).
    pub closures: Vec<Rc<crate::Function>>,
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl Heap {
    pub fn new() -> Heap {
        Heap {
            objs: Vec::new(),
            guard: WriteGuard::Off,
            pause_gc: false,
            marks: Vec::new(),
            births: Vec::new(),
            generation: 0,
            free: NONE,
            live: 0,
            since_gc: 0,
            next_gc: MIN_GC_THRESHOLD,
            collections: 0,
            trace_code: false,
            seen: SeenCode::default(),
        }
    }

    #[inline]
    pub fn alloc(&mut self, obj: Obj) -> ObjRef {
        self.live += 1;
        self.since_gc += 1;
        if self.free != NONE {
            let i = self.free;
            if let Obj::Free(next) = self.objs[i as usize] {
                self.free = next;
            }
            self.objs[i as usize] = obj;
            self.births[i as usize] = self.generation;
            ObjRef(i)
        } else {
            self.objs.push(obj);
            self.marks.push(false);
            self.births.push(self.generation);
            ObjRef((self.objs.len() - 1) as u32)
        }
    }

    /// Starts a new generation and returns it: every object allocated before this call is
    /// "born before" it.
    pub fn new_generation(&mut self) -> u32 {
        self.generation = self.generation.saturating_add(1);
        self.generation
    }

    /// Whether `r` was allocated before generation `g` began (see `new_generation`).
    pub fn born_before(&self, r: ObjRef, g: u32) -> bool {
        self.births.get(r.0 as usize).is_none_or(|&b| b < g)
    }

    pub fn alloc_str(&mut self, s: &str) -> Value {
        Value::Obj(self.alloc(Obj::Str(Rc::from(s))))
    }

    pub fn alloc_string(&mut self, s: String) -> Value {
        Value::Obj(self.alloc(Obj::Str(Rc::from(s))))
    }

    /// `a + b` as a new string, with one allocation for short results (a stack buffer
    /// instead of a temporary `String`).
    pub fn alloc_concat(&mut self, a: &str, b: &str) -> Value {
        let n = a.len() + b.len();
        if n <= 256 {
            let mut buf = [0u8; 256];
            buf[..a.len()].copy_from_slice(a.as_bytes());
            buf[a.len()..n].copy_from_slice(b.as_bytes());
            // Two valid UTF-8 strings joined are valid UTF-8.
            if let Ok(s) = std::str::from_utf8(&buf[..n]) {
                return self.alloc_str(s);
            }
        }
        let mut s = String::with_capacity(n);
        s.push_str(a);
        s.push_str(b);
        self.alloc_string(s)
    }

    pub fn alloc_list(&mut self, items: Vec<Value>) -> Value {
        Value::Obj(self.alloc(Obj::List(items)))
    }

    #[inline]
    pub fn get(&self, r: ObjRef) -> &Obj {
        &self.objs[r.0 as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, r: ObjRef) -> &mut Obj {
        &mut self.objs[r.0 as usize]
    }

    /// Number of live objects (as of the last collection plus allocations since).
    /// The slot array, for compiled code reading records in place. Valid until the next
    /// allocation (which may move it); compiled code re-reads it after every call into the VM.
    pub fn objs_ptr(&self) -> *const Obj {
        self.objs.as_ptr()
    }

    pub fn live(&self) -> usize {
        self.live
    }

    #[inline]
    pub fn should_collect(&self) -> bool {
        self.since_gc >= self.next_gc && !self.pause_gc
    }

    /// Must be called before writing to object `r`: fails inside a transformer for an object
    /// that existed before the update; journals the object inside `migrate`.
    #[inline]
    pub fn before_write(&mut self, r: ObjRef) -> Result<(), String> {
        if matches!(self.guard, WriteGuard::Off) {
            return Ok(());
        }
        self.guarded_write(r)
    }

    fn guarded_write(&mut self, r: ObjRef) -> Result<(), String> {
        let generation = match &self.guard {
            WriteGuard::Off => return Ok(()),
            WriteGuard::Frozen { generation } | WriteGuard::Journal { generation, .. } => *generation,
        };
        if !self.born_before(r, generation) {
            return Ok(()); // made during the update: free to change
        }
        match &mut self.guard {
            WriteGuard::Frozen { .. } => {
                Err("a transformer may not modify objects that existed before the update (build new ones instead)"
                    .into())
            }
            WriteGuard::Journal { saved, seen, .. } => {
                if seen.insert(r.0) {
                    saved.push((r, self.objs[r.0 as usize].clone()));
                }
                Ok(())
            }
            WriteGuard::Off => Ok(()),
        }
    }

    /// Every object (free slots included), for scans by the update engine.
    pub fn objects(&self) -> impl Iterator<Item = &Obj> {
        self.objs.iter()
    }

    pub fn str_of(&self, v: Value) -> Option<&Rc<str>> {
        match v {
            Value::Obj(r) => match self.get(r) {
                Obj::Str(s) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// The map key for a value, or the type name of a value that cannot be one.
    pub fn key_of(&self, v: Value) -> Result<Key, &'static str> {
        match v {
            Value::Nil => Ok(Key::Nil),
            Value::Bool(b) => Ok(Key::Bool(b)),
            Value::Int(i) => Ok(Key::Int(i)),
            Value::Obj(r) => match self.get(r) {
                Obj::Str(s) => Ok(Key::Str(s.clone())),
                _ => Err(self.type_name(v)),
            },
            _ => Err(self.type_name(v)),
        }
    }

    /// `type_of` for every value but records (whose name lives in the type table).
    pub fn type_name(&self, v: Value) -> &'static str {
        match v {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Func(_) | Value::Native(_) => "function",
            Value::Obj(r) => match self.get(r) {
                Obj::Str(_) => "string",
                Obj::List(_) => "list",
                Obj::Map(_) => "map",
                Obj::Record { .. } => "record",
                Obj::Closure { .. } => "function",
                Obj::Range(..) => "range",
                Obj::Free(_) => "freed",
            },
        }
    }

    /// Marks everything reachable from `roots` and frees the rest.
    pub fn collect(&mut self, roots: impl Iterator<Item = Value>) {
        let mut stack: Vec<u32> = Vec::new();
        let trace = self.trace_code;
        let mut seen = SeenCode::default();
        let mut closures_seen = rustc_hash::FxHashSet::default();
        let mut push = |v: Value, marks: &mut Vec<bool>, stack: &mut Vec<u32>| match v {
            Value::Obj(r) => {
                let i = r.0 as usize;
                if i < marks.len() && !marks[i] {
                    marks[i] = true;
                    stack.push(r.0);
                }
            }
            Value::Func(slot) if trace => {
                seen.func_values.insert(slot);
            }
            _ => {}
        };
        for v in roots {
            push(v, &mut self.marks, &mut stack);
        }
        while let Some(i) = stack.pop() {
            match &self.objs[i as usize] {
                Obj::List(items) => items.iter().for_each(|v| push(*v, &mut self.marks, &mut stack)),
                Obj::Map(m) => m.values_for_gc().for_each(|v| push(v, &mut self.marks, &mut stack)),
                Obj::Record { fields, .. } => fields.iter().for_each(|v| push(*v, &mut self.marks, &mut stack)),
                Obj::Closure { captures, func } => {
                    captures.iter().for_each(|v| push(*v, &mut self.marks, &mut stack));
                    func.consts.iter().for_each(|v| push(*v, &mut self.marks, &mut stack));
                    if trace && closures_seen.insert(Rc::as_ptr(func)) {
                        seen.closures.push(func.clone());
                    }
                }
                Obj::Str(_) | Obj::Range(..) | Obj::Free(_) => {}
            }
        }
        if trace {
            self.seen = seen;
        }
        let mut live = 0;
        for i in 0..self.objs.len() {
            if self.marks[i] {
                self.marks[i] = false;
                live += 1;
            } else if !matches!(self.objs[i], Obj::Free(_)) {
                self.objs[i] = Obj::Free(self.free);
                self.free = i as u32;
            }
        }
        self.live = live;
        self.since_gc = 0;
        self.next_gc = (live * 2).max(MIN_GC_THRESHOLD);
        self.collections += 1;
    }

    /// Gives every record of type slot `from` the contents `convert` builds from its old
    /// fields, retyped to `to`, in place (identity kept), in one pass over the heap. The old
    /// contents go to `undo` for a rollback, or are freed at once when there is no undo (no
    /// step of the update that could fail comes after). Returns how many were converted.
    pub fn convert_records(
        &mut self,
        from: u32,
        to: u32,
        mut convert: impl FnMut(&[Value]) -> Box<[Value]>,
        mut undo: Option<&mut Vec<OldContents>>,
    ) -> usize {
        if let Some(undo) = undo.as_deref_mut() {
            // Counted first: growing a million-entry list by doubling costs more than a scan.
            let count = self.objs.iter().filter(|o| matches!(o, Obj::Record { ty, .. } if *ty == from)).count();
            undo.reserve(count);
        }
        let mut converted = 0;
        for (i, o) in self.objs.iter_mut().enumerate() {
            if let Obj::Record { ty, fields } = o {
                if *ty == from {
                    let old = std::mem::replace(fields, convert(fields));
                    *ty = to;
                    converted += 1;
                    if let Some(undo) = undo.as_deref_mut() {
                        undo.push((ObjRef(i as u32), from, old));
                    }
                }
            }
        }
        converted
    }

    /// Every live record of type slot `ty` (for the update engine).
    pub fn records_of(&self, ty: u32) -> Vec<ObjRef> {
        self.objs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Obj::Record { ty: t, .. } if *t == ty => Some(ObjRef(i as u32)),
                _ => None,
            })
            .collect()
    }
}
