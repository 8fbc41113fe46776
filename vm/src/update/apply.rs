//! The update transaction. Nothing the program can see changes until commit; any error rolls
//! everything back (function table, types, globals, heap writes of `migrate`, the version).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use super::event::{EventKind, UpdateEvent};
use super::frames::{FrameMove, plan_move};
use super::plan::FnStatus;
use super::{Pending, Policy, TransformMode};
use crate::heap::{Obj, WriteGuard};
use crate::link::SlotMap;
use crate::{FnKind, Forward, Function, ObjRef, RuntimeError, TypeRt, Value, Vm};

/// Where the default transformer takes a new field's value from.
pub(crate) enum FieldSource {
    /// The old field at this index.
    Copy(usize),
    /// A constant default, evaluated once.
    Value(Value),
    /// A default function to run per instance (what it is, for messages).
    Default(u32, String),
}

/// Frees the old contents of a committed update. A large one (a million field arrays take
/// milliseconds to free) is freed on a short-lived thread, outside the update's pause: the
/// contents are plain values, unreachable from the program once the update commits.
fn free_later(old: Vec<crate::heap::OldContents>) {
    if old.len() < 10_000 {
        return drop(old);
    }
    // If no thread can be started, the closure (and `old`) is dropped here instead.
    let _ = std::thread::Builder::new().name("molt-free".into()).spawn(move || drop(old));
}

/// A function whose whole body loads a constant and returns it.
fn is_constant_thunk(f: &Function) -> bool {
    use crate::Instr::*;
    matches!(
        f.proto.code.as_slice(),
        [LoadNil { .. } | LoadTrue { .. } | LoadFalse { .. } | LoadInt { .. } | LoadConst { .. }, Return { .. }, ..]
    )
}

/// Everything a rollback restores.
struct Snapshot {
    funcs: crate::func_table::FuncTable,
    removed_funcs: rustc_hash::FxHashMap<u32, Rc<Function>>,
    removed_globals: rustc_hash::FxHashSet<u32>,
    func_names: usize,
    globals: Vec<Value>,
    global_names: usize,
    types: Vec<TypeRt>,
    type_slots: HashMap<String, u32>,
    lazy_slots: Vec<u32>,
    version: u32,
}

fn describe(e: &RuntimeError) -> String {
    match e.trace.first() {
        Some(t) => format!("{} (at {} {}:{})", e.message, t.function, t.file, t.line),
        None => e.message.clone(),
    }
}

impl Vm {
    /// Tries to apply the pending update now. `point` is the update point the top frame is
    /// at (None when no code runs). Emits the outcome; leaves the update pending if it waits.
    pub(crate) fn try_apply(&mut self, point: Option<u16>) {
        let Some(mut pending) = self.dsu.pending.take() else { return };
        let t0 = Instant::now();
        // Conversions still owed by an earlier lazy update are finished first.
        if let Err(e) = self.flush_lazy() {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(format!(
                "finishing the previous update's lazy conversions failed: {e}; the instance stays as it was \
                     (using it raises this error) and updates are rejected while it is alive"
            ));
            return self.emit(e);
        }
        // Lazy mode converts later only what gives the same result later (DSU.md: both modes
        // "must give the same results"); anything else converts now, and the event says why.
        let eager_because = match self.dsu.settings.mode {
            TransformMode::Lazy => self.lazy_blocker(&pending.program, &pending.plan),
            TransformMode::Eager => None,
        };
        let lazy = self.dsu.settings.mode == TransformMode::Lazy && eager_because.is_none();
        let wait_us = t0.duration_since(pending.requested).as_micros() as u64;

        // 1. Which frames block, and how the top frame moves. Nothing changes yet.
        let moves = match self.plan_frames(&pending, point) {
            Ok(m) => m,
            Err(why) => return self.wait(pending, why),
        };

        // Frames left on old code (relaxed policy) must not call a function whose arity changes.
        if self.dsu.settings.policy == Policy::Relaxed {
            let n = self.frames.len();
            for (i, f) in self.frames.iter().enumerate() {
                let status = pending.plan.status(&f.func.proto.name);
                let migrates = i + 1 == n && moves.is_some();
                if f.func.proto.kind == FnKind::Lambda
                    || migrates
                    || !matches!(status, FnStatus::Changed | FnStatus::Removed)
                {
                    continue;
                }
                if let Some(why) = self.arity_conflict(&f.func, &pending.program, "a frame left on old code") {
                    let mut e =
                        UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(why);
                    e.wait_us = wait_us;
                    return self.emit(e);
                }
            }
        }

        // 2. A collection, so that only live instances are transformed (and counted). A lazy
        // update skips it (its pause must not depend on the heap) unless the heap is scanned
        // anyway: for live instances of removed types, for live closures when an arity changes
        // (a dead closure must not block the update, as it does not in eager mode).
        let arity_changes = self.arity_changes(&pending.program, &pending.plan);
        if !lazy || arity_changes || !pending.plan.types_removed.is_empty() {
            let top = self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize);
            self.collect_garbage(top);
        }
        if let Err(reason) = self.validate_live(&pending.program, &pending.plan, arity_changes) {
            let mut e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(reason);
            e.wait_us = wait_us;
            return self.emit(e);
        }

