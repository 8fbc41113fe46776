//! Per-task consistency (TASKS.md, "Updates with tasks"; docs/tasks.md): a code-only update
//! reaches each task by itself. The update is checked and linked by the transaction's usual
//! steps; then, instead of moving every frame in one pause, a *transition* starts. The VM
//! keeps two function tables, the old version's and the new one's: `Vm::funcs` holds the
//! table of the running task's version and `Transition::other` the other one; a task switch
//! swaps them when the next task is in the other version. So a task that has not switched
//! runs the old version entirely, and one that has runs the new one.
//!
//! A task switches as soon as it is quiescent: at an update point its frame moves to the new
//! code (as under the global model); blocked, or spawned and not yet run, its frames of
//! unchanged functions move to the identical new code. The transition ends when no live task
//! is left in the old version (`applied`). If the strict timeout passes first, it is
//! reversed: the tasks that switched go back, by the same rules, and the update is abandoned.

use std::time::Instant;

use rustc_hash::FxHashSet;

use super::event::{EventKind, UpdateEvent};
use super::frames::retarget_unchanged;
use super::transaction::Snapshot;
use super::{Consistency, Pending, UpdatePlan};
use crate::Vm;
use crate::func_table::FuncTable;
use crate::program::Program;
use crate::tasks::State;

/// A per-task transition in progress. See the module doc.
pub(crate) struct Transition {
    /// Where the tasks go: the program and plan of the version they switch to (once
    /// reversing, the old version's program and the plan back to it).
    pub toward: Pending,
    /// The program of the version the tasks leave.
    away: Program,
    /// The update's plan, old to new (for the events and the history).
    plan: UpdatePlan,
    /// The old and the new version numbers, and the one tasks switch to now.
    old: u32,
    new: u32,
    target: u32,
    /// The table of the version that is not in `Vm::funcs`, and the version that is.
    other: FuncTable,
    in_funcs: u32,
    /// Live tasks not yet in `target`.
    left: FxHashSet<u32>,
    reversing: bool,
    /// The start's figures, for `applied`: from the request to the start, and its pause.
    wait_us: u64,
    pause_us: u64,
    /// Update points any task reached during the transition (the strict timeout counts them).
    points: u64,
    /// Why the last task that could not switch could not (the reason of an abandonment).
    holdout: Option<String>,
    /// Why the transition did not finish in time (the holdout when it was reversed).
    timed_out: Option<String>,
    /// The tables as they were before the update (a reversal puts the types back).
    before: Snapshot,
}

impl Vm {
    /// Whether `plan` is applied as a per-task transition (per-task consistency and a
    /// code-only update).
    pub(crate) fn per_task(&self, plan: &UpdatePlan) -> bool {
        self.dsu.settings.consistency == Consistency::PerTask && plan.per_task_blocker().is_none()
    }

    /// The version of the code the running task runs: `version()`.
    pub fn code_version(&self) -> u32 {
        self.dsu.transition.as_ref().map_or(self.version, |t| t.in_funcs)
    }

    /// Whether the running task is in the older of two versions (a per-task transition).
    pub(crate) fn in_old_version(&self) -> bool {
        self.dsu.transition.as_ref().is_some_and(|t| t.in_funcs != t.new)
    }

    /// The transition in progress, in words (for `Status`).
    pub(crate) fn transition_summary(&self) -> String {
        let Some(t) = self.dsu.transition.as_ref() else { return String::new() };
        let what = if t.reversing { "being reversed" } else { "in progress" };
        format!(
            "per-task transition {} -> {} {what}: {} task(s) still to switch to version {}",
            t.old,
            t.new,
            t.left.len(),
            t.target
        )
    }

    /// Whether a per-task transition is in progress.
    pub fn in_transition(&self) -> bool {
        self.dsu.transition.is_some()
    }

