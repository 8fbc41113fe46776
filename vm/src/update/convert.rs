//! Converting one instance from an old layout to a new one: the default transformer (fields
//! copied by name, new fields from their defaults), an explicit transformer's result checked,
//! and the lazy conversions (at an instance's first use, or of a record old code builds).

use std::rc::Rc;

use super::transaction::describe;
use crate::heap::{Obj, WriteGuard};
use crate::{Function, ObjRef, Value, Vm};

/// Where the default transformer takes a new field's value from.
pub(crate) enum FieldSource {
    /// The old field at this index.
    Copy(usize),
    /// A constant default, evaluated once.
    Value(Value),
    /// A default function to run per instance (what it is, for messages).
    Default(u32, String),
}

/// A function whose whole body loads a constant and returns it.
fn is_constant_thunk(f: &Function) -> bool {
    use crate::Instr::*;
    matches!(
        f.proto.code.as_slice(),
        [LoadNil { .. } | LoadTrue { .. } | LoadFalse { .. } | LoadInt { .. } | LoadConst { .. }, Return { .. }, ..]
    )
}

impl Vm {
    /// Converts a record that old code just built with a layout that updates have changed
    /// since (through every later version: old code may be several updates old).
    pub(crate) fn convert_new_record(&mut self, r: ObjRef) -> Result<(), String> {
        for _ in 0..=self.version {
            let Obj::Record { ty, .. } = self.heap.get(r) else { return Ok(()) };
            if self.types[*ty as usize].forward.is_none() || self.dsu.converting {
                return Ok(());
            }
            self.convert_lazy(r)?;
        }
        Ok(())
    }

    /// Converts one instance of an outdated layout (lazy mode), in place.
    pub(crate) fn convert_lazy(&mut self, r: ObjRef) -> Result<(), String> {
        if self.dsu.converting {
            return Ok(()); // a transformer sees every instance in its old shape, as in eager mode
        }
        self.dsu.converting = true;
        let limits = (self.frame_limit, self.register_limit);
        if let Some((frames, registers)) = self.dsu.lazy_room {
            let top = self.stack_top();
            self.frame_limit = self.frames.len() + frames;
            self.register_limit = top + registers;
        }
        let result = self.convert_one(r);
        (self.frame_limit, self.register_limit) = limits;
        self.dsu.converting = false;
        result
    }

    fn convert_one(&mut self, r: ObjRef) -> Result<(), String> {
        let Obj::Record { ty, .. } = self.heap.get(r) else { return Ok(()) };
        let old_slot = *ty;
        let Some(fwd) = self.types[old_slot as usize].forward.clone() else { return Ok(()) };
        let (ty, fields) = match fwd.transform {
            Some(tf) => {
                // As in eager mode: objects that existed before the update are read-only while
                // the transformer runs, and it must return a record it built.
                let call = self.heap.new_generation();
                let frozen = WriteGuard::Frozen { generation: self.dsu.epoch };
                let (result, _) = self.guarded(frozen, |vm| vm.call_function(tf, &[Value::Obj(r)]));
                let v = result.map_err(|e| format!("transform {} failed: {}", fwd.type_name, describe(&e)))?;
                if let Value::Obj(o) = v {
                    if self.heap.born_before(o, call) {
                        return Err(format!(
                            "transform {} must return a fresh {} record of the new version, not {}",
                            fwd.type_name,
                            fwd.type_name,
                            self.repr(v)
                        ));
                    }
                }
                self.check_transformed(&fwd.type_name, fwd.new_slot, v)?
            }
            None => {
                let new_slot = fwd.new_slot.ok_or("a removed type without a transformer")?;
                (new_slot, self.default_transform(r, old_slot, new_slot)?)
            }
        };
        let old = std::mem::replace(self.heap.get_mut(r), Obj::Record { ty, fields });
        // Inside an update's transaction (its `migrate`, say), a rollback restores it.
        if let (Obj::Record { ty, fields }, Some(log)) = (old, &mut self.dsu.open) {
            log.undo.push((r, ty, fields));
        }
        Ok(())
    }

