//! The heap: objects in a slot array addressed by `ObjRef`, collected by a tracing mark-sweep
//! collector. Handles never move, so an update can replace a record's contents in place and
//! every reference still sees the same object. Collection happens only at safepoints (calls,
//! loop back-edges, update points), never inside an allocation, so native code can hold
//! handles in Rust locals freely.

use std::rc::Rc;

use crate::map::{Key, Map};
use crate::{Function, ObjRef, Value};

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

pub struct Heap {
    objs: Vec<Obj>,
    marks: Vec<bool>,
    free: u32,
    live: usize,
    since_gc: usize,
    next_gc: usize,
    pub collections: u64,
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
            marks: Vec::new(),
            free: NONE,
            live: 0,
            since_gc: 0,
            next_gc: MIN_GC_THRESHOLD,
            collections: 0,
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
            ObjRef(i)
        } else {
            self.objs.push(obj);
            self.marks.push(false);
            ObjRef((self.objs.len() - 1) as u32)
        }
    }

    pub fn alloc_str(&mut self, s: &str) -> Value {
        Value::Obj(self.alloc(Obj::Str(Rc::from(s))))
    }

    pub fn alloc_string(&mut self, s: String) -> Value {
        Value::Obj(self.alloc(Obj::Str(Rc::from(s))))
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
    pub fn live(&self) -> usize {
        self.live
    }

    #[inline]
    pub fn should_collect(&self) -> bool {
        self.since_gc >= self.next_gc
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
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Key::Int(f as i64)),
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
        let push = |v: Value, marks: &mut Vec<bool>, stack: &mut Vec<u32>| {
            if let Value::Obj(r) = v {
                let i = r.0 as usize;
                if i < marks.len() && !marks[i] {
                    marks[i] = true;
                    stack.push(r.0);
                }
            }
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
                }
                Obj::Str(_) | Obj::Range(..) | Obj::Free(_) => {}
            }
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
