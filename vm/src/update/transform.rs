//! The transaction's transform step: every live instance of a changed type (and of a removed
//! type with a `transform`) gets its new contents, in place, identity kept. Eager mode runs the
//! transformers now; lazy mode only marks the old layouts (each instance converts at its first
//! use: `convert.rs`). Instances' old contents go to the update's undo log for a rollback.

use std::collections::HashMap;
use std::time::Instant;

use super::convert::FieldSource;
use super::transaction::{Transaction, code_failed};
use crate::heap::{Obj, WriteGuard};
use crate::{Forward, ObjRef, Value, Vm};

/// An instance and the contents it takes: (record, type slot, fields).
type NewContents = (ObjRef, u32, Box<[Value]>);

/// One type whose instances convert: its name, its old layout's slot, its new slot (None: a
/// removed type renamed by its transformer), and its explicit transformer's function slot.
struct Work {
    name: String,
    old_slot: u32,
    new_slot: Option<u32>,
    transform: Option<u32>,
}

impl Transaction {
    pub(super) fn transform(&mut self, vm: &mut Vm) -> Result<(), String> {
        let started = Instant::now();
        self.transform_time = Some((started, None));
        let work = self.work(vm);
        if self.checked.lazy {
            // Each conversion reads nothing the program can change since (`lazy_safe`), and
            // gets the room for frames and registers it would have had now.
            let top = vm.stack_top();
            vm.dsu.lazy_room =
                Some((crate::MAX_FRAMES.saturating_sub(vm.frames.len()), (64 * crate::MAX_FRAMES).saturating_sub(top)));
            for w in &work {
                vm.forward(w);
                vm.lazy_slots.push(w.old_slot);
            }
            return Ok(());
        }
        self.transform_eager(vm, work)?;
        self.transform_time = Some((started, Some(started.elapsed())));
        Ok(())
    }

    /// The types whose instances convert, with their transformers.
    fn work(&self, vm: &Vm) -> Vec<Work> {
        let (program, plan) = (&self.pending.program, &self.pending.plan);
        let transforms: HashMap<&str, u32> = program
            .transforms
            .iter()
            .filter_map(|t| Some((t.type_name.as_str(), *self.func_slots.get(t.func as usize)?)))
            .collect();
        let mut work = Vec::new();
        for change in &plan.types_changed {
            let name = change.name.clone();
            let (old_slot, new_slot) = (self.old_type_slots[&name], vm.type_slots.get(&name).copied());
            work.push(Work { transform: transforms.get(name.as_str()).copied(), name, old_slot, new_slot });
        }
        for name in &plan.types_removed {
            if let Some(&tf) = transforms.get(name.as_str()) {
                let old_slot = self.old_type_slots[name];
                work.push(Work { name: name.clone(), old_slot, new_slot: None, transform: Some(tf) });
            }
        }
        work
    }

    /// Converts every live instance now. Molt code (explicit transformers, defaults that are
    /// not constants) runs first, with objects that existed before the update read-only;
    /// then the instances take their new contents; then the default transformer with
    /// constant defaults converts its types in one pass over the heap.
    fn transform_eager(&mut self, vm: &mut Vm, work: Vec<Work>) -> Result<(), String> {
        let program = &self.pending.program;
        let guard = if !program.transforms.is_empty() || !self.pending.plan.types_changed.is_empty() {
            // "Pre-existing" means before the update: objects the initialisers made are not.
            WriteGuard::Frozen { generation: vm.dsu.epoch }
        } else {
            WriteGuard::Off
        };
        let (converted, _) = vm.guarded(guard, |vm| {
            let mut replacements = Vec::new();
            let mut in_place = Vec::new();
            for w in work {
                vm.forward(&w);
                match w.transform {
                    Some(tf) => replacements.extend(vm.run_transformer(&w, tf)?),
                    None => {
                        let new_slot = w.new_slot.ok_or("a removed type without a transformer")?;
                        let plan = vm.field_plan(w.old_slot, new_slot)?;
                        if plan.iter().all(|s| !matches!(s, FieldSource::Default(..))) {
                            // No Molt code runs: converted in one pass below.
                            in_place.push((w.old_slot, new_slot, plan));
                            continue;
                        }
                        for r in vm.heap.records_of(w.old_slot) {
                            let fields = vm.apply_field_plan(r, &plan)?;
                            replacements.push((r, new_slot, fields));
                        }
                    }
                }
            }
            Ok::<_, String>((replacements, in_place))
        });
        let (replacements, in_place) = converted?;
        // Instances take their new contents now (identity kept), so that `migrate` sees them;
        // the old contents are kept for a rollback.
        self.objects = replacements.len();
        let log = vm.dsu.open.as_mut().expect("an open transaction");
        log.undo.reserve(replacements.len());
        for (r, ty, fields) in replacements {
            if let Obj::Record { ty, fields } = std::mem::replace(vm.heap.get_mut(r), Obj::Record { ty, fields }) {
                log.undo.push((r, ty, fields));
            }
        }
        for (old_slot, new_slot, plan) in in_place {
            self.objects += self.convert_in_place(vm, old_slot, new_slot, &plan);
        }
        Ok(())
    }

