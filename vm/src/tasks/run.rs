//! The scheduler's loop: runs the program as task 1 (its globals' initialisers, then `main`),
//! switching to the first ready task whenever the running one suspends, ends or fails.

use std::io::Write;

use super::{BUDGET, State, Task, Wait};
use crate::heap::Obj;
use crate::{RuntimeError, Value, Vm};

/// What task 1 runs now.
#[derive(PartialEq, Eq)]
enum Phase {
    Init,
    Main,
}

impl Vm {
    /// Runs a loaded program: task 1 runs the initialiser `init`, then `main`; the program
    /// ends when that ends (other tasks are dropped), with its error if it fails.
    pub(crate) fn run_tasks(&mut self, init: u32, main: Option<u32>) -> Result<(), RuntimeError> {
        let result = self.schedule(Some(init), main);
        self.end_tasks();
        result
    }

    /// Runs function slot `main` as task 1 of an already loaded program (the REPL's `:run`),
    /// with the tasks it spawns; the tasks are dropped when it ends.
    pub fn run_as_task(&mut self, main: u32) -> Result<(), RuntimeError> {
        let result = self.schedule(None, Some(main));
        self.end_tasks();
        result
    }

    /// After the program (task 1) ended: the other tasks are dropped, the VM's frames too
    /// (an error leaves them), and the scheduler is as new.
    fn end_tasks(&mut self) {
        // A per-task transition in progress ends with the tasks (none holds it back now).
        self.transition_program_ended();
        self.signals.set_waker(None);
        self.frames.truncate(0);
        self.tasks = Default::default();
        self.signals.set_tasks(false);
    }

    fn schedule(&mut self, init: Option<u32>, main: Option<u32>) -> Result<(), RuntimeError> {
        self.tasks.insert(Task::new(1, "main".into(), self.version));
        if let Some(t) = self.tasks.tasks.get_mut(&1) {
            t.state = State::Running;
        }
        self.tasks.current = 1;
        self.tasks.budget = BUDGET;
        let (mut phase, first) = match init {
            Some(init) => (Phase::Init, init),
            None => (Phase::Main, main.unwrap_or_default()),
        };
        let result = self.start_call(Value::Func(first), &[]).and_then(|()| {
            loop {
                let id = self.tasks.current;
                let outcome = match self.frames.is_empty() {
                    true => Ok(Value::Nil), // a spawned built-in already ran
                    false => self.execute(0),
                };
                match outcome {
                    Err(e) if e.is_suspend() => {}
                    Ok(_) if id == 1 && phase == Phase::Init && main.is_some() => {
                        phase = Phase::Main;
                        self.start_call(Value::Func(main.unwrap_or_default()), &[])?;
                        continue;
                    }
                    Ok(_) if id == 1 => return Ok(()),
                    // An interrupt (Ctrl-C, the REPL's `:stop`) stops the program, whichever
                    // task it reached.
                    Err(e) if id == 1 || e.message == "interrupted" => return Err(e),
                    Ok(v) => self.finish_task(id, State::Done(v)),
                    Err(e) => {
                        self.report_task_error(id, &e);
                        self.finish_task(id, State::Failed(e.message));
                    }
                }
                self.switch_task()?;
            }
        });
        self.tasks.current = 0;
        result
    }

    /// Ends task `id` (not task 1): its joiners wake, its registers go.
    fn finish_task(&mut self, id: u32, end: State) {
        self.frames.truncate(0);
        let joiners = self.tasks.end(id, end);
        for j in joiners {
            self.tasks.wake(j);
        }
    }