    /// Converts every instance still owed a lazy conversion (before a built-in sees values,
    /// and before the next update).
    pub(crate) fn flush_lazy(&mut self) -> Result<(), String> {
        if self.dsu.converting || self.lazy_slots.is_empty() {
            return Ok(());
        }
        // Only live instances are converted (as eager mode does).
        let top = self.stack_top();
        self.collect_garbage(top);
        while let Some(&slot) = self.lazy_slots.last() {
            for r in self.heap.records_of(slot) {
                self.convert_lazy(r)?;
            }
            // `forward` stays: a record of this layout that old code builds from now on is
            // converted as it is made (`NewRecord`), as after an eager update.
            self.lazy_slots.pop();
        }
        self.dsu.lazy_room = None;
        Ok(())
    }

    /// The default transformer: same-named fields copied, new fields from their defaults.
    fn default_transform(&mut self, r: ObjRef, old_slot: u32, new_slot: u32) -> Result<Box<[Value]>, String> {
        let plan = self.field_plan(old_slot, new_slot)?;
        self.apply_field_plan(r, &plan)
    }

    /// How the default transformer builds each new field: computed once per type change.
    pub(crate) fn field_plan(&mut self, old_slot: u32, new_slot: u32) -> Result<Vec<FieldSource>, String> {
        let new = &self.types[new_slot as usize];
        let old = &self.types[old_slot as usize];
        let mut plan = Vec::with_capacity(new.field_names.len());
        for (i, name) in new.field_names.iter().enumerate() {
            if let Some(j) = old.field_names.iter().position(|f| f == name) {
                plan.push(FieldSource::Copy(j));
                continue;
            }
            let d = new.defaults[i].ok_or_else(|| format!("type {}: new field '{name}' has no default", new.name))?;
            plan.push(FieldSource::Default(d, format!("{}.{name}", new.name)));
        }
        // A default that is a plain constant (`0`, `"EUR"`, `nil`) is evaluated once: the
        // result is immutable, so sharing it is invisible. Others (`[]`) run per instance.
        for source in &mut plan {
            if let FieldSource::Default(d, what) = source {
                if let Some(f) = self.default_fn(*d) {
                    if is_constant_thunk(&f) {
                        let v = self
                            .call_function(f, &[])
                            .map_err(|e| format!("default of {what} failed: {}", describe(&e)))?;
                        *source = FieldSource::Value(v);
                    }
                }
            }
        }
        Ok(plan)
    }

    /// A field default's function: the current one, or its last version when a later update
    /// removed the field (a record old code builds is still converted through the layout
    /// that had it).
    fn default_fn(&self, slot: u32) -> Option<Rc<Function>> {
        self.funcs.get(slot as usize).cloned().flatten().or_else(|| self.removed_funcs.get(&slot).cloned())
    }

    pub(crate) fn apply_field_plan(&mut self, r: ObjRef, plan: &[FieldSource]) -> Result<Box<[Value]>, String> {
        let mut out = Vec::with_capacity(plan.len());
        for source in plan {
            let v = match source {
                FieldSource::Copy(j) => match self.heap.get(r) {
                    Obj::Record { fields, .. } => fields[*j],
                    _ => return Err("not a record".into()),
                },
                FieldSource::Value(v) => *v,
                FieldSource::Default(d, what) => {
                    let f = self.default_fn(*d).ok_or_else(|| format!("default of {what} failed: its code is gone"))?;
                    self.call_function(f, &[]).map_err(|e| format!("default of {what} failed: {}", describe(&e)))?
                }
            };
            out.push(v);
        }
        Ok(out.into_boxed_slice())
    }

    /// A transformer's result must be a fresh record of the new version of its type (or, for
    /// a removed type, of any type of the new version).
    pub(super) fn check_transformed(
        &self,
        name: &str,
        new_slot: Option<u32>,
        v: Value,
    ) -> Result<(u32, Box<[Value]>), String> {
        if let Value::Obj(o) = v {
            if let Obj::Record { ty, fields } = self.heap.get(o) {
                // Another type of the new version; or, when a record old code builds is
                // converted after later updates, a layout of that type a later update changed
                // in turn (the conversion goes on from there: `convert_new_record`).
                let current = self.type_slots.values().any(|s| s == ty) || self.types[*ty as usize].forward.is_some();
                let right = match new_slot {
                    Some(s) => *ty == s,
                    None => current,
                };
                if right && !self.heap.born_before(o, self.dsu.epoch) {
                    return Ok((*ty, fields.clone()));
                }
            }
        }
        Err(format!(
            "transform {name} must return a fresh {} record of the new version, not {}",
            if new_slot.is_some() { name } else { "new-version" },
            self.repr(v)
        ))
    }
}
