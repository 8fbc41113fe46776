//! Dropping what only old code could use, once no old code can. DSU.md: "Old code stays alive
//! exactly as long as a frame or a closure still uses it", and "a removed global is dropped
//! once no old code can read it". After an update removes functions or globals, collections
//! trace the code that live values refer to (`Heap::trace_code`); this pass then follows that
//! code, and the code it can call, to the removed functions and globals it names. The rest is
//! dropped: a removed function's last version is released, a removed global's value is
//! cleared (its objects become garbage).

use std::rc::Rc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::heap::SeenCode;
use crate::opcodes::Role;
use crate::{Function, Value, Vm};

/// What the walk over reachable code has found so far.
#[derive(Default)]
struct Reached {
    /// Code still to follow.
    work: Vec<Rc<Function>>,
    /// Code already followed (by identity: versions of one function are distinct).
    visited: FxHashSet<*const Function>,
    /// Removed functions some reachable code can still run, by slot.
    funcs: FxHashSet<u32>,
    /// Removed globals some reachable code can still read or write.
    globals: FxHashSet<u32>,
    /// Outdated layouts that old code can still build (`NewRecord` of an old type slot).
    built: FxHashSet<u32>,
}

impl Reached {
    /// Removed function `slot`, `f`, can still run: keep it and follow its code.
    fn keep_func(&mut self, slot: u32, f: &Rc<Function>) {
        if self.funcs.insert(slot) {
            self.work.push(f.clone());
        }
    }
}

impl Vm {
    /// Runs after a collection that traced code (see the module comment).
    pub(crate) fn drop_unreachable_old_code(&mut self) {
        let mut seen = std::mem::take(&mut self.heap.seen);
        let live_types = std::mem::take(&mut seen.record_types);
        let mut reached = self.old_code_roots(seen);
        let removed_methods = self.removed_methods_by_name();
        while let Some(f) = reached.work.pop() {
            if reached.visited.insert(Rc::as_ptr(&f)) {
                self.follow_code(&f, &removed_methods, &mut reached);
            }
        }
        self.forget_converted_lazy_layouts(&live_types);
        self.drop_unreached(&reached);
        self.release_outdated_layouts(&reached, &live_types);
        self.heap.trace_code = self.keeps_old_code();
    }

    /// The code that can run now, from which the walk starts: frames, functions pinned for
    /// compiled frames, closures, layouts' transformers (records old code builds later), and
    /// removed functions held as values or as the field defaults of a forwarded layout.
    fn old_code_roots(&self, seen: SeenCode) -> Reached {
        let mut reached = Reached::default();
        reached.work.extend(self.frames.iter().map(|f| f.func.clone()));
        reached.work.extend(self.tasks.other_frames().map(|(_, f)| f.func.clone()));
        reached.work.extend(self.retired.iter().map(|(_, _, f)| f.clone()));
        // The version tasks that have not switched run (a per-task transition).
        reached.work.extend(self.dsu.transition_funcs().cloned());
        reached.work.extend(seen.closures);
        reached.work.extend(self.types.iter().filter_map(|t| t.forward.as_ref()?.transform.clone()));
        for slot in seen.func_values {
            if let Some(f) = self.removed_funcs.get(&slot) {
                reached.keep_func(slot, f);
            }
        }
        // Field defaults a later update removed, still needed to convert records of a layout
        // that forwards to the layout that had them.
        for t in &self.types {
            let Some(new) = t.forward.as_ref().and_then(|f| f.new_slot) else { continue };
            for &d in self.types[new as usize].defaults.iter().flatten() {
                if let Some(f) = self.removed_funcs.get(&d) {
                    reached.keep_func(d, f);
                }
            }
        }
        reached
    }

    /// Removed methods by method name (symbol): a call by name may run any of them.
    fn removed_methods_by_name(&self) -> FxHashMap<u32, Vec<u32>> {
        let mut removed_methods: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for (&(_, m), &s) in &self.method_slots {
            if self.removed_funcs.contains_key(&s) {
                removed_methods.entry(m).or_default().push(s);
            }
        }
        removed_methods
    }

