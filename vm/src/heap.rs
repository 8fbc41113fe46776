//! The heap: objects in a slot array addressed by `ObjRef`, collected by a tracing mark-sweep
//! collector. Handles never move, so an update can replace a record's contents in place and
//! every reference still sees the same object. Collection happens only at safepoints (calls,
//! loop back-edges, update points), never inside an allocation, so native code can hold
//! handles in Rust locals freely.

use std::rc::Rc;

use crate::limits::{self, Limits};
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
    /// A task (`spawn`): its id in the scheduler's table (`tasks/`).
    Task(u32),
    /// A channel (`channel()`): its queue and waiters (`tasks/channel.rs`).
    Channel(Box<crate::tasks::Channel>),
    /// A listener or a connection (`listen`, `connect`, `accept`): what it shows; the socket
    /// itself is in the scheduler's table, by id (`tasks/socket.rs`).
    Socket(Box<crate::tasks::socket::SocketInfo>),
}

const NONE: u32 = u32::MAX;
/// Collect once this many objects were allocated since the last collection, at the least.
const MIN_GC_THRESHOLD: usize = 1 << 18;
/// Collect once this many bytes were allocated since the last collection, at the least (big
/// strings are few objects: counting objects alone would let their garbage pile up).
const MIN_GC_BYTES: usize = 64 << 20;
/// What the heap counts for an object's slot: the `Obj` itself, its mark and birth.
pub const SLOT_BYTES: usize = std::mem::size_of::<Obj>() + 8;
const VALUE_BYTES: usize = std::mem::size_of::<Value>();
/// A string of this many bytes or more is probed with `try_reserve` before it is copied into
/// its `Rc` (whose allocation cannot fail softly).
const PROBE_BYTES: usize = 1 << 20;

/// The bytes the heap counts for `obj`: its slot and what it owns (strings by length, lists
/// by capacity). An estimate of the allocator's use, for the heap limit and the collector.
pub fn obj_bytes(obj: &Obj) -> usize {
    SLOT_BYTES
        + match obj {
            Obj::Str(s) => string_bytes(s.len()) - SLOT_BYTES,
            Obj::List(items) => items.capacity() * VALUE_BYTES,
            Obj::Map(m) => std::mem::size_of::<Map>() + m.heap_bytes(),
            Obj::Record { fields, .. } => fields.len() * VALUE_BYTES,
            Obj::Closure { captures, .. } => captures.len() * VALUE_BYTES,
            Obj::Channel(c) => c.heap_bytes(),
            Obj::Range(..) | Obj::Task(_) | Obj::Socket(_) | Obj::Free(_) => 0,
        }
}

/// The bytes a new string of `len` bytes is counted for (slot, reference counts, text).
pub fn string_bytes(len: usize) -> usize {
    SLOT_BYTES + 16 + len
}

/// The bytes a new list of `n` items is counted for.
pub fn list_bytes(n: usize) -> usize {
    SLOT_BYTES + n.saturating_mul(VALUE_BYTES)
}

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
    /// Objects allocated since the last collection that make the next one due (0: due now).
    next_gc: usize,
    /// The bytes the heap's objects take (`obj_bytes`): exact after a collection, then every
    /// allocation and growth added (garbage included until the next collection).
    bytes: usize,
    /// When `bytes` reaches this, a collection is due.
    gc_bytes: usize,
    /// The size limits (see `limits`): checked before strings, lists and maps are built.
    pub limits: Limits,
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
    /// By type slot: whether a live record has that layout (the census that lets an
    /// outdated layout be released).
    pub record_types: Vec<bool>,
}

fn saw_record(record_types: &mut Vec<bool>, ty: u32) {
    let ty = ty as usize;
    if ty >= record_types.len() {
        record_types.resize(ty + 1, false);
    }
    record_types[ty] = true;
}

impl SeenCode {
    /// Whether a live record has layout `ty` (when the collection traced code).
    pub fn has_records(&self, ty: u32) -> bool {
        self.record_types.get(ty as usize).copied().unwrap_or(false)
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl Heap {
    pub fn new() -> Heap {
        let limits = Limits::current();
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
            bytes: 0,
            gc_bytes: MIN_GC_BYTES.min(limits.heap_bytes / 2), // as `schedule_gc` makes it
            limits,
            collections: 0,
            trace_code: false,
            seen: SeenCode::default(),
        }
    }

    /// Runs with `limits` from now on (tests; a VM takes `Limits::current()`).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.schedule_gc();
    }

