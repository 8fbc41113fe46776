//! The update transaction. `Vm::try_apply` runs at an update point: the checks that need the
//! running program (`check_at_point`: frames, the live heap) decide whether the pending update
//! applies now, waits, or is rejected; then a `Transaction` is opened and its steps run in the
//! order of docs/dsu.md: link the version, initialise new globals, transform, migrate. It ends
//! only by `commit` (migrate frames, emit `applied`) or `rollback` (everything as it was, emit
//! `rolled back`): both take the transaction by value, and it is `#[must_use]`, so a path that
//! forgets to end it does not compile cleanly.
//!
//! Everything a rollback needs is in the transaction: a snapshot of the tables, the journals
//! of the writes Molt code made to objects that existed before, and the old contents of the
//! records it converted. Two of these must be reachable by the Molt code the update runs (an
//! initialiser, a transformer, `migrate`, a lazy conversion they trigger): the heap's write
//! guard, which every write checks, and the conversions' undo log. The transaction lends them
//! to the VM while that code runs (`Heap::guard`, `UpdateState::open`) and takes them back.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::event::{EventKind, UpdateEvent};
use super::frames::FrameMove;
use super::{Pending, TransformMode};
use crate::heap::{OldContents, WriteGuard};
use crate::{Function, Program, RuntimeError, TypeRt, Value, Vm};

/// What code running inside an open transaction records for its rollback: the old contents
/// (type slot, fields) of the records converted, in order. Plain data, so a large log can be
/// freed on another thread at commit.
#[derive(Default)]
pub(crate) struct UpdateLog {
    pub undo: Vec<OldContents>,
}

/// The tables a rollback restores as they were.
pub(super) struct Snapshot {
    pub funcs: crate::func_table::FuncTable,
    removed_funcs: rustc_hash::FxHashMap<u32, Rc<Function>>,
    removed_globals: rustc_hash::FxHashSet<u32>,
    func_names: usize,
    globals: Vec<Value>,
    global_names: usize,
    /// How many type slots there were, and the current types' slots as they were: an update
    /// changes no other slot (it replaces the slots of types whose layout stays and marks the
    /// old slots of changed types, all current; new slots go after the existing ones). Saving
    /// every slot made each update cost as much as all the type changes before it (type
    /// slots are never reused): 10,000 updates took minutes (benches/soak.sh).
    types_len: usize,
    pub types_saved: Vec<(u32, TypeRt)>,
    pub type_slots: HashMap<String, u32>,
    lazy_slots: Vec<u32>,
    pub version: u32,
}

impl Snapshot {
    fn take(vm: &Vm) -> Snapshot {
        Snapshot {
            funcs: vm.funcs.clone(),
            removed_funcs: vm.removed_funcs.clone(),
            removed_globals: vm.removed_globals.clone(),
            func_names: vm.func_names.len(),
            globals: vm.globals.clone(),
            global_names: vm.global_names.len(),
            types_len: vm.types.len(),
            types_saved: vm.type_slots.values().filter_map(|&s| Some((s, vm.types.get(s as usize)?.clone()))).collect(),
            type_slots: vm.type_slots.clone(),
            lazy_slots: vm.lazy_slots.clone(),
            version: vm.version,
        }
    }
}

/// What the checks at the update point decided for an update that can apply now.
pub(crate) struct Checked {
    /// Instances are converted at their first use (lazy mode, and nothing makes a later
    /// conversion give another result).
    pub lazy: bool,
    /// Why lazy mode converts eagerly this time (the `applied` event says so).
    pub eager_because: Option<String>,
    /// How the frame at the update point moves to its new code.
    pub top_move: Option<FrameMove>,
    /// How the top frames of the other tasks waiting at update points move (by task id).
    pub task_moves: Vec<(u32, FrameMove)>,
}

/// Why an update does not apply at this update point.
pub(crate) enum Refusal {
    /// It may apply at a later one (a changed function is active).
    Wait(String),
    /// This task is ready for it, another task is not (global consistency: this one waits
    /// at its update point for the others).
    Others(String),
    /// It never will.
    Reject(String),
}