    /// Follows the lambdas `f` creates and every table reference of its code, found by its
    /// role in the opcode table, to the removed functions, globals and layouts it names.
    fn follow_code(&self, f: &Function, removed_methods: &FxHashMap<u32, Vec<u32>>, reached: &mut Reached) {
        if let Some(lambdas) = f.lambdas.get() {
            reached.work.extend(lambdas.iter().map(|(_, l)| l.clone()));
        }
        let mut refs = Vec::new();
        for i in &f.proto.code {
            i.for_each_operand(|role, v| refs.push((role, v as u32)));
        }
        for (role, v) in refs {
            match role {
                Role::Func => {
                    if let Some(r) = self.removed_funcs.get(&v) {
                        reached.keep_func(v, r);
                    }
                }
                Role::Global => {
                    if self.removed_globals.contains(&v) {
                        reached.globals.insert(v);
                    }
                }
                // Only `NewRecord` builds by type.
                Role::Type => {
                    reached.built.insert(v);
                }
                // A method is found by name on the receiver (and remembered by the call's
                // inline cache): any removed method of that name may be what it runs.
                Role::Method => {
                    for &s in removed_methods.get(&v).into_iter().flatten() {
                        reached.keep_func(s, &self.removed_funcs[&s]);
                    }
                }
                // A field is found in the record's own layout; the rest are no references.
                Role::Field
                | Role::Dst
                | Role::Src
                | Role::Window
                | Role::Const
                | Role::Jump
                | Role::Native
                | Role::Count
                | Role::Imm
                | Role::Point => {}
            }
        }
    }

    /// Drops what the walk did not reach: removed functions' last versions, removed globals'
    /// values, and the forwarding of layouts no code can build.
    fn drop_unreached(&mut self, reached: &Reached) {
        self.removed_funcs.retain(|s, _| reached.funcs.contains(s));
        let dead: Vec<u32> = self.removed_globals.iter().copied().filter(|g| !reached.globals.contains(g)).collect();
        for g in dead {
            self.globals[g as usize] = Value::Nil;
            self.removed_globals.remove(&g);
        }
        // A layout no code can build and no instance still owes a conversion from needs no
        // forwarding: its transformer (old code) is released.
        for (slot, t) in self.types.iter_mut().enumerate() {
            let slot = slot as u32;
            if t.forward.is_some() && !reached.built.contains(&slot) && !self.lazy_slots.contains(&slot) {
                t.forward = None;
            }
        }
    }

    /// A lazy layout no live record has any more owes no conversion: records are converted
    /// one by one at first use, and `flush_lazy` empties the list only when it converts all.
    fn forget_converted_lazy_layouts(&mut self, live_types: &[bool]) {
        if self.dsu.converting {
            return;
        }
        self.lazy_slots.retain(|&s| live_types.get(s as usize).copied().unwrap_or(false));
        if self.lazy_slots.is_empty() {
            self.dsu.lazy_room = None;
        }
    }

    /// Releases the outdated layouts nothing can use any more: no live record has one (the
    /// collection's census), no code that can still run builds one, no instance owes a lazy
    /// conversion from one, and no kept forwarding leads to one. Their slots stay (slot
    /// numbers are never reused) but point at one shared empty layout (`TypeRt::release`).
    fn release_outdated_layouts(&mut self, reached: &Reached, live_types: &[bool]) {
        let live = |slot: u32| live_types.get(slot as usize).copied().unwrap_or(false);
        let forwarded_to: FxHashSet<u32> = self.types.iter().filter_map(|t| t.forward.as_ref()?.new_slot).collect();
        for slot in 0..self.types.len() as u32 {
            let usable = !self.is_outdated_layout(slot)
                || live(slot)
                || reached.built.contains(&slot)
                || self.lazy_slots.contains(&slot)
                || forwarded_to.contains(&slot)
                || self.types[slot as usize].forward.is_some();
            if !usable {
                self.types[slot as usize].release();
            }
        }
    }

    /// Whether `slot` holds a layout no longer current for its type (changed or removed by an
    /// update) and not yet released.
    fn is_outdated_layout(&self, slot: u32) -> bool {
        let t = &self.types[slot as usize];
        !t.released && self.type_slots.get(&t.name) != Some(&slot)
    }

    /// Whether anything is kept only for old code (collections then trace code).
    pub(crate) fn keeps_old_code(&self) -> bool {
        !self.removed_funcs.is_empty()
            || !self.removed_globals.is_empty()
            || self.types.iter().any(|t| t.forward.is_some())
            || (0..self.types.len() as u32).any(|s| self.is_outdated_layout(s))
    }
}

impl Vm {
    /// How many removed functions and removed globals are still kept for old code (for
    /// tests and tools; they are dropped at the collection after the last user goes).
    pub fn old_code_kept(&self) -> (usize, usize) {
        (self.removed_funcs.len(), self.removed_globals.len())
    }

    /// How many outdated layouts (type slots an update replaced) are still kept, for a live
    /// record, code that can build one, or a conversion still owed (for tests and tools; the
    /// others are released at a collection).
    pub fn outdated_layouts_kept(&self) -> usize {
        (0..self.types.len() as u32).filter(|&s| self.is_outdated_layout(s)).count()
    }
}