    /// The transaction linked the new version (`Vm::funcs` is its table): the transition
    /// starts. `point`: the update point the running task stands at, if any.
    pub(super) fn open_transition(
        &mut self,
        toward: Pending,
        before: Snapshot,
        wait_us: u64,
        started: Instant,
        point: Option<u16>,
    ) {
        let mut old = before.funcs.clone();
        while old.len() < self.funcs.len() {
            old.push(None); // slots the new version added: nothing in the old one
        }
        let new_table = std::mem::replace(&mut self.funcs, old);
        let away = self.dsu.program.take().unwrap_or_default();
        let left = self.tasks.tasks.values().filter(|t| is_live(&t.state)).map(|t| t.id).collect();
        let plan = toward.plan.clone();
        self.dsu.transition = Some(Transition {
            toward,
            away,
            plan,
            old: before.version,
            new: self.version,
            target: self.version,
            other: new_table,
            in_funcs: before.version,
            left,
            reversing: false,
            wait_us,
            pause_us: 0,
            points: 0,
            holdout: None,
            timed_out: None,
            before,
        });
        self.switch_parked_tasks();
        if let Some(p) = point {
            self.switch_running(p);
        }
        if let Some(t) = self.dsu.transition.as_mut() {
            t.pause_us = started.elapsed().as_micros() as u64;
        }
        if self.transition_ended() {
            return;
        }
        let t = self.dsu.transition.as_ref().expect("transition");
        let why = t.holdout.clone().unwrap_or_else(|| "tasks are running".into());
        let reason = format!(
            "per-task transition started: {} task{} still in version {}; {why}",
            t.left.len(),
            if t.left.len() == 1 { "" } else { "s" },
            t.old
        );
        let e = UpdateEvent::new(EventKind::Waiting, t.old, Some(&t.plan)).with_reason(reason);
        self.emit(e);
    }

    /// The running task reached update point `point` during a transition: counted toward
    /// the strict timeout; the task switches if it is quiescent here.
    pub(crate) fn transition_at_point(&mut self, point: u16) {
        if let Some(t) = self.dsu.transition.as_mut() {
            t.points += 1;
        }
        self.transition_tick();
        self.switch_running(point);
        self.transition_ended();
    }

    /// Between two tasks' turns (no task runs): task `from`, which just stopped, switches if
    /// it is blocked and quiescent (or no longer holds the transition back if it ended); the
    /// timeout is checked.
    pub(crate) fn transition_after_turn(&mut self, from: u32) {
        let Some(t) = self.dsu.transition.as_mut() else { return };
        if let Some(task) = self.tasks.tasks.get(&from) {
            if !is_live(&task.state) {
                t.left.remove(&from);
            } else if t.left.contains(&from) && matches!(task.state, State::Blocked(_)) {
                self.switch_parked(from);
            }
        }
        self.transition_tick();
        self.transition_ended();
    }

    /// Task `id` is about to run: its version's function table goes into `Vm::funcs`.
    pub(crate) fn transition_enter(&mut self, id: u32) {
        let Some(t) = self.dsu.transition.as_mut() else { return };
        let Some(v) = self.tasks.tasks.get(&id).map(|task| task.version) else { return };
        if v != t.in_funcs {
            std::mem::swap(&mut self.funcs, &mut t.other);
            t.in_funcs = v;
        }
    }

    /// A task was just spawned (not run yet: quiescent): it starts in the version the
    /// transition goes toward.
    pub(crate) fn transition_spawned(&mut self, id: u32) {
        let Some(t) = self.dsu.transition.as_ref() else { return };
        if self.tasks.tasks.get(&id).is_some_and(|task| task.version != t.target) {
            if let Some(t) = self.dsu.transition.as_mut() {
                t.left.insert(id);
            }
            self.switch_parked(id);
        }
    }

    /// The program (task 1) ended: no task holds the transition back any more.
    pub(crate) fn transition_program_ended(&mut self) {
        if let Some(t) = self.dsu.transition.as_mut() {
            t.left.clear();
        }
        self.transition_ended();
    }

    /// The timeout: past the strict limits (update points or time) the transition reverses.
    fn transition_tick(&mut self) {
        let s = &self.dsu.settings;
        let Some(t) = self.dsu.transition.as_ref() else { return };
        let late = t.points > s.max_wait_points || t.toward.requested.elapsed() > s.max_wait;
        if t.reversing || !late {
            return;
        }
        self.reverse_transition();
    }

    /// When the transition must be decided by (the timeout), while not reversing.
    pub(crate) fn transition_deadline(&self) -> Option<Instant> {
        let t = self.dsu.transition.as_ref().filter(|t| !t.reversing)?;
        Some(t.toward.requested + self.dsu.settings.max_wait)
    }