/// An update being applied. See the module doc.
#[must_use = "an update transaction ends only by `commit` or `rollback`"]
pub(crate) struct Transaction {
    pub pending: Pending,
    pub checked: Checked,
    /// When the update point was reached: the pause starts here.
    started: Instant,
    wait_us: u64,
    before: Snapshot,
    /// The new program's functions' slots, by index (set when the version is linked).
    pub func_slots: Vec<u32>,
    /// The type slots by name before the update (the old layouts' slots).
    pub old_type_slots: HashMap<String, u32>,
    /// Writes of new globals' initialisers to objects that existed before the update.
    pub init_journal: WriteGuard,
    /// Writes of `migrate` to objects that existed before the update.
    pub migrate_journal: WriteGuard,
    /// When the transformers started, and how long they took once done.
    pub transform_time: Option<(Instant, Option<Duration>)>,
    /// Instances converted during the pause.
    pub objects: usize,
}

/// A runtime error of Molt code the update ran, for a reason: the message and where.
/// Why the update's own code (an initialiser, a transformer, `migrate`) failed, for the
/// rollback's reason. An interrupt is noted: the program stops too once the update is rolled
/// back (`try_apply`).
pub(crate) fn code_failed(vm: &mut Vm, e: &RuntimeError) -> String {
    if e.message == "interrupted" {
        vm.dsu.code_interrupted = true;
    }
    describe(e)
}

pub(crate) fn describe(e: &RuntimeError) -> String {
    match e.trace.first() {
        Some(t) => format!("{} (at {} {}:{})", e.message, t.function, t.file, t.line),
        None => e.message.clone(),
    }
}

/// Frees the undo log of a committed update. A large one (a million field arrays take
/// milliseconds to free) is freed on a short-lived thread, outside the update's pause: the
/// contents are plain values, unreachable from the program once the update commits.
fn free_later(old: Vec<OldContents>) {
    if old.len() < 10_000 {
        return drop(old);
    }
    // If no thread can be started, the closure (and `old`) is dropped here instead.
    let _ = std::thread::Builder::new().name("molt-free".into()).spawn(move || drop(old));
}

impl Vm {
    /// Tries to apply the pending update now. `point` is the update point the top frame is
    /// at (None when no code runs). Emits the outcome; leaves the update pending if it waits.
    /// Returns true when the running task is to wait at its update point for other tasks
    /// (global consistency; the update stays pending).
    pub(crate) fn try_apply(&mut self, point: Option<u16>) -> bool {
        let Some(pending) = self.dsu.pending.take() else { return false };
        let started = Instant::now();
        let per_task = self.per_task(&pending.plan);
        let checked = match per_task {
            true => self.check_for_transition(&pending),
            false => self.check_at_point(&pending, point),
        };
        let checked = match checked {
            Ok(checked) => checked,
            Err(Refusal::Wait(why)) => {
                self.wait(pending, why);
                return false;
            }
            Err(Refusal::Others(why)) => {
                self.wait(pending, why);
                return point.is_some() && self.dsu.pending.is_some() && self.can_wait();
            }
            Err(Refusal::Reject(why)) => {
                let mut e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(why);
                e.wait_us = started.duration_since(pending.requested).as_micros() as u64;
                self.emit(e);
                return false;
            }
        };
        self.dsu.code_interrupted = false;
        self.dsu.applying.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut tx = Transaction::open(self, pending, checked, started);
        match tx.run(self) {
            Ok(()) if per_task => tx.begin_transition(self, point),
            Ok(()) => tx.commit(self),
            Err(reason) => tx.rollback(self, reason),
        }
        self.dsu.applying.store(false, std::sync::atomic::Ordering::SeqCst);
        // An interrupt meant for the program stopped the update's code: the update is rolled
        // back, and the program stops as asked (at its next loop back-edge or call).
        if std::mem::take(&mut self.dsu.code_interrupted) {
            self.signals.interrupt();
        }
        false
    }