    /// The default transformer with constant defaults, over every instance of `old_slot` in
    /// one heap pass: a template with the constant defaults, then the kept fields copied in
    /// (one allocation and a copy per record, no per-field dispatch).
    fn convert_in_place(&self, vm: &mut Vm, old_slot: u32, new_slot: u32, plan: &[FieldSource]) -> usize {
        let template: Box<[Value]> = plan
            .iter()
            .map(|s| match s {
                FieldSource::Value(v) => *v,
                FieldSource::Copy(..) | FieldSource::Default(..) => Value::Nil, // filled, or excluded
            })
            .collect();
        let copies: Vec<(usize, usize)> = plan
            .iter()
            .enumerate()
            .filter_map(|(i, s)| if let FieldSource::Copy(j) = s { Some((i, *j)) } else { None })
            .collect();
        let convert = |old: &[Value]| -> Box<[Value]> {
            let mut new = template.clone();
            for &(i, j) in &copies {
                new[i] = old[j];
            }
            new
        };
        // Only `migrate` can fail after this point: without one, nothing needs the old
        // contents (freeing them as we go keeps the pause's memory traffic down).
        let log = vm.dsu.open.as_mut().expect("an open transaction");
        let undo = self.pending.program.migrate.is_some().then_some(&mut log.undo);
        vm.heap.convert_records(old_slot, new_slot, convert, undo)
    }
}

impl Vm {
    /// Marks `w`'s old layout with how its instances convert: records of it that old code
    /// builds from now on are converted as they are made (see `NewRecord`), and in lazy mode
    /// every instance is at its first use.
    fn forward(&mut self, w: &Work) {
        let transform = w.transform.and_then(|tf| self.funcs[tf as usize].clone());
        let forward = Forward { type_name: w.name.clone(), new_slot: w.new_slot, transform };
        self.types[w.old_slot as usize].forward = Some(forward);
    }

    /// Runs an explicit transformer (function slot `tf`) on every live instance of `w`'s old
    /// layout; returns each instance's new contents.
    fn run_transformer(&mut self, w: &Work, tf: u32) -> Result<Vec<NewContents>, String> {
        let mut out = Vec::new();
        for r in self.heap.records_of(w.old_slot) {
            // Each call starts a generation: the record it returns must be born during the
            // call ("fresh"), as in lazy mode, not one an earlier call or an initialiser made.
            let call = self.heap.new_generation();
            let v = self.call_slot(tf, &[Value::Obj(r)]);
            let v = v.map_err(|e| format!("transform {} failed: {}", w.name, code_failed(self, &e)))?;
            if let Value::Obj(o) = v
                && self.heap.born_before(o, call)
            {
                let what = if w.new_slot.is_some() { w.name.as_str() } else { "new-version" };
                return Err(format!(
                    "transform {} must return a fresh {what} record of the new version, not {}",
                    w.name,
                    self.repr(v)
                ));
            }
            let (ty, fields) = self.check_transformed(&w.name, w.new_slot, v)?;
            out.push((r, ty, fields));
        }
        Ok(out)
    }
}