    /// Sets when the next collection is due by bytes: once twice as many bytes as the heap
    /// holds were allocated (as by objects: twice as many as live), at least `MIN_GC_BYTES`;
    /// near the heap limit, once half the room left under it is used (so that garbage rarely
    /// makes an allocation fail the limit between safepoints), but not more often than every
    /// 1/64 of the limit (a heap growing to its limit is not collected ever more often on the
    /// way), and at the latest when the limit is reached.
    fn schedule_gc(&mut self) {
        let limit = self.limits.heap_bytes;
        let room = limit.saturating_sub(self.bytes);
        let allowance = self.bytes.saturating_mul(2).max(MIN_GC_BYTES).min((room / 2).max(limit / 64));
        self.gc_bytes = self.bytes.saturating_add(allowance).min(limit.max(self.bytes));
        if self.bytes >= self.gc_bytes {
            self.next_gc = 0;
        }
    }

    /// Counts `n` more bytes in the heap; a collection is due at the next safepoint once the
    /// count reaches `gc_bytes`.
    #[inline]
    fn account(&mut self, n: usize) {
        // Cannot overflow: every count is of memory that exists.
        self.bytes = self.bytes.wrapping_add(n);
        if self.bytes >= self.gc_bytes {
            self.next_gc = 0;
        }
    }

    /// The bytes the heap's objects take (see `bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Checks that `n` more bytes fit under the heap limit (garbage since the last
    /// collection counts too: allocation is not a safepoint, nothing can be collected here).
    #[inline]
    pub fn reserve(&self, n: usize) -> Result<(), String> {
        match self.bytes.checked_add(n) {
            Some(total) if total <= self.limits.heap_bytes => Ok(()),
            _ => Err(self.limits.heap_error()),
        }
    }

    /// After a collection at a safepoint: the error when the live data is over the heap limit.
    pub fn over_limit(&self) -> Option<String> {
        (self.bytes > self.limits.heap_bytes).then(|| self.limits.heap_error())
    }

    /// Checks, before it is built, that a string of `len` bytes (`None`: more than a `usize`
    /// holds) may be made by `what` ("concatenation", "join()"): under the string limit and the
    /// heap limit. Returns the length.
    #[inline]
    pub fn check_string(&self, len: Option<usize>, what: &str) -> Result<usize, String> {
        let n = self.limits.string(len, what)?;
        self.reserve(string_bytes(n))?;
        Ok(n)
    }

    /// Checks, before it is built, that a list of `n` items may be made by `what`, and `extra`
    /// more bytes beside it (the items' own objects): under the list and heap limits.
    #[inline]
    pub fn check_list(&self, n: usize, extra: usize, what: &str) -> Result<(), String> {
        self.limits.list(n, what)?;
        self.reserve(list_bytes(n).saturating_add(extra))
    }

    /// An empty `String` with room for `len` bytes, or the error when the system refuses it.
    pub fn string_buffer(len: usize) -> Result<String, String> {
        let mut s = String::new();
        s.try_reserve_exact(len).map_err(|_| limits::refused(len))?;
        Ok(s)
    }

