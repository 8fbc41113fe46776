//! Dropping what only old code could use, once no old code can. DSU.md: "Old code stays alive
//! exactly as long as a frame or a closure still uses it", and "a removed global is dropped
//! once no old code can read it". After an update removes functions or globals, collections
//! trace the code that live values refer to (`Heap::trace_code`); this pass then follows that
//! code, and the code it can call, to the removed functions and globals it names. The rest is
//! dropped: a removed function's last version is released, a removed global's value is
//! cleared (its objects become garbage).

use std::rc::Rc;

use rustc_hash::FxHashSet;

use crate::opcodes::Role;
use crate::{Function, Value, Vm};

impl Vm {
    /// Runs after a collection that traced code (see the module comment).
    pub(crate) fn drop_unreachable_old_code(&mut self) {
        let seen = std::mem::take(&mut self.heap.seen);
        let mut work: Vec<Rc<Function>> = Vec::new();
        // Code that can run: frames, functions pinned for compiled frames, closures, layouts'
        // transformers (records old code builds later), and removed functions held as values.
        work.extend(self.frames.iter().map(|f| f.func.clone()));
        work.extend(self.tasks.other_frames().map(|(_, f)| f.func.clone()));
        work.extend(self.retired.iter().map(|(_, _, f)| f.clone()));
        work.extend(seen.closures);
        work.extend(self.types.iter().filter_map(|t| t.forward.as_ref()?.transform.clone()));
        let mut live_funcs: FxHashSet<u32> = FxHashSet::default();
        for slot in seen.func_values {
            if let Some(f) = self.removed_funcs.get(&slot) {
                live_funcs.insert(slot);
                work.push(f.clone());
            }
        }
        // Field defaults a later update removed, still needed to convert records of a layout
        // that forwards to the layout that had them.
        for t in &self.types {
            let Some(new) = t.forward.as_ref().and_then(|f| f.new_slot) else { continue };
            for &d in self.types[new as usize].defaults.iter().flatten() {
                if let Some(f) = self.removed_funcs.get(&d) {
                    live_funcs.insert(d);
                    work.push(f.clone());
                }
            }
        }
        let mut live_globals: FxHashSet<u32> = FxHashSet::default();
        // Outdated layouts that old code can still build (`NewRecord` of an old type slot).
        let mut built: FxHashSet<u32> = FxHashSet::default();
        // Removed methods by method name (symbol), for calls by name below.
        let mut removed_methods: rustc_hash::FxHashMap<u32, Vec<u32>> = Default::default();
        for (&(_, m), &s) in &self.method_slots {
            if self.removed_funcs.contains_key(&s) {
                removed_methods.entry(m).or_default().push(s);
            }
        }
        let mut visited: FxHashSet<*const Function> = FxHashSet::default();
        while let Some(f) = work.pop() {
            if !visited.insert(Rc::as_ptr(&f)) {
                continue;
            }
            if let Some(lambdas) = f.lambdas.get() {
                work.extend(lambdas.iter().map(|(_, l)| l.clone()));
            }
            // Every table reference the code can follow, found by its role in the opcode table.
            let mut refs = Vec::new();
            for i in &f.proto.code {
                i.for_each_operand(|role, v| refs.push((role, v as u32)));
            }
            for (role, v) in refs {
                match role {
                    Role::Func => {
                        if let Some(r) = self.removed_funcs.get(&v)
                            && live_funcs.insert(v)
                        {
                            work.push(r.clone());
                        }
                    }
                    Role::Global => {
                        if self.removed_globals.contains(&v) {
                            live_globals.insert(v);
                        }
                    }
                    // Only `NewRecord` builds by type.
                    Role::Type => {
                        built.insert(v);
                    }
                    // A method is found by name on the receiver (and remembered by the call's
                    // inline cache): any removed method of that name may be what it runs.
                    Role::Method => {
                        for &s in removed_methods.get(&v).into_iter().flatten() {
                            if live_funcs.insert(s) {
                                work.push(self.removed_funcs[&s].clone());
                            }
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
        self.removed_funcs.retain(|s, _| live_funcs.contains(s));
        let dead: Vec<u32> = self.removed_globals.iter().copied().filter(|g| !live_globals.contains(g)).collect();
        for g in dead {
            self.globals[g as usize] = Value::Nil;
            self.removed_globals.remove(&g);
        }
        // A layout no code can build and no instance still owes a conversion from needs no
        // forwarding: its transformer (old code) is released.
        for (slot, t) in self.types.iter_mut().enumerate() {
            let slot = slot as u32;
            if t.forward.is_some() && !built.contains(&slot) && !self.lazy_slots.contains(&slot) {
                t.forward = None;
            }
        }
        self.heap.trace_code = self.keeps_old_code();
    }

    /// Whether anything is kept only for old code (collections then trace code).
    pub(crate) fn keeps_old_code(&self) -> bool {
        !self.removed_funcs.is_empty()
            || !self.removed_globals.is_empty()
            || self.types.iter().any(|t| t.forward.is_some())
    }
}

impl Vm {
    /// How many removed functions and removed globals are still kept for old code (for
    /// tests and tools; they are dropped at the collection after the last user goes).
    pub fn old_code_kept(&self) -> (usize, usize) {
        (self.removed_funcs.len(), self.removed_globals.len())
    }
}