    /// Every task that is not running and is quiescent switches (blocked, or not started).
    fn switch_parked_tasks(&mut self) {
        let Some(t) = self.dsu.transition.as_ref() else { return };
        let mut ids: Vec<u32> = t.left.iter().copied().filter(|&id| id != self.tasks.current).collect();
        ids.sort_unstable();
        for id in ids {
            let Some(task) = self.tasks.tasks.get(&id) else { continue };
            if task.start.is_some() || matches!(task.state, State::Blocked(_)) {
                self.switch_parked(id);
            } else if let Some(t) = self.dsu.transition.as_mut() {
                let at = crate::tasks::where_waits(&task.frames).map_or(String::new(), |w| format!(" (in {w})"));
                t.holdout = Some(format!("task {id} ({}) is running, not at an update point{at}", task.name));
            }
        }
    }

    /// Task `id`, not running and blocked or not started, switches if it is quiescent: its
    /// frames of unchanged functions move to the identical code of the target version.
    fn switch_parked(&mut self, id: u32) {
        let Some(t) = self.dsu.transition.as_ref() else { return };
        let Some(task) = self.tasks.tasks.get(&id) else { return };
        if task.start.is_none() {
            if let Err(why) = self.plan_stack(&task.frames, &task.stack, &t.toward, None) {
                let at = crate::tasks::where_waits(&task.frames).map_or(String::new(), |w| format!(" (in {w})"));
                let why = format!("task {id} ({}) is blocked{at} and {why}", task.name);
                if let Some(t) = self.dsu.transition.as_mut() {
                    t.holdout = Some(why);
                }
                return;
            }
        }
        let Some(t) = self.dsu.transition.as_mut() else { return };
        let Some(task) = self.tasks.tasks.get_mut(&id) else { return };
        let (from, to) = if task.version == t.in_funcs { (&self.funcs, &t.other) } else { (&t.other, &self.funcs) };
        retarget_unchanged(&mut task.frames, &t.toward.plan, from, to);
        let from_version = task.version;
        task.version = t.target;
        t.left.remove(&id);
        let name = task.name.clone();
        self.emit_switch(id, name, from_version);
    }

    /// The running task, at update point `point`, switches if it is quiescent: its frame
    /// moves to the target version at the matching point, as under the global model.
    fn switch_running(&mut self, point: u16) {
        let id = self.tasks.current;
        let Some(t) = self.dsu.transition.as_ref() else { return };
        if !t.left.contains(&id) {
            return;
        }
        let top_move = match self.plan_frames(&t.toward, Some(point)) {
            Ok(m) => m,
            Err(why) => {
                let name = self.tasks.tasks.get(&id).map_or("?", |t| t.name.as_str());
                let why = format!("task {id} ({name}): {why}");
                if let Some(t) = self.dsu.transition.as_mut() {
                    t.holdout = Some(why);
                }
                return;
            }
        };
        let Some(mut t) = self.dsu.transition.take() else { return };
        // The running task's table is in `funcs`: the target's goes there, and its frames
        // move from the one it leaves (now `t.other`).
        std::mem::swap(&mut self.funcs, &mut t.other);
        t.in_funcs = t.target;
        self.migrate_running(&t.toward.plan, top_move, &t.other);
        t.left.remove(&id);
        let (from_version, target) = (t.other_version(), t.target);
        self.dsu.transition = Some(t);
        let name = match self.tasks.tasks.get_mut(&id) {
            Some(task) => {
                task.version = target;
                task.name.clone()
            }
            None => String::new(),
        };
        self.emit_switch(id, name, from_version);
    }

    /// `switched` (or `reverted`) for task `id`, which left version `from`.
    fn emit_switch(&mut self, id: u32, name: String, from: u32) {
        let Some(t) = self.dsu.transition.as_ref() else { return };
        let kind = if t.reversing { EventKind::Reverted } else { EventKind::Switched };
        let mut e = UpdateEvent::new(kind, from, None);
        e.to = t.target;
        e.task = Some((id, name));
        e.wait_us = t.toward.requested.elapsed().as_micros() as u64;
        self.emit(e);
    }