    /// The checks that need the running program, in order: owed lazy conversions finished,
    /// lazy or eager, which frames block and how the top frame moves, frames left on old code,
    /// then (after a collection) the live heap. Nothing changes but the owed conversions.
    fn check_at_point(&mut self, pending: &Pending, point: Option<u16>) -> Result<Checked, Refusal> {
        // Conversions still owed by an earlier lazy update are finished first.
        self.flush_lazy().map_err(|e| {
            Refusal::Reject(format!(
                "finishing the previous update's lazy conversions failed: {e}; the instance stays as it was \
                     (using it raises this error) and updates are rejected while it is alive"
            ))
        })?;
        // Lazy mode converts later only what gives the same result later (DSU.md: both modes
        // "must give the same results"); anything else converts now, and the event says why.
        let eager_because = match self.dsu.settings.mode {
            TransformMode::Lazy => self.lazy_blocker(&pending.program, &pending.plan),
            TransformMode::Eager => None,
        };
        let lazy = self.dsu.settings.mode == TransformMode::Lazy && eager_because.is_none();
        let top_move = self.plan_frames(pending, point).map_err(|why| Refusal::Wait(self.running_task_says(why)))?;
        let task_moves = self.plan_tasks(pending).map_err(Refusal::Others)?;
        self.validate_old_frames(pending, top_move.is_some()).map_err(Refusal::Reject)?;
        // A collection, so that only live instances are transformed (and counted). A lazy
        // update skips it (its pause must not depend on the heap) unless the heap is scanned
        // anyway: for live instances of removed types, for live closures when an arity changes
        // (a dead closure must not block the update, as it does not in eager mode).
        // A code-only update looks at no instance: it skips it too (its pause must not depend
        // on the heap, nor on how many tasks hold registers).
        let arity_changes = self.arity_changes(&pending.program, &pending.plan);
        let converts_now = !lazy && !pending.plan.types_changed.is_empty();
        if converts_now || arity_changes || !pending.plan.types_removed.is_empty() {
            self.collect_garbage(self.stack_top());
        }
        self.validate_live(&pending.program, &pending.plan, arity_changes).map_err(Refusal::Reject)?;
        Ok(Checked { lazy, eager_because, top_move, task_moves })
    }

    /// The checks before a per-task transition starts. No task needs to be quiescent (each
    /// switches when it is), but the update must work for every task that will: owed lazy
    /// conversions first, then frames finishing in old code and live closures (arities).
    fn check_for_transition(&mut self, pending: &Pending) -> Result<Checked, Refusal> {
        self.flush_lazy()
            .map_err(|e| Refusal::Reject(format!("finishing the previous update's lazy conversions failed: {e}")))?;
        self.validate_old_frames(pending, false).map_err(Refusal::Reject)?;
        let arity_changes = self.arity_changes(&pending.program, &pending.plan);
        if arity_changes {
            self.collect_garbage(self.stack_top());
        }
        self.validate_live(&pending.program, &pending.plan, arity_changes).map_err(Refusal::Reject)?;
        Ok(Checked { lazy: false, eager_because: None, top_move: None, task_moves: Vec::new() })
    }

    /// `why`, about the running task's own frames, naming that task once there are several.
    fn running_task_says(&self, why: String) -> String {
        match self.tasks.tasks.get(&self.tasks.current) {
            Some(t) if self.tasks.active => {
                // The top frame's pc is just after its update point.
                let at = self.frames.last().map_or(String::new(), |f| {
                    let line = f.func.proto.lines.get(f.pc.saturating_sub(1)).copied().unwrap_or(0);
                    format!(" (in {} ({}:{line}))", crate::interp::display_name(&f.func), f.func.file)
                });
                format!("task {} ({}) at an update point{at}: {why}", t.id, t.name)
            }
            _ => why,
        }
    }