    /// `error in task 7 (worker): MESSAGE` and its trace, on stderr (the program goes on).
    fn report_task_error(&mut self, id: u32, e: &RuntimeError) {
        let _ = self.out.flush();
        let name = self.tasks.tasks.get(&id).map_or("?", |t| t.name.as_str());
        let text = e.to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text);
        let _ = write!(std::io::stderr(), "error in task {id} ({name}): {text}");
    }

    /// Hands the VM's registers and frames to the first ready task; the deadlock error when
    /// none is ready. Between the two, with every task in the table, a pending update applies
    /// if every task is quiescent (TASKS.md: "even if none stands at an update point").
    fn switch_task(&mut self) -> Result<(), RuntimeError> {
        let from = self.tasks.current;
        if let Some(t) = self.tasks.tasks.get_mut(&from) {
            std::mem::swap(&mut t.stack, &mut self.stack);
            std::mem::swap(&mut t.frames, &mut self.frames);
            if matches!(t.state, State::Done(_) | State::Failed(_)) {
                // Its registers serve the next task that starts.
                let mut stack = std::mem::take(&mut t.stack);
                stack.clear();
                self.tasks.spare = Some((stack, std::mem::take(&mut t.frames)));
            }
        }
        self.tasks.current = 0;
        // Tasks whose timer passed or whose input came join the queue first.
        self.wake_waiting()?;
        self.transition_after_turn(from);
        self.take_immediate_request();
        if self.dsu.pending.is_some() {
            self.apply_between_tasks();
        }
        // No task can run: the VM sleeps until a timer or input wakes one (or an update's
        // time limit passes).
        while self.tasks.ready.is_empty() && self.tasks.waits.any() {
            let _ = self.out.flush();
            let next_timer = self.tasks.waits.timers.peek().map(|t| t.0.0);
            let deadline = [next_timer, self.update_deadline()].into_iter().flatten().min();
            let timeout = deadline.map(|at| at.saturating_duration_since(std::time::Instant::now()));
            self.tasks.waits.sleep(timeout, &self.signals).map_err(RuntimeError::new)?;
            self.wake_waiting()?;
            if self.attention() {
                return Err(RuntimeError::new("interrupted"));
            }
            self.transition_after_turn(0);
            self.take_immediate_request();
            if self.dsu.pending.is_some() {
                self.apply_between_tasks();
            }
        }
        let Some(next) = self.tasks.ready.pop_front() else {
            // Where main waits is the error's trace; where every task waits, its message.
            let mut e = RuntimeError::new(self.deadlock_report());
            e.trace = self.tasks.tasks.get(&1).map(|t| blocked_trace(&t.frames)).unwrap_or_default();
            return Err(e);
        };
        self.tasks.budget = match self.tasks.resume_budget.take() {
            Some((id, left)) if id == next => left,
            _ => BUDGET,
        };
        self.tasks.current = next;
        self.transition_enter(next);
        let start = match self.tasks.tasks.get_mut(&next) {
            Some(t) => {
                t.state = State::Running;
                std::mem::swap(&mut t.stack, &mut self.stack);
                std::mem::swap(&mut t.frames, &mut self.frames);
                t.start.take()
            }
            None => None,
        };
        if let Some((f, args)) = start {
            if let Err(e) = self.start_call(f, &args) {
                self.report_task_error(next, &e);
                self.finish_task(next, State::Failed(e.message));
            }
        }
        Ok(())
    }

    /// Wakes the tasks whose timer is due (`sleep`, `select`'s timeout: nil) and gives lines
    /// of input to the tasks waiting in `read_line`, first blocked first.
    fn wake_waiting(&mut self) -> Result<(), RuntimeError> {
        for (seq, id) in self.tasks.waits.due(std::time::Instant::now()) {
            let Some(t) = self.tasks.tasks.get_mut(&id) else { continue };
            if t.timer != Some(seq) || !matches!(t.state, State::Blocked(Wait::Sleep | Wait::Select)) {
                continue; // woken otherwise meanwhile
            }
            t.timer = None;
            t.token = Some(Value::Nil);
            self.stop_selecting(id);
            self.tasks.wake(id);
        }
        // Tasks waiting on a socket that had an event run their operation again.
        if self.tasks.waits.sockets.waiting() {
            self.tasks.waits.poll_now().map_err(RuntimeError::new)?;
        }
        for (s, read, write) in std::mem::take(&mut self.tasks.waits.sockets.events) {
            for id in self.tasks.waits.sockets.take_waiters(s, read, write) {
                self.tasks.wake(id);
            }
        }
        self.tasks.waits.take_lines();
        while !self.tasks.waits.readers.is_empty() {
            let Some(line) = self.tasks.waits.lines.pop_front() else { break };
            let Some(id) = self.tasks.waits.readers.pop_front() else { break };
            let at_end = matches!(line, Ok(None));
            let token = match self.line_value(line) {
                Ok(v) => v,
                Err(e) => {
                    // The reader finds the error when it runs again (`read_line` raises it).
                    self.tasks.waits.lines.push_front(Err(e));
                    self.tasks.wake(id);
                    break;
                }
            };
            if let Some(t) = self.tasks.tasks.get_mut(&id) {
                t.token = Some(token);
            }
            self.tasks.wake(id);
            if at_end {
                // Every other reader gets nil too.
                for r in std::mem::take(&mut self.tasks.waits.readers) {
                    if let Some(t) = self.tasks.tasks.get_mut(&r) {
                        t.token = Some(Value::Nil);
                    }
                    self.tasks.wake(r);
                }
            }
        }
        Ok(())
    }

    /// A pending update, tried while no task runs: applied when every task is quiescent;
    /// given up at once when that can never happen (no task is ready to run, and one that
    /// is blocked is not quiescent), or when its time is up.
    fn apply_between_tasks(&mut self) {
        let Some(pending) = self.dsu.pending.as_ref() else { return };
        match self.plan_tasks(pending) {
            Ok(_) => {
                self.try_apply(None);
            }
            Err(why) if self.tasks.ready.is_empty() && !self.tasks.waits.any() => {
                let reason = format!("abandoned: every task waits and one never will be quiescent: {why}");
                self.give_up_update(reason);
            }
            Err(why) if pending.requested.elapsed() > self.dsu.settings.max_wait => {
                let waited = pending.requested.elapsed().as_millis();
                self.give_up_update(format!("abandoned after waiting {waited} ms: {why}"));
            }
            Err(_) => {}
        }
        self.refresh_update_flag();
    }

    /// When a pending update or a transition must be decided by (its time limit).
    fn update_deadline(&self) -> Option<std::time::Instant> {
        let pending = self.dsu.pending.as_ref().map(|p| p.requested + self.dsu.settings.max_wait);
        pending.or_else(|| self.transition_deadline())
    }

    /// Pushes the frame of a call of `f` with `args` on the running task's empty stack (a
    /// built-in runs at once: the task is done).
    fn start_call(&mut self, f: Value, args: &[Value]) -> Result<(), RuntimeError> {
        let (func, captures) = match f {
            Value::Func(slot) => match self.callee(slot) {
                Some(func) => (func, Vec::new()),
                None => return Err(RuntimeError::new("the function to run was removed by an update")),
            },
            Value::Obj(o) => match self.heap.get(o) {
                Obj::Closure { func, captures } => (func.clone(), captures.to_vec()),
                _ => return Err(RuntimeError::new("cannot run this value as a task")),
            },
            Value::Native(n) => {
                let start = 1;
                self.stack.resize(start + args.len() + 1, Value::Nil);
                self.stack[start..start + args.len()].copy_from_slice(args);
                let v = self.call_native(n, start, args.len()).map_err(RuntimeError::new)?;
                let id = self.tasks.current;
                if id != 1 {
                    self.finish_task(id, State::Done(v));
                }
                return Ok(());
            }
            _ => return Err(RuntimeError::new("cannot run this value as a task")),
        };
        let base = 1;
        let need = base + func.proto.nregs as usize + 1;
        if self.stack.is_empty()
            && let Some((stack, frames)) = self.tasks.spare.take()
        {
            (self.stack, self.frames) = (stack, frames);
        }
        if self.stack.len() < need {
            self.stack.resize(need, Value::Nil);
        }
        self.stack[base..base + args.len()].copy_from_slice(args);
        let cap = base + args.len();
        self.stack[cap..cap + captures.len()].copy_from_slice(&captures);
        self.frames.push(func, base, 0);
        Ok(())
    }

    /// The deadlock error: every task, what it waits on and where.
    fn deadlock_report(&self) -> String {
        let mut ids: Vec<u32> = self.tasks.tasks.keys().copied().collect();
        ids.sort();
        let mut lines = vec!["deadlock: every task is blocked".to_string()];
        for id in ids {
            let t = &self.tasks.tasks[&id];
            let State::Blocked(wait) = t.state else { continue };
            let what = self.describe_wait(wait);
            let frames = if id == self.tasks.current { &self.frames } else { &t.frames };
            let at = blocked_trace(frames)
                .first()
                .map_or(String::new(), |t| format!(" in {} ({}:{})", t.function, t.file, t.line));
            lines.push(format!("  task {id} ({}) {what}{at}", t.name));
        }
        lines.join("\n")
    }
}

/// Where a task that is not running stands: `serve (server.molt:12)`.
pub fn where_waits(frames: &crate::frame_stack::FrameStack) -> Option<String> {
    blocked_trace(frames).first().map(|t| format!("{} ({}:{})", t.function, t.file, t.line))
}

/// The trace of a blocked task's frames, innermost first: its top frame is at the
/// instruction it waits in (run again when it resumes), the others just after their calls.
fn blocked_trace(frames: &crate::frame_stack::FrameStack) -> Vec<crate::TraceFrame> {
    let top = frames.len().saturating_sub(1);
    frames
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, f)| &*f.func.file != crate::PRELUDE_FILE)
        .map(|(i, f)| {
            let at = if i == top { f.pc } else { f.pc.saturating_sub(1) };
            let at = at.min(f.func.proto.lines.len().saturating_sub(1));
            crate::TraceFrame {
                function: crate::interp::display_name(&f.func).to_string(),
                file: f.func.file.to_string(),
                line: f.func.proto.lines.get(at).copied().unwrap_or(0),
            }
        })
        .collect()
}