        let snap = Snapshot {
            funcs: self.funcs.clone(),
            removed_funcs: self.removed_funcs.clone(),
            removed_globals: self.removed_globals.clone(),
            func_names: self.func_names.len(),
            globals: self.globals.clone(),
            global_names: self.global_names.len(),
            types: self.types.clone(),
            type_slots: self.type_slots.clone(),
            lazy_slots: self.lazy_slots.clone(),
            version: self.version,
        };
        self.heap.pause_gc = true;
        self.dsu.updating = true;
        self.dsu.transform_time = None;
        let result = self.prepare(&pending, lazy);
        match result {
            Ok((objects, transform_us)) => {
                self.heap.guard = WriteGuard::Off;
                self.heap.pause_gc = false;
                self.dsu.updating = false;
                free_later(std::mem::take(&mut self.dsu.undo));
                self.dsu.init_journal = WriteGuard::Off;
                self.commit_frames(&pending, moves, &snap.funcs);
                // From now on collections look for old code's last users (`old_code.rs`).
                self.heap.trace_code = self.keeps_old_code();
                // Removed globals keep their values while old code may read them (new code
                // cannot name them); collections drop them after that (`old_code.rs`).
                let plan = pending.plan.clone();
                self.dsu.program = Some(pending.program);
                self.dsu.history.push(plan.clone());
                let mut e = UpdateEvent::new(EventKind::Applied, snap.version, Some(&plan));
                e.objects_transformed = objects;
                e.wait_us = wait_us;
                e.transform_us = transform_us;
                e.pause_us = t0.elapsed().as_micros() as u64;
                if let Some(why) = eager_because {
                    e.reason = Some(format!(
                        "converted eagerly, not lazily: {why}; converting later could give another result"
                    ));
                }
                self.emit(e);
            }
            Err(reason) => {
                self.rollback(snap);
                pending.points_waited = 0;
                let mut e =
                    UpdateEvent::new(EventKind::RolledBack, self.version, Some(&pending.plan)).with_reason(reason);
                e.wait_us = wait_us;
                e.transform_us = self
                    .dsu
                    .transform_time
                    .map_or(0, |(started, done)| done.unwrap_or_else(|| started.elapsed()).as_micros() as u64);
                e.pause_us = t0.elapsed().as_micros() as u64;
                self.emit(e);
            }
        }
    }

    fn wait(&mut self, mut pending: Pending, why: String) {
        pending.points_waited += 1;
        let s = &self.dsu.settings;
        if pending.points_waited > s.max_wait_points || pending.requested.elapsed() > s.max_wait {
            let reason = format!(
                "abandoned after waiting {} update points ({} ms): {why}",
                pending.points_waited - 1,
                pending.requested.elapsed().as_millis()
            );
            let mut e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(reason);
            e.wait_us = pending.requested.elapsed().as_micros() as u64;
            return self.emit(e);
        }
        if !pending.told_waiting {
            pending.told_waiting = true;
            let e = UpdateEvent::new(EventKind::Waiting, self.version, Some(&pending.plan)).with_reason(why);
            self.emit(e);
        }
        self.dsu.pending = Some(pending);
    }

    /// Decides, for every frame, whether it blocks the update; returns how the top frame moves.
    fn plan_frames(&self, pending: &Pending, point: Option<u16>) -> Result<Option<FrameMove>, String> {
        let plan = &pending.plan;
        let n = self.frames.len();
        let mut top_move = None;
        for (i, f) in self.frames.iter().enumerate() {
            if f.func.proto.kind == FnKind::Lambda {
                continue; // a lambda runs the code it was created from
            }
            let name = &f.func.proto.name;
            let status = plan.status(name);
            if status == FnStatus::Unchanged || status == FnStatus::Added {
                continue;
            }
            if i + 1 == n {
                if let Some(p) = point {
                    let new = pending.program.functions.iter().find(|q| &q.name == name);
                    let attempt = match new {
                        Some(new) => plan_move(&f.func.proto, new, p),
                        None => Err(format!("'{name}' is removed by the update")),
                    };
                    // A general `for` loop's state goes into a counting loop only when it is
                    // iterating a range.
                    let attempt = attempt.and_then(|m| match m.need_int.iter().find(|(r, _)| {
                        !matches!(self.stack.get(f.base + *r as usize), Some(Value::Int(_)))
                    }) {
                        Some((_, var)) => Err(format!(
                            "the `for` loop over {var} iterates a list, map or string here and counts a range in the new code: its position cannot carry over"
                        )),
                        None => Ok(m),
                    });
                    match attempt {
                        Ok(m) => {
                            top_move = Some(m);
                            continue;
                        }
                        Err(why) if self.dsu.settings.policy == Policy::Strict => {
                            return Err(format!("'{name}' is running and cannot move to its new version: {why}"));
                        }
                        Err(_) => continue,
                    }
                }
            }
            if self.dsu.settings.policy == Policy::Strict {
                let what = if status == FnStatus::Removed { "removed" } else { "changed" };
                return Err(format!("'{name}' ({what} by the update) is active on the stack"));
            }
        }
        Ok(top_move)
    }

    /// Loads the new code, initialises new globals, runs transformers and `migrate`.
    /// Returns the number of instances transformed and the time in transformers.
    fn prepare(&mut self, pending: &Pending, lazy: bool) -> Result<(usize, u64), String> {
        let program = &pending.program;
        let plan = &pending.plan;
        // New code: every function relinked (unchanged ones too: they may build records of a
        // type whose layout changed), types with a changed layout under a new slot.
        let old_slots: HashMap<String, u32> = self.type_slots.clone();
        let mut map: SlotMap = self.slot_map(program)?;
        for (i, t) in program.types.iter().enumerate() {
            let same = old_slots.get(&t.name).is_some_and(|&s| self.types[s as usize].field_names == t.fields);
            map.types[i] = if same { old_slots[&t.name] } else { self.types.len() as u32 + i as u32 };
        }
        let fresh_base = self.types.len() as u32;
        let mut fresh: Vec<Option<TypeRt>> = Vec::new();
        for i in 0..program.types.len() {
            let rt = self.link_type(program, i, &map);
            let slot = map.types[i];
            if slot >= fresh_base {
                let k = (slot - fresh_base) as usize;
                if fresh.len() <= k {
                    fresh.resize_with(k + 1, || None);
                }
                fresh[k] = Some(rt);
            } else {
                self.types[slot as usize] = rt;
            }
        }
        for (k, t) in fresh.into_iter().enumerate() {
            let t = t.unwrap_or_else(|| TypeRt::placeholder(format!("<unused type slot {}>", fresh_base as usize + k)));
            self.types.push(t);
        }
        self.type_slots.clear();
        for (i, t) in program.types.iter().enumerate() {
            self.type_slots.insert(t.name.clone(), map.types[i]);
        }
        let mut installed = vec![false; self.funcs.len()];
        for i in 0..program.functions.len() {
            let f = self.link_function(program, i, &map);
            let slot = f.slot as usize;
            installed[slot] = true;
            self.funcs.set(slot, Some(Rc::new(f)));
            self.removed_funcs.remove(&(slot as u32));
        }
        for (slot, done) in installed.iter().enumerate() {
            if !done {
                if let Some(old) = self.funcs[slot].clone() {
                    self.removed_funcs.insert(slot as u32, old);
                }
                self.funcs.set(slot, None); // removed: a tombstone
            }
        }
        self.link_lambdas(map.funcs.clone().into_iter());
        self.version += 1;
        // Removed globals keep their value while old code may read them (`old_code.rs`); a
        // global declared again is new (its initialiser runs below).
        for g in &plan.globals_removed {
            if let Some(slot) = self.global_names.get_index_of(g) {
                self.removed_globals.insert(slot as u32);
            }
        }
        for g in &plan.globals_added {
            if let Some(slot) = self.global_names.get_index_of(g) {
                self.removed_globals.remove(&(slot as u32));
            }
        }

        // "Before the update", for every write guard of this update and for transformers that
        // run later (lazy mode, records old code builds after the commit).
        let epoch = self.heap.new_generation();
        self.dsu.epoch = epoch;
        // New globals, in declaration order. Their initialisers may write to objects that
        // existed before the update: journaled, so that a rollback undoes them.
        if !plan.globals_added.is_empty() {
            self.heap.guard = WriteGuard::journal(epoch);
            for g in &plan.globals_added {
                let Some(&init) = program.global_init(g).and_then(|f| map.funcs.get(f as usize)) else { continue };
                let v = self
                    .call_slot(init, &[])
                    .map_err(|e| format!("initialising new global '{g}' failed: {}", describe(&e)))?;
                let slot = self.global_names.get_index_of(g).ok_or("global slot")?;
                self.globals[slot] = v;
            }
            self.dsu.init_journal = std::mem::replace(&mut self.heap.guard, WriteGuard::Off);
        }

        // Transformers: pre-existing objects are read-only while they run.
        let started = Instant::now();
        self.dsu.transform_time = Some((started, None));
        let mut replacements: Vec<(ObjRef, u32, Box<[Value]>)> = Vec::new();
        let transforms: HashMap<&str, u32> = program
            .transforms
            .iter()
            .filter_map(|t| {
                Some((t.type_name.as_str(), self.func_slot(program.functions.get(t.func as usize)?.name.as_str())?))
            })
            .collect();
        let mut work: Vec<(String, u32, Option<u32>)> = Vec::new(); // (type, old slot, new slot)
        for change in &plan.types_changed {
            work.push((change.name.clone(), old_slots[&change.name], self.type_slots.get(&change.name).copied()));
        }
        for name in &plan.types_removed {
            if transforms.contains_key(name.as_str()) {
                work.push((name.clone(), old_slots[name], None));
            }
        }
        if lazy {
            // Lazy: nothing is converted now; each instance is at its first use (its
            // conversion reads nothing the program can change since: `lazy_safe`).
            let top = self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize);
            self.dsu.lazy_room = Some((
                crate::MAX_FRAMES.saturating_sub(self.frames.len()),
                (64 * crate::MAX_FRAMES).saturating_sub(top),
            ));
            for (name, old_slot, new_slot) in work {
                let transform = transforms.get(name.as_str()).and_then(|&tf| self.funcs[tf as usize].clone());
                self.types[old_slot as usize].forward = Some(Forward { type_name: name, new_slot, transform });
                self.lazy_slots.push(old_slot);
            }
            return self.run_migrate(program).map(|()| (0, 0));
        }
        // While Molt code runs as a transformer, objects that existed before are read-only.
        if !program.transforms.is_empty() || !plan.types_changed.is_empty() {
            // "Pre-existing" means before the update: objects the initialisers made are not.
            self.heap.guard = WriteGuard::Frozen { generation: epoch };
        }
        let mut in_place: Vec<(u32, u32, Vec<FieldSource>)> = Vec::new();
        for (name, old_slot, new_slot) in work {
            // Records of the old layout that old code builds from now on are converted as they
            // are made (see `NewRecord`).
            let transform = transforms.get(name.as_str()).and_then(|&tf| self.funcs[tf as usize].clone());
            self.types[old_slot as usize].forward = Some(Forward { type_name: name.clone(), new_slot, transform });
            match transforms.get(name.as_str()) {
                Some(&tf) => {
                    for r in self.heap.records_of(old_slot) {
                        // Each call starts a generation: the record it returns must be born
                        // during the call ("fresh"), as in lazy mode, not one an earlier call
                        // or an initialiser made.
                        let call = self.heap.new_generation();
                        let v = self
                            .call_slot(tf, &[Value::Obj(r)])
                            .map_err(|e| format!("transform {name} failed: {}", describe(&e)))?;
                        if let Value::Obj(o) = v
                            && self.heap.born_before(o, call)
                        {
                            let what = if new_slot.is_some() { name.as_str() } else { "new-version" };
                            return Err(format!(
                                "transform {name} must return a fresh {what} record of the new version, not {}",
                                self.repr(v)
                            ));
                        }
                        let (ty, fields) = self.check_transformed(&name, new_slot, v)?;
                        replacements.push((r, ty, fields));
                    }
                }
                None => {
                    let new_slot = new_slot.ok_or("a removed type without a transformer")?;
                    let plan = self.field_plan(old_slot, new_slot)?;
                    if plan.iter().all(|s| !matches!(s, FieldSource::Default(..))) {
                        // No Molt code runs: converted in place at install time, in one pass.
                        in_place.push((old_slot, new_slot, plan));
                        continue;
                    }
                    for r in self.heap.records_of(old_slot) {
                        let fields = self.apply_field_plan(r, &plan)?;
                        replacements.push((r, new_slot, fields));
                    }
                }
            }
        }
        // Instances take their new contents now (identity kept), so that `migrate` sees them;
        // the old contents are kept for a rollback.
        self.heap.guard = WriteGuard::Off;
        let mut objects = replacements.len();
        self.dsu.undo.reserve(objects);
        for (r, ty, fields) in replacements {
            let old = std::mem::replace(self.heap.get_mut(r), Obj::Record { ty, fields });
            if let Obj::Record { ty, fields } = old {
                self.dsu.undo.push((r, ty, fields));
            }
        }
        for (old_slot, new_slot, plan) in in_place {
            // The new contents: a template with the constant defaults, then the kept fields
            // copied in (one allocation and a copy per record, no per-field dispatch).
            let template: Box<[Value]> = plan
                .iter()
                .map(|s| match s {
                    FieldSource::Value(v) => *v,
                    FieldSource::Copy(..) | FieldSource::Default(..) => Value::Nil, // excluded above
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
            let undo = program.migrate.is_some().then_some(&mut self.dsu.undo);
            objects += self.heap.convert_records(old_slot, new_slot, convert, undo);
        }
        let transform_us = if objects == 0 { 0 } else { started.elapsed().as_micros() as u64 };
        self.dsu.transform_time = Some((started, Some(started.elapsed())));

        self.run_migrate(program)?;
        Ok((objects, transform_us))
    }

    /// `migrate`, with its writes to pre-existing objects journaled.
    fn run_migrate(&mut self, program: &crate::Program) -> Result<(), String> {
        if let Some(m) = program.migrate {
            let name = &program.functions[m as usize].name;
            let slot = self.func_slot(name).ok_or("migrate slot")?;
            self.heap.guard = WriteGuard::journal(self.dsu.epoch);
            self.call_slot(slot, &[]).map_err(|e| format!("migrate failed: {}", describe(&e)))?;
        }
        Ok(())
    }

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
            let top = self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize);
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
                let outer = std::mem::replace(&mut self.heap.guard, WriteGuard::Frozen { generation: self.dsu.epoch });
                let result = self.call_function(tf, &[Value::Obj(r)]);
                self.heap.guard = outer;
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
        if let Obj::Record { ty, fields } = old {
            if self.dsu.updating {
                self.dsu.undo.push((r, ty, fields));
            }
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
        let top = self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize);
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
    fn check_transformed(&self, name: &str, new_slot: Option<u32>, v: Value) -> Result<(u32, Box<[Value]>), String> {
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

    /// Moves frames to the new code: the top frame to its matching update point, frames of
    /// unchanged functions to the identical new code; the rest (relaxed policy) stay old.
    /// `before`: the function table before this update. "Unchanged" compares that version
    /// with the new one: a frame still running an older version (left there by an earlier
    /// update under the relaxed policy) runs other code, and stays in it.
    fn commit_frames(&mut self, pending: &Pending, top_move: Option<FrameMove>, before: &crate::func_table::FuncTable) {
        let n = self.frames.len();
        for i in 0..n {
            let f = &self.frames[i];
            if f.func.proto.kind == FnKind::Lambda {
                continue;
            }
            let name = f.func.proto.name.clone();
            let Some(slot) = self.func_slot(&name) else { continue };
            let Some(new) = self.funcs[slot as usize].clone() else { continue };
            let current = before.get(slot as usize).and_then(|g| g.as_ref()).is_some_and(|g| Rc::ptr_eq(g, &f.func));
            match pending.plan.status(&name) {
                FnStatus::Unchanged if current => self.replace_frame_func(i, new),
                FnStatus::Changed if i + 1 == n => {
                    if let Some(m) = &top_move {
                        let base = self.frames[i].base;
                        let old: Vec<Value> = m.carry.iter().map(|(_, o)| self.stack[base + *o as usize]).collect();
                        let need = base + new.proto.nregs as usize + 1;
                        if self.stack.len() < need {
                            self.stack.resize(need, Value::Nil);
                        }
                        for r in 0..new.proto.nregs as usize {
                            self.stack[base + r] = Value::Nil;
                        }
                        for ((nr, _), v) in m.carry.iter().zip(old) {
                            self.stack[base + *nr as usize] = v;
                        }
                        for &(nr, delta) in &m.adjust {
                            if let Value::Int(i) = self.stack[base + nr as usize] {
                                self.stack[base + nr as usize] = Value::Int(i.saturating_add(delta));
                            }
                        }
                        self.replace_frame_func(i, new);
                        self.frames[i].pc = m.pc;
                    }
                }
                _ => {}
            }
        }
    }

    /// Frame `i` runs `new` from now on. Compiled code suspended in that frame may still run
    /// its old function's code and read its inline caches: kept (see `Vm::retired`). Per frame
    /// the first is the one a suspended activation can use: a compiled activation starts
    /// only with a new frame (a direct call) or through `run_compiled` (which drops the
    /// frame's earlier one), so later ones were never run compiled in this frame.
    fn replace_frame_func(&mut self, i: usize, new: Rc<Function>) {
        let serial = self.frames[i].serial;
        let old = std::mem::replace(&mut self.frames[i].func, new);
        if self.tier_depth == 0 || self.retired.iter().any(|&(d, s, _)| d == i && s == serial) {
            return;
        }
        self.retired.retain(|&(d, _, _)| d != i); // an earlier frame's, at this depth
        self.retired.push((i, serial, old));
    }

    fn rollback(&mut self, snap: Snapshot) {
        self.heap.pause_gc = false;
        let guard = std::mem::replace(&mut self.heap.guard, WriteGuard::Off);
        guard.restore(&mut self.heap);
        for (r, ty, fields) in std::mem::take(&mut self.dsu.undo).into_iter().rev() {
            *self.heap.get_mut(r) = Obj::Record { ty, fields };
        }
        // The initialisers' writes came first: undone last.
        std::mem::replace(&mut self.dsu.init_journal, WriteGuard::Off).restore(&mut self.heap);
        self.funcs = snap.funcs;
        self.removed_funcs = snap.removed_funcs;
        self.removed_globals = snap.removed_globals;
        self.heap.trace_code = self.keeps_old_code();
        self.func_names.truncate(snap.func_names);
        self.globals = snap.globals;
        self.global_names.truncate(snap.global_names);
        // Type slots are never reused: the rolled-back update's new slots stay, as
        // placeholders. Code compiled meanwhile may have specialised on them (inline caches,
        // machine code shared by content), and a later update reusing a slot number for
        // another layout would meet it.
        let grown = self.types.len();
        self.types = snap.types;
        for slot in self.types.len()..grown {
            self.types.push(TypeRt::placeholder(format!("<rolled-back type slot {slot}>")));
        }
        self.type_slots = snap.type_slots;
        self.lazy_slots = snap.lazy_slots;
        self.dsu.lazy_room = None; // the previous update's conversions were all done first
        self.dsu.updating = false;
        self.version = snap.version;
        // Frames above the update point (transformers, migrate) were unwound by call_slot.
    }
}