    /// The update cannot apply at this point: it waits for the next, or is abandoned.
    pub(crate) fn wait(&mut self, mut pending: Pending, why: String) {
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

    /// Rejects the pending update with `reason` (the tasks waiting for it go on).
    pub(crate) fn give_up_update(&mut self, reason: String) {
        let Some(pending) = self.dsu.pending.take() else { return };
        let mut e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&pending.plan)).with_reason(reason);
        e.wait_us = pending.requested.elapsed().as_micros() as u64;
        self.emit(e);
    }

    /// An update to `program` committed: it joins the lineage, or (an undo) the version it
    /// left is forgotten. At most `2 * UNDO_DEPTH` programs are kept (the oldest go first).
    pub(crate) fn note_lineage(&mut self, program: &Program, undo: bool) {
        if undo {
            self.dsu.lineage.pop();
        } else {
            self.dsu.lineage.push(program.clone());
            let n = self.dsu.lineage.len();
            if n > 2 * super::UNDO_DEPTH {
                self.dsu.lineage.drain(..n - super::UNDO_DEPTH);
            }
        }
    }

    /// One past the highest register in use (the live part of the stack).
    pub(crate) fn stack_top(&self) -> usize {
        self.frames.last().map_or(0, |f| f.base + f.func.proto.nregs as usize)
    }

    /// Runs `f` with the heap's write guard set to `guard`; gives back what `f` returned and
    /// the guard with what it journaled (also when `f` failed: a rollback needs it).
    pub(crate) fn guarded<T>(&mut self, guard: WriteGuard, f: impl FnOnce(&mut Vm) -> T) -> (T, WriteGuard) {
        let outer = std::mem::replace(&mut self.heap.guard, guard);
        let result = f(self);
        (result, std::mem::replace(&mut self.heap.guard, outer))
    }
}

impl Transaction {
    /// Opens the transaction: the snapshot is taken, collections pause (objects of the old
    /// version stay where a rollback expects them) and the undo log is lent to the VM.
    fn open(vm: &mut Vm, pending: Pending, checked: Checked, started: Instant) -> Transaction {
        let wait_us = started.duration_since(pending.requested).as_micros() as u64;
        vm.heap.pause_gc = true;
        vm.dsu.open = Some(UpdateLog::default());
        Transaction {
            before: Snapshot::take(vm),
            old_type_slots: vm.type_slots.clone(),
            func_slots: Vec::new(),
            pending,
            checked,
            started,
            wait_us,
            init_journal: WriteGuard::Off,
            migrate_journal: WriteGuard::Off,
            transform_time: None,
            objects: 0,
        }
    }

    /// The steps that may fail (docs/dsu.md, "The transaction", steps 4-7).
    fn run(&mut self, vm: &mut Vm) -> Result<(), String> {
        self.link_version(vm)?;
        self.init_globals(vm)?;
        self.transform(vm)?;
        self.migrate(vm)
    }

    /// `migrate`, with its writes to pre-existing objects journaled.
    fn migrate(&mut self, vm: &mut Vm) -> Result<(), String> {
        let program = &self.pending.program;
        let Some(m) = program.migrate else { return Ok(()) };
        let slot = *self.func_slots.get(m as usize).ok_or("migrate slot")?;
        let (result, journal) = vm.guarded(WriteGuard::journal(vm.dsu.epoch), |vm| vm.call_slot(slot, &[]));
        self.migrate_journal = journal;
        result.map(drop).map_err(|e| format!("migrate failed: {}", code_failed(vm, &e)))
    }

    /// Time spent in transformers so far, in microseconds.
    fn transform_us(&self) -> u64 {
        self.transform_time.map_or(0, |(started, done)| done.unwrap_or_else(|| started.elapsed()).as_micros() as u64)
    }