    /// The timeout passed: the transition goes back to the old version. The tasks that
    /// switched go back at their next quiescent moment, by the same rules.
    fn reverse_transition(&mut self) {
        let Some(t) = self.dsu.transition.as_mut() else { return };
        t.reversing = true;
        t.target = t.old;
        let back = UpdatePlan::new(&t.toward.program, &t.away, t.new);
        std::mem::swap(&mut t.toward.program, &mut t.away);
        t.toward.plan = back;
        let old = t.old;
        t.left = self.tasks.tasks.values().filter(|k| is_live(&k.state) && k.version != old).map(|k| k.id).collect();
        let why = t.holdout.take().unwrap_or_else(|| "tasks did not become quiescent".into());
        t.timed_out = Some(why.clone());
        let reason = format!(
            "reversing the per-task transition after {} update points ({} ms): {why}; the tasks that switched go back to version {old}",
            t.points,
            t.toward.requested.elapsed().as_millis()
        );
        let e = UpdateEvent::new(EventKind::Waiting, t.old, Some(&t.plan)).with_reason(reason);
        self.emit(e);
        self.switch_parked_tasks();
    }

    /// Ends the transition when no live task is left outside its target: `applied`, or
    /// after a reversal the abandonment. Returns whether it ended.
    fn transition_ended(&mut self) -> bool {
        if self.dsu.transition.as_ref().is_none_or(|t| !t.left.is_empty()) {
            return false;
        }
        let Some(mut t) = self.dsu.transition.take() else { return false };
        if t.in_funcs != t.target {
            std::mem::swap(&mut self.funcs, &mut t.other);
        }
        let event = if t.reversing { self.close_reversed(&mut t) } else { self.close_applied(&mut t) };
        self.emit(event);
        self.heap.trace_code = self.keeps_old_code();
        if let Some((next, undo)) = self.dsu.queued.pop_front() {
            self.request_as(next, undo);
        }
        self.refresh_update_flag();
        true
    }

    /// Every task is in the new version: the update is applied.
    fn close_applied(&mut self, t: &mut Transition) -> UpdateEvent {
        let mut e = UpdateEvent::new(EventKind::Applied, t.old, Some(&t.plan));
        e.wait_us = t.wait_us;
        e.pause_us = t.pause_us;
        e.transition_us = Some(t.toward.requested.elapsed().as_micros() as u64);
        self.dsu.history.push(std::mem::take(&mut t.plan));
        super::bound(&mut self.dsu.history);
        self.note_lineage(&t.toward.program, t.toward.undo);
        self.dsu.program = Some(std::mem::take(&mut t.toward.program));
        e
    }

    /// Every task is back in the old version: the tables are as before the update (slots the
    /// new version added keep its functions as removed ones, for old frames that still run
    /// them), and the update is abandoned, using no version number.
    fn close_reversed(&mut self, t: &mut Transition) -> UpdateEvent {
        for slot in 0..self.funcs.len().min(t.other.len()) {
            match (&self.funcs[slot], &t.other[slot]) {
                (Some(_), _) => {
                    self.removed_funcs.remove(&(slot as u32));
                }
                (None, Some(f)) => {
                    self.removed_funcs.insert(slot as u32, f.clone());
                }
                (None, None) => {}
            }
        }
        for (slot, ty) in std::mem::take(&mut t.before.types_saved) {
            self.types[slot as usize] = ty;
        }
        self.type_slots = std::mem::take(&mut t.before.type_slots);
        self.version = t.old;
        self.dsu.program = Some(std::mem::take(&mut t.toward.program));
        let why = t.timed_out.clone().unwrap_or_default();
        let reason = format!(
            "abandoned: the per-task transition did not finish in time ({why}); it was reversed and every task runs version {} again",
            t.old
        );
        let mut e = UpdateEvent::new(EventKind::Rejected, t.old, Some(&t.plan)).with_reason(reason);
        e.wait_us = t.toward.requested.elapsed().as_micros() as u64;
        e
    }
}

impl super::UpdateState {
    /// The functions of the version whose table is not in `Vm::funcs` (GC roots, and code
    /// that can run for the old-code walk).
    pub(crate) fn transition_funcs(&self) -> impl Iterator<Item = &std::rc::Rc<crate::Function>> + '_ {
        self.transition.iter().flat_map(|t| t.other.iter().flatten())
    }
}

impl Transition {
    /// The version whose table is in `other`.
    fn other_version(&self) -> u32 {
        if self.in_funcs == self.new { self.old } else { self.new }
    }
}

fn is_live(s: &State) -> bool {
    !matches!(s, State::Done(_) | State::Failed(_))
}