    /// A `Vec` with room for `n` items, or the error when the system refuses it.
    pub fn vec_buffer<T>(n: usize) -> Result<Vec<T>, String> {
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| limits::refused(n.saturating_mul(std::mem::size_of::<T>())))?;
        Ok(v)
    }

    /// Stores `obj` in a slot. Infallible: what it stores was checked against the limits
    /// before it was built (or is small: a record, a closure, a literal).
    #[inline]
    pub fn alloc(&mut self, obj: Obj) -> ObjRef {
        let bytes = obj_bytes(&obj);
        self.alloc_counted(obj, bytes)
    }

    /// A record of type slot `ty`.
    #[inline]
    pub fn alloc_record(&mut self, ty: u32, fields: Box<[Value]>) -> ObjRef {
        let bytes = SLOT_BYTES + fields.len() * VALUE_BYTES;
        self.alloc_counted(Obj::Record { ty, fields }, bytes)
    }

    /// `alloc`, with the object's `obj_bytes` known to the caller.
    #[inline]
    fn alloc_counted(&mut self, obj: Obj, bytes: usize) -> ObjRef {
        self.live += 1;
        self.since_gc += 1;
        self.account(bytes);
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
        Value::Obj(self.alloc_counted(Obj::Str(Rc::from(s)), string_bytes(s.len())))
    }

    pub fn alloc_string(&mut self, s: String) -> Value {
        let bytes = string_bytes(s.len());
        Value::Obj(self.alloc_counted(Obj::Str(Rc::from(s)), bytes))
    }

    /// A string built by a checked path (`check_string` first, then a `string_buffer`): a
    /// big one is probed before it is copied into its `Rc`, so that a refusal is an error,
    /// not an abort.
    pub fn new_string(&mut self, s: String) -> Result<Value, String> {
        if s.len() >= PROBE_BYTES {
            Heap::string_buffer(s.len() + 16)?;
        }
        Ok(self.alloc_string(s))
    }

    /// `a + b` as a new string, with one allocation for short results (a stack buffer
    /// instead of a temporary `String`). Fails past the string or heap limit.
    pub fn alloc_concat(&mut self, a: &str, b: &str) -> Result<Value, String> {
        let n = self.check_string(a.len().checked_add(b.len()), "concatenation")?;
        if n <= 256 {
            let mut buf = [0u8; 256];
            buf[..a.len()].copy_from_slice(a.as_bytes());
            buf[a.len()..n].copy_from_slice(b.as_bytes());
            // Two valid UTF-8 strings joined are valid UTF-8.
            if let Ok(s) = std::str::from_utf8(&buf[..n]) {
                return Ok(self.alloc_str(s));
            }
        }
        let mut s = Heap::string_buffer(n)?;
        s.push_str(a);
        s.push_str(b);
        self.new_string(s)
    }

    pub fn alloc_list(&mut self, items: Vec<Value>) -> Value {
        let bytes = list_bytes(items.capacity());
        Value::Obj(self.alloc_counted(Obj::List(items), bytes))
    }

    /// Appends `v` to the list `r` (`what`: the operation, for the error); at `at` when given
    /// (0..=len, checked by the caller). Fails past the list or heap limit.
    #[inline]
    pub fn list_insert(&mut self, r: ObjRef, at: Option<usize>, v: Value, what: &str) -> Result<(), String> {
        let limit = self.limits.list_items;
        let Obj::List(items) = &mut self.objs[r.0 as usize] else { return Err(format!("{what} on a non-list")) };
        let (len, cap) = (items.len(), items.capacity());
        if len < cap && len < limit {
            // Room without growing: nothing to check or count.
            match at {
                Some(i) => items.insert(i, v),
                None => items.push(v),
            }
            return Ok(());
        }
        self.list_grow(r, at, v, what)
    }

    /// `list_insert` when the list must grow (or is at its limit).
    #[cold]
    fn list_grow(&mut self, r: ObjRef, at: Option<usize>, v: Value, what: &str) -> Result<(), String> {
        let Obj::List(items) = &self.objs[r.0 as usize] else { return Err(format!("{what} on a non-list")) };
        let (len, cap) = (items.len(), items.capacity());
        self.limits.list(len + 1, what)?;
        let grow = if len == cap { cap.max(4) * VALUE_BYTES } else { 0 };
        if grow > 0 {
            self.reserve(grow)?;
        }
        let Obj::List(items) = &mut self.objs[r.0 as usize] else { return Ok(()) };
        items.try_reserve(1).map_err(|_| limits::refused(grow))?;
        let grown = (items.capacity() - cap) * VALUE_BYTES;
        match at {
            Some(i) => items.insert(i, v),
            None => items.push(v),
        }
        if grown > 0 {
            self.account(grown);
        }
        Ok(())
    }

    /// Sets `key` to `v` in the map `r`. Fails when a new key would pass the map or heap limit.
    #[inline]
    pub fn map_insert(&mut self, r: ObjRef, key: Key, v: Value) -> Result<(), String> {
        let limit = self.limits.map_entries;
        let Obj::Map(m) = &mut self.objs[r.0 as usize] else { return Err("cannot add a key to a non-map".into()) };
        if m.len() < limit && m.growth_bytes() == 0 {
            // Room without growing: nothing to check or count (and nothing can be refused).
            return m.insert(key, v).map_err(|_| limits::refused(0));
        }
        self.map_grow(r, key, v)
    }

    /// `map_insert` when the map may grow (or is at its limit).
    #[cold]
    fn map_grow(&mut self, r: ObjRef, key: Key, v: Value) -> Result<(), String> {
        let Obj::Map(m) = &self.objs[r.0 as usize] else { return Err("cannot add a key to a non-map".into()) };
        let (len, before, grow) = (m.len(), m.heap_bytes(), m.growth_bytes());
        if len >= self.limits.map_entries && !m.contains(&key) {
            return Err(self.limits.map_error(len + 1));
        }
        if grow > 0 {
            self.reserve(grow)?;
        }
        let Obj::Map(m) = &mut self.objs[r.0 as usize] else { return Ok(()) };
        m.insert(key, v).map_err(|_| limits::refused(grow))?;
        let after = m.heap_bytes();
        self.account(after.saturating_sub(before));
        Ok(())
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

    /// Whether a collection is due (by objects or bytes allocated since the last). While
    /// collections are paused (an update runs), only when the heap is over its limit: the
    /// safepoint then raises the out-of-memory error.
    #[inline]
    pub fn should_collect(&self) -> bool {
        self.since_gc >= self.next_gc && (!self.pause_gc || self.bytes > self.limits.heap_bytes)
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
                Obj::Str(s) => Ok(Key::Str(r, s.clone())),
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
                Obj::Task(_) => "task",
                Obj::Channel(_) => "channel",
                Obj::Socket(s) if s.listener => "listener",
                Obj::Socket(_) => "connection",
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
        let mut record_types = Vec::new();
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
        // Live bytes are counted as objects are marked (each once, already in cache).
        let mut bytes = 0usize;
        while let Some(i) = stack.pop() {
            let obj = &self.objs[i as usize];
            bytes = bytes.saturating_add(obj_bytes(obj));
            match obj {
                Obj::List(items) => items.iter().for_each(|v| push(*v, &mut self.marks, &mut stack)),
                Obj::Map(m) => m.values_for_gc().for_each(|v| push(v, &mut self.marks, &mut stack)),
                Obj::Record { fields, ty } => {
                    fields.iter().for_each(|v| push(*v, &mut self.marks, &mut stack));
                    if trace {
                        saw_record(&mut record_types, *ty);
                    }
                }
                Obj::Closure { captures, func } => {
                    captures.iter().for_each(|v| push(*v, &mut self.marks, &mut stack));
                    func.consts.iter().for_each(|v| push(*v, &mut self.marks, &mut stack));
                    if trace && closures_seen.insert(Rc::as_ptr(func)) {
                        seen.closures.push(func.clone());
                    }
                }
                Obj::Channel(c) => c.values().for_each(|v| push(v, &mut self.marks, &mut stack)),
                Obj::Str(_) | Obj::Range(..) | Obj::Task(_) | Obj::Socket(_) | Obj::Free(_) => {}
            }
        }
        if trace {
            seen.record_types = record_types;
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
        self.bytes = bytes;
        self.schedule_gc();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn small(heap_bytes: usize) -> Heap {
        let mut heap = Heap::new();
        heap.set_limits(Limits { string_bytes: 1000, list_items: 10, map_entries: 10, heap_bytes });
        heap
    }

    fn obj(v: Value) -> ObjRef {
        match v {
            Value::Obj(r) => r,
            _ => panic!("not an object"),
        }
    }

    /// Big strings are few objects: their garbage makes a collection due by bytes long before
    /// 2^18 objects were allocated.
    #[test]
    fn big_garbage_makes_a_collection_due() {
        let mut heap = small(1 << 40);
        let keep = heap.alloc_str("kept");
        let big = "g".repeat(1 << 20);
        let mut n = 0;
        while !heap.should_collect() {
            heap.alloc_str(&big);
            n += 1;
        }
        assert!((60..=70).contains(&n), "due after {n} strings of 1 MiB");
        heap.collect([keep].into_iter());
        assert_eq!(heap.bytes(), string_bytes(4));
        assert!(!heap.should_collect());
    }

    #[test]
    fn concatenation_is_checked_before_it_allocates() {
        let mut heap = small(1 << 20);
        let a = "x".repeat(600);
        let before = heap.bytes();
        let err = heap.alloc_concat(&a, &a).unwrap_err();
        assert_eq!(err, "string too long: concatenation would make 1200 bytes (limit 1000)");
        assert_eq!(heap.bytes(), before, "nothing was allocated");
        let s = heap.alloc_concat(&a, "y").unwrap();
        assert_eq!(heap.str_of(s).map(|s| s.len()), Some(601));
        assert_eq!(heap.bytes(), before + string_bytes(601));
    }

    #[test]
    fn lists_and_maps_stop_at_their_limits() {
        let mut heap = small(1 << 20);
        let l = obj(heap.alloc_list(Vec::new()));
        for i in 0..10 {
            heap.list_insert(l, None, Value::Int(i), "push()").unwrap();
        }
        assert_eq!(
            heap.list_insert(l, Some(0), Value::Nil, "insert()").unwrap_err(),
            "list too long: insert() would make 11 items (limit 10)"
        );
        let m = heap.alloc(Obj::Map(Box::default()));
        for i in 0..10 {
            heap.map_insert(m, Key::Int(i), Value::Nil).unwrap();
        }
        // An existing key may be set; a new one may not.
        heap.map_insert(m, Key::Int(3), Value::Bool(true)).unwrap();
        assert_eq!(
            heap.map_insert(m, Key::Int(10), Value::Nil).unwrap_err(),
            "map too large: adding a key would make 11 entries (limit 10)"
        );
    }

    #[test]
    fn the_heap_limit_counts_live_bytes_after_a_collection() {
        let mut heap = small(64 << 10);
        let keep = heap.alloc_list(Vec::new());
        // Garbage: strings nothing refers to, until the heap is past the limit.
        let mut garbage = 0;
        while heap.reserve(string_bytes(900)).is_ok() {
            heap.alloc_concat(&"g".repeat(450), &"g".repeat(450)).unwrap();
            garbage += 1;
        }
        assert!(garbage > 10);
        assert!(heap.should_collect(), "a collection is due by bytes long before the limit");
        heap.collect([keep].into_iter());
        assert_eq!(heap.over_limit(), None);
        assert!(heap.bytes() < 1000, "only the empty list is live: {}", heap.bytes());
        // Live strings: the collection finds them over the limit.
        let l = obj(keep);
        heap.set_limits(Limits { list_items: 1000, ..heap.limits });
        while heap.reserve(string_bytes(900)).is_ok() {
            let s = heap.alloc_concat(&"k".repeat(450), &"k".repeat(450)).unwrap();
            heap.list_insert(l, None, s, "push()").unwrap();
        }
        // One more, unchecked (as a record or a literal is), puts the live data over.
        let s = heap.alloc_str(&"x".repeat(1000));
        if let Obj::List(items) = heap.get_mut(l) {
            items.push(s);
        }
        heap.collect([keep].into_iter());
        assert_eq!(
            heap.over_limit().as_deref(),
            Some("out of memory: the heap limit of 65536 bytes is reached (set MOLT_MAX_HEAP to raise it)")
        );
    }

    #[test]
    fn paused_collections_still_stop_at_the_limit() {
        let mut heap = small(64 << 10);
        heap.pause_gc = true;
        while heap.reserve(string_bytes(900)).is_ok() {
            heap.alloc_concat(&"g".repeat(450), &"g".repeat(450)).unwrap();
        }
        assert!(!heap.should_collect(), "under the limit, a paused heap is not collected");
        heap.alloc_str(&"x".repeat(900));
        assert!(heap.should_collect(), "over it, the safepoint must look");
        assert!(heap.over_limit().is_some());
    }
}