    /// Makes the update visible: frames move to the new code, the new program becomes the
    /// running one, and `applied` is emitted.
    fn commit(self, vm: &mut Vm) {
        vm.heap.pause_gc = false;
        let log = vm.dsu.open.take().unwrap_or_default();
        free_later(log.undo);
        let pending = self.pending;
        vm.migrate_frames(&pending.plan, self.checked.top_move, &self.checked.task_moves, &self.before.funcs);
        // Every task is in the new version now (the global model: one moment for all).
        for t in vm.tasks.tasks.values_mut() {
            t.version = vm.version;
        }
        // From now on collections look for old code's last users (`old_code.rs`).
        vm.heap.trace_code = vm.keeps_old_code();
        let mut e = UpdateEvent::new(EventKind::Applied, self.before.version, Some(&pending.plan));
        e.objects_transformed = self.objects;
        e.wait_us = self.wait_us;
        e.transform_us = if self.objects == 0 {
            0
        } else {
            self.transform_time.map_or(0, |t| t.1.unwrap_or_default().as_micros() as u64)
        };
        e.pause_us = self.started.elapsed().as_micros() as u64;
        if let Some(why) = self.checked.eager_because {
            e.reason =
                Some(format!("converted eagerly, not lazily: {why}; converting later could give another result"));
        }
        vm.dsu.history.push(pending.plan);
        super::bound(&mut vm.dsu.history);
        vm.note_lineage(&pending.program, pending.undo);
        vm.dsu.program = Some(pending.program);
        vm.emit(e);
    }

    /// Per-task consistency: the new version is linked; instead of moving every frame now,
    /// the transition starts (`transition.rs`): each task switches when it is quiescent.
    fn begin_transition(self, vm: &mut Vm, point: Option<u16>) {
        vm.heap.pause_gc = false;
        let _ = vm.dsu.open.take();
        vm.open_transition(self.pending, self.before, self.wait_us, self.started, point);
    }

    /// Puts everything back as it was before the update, and emits `rolled back`.
    fn rollback(self, vm: &mut Vm, reason: String) {
        vm.heap.pause_gc = false;
        let transform_us = self.transform_us();
        // Last change first: `migrate`'s writes, the conversions, the initialisers' writes.
        self.migrate_journal.restore(&mut vm.heap);
        let log = vm.dsu.open.take().unwrap_or_default();
        for (r, ty, fields) in log.undo.into_iter().rev() {
            *vm.heap.get_mut(r) = crate::heap::Obj::Record { ty, fields };
        }
        self.init_journal.restore(&mut vm.heap);
        let before = self.before;
        vm.funcs = before.funcs;
        vm.removed_funcs = before.removed_funcs;
        vm.removed_globals = before.removed_globals;
        vm.heap.trace_code = vm.keeps_old_code();
        vm.func_names.truncate(before.func_names);
        vm.globals = before.globals;
        vm.global_names.truncate(before.global_names);
        // Type slots are never reused: the rolled-back update's new slots stay, as
        // placeholders. Code compiled meanwhile may have specialised on them (inline caches,
        // machine code shared by content), and a later update reusing a slot number for
        // another layout would meet it.
        let grown = vm.types.len();
        vm.types.truncate(before.types_len);
        for (slot, t) in before.types_saved {
            vm.types[slot as usize] = t;
        }
        for slot in vm.types.len()..grown {
            vm.types.push(TypeRt::placeholder(format!("<rolled-back type slot {slot}>")));
        }
        vm.type_slots = before.type_slots;
        vm.lazy_slots = before.lazy_slots;
        vm.dsu.lazy_room = None; // the previous update's conversions were all done first
        vm.version = before.version;
        // Frames above the update point (transformers, migrate) were unwound by call_slot.
        // What the update's code allocated is garbage now: collected at once, so that an
        // update that ran out of memory leaves the program the room it had before.
        vm.collect_garbage(vm.stack_top());
        let mut pending = self.pending;
        pending.points_waited = 0;
        let mut e = UpdateEvent::new(EventKind::RolledBack, vm.version, Some(&pending.plan)).with_reason(reason);
        e.wait_us = self.wait_us;
        e.transform_us = transform_us;
        e.pause_us = self.started.elapsed().as_micros() as u64;
        vm.emit(e);
    }
}
