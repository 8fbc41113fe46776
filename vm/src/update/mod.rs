//! Dynamic software updating: a running program takes a new version at an update point.
//! `plan` says what changes; `validate` rejects what cannot work before anything changes;
//! `transaction` runs the update as one transaction (its steps: `new_version` links the
//! version and initialises new globals, `transform` converts instances (one at a time:
//! `convert`), `migrate`, then commit with `frames` moving the frames, or a rollback that
//! leaves everything as it was); `old_code` releases what only unreachable old code used;
//! `transition` lets each task switch by itself (per-task consistency).

mod convert;
pub mod event;
mod frames;
mod lazy_safe;
mod new_version;
mod old_code;
pub mod plan;
mod transaction;
mod transform;
mod transition;
mod validate;

use std::time::{Duration, Instant};

pub use event::{EventKind, UpdateEvent};
pub use plan::{FnStatus, TypeChange, UpdatePlan};

use crate::{Program, Vm};

/// What to do with frames of changed functions that are active elsewhere on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Wait (at later update points) until no such frame is active; give up after a limit.
    Strict,
    /// Let them finish in their old code.
    Relaxed,
}

/// Who switches to a new version when (TASKS.md, docs/tasks.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Every task at once, in one pause, once every task is quiescent.
    #[default]
    Global,
    /// Each task by itself, as soon as it is quiescent (code-only updates; any other update
    /// is applied under the global model).
    PerTask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformMode {
    Eager,
    Lazy,
}

#[derive(Clone, Debug)]
pub struct UpdateSettings {
    pub policy: Policy,
    pub mode: TransformMode,
    /// Update points to wait through before a blocked update is abandoned.
    pub max_wait_points: u64,
    pub max_wait: Duration,
    pub consistency: Consistency,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings {
            policy: Policy::Strict,
            mode: TransformMode::Eager,
            max_wait_points: 10_000,
            max_wait: Duration::from_secs(10),
            consistency: Consistency::Global,
        }
    }
}

