//! The transaction's first two steps: link the new version into the VM's tables, then run
//! the initialisers of the globals it adds.

use std::rc::Rc;

use super::transaction::{Transaction, code_failed};
use crate::heap::WriteGuard;
use crate::link::SlotMap;
use crate::{TypeRt, Vm};

impl Transaction {
    /// Links the new code: every function relinked (unchanged ones too: they may build
    /// records of a type whose layout changed), types with a changed layout under a new slot,
    /// removed functions and globals kept for old code, the version number.
    pub(super) fn link_version(&mut self, vm: &mut Vm) -> Result<(), String> {
        let program = &self.pending.program;
        let mut map: SlotMap = vm.slot_map(program)?;
        self.link_types(vm, &mut map);
        let mut installed = vec![false; vm.funcs.len()];
        for i in 0..program.functions.len() {
            let f = vm.link_function(program, i, &map);
            let slot = f.slot as usize;
            installed[slot] = true;
            vm.funcs.set(slot, Some(Rc::new(f)));
            vm.removed_funcs.remove(&(slot as u32));
        }
        for (slot, done) in installed.iter().enumerate() {
            if !done {
                if let Some(old) = vm.funcs[slot].clone() {
                    vm.removed_funcs.insert(slot as u32, old);
                }
                vm.funcs.set(slot, None); // removed: a tombstone
            }
        }
        vm.link_lambdas(map.funcs.clone().into_iter());
        self.func_slots = map.funcs;
        vm.version += 1;
        // Removed globals keep their value while old code may read them (`old_code.rs`); a
        // global declared again is new (its initialiser runs next).
        let plan = &self.pending.plan;
        for g in &plan.globals_removed {
            if let Some(slot) = vm.global_names.get_index_of(g) {
                vm.removed_globals.insert(slot as u32);
            }
        }
        for g in &plan.globals_added {
            if let Some(slot) = vm.global_names.get_index_of(g) {
                vm.removed_globals.remove(&(slot as u32));
            }
        }
        Ok(())
    }

    /// The type table: a type whose field list is the same keeps its slot; a changed one gets
    /// a new slot, after every existing one (its old slot stays, so old instances still
    /// describe themselves while transformers read them). The new slots are numbered densely:
    /// an update that changes one type of many adds one slot, not one per type of the program
    /// (slots are never reused, so a skipped number would be a placeholder kept for ever).
    fn link_types(&self, vm: &mut Vm, map: &mut SlotMap) {
        let program = &self.pending.program;
        let old_slots = &self.old_type_slots;
        let mut next = vm.types.len() as u32;
        for (i, t) in program.types.iter().enumerate() {
            let same = old_slots.get(&t.name).is_some_and(|&s| vm.types[s as usize].field_names == t.fields);
            map.types[i] = if same {
                old_slots[&t.name]
            } else {
                next += 1;
                next - 1
            };
        }
        let fresh_base = vm.types.len() as u32;
        let mut fresh: Vec<Option<TypeRt>> = Vec::new();
        for i in 0..program.types.len() {
            let rt = vm.link_type(program, i, map);
            let slot = map.types[i];
            if slot >= fresh_base {
                let k = (slot - fresh_base) as usize;
                if fresh.len() <= k {
                    fresh.resize_with(k + 1, || None);
                }
                fresh[k] = Some(rt);
            } else {
                vm.types[slot as usize] = rt;
            }
        }
        for (k, t) in fresh.into_iter().enumerate() {
            let t = t.unwrap_or_else(|| TypeRt::placeholder(format!("<unused type slot {}>", fresh_base as usize + k)));
            vm.types.push(t);
        }
        vm.type_slots.clear();
        for (i, t) in program.types.iter().enumerate() {
            vm.type_slots.insert(t.name.clone(), map.types[i]);
        }
    }

    /// New globals, in declaration order. A new heap generation starts first: "before the
    /// update" for every write guard of this update, and for transformers that run later
    /// (lazy mode, records old code builds after the commit). The initialisers' writes to
    /// objects that existed before are journaled, so that a rollback undoes them.
    pub(super) fn init_globals(&mut self, vm: &mut Vm) -> Result<(), String> {
        vm.dsu.epoch = vm.heap.new_generation();
        let (added, program, slots) = (&self.pending.plan.globals_added, &self.pending.program, &self.func_slots);
        if added.is_empty() {
            return Ok(());
        }
        let (result, journal) = vm.guarded(WriteGuard::journal(vm.dsu.epoch), |vm| {
            for g in added {
                let Some(&init) = program.global_init(g).and_then(|f| slots.get(f as usize)) else { continue };
                let v = vm.call_slot(init, &[]);
                let v = v.map_err(|e| format!("initialising new global '{g}' failed: {}", code_failed(vm, &e)))?;
                let slot = vm.global_names.get_index_of(g).ok_or("global slot")?;
                vm.globals[slot] = v;
            }
            Ok(())
        });
        self.init_journal = journal;
        result
    }
}