/// Where updates come from while a program runs (`--update FILE`s, a watched file, the REPL).
/// The VM asks for the next one at an update point once the previous one was handled.
pub trait UpdateSource {
    /// The next new version, or why it could not be made (a compile error, an unreadable
    /// file); `None` when there is nothing now.
    fn next_update(&mut self) -> Option<Result<Program, String>>;
    /// Whether `next_update` has something to return now. A source fed from another thread
    /// calls `Signals::raise_update` (on the VM's `signals`) after each new version arrives, so
    /// update points poll nothing but the signal word while there is nothing to do.
    fn has_more(&self) -> bool;
    /// Whether a new version from this source replaces one still waiting for its update point
    /// (each is the whole program, as `--watch`'s saves) rather than following it (as the
    /// `--update` files, applied in turn).
    fn supersedes(&self) -> bool {
        false
    }
    /// At the end of the run: the updates it still holds that were never handled (for the
    /// "never applied" lines), e.g. the remaining `--update` files.
    fn unhandled(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Whether its updates are requested as soon as the VM notices them (between two tasks'
    /// turns, or asleep in the event loop), not only at an update point, as `--update` files
    /// are (DSU.md: "the first update point reached").
    fn immediate(&self) -> bool {
        false
    }
    /// The next request: a new version or an undo, with settings for that update alone. A
    /// source with only new versions need not write it (it wraps `next_update`).
    fn next_request(&mut self) -> Option<Result<Incoming, String>> {
        self.next_update().map(|r| r.map(|program| Incoming { program: Some(program), settings: None }))
    }
}

/// What an update source asks for (`UpdateSource::next_request`).
pub struct Incoming {
    /// The new version, or `None`: back to the previous version's program (`Vm::request_undo`).
    pub program: Option<Program>,
    /// The settings for this update alone (`molt push --transform ...`); `None`: the VM's.
    pub settings: Option<UpdateSettings>,
}

/// An update that was requested and not yet applied or rejected.
pub(crate) struct Pending {
    pub program: Program,
    pub plan: UpdatePlan,
    pub requested: Instant,
    pub points_waited: u64,
    pub told_waiting: bool,
    /// An undo: once applied, the version it leaves is forgotten (`UpdateState::lineage`).
    pub undo: bool,
}

/// How many versions back an undo can go at least (`UpdateState::lineage` keeps the programs).
pub const UNDO_DEPTH: usize = 64;

/// How many of the latest events and plans `UpdateState` keeps at least (it keeps at most
/// twice as many, dropping the older half at once).
pub const KEPT: usize = 1000;

/// Drops the older half of `v` once it holds `2 * KEPT`; returns how many were dropped.
pub(crate) fn bound<T>(v: &mut Vec<T>) -> usize {
    if v.len() < 2 * KEPT {
        return 0;
    }
    let n = v.len() - KEPT;
    v.drain(..n);
    n
}

/// Receives update events as they happen.
pub type EventSink = Box<dyn FnMut(&UpdateEvent)>;

/// The DSU state of a VM.
#[derive(Default)]
pub struct UpdateState {
    pub settings: UpdateSettings,
    /// The running version's program (what a new version is compared with).
    pub program: Option<Program>,
    pub(crate) pending: Option<Pending>,
    pub source: Option<Box<dyn UpdateSource>>,
    /// The events so far, oldest first: the latest `KEPT` at least (older ones are dropped,
    /// `events_dropped` counts them, so that a program updated for ever does not grow).
    pub events: Vec<UpdateEvent>,
    /// How many of the oldest events were dropped from `events`.
    pub events_dropped: usize,
    /// Called for each event as it happens (the CLI prints from here).
    pub on_event: Option<EventSink>,
    /// Plans of the applied versions, oldest first: the latest `KEPT` at least.
    pub history: Vec<UpdatePlan>,
    /// Set while an update's transaction is open: its undo log, lent to the code the update
    /// runs (a lazy conversion in `migrate` records the instance's old contents there).
    pub(crate) open: Option<transaction::UpdateLog>,
    /// The heap generation the last update began: objects born before it existed before that
    /// update (`WriteGuard`).
    pub(crate) epoch: u32,
    /// A lazy conversion is running (its transformer sees old shapes; no nested conversions).
    pub(crate) converting: bool,
    /// The frames and registers a transformer had room for at the update point of the lazy
    /// update whose conversions are owed: a lazy conversion gets the same room wherever it
    /// runs, so that it overflows the stack exactly when the eager one would.
    pub(crate) lazy_room: Option<(usize, usize)>,
    /// True while an update is being applied (its transaction is open: new globals'
    /// initialisers, transformers and `migrate` may be running), for a front end on another
    /// thread that says what the program is doing (the REPL). A front end may put its own in.
    pub applying: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The update's own code was interrupted (Ctrl-C, `:stop`): once the update is rolled
    /// back, the interrupt is raised again so that the program stops too.
    pub(crate) code_interrupted: bool,
    /// A per-task transition in progress (per-task consistency).
    pub(crate) transition: Option<transition::Transition>,
    /// Updates requested (through `request_update`) while a transition ran: handled after it.
    pub(crate) queued: std::collections::VecDeque<(Program, bool)>,
    /// The programs of the versions that lead to the running one, oldest first (the running
    /// one last): an undo goes back to the one before the last and forgets the last.
    pub lineage: Vec<Program>,
    /// The VM's own settings while an update runs with settings of its own (`Incoming`).
    pub(crate) own_settings: Option<UpdateSettings>,
}

impl Vm {
    fn emit(&mut self, mut e: UpdateEvent) {
        e.tasks = self.tasks.alive();
        // What the program printed before the event comes out before it.
        let _ = self.out.flush();
        if let Some(cb) = &mut self.dsu.on_event {
            cb(&e);
        }
        let ended = matches!(e.kind, EventKind::Applied | EventKind::Rejected | EventKind::RolledBack);
        self.dsu.events.push(e);
        self.dsu.events_dropped += bound(&mut self.dsu.events);
        if ended && self.dsu.pending.is_none() {
            self.tasks.wake_at_points();
        }
        // An update with its own settings is over: the VM's come back.
        if ended && self.dsu.pending.is_none() && self.dsu.transition.is_none() {
            if let Some(own) = self.dsu.own_settings.take() {
                self.dsu.settings = own;
            }
        }
    }

    /// Recomputes the one flag the interpreter polls at update points.
    pub(crate) fn refresh_update_flag(&mut self) {
        // Cleared first: a version that arrives from another thread after the check below
        // raises the signal again, so it is never lost.
        self.signals.set_update(false);
        let pending = self.dsu.pending.is_some()
            || self.dsu.transition.is_some()
            || self.dsu.source.as_ref().is_some_and(|s| s.has_more());
        if pending {
            self.signals.set_update(true);
        }
    }

    /// Installs a source of updates polled at update points.
    pub fn set_update_source(&mut self, source: Box<dyn UpdateSource>) {
        self.dsu.source = Some(source);
        self.refresh_update_flag();
    }

    /// Requests an update to `program`: it is planned and validated now; when no code is
    /// running it is applied at once, else at the next update point. Returns the events it
    /// produced so far.
    pub fn request_update(&mut self, program: Program) -> Vec<UpdateEvent> {
        let first = self.dsu.events_dropped + self.dsu.events.len();
        self.request(program);
        if self.frames.is_empty() && self.dsu.pending.is_some() {
            self.try_apply(None);
        }
        self.refresh_update_flag();
        let first = first.saturating_sub(self.dsu.events_dropped).min(self.dsu.events.len());
        self.dsu.events[first..].to_vec()
    }

    /// Requests an update back to the previous version's program: a new version number, with
    /// the old program's code and layouts (records converted back by the default transformer).
    /// Once applied, the version it leaves is forgotten, so a second undo goes one further back.
    pub fn request_undo(&mut self) -> Vec<UpdateEvent> {
        let first = self.dsu.events_dropped + self.dsu.events.len();
        self.undo();
        if self.frames.is_empty() && self.dsu.pending.is_some() {
            self.try_apply(None);
        }
        self.refresh_update_flag();
        let first = first.saturating_sub(self.dsu.events_dropped).min(self.dsu.events.len());
        self.dsu.events[first..].to_vec()
    }

    /// `request_undo` without applying.
    fn undo(&mut self) {
        let n = self.dsu.lineage.len();
        if n < 2 {
            self.emit(UpdateEvent::new(EventKind::Requested, self.version, None));
            let e = UpdateEvent::new(EventKind::Rejected, self.version, None).with_reason(format!(
                "nothing to undo: version {} is the oldest version this program still knows",
                self.version
            ));
            return self.emit(e);
        }
        let previous = self.dsu.lineage[n - 2].clone();
        self.request_as(previous, true);
    }

    /// Plans and validates; sets it pending or reports the rejection.
    fn request(&mut self, program: Program) {
        self.request_as(program, false)
    }

    /// `request`, for an undo when `undo`.
    fn request_as(&mut self, program: Program, undo: bool) {
        // One update at a time: a transition in progress ends first.
        if self.dsu.transition.is_some() {
            return self.dsu.queued.push_back((program, undo));
        }
        let Some(current) = &self.dsu.program else {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, None).with_reason("no program is loaded");
            return self.emit(e);
        };
        let mut plan = UpdatePlan::new(current, &program, self.version);
        if self.dsu.settings.consistency == Consistency::PerTask {
            plan.consistency = Some(match plan.per_task_blocker() {
                None => "per-task (code only: each task switches when it is quiescent)".into(),
                Some(why) => format!("global: per-task consistency takes code-only updates, and {why}"),
            });
        }
        if let Some(old) = self.dsu.pending.take() {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&old.plan))
                .with_reason("superseded by a newer update before it could be applied");
            self.emit(e);
        }
        self.emit(UpdateEvent::new(EventKind::Requested, self.version, Some(&plan)));
        if let Err(reason) = self.validate(&program, &plan) {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&plan)).with_reason(reason);
            return self.emit(e);
        }
        self.dsu.pending =
            Some(Pending { program, plan, requested: Instant::now(), points_waited: 0, told_waiting: false, undo });
    }

    /// Called by the interpreter at an update point when the flag is set.
    /// The interpreter at update point `point` (its `pc` just after it) with signal word
    /// `signals` not zero: hands over to the update engine when an update waits. Out of line
    /// and cold, so that a loop's fused update point costs its back-edge nothing more.
    #[cold]
    #[inline(never)]
    /// Returns whether it did (the frame may have moved: reload it), or the suspension of
    /// the running task when it waits at this point for the other tasks (global consistency).
    pub(crate) fn update_point_taken(
        &mut self,
        point: u16,
        pc: usize,
        signals: u32,
    ) -> Result<bool, crate::RuntimeError> {
        if signals & crate::signals::Signals::UPDATE == 0 {
            return Ok(false);
        }
        self.frames.last_mut().unwrap().pc = pc;
        if self.at_update_point(point) {
            let id = self.tasks.current;
            if let Some(t) = self.tasks.current_task() {
                t.state = crate::tasks::State::Blocked(crate::tasks::Wait::UpdatePoint(point));
            }
            self.tasks.at_points.push(id);
            return Err(crate::RuntimeError::suspend());
        }
        Ok(true)
    }

    /// Returns true when the running task is to wait here for the other tasks.
    pub(crate) fn at_update_point(&mut self, point: u16) -> bool {
        // An update point reached by code that an update runs (a new global's initialiser, a
        // transformer, `migrate`, a lazy conversion) is not a quiescent point of the program:
        // the update in progress finishes first.
        if self.dsu.open.is_some() || self.dsu.converting {
            return false;
        }
        // During a per-task transition, the running task switches here if it can (and the
        // point counts toward the timeout); it never waits.
        if self.dsu.transition.is_some() {
            self.transition_at_point(point);
            self.refresh_update_flag();
            return false;
        }
        // A newer version from a source whose versions supersede each other replaces one still
        // waiting (`request` rejects that one as superseded).
        let newer =
            self.dsu.pending.is_some() && self.dsu.source.as_ref().is_some_and(|s| s.supersedes() && s.has_more());
        if self.dsu.pending.is_none() || newer {
            self.take_request();
        }
        let waits = self.dsu.pending.is_some() && self.try_apply(Some(point));
        self.refresh_update_flag();
        waits
    }

    /// Asks the update source for its next request and makes it pending (or reports why it
    /// cannot be).
    fn take_request(&mut self) {
        let next = self.dsu.source.as_mut().and_then(|s| s.next_request());
        match next {
            Some(Ok(Incoming { program, settings })) => {
                if let Some(s) = settings {
                    let own = std::mem::replace(&mut self.dsu.settings, s);
                    self.dsu.own_settings.get_or_insert(own);
                }
                match program {
                    Some(program) => self.request(program),
                    None => self.undo(),
                }
                // Rejected at once: the VM's settings are back (`emit`).
            }
            Some(Err(reason)) => {
                // Every update has its `requested` event, also one that cannot be read.
                self.emit(UpdateEvent::new(EventKind::Requested, self.version, None));
                let e = UpdateEvent::new(EventKind::Rejected, self.version, None).with_reason(reason);
                self.emit(e);
            }
            None => {}
        }
    }

    /// Between two tasks' turns, or woken in the event loop: a source whose updates apply as
    /// soon as they can (`UpdateSource::immediate`, the control socket) is asked for its next
    /// one, so that a program whose tasks all wait takes a pushed update at once.
    pub(crate) fn take_immediate_request(&mut self) {
        let ready = self.dsu.pending.is_none()
            && self.dsu.transition.is_none()
            && self.dsu.open.is_none()
            && !self.dsu.converting
            && self.dsu.source.as_ref().is_some_and(|s| s.immediate() && s.has_more());
        if ready {
            self.take_request();
            self.refresh_update_flag();
        }
    }

    /// At the end of a run: an update still pending was never applied.
    pub fn finish_updates(&mut self) {
        if let Some(p) = self.dsu.pending.take() {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, Some(&p.plan)).with_reason(format!(
                "update to version {} was never applied: the program ended first",
                self.version + 1
            ));
            self.emit(e);
        }
        let unhandled = self.dsu.source.as_mut().map(|s| s.unhandled()).unwrap_or_default();
        for what in unhandled {
            let e = UpdateEvent::new(EventKind::Rejected, self.version, None).with_reason(format!(
                "update to version {} was never applied ({what}): the program ended before reaching an update point",
                self.version + 1
            ));
            self.emit(e);
        }
        self.refresh_update_flag();
    }
}
