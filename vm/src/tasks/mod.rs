//! Tasks and channels (TASKS.md): green threads on the VM's one OS thread. Each task has its
//! own registers and frames; the running task's are the VM's `stack` and `frames`, the others
//! wait in the scheduler's table. A task runs until it blocks, ends, yields, or has used its
//! budget of reductions (calls and loop back-edges); then the first ready task runs (FIFO).
//!
//! Blocking is "suspend and retry": an operation that must wait records what the task waits
//! on and fails with the suspension error (`RuntimeError::is_suspend`), leaving the task's pc
//! at the instruction itself; the scheduler (`run.rs`) switches tasks. When the task runs
//! again it executes the instruction again; what another task did for it meanwhile (a value
//! handed over by a `send`, a `send` completed by a `recv`) waits in its `token`. Compiled
//! code is not entered while tasks exist (`Scheduler::active`): the interpreter alone counts
//! reductions, so the interleaving is the same under every `--jit` mode.

pub mod channel;
mod ops;
mod run;
pub mod socket;
mod socket_ops;
pub mod wait;

pub use ops::FUNCTIONS;
pub use run::where_waits;

use std::collections::VecDeque;

pub use channel::Channel;
use rustc_hash::FxHashMap;

use crate::frame_stack::FrameStack;
use crate::{ObjRef, Value};

/// Reductions (calls, built-ins included, and loop back-edges) a task runs before the next
/// ready one gets its turn.
pub const BUDGET: u32 = 1000;

/// The message of the error that suspends a task (never shown: `Vm::raise` turns it into
/// `RuntimeError::suspend`, with the pc left at the instruction to retry).
pub(crate) const SUSPEND: &str = "\u{0}suspend";

/// The task and channel built-ins: functions (`spawn`, ...) and methods of tasks and channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOp {
    Spawn,
    Channel,
    CurrentTask,
    YieldNow,
    Id,
    Join,
    Status,
    Send,
    Recv,
    TryRecv,
    Close,
    Len,
    IsClosed,
    Select,
    /// `sleep(seconds)` and `read_line()` (the stdlib's, which block the whole VM when no
    /// task was spawned, and only their task once one was).
    Sleep,
    ReadLine,
    /// Sockets (`socket.rs`): `listen(addr)`, `connect(addr)`, and the methods of listeners
    /// and connections.
    Listen,
    Connect,
    Accept,
    SocketReadLine,
    Write,
    SocketClose,
    Peer,
    Port,
}

/// What a blocked task waits for.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    Recv(ObjRef),
    Send(ObjRef),
    Join(u32),
    /// `sleep`, until its timer.
    Sleep,
    /// `select`, on the channels in `Task::select` (and a timer, with a timeout).
    Select,
    /// `read_line`, for a line of standard input.
    ReadLine,
    /// A socket operation, until socket `.0` (its id in `socket::Sockets`) is ready.
    Socket(u32),
    /// An update waits for other tasks: this one waits at update point `.0` of its top
    /// frame (global consistency), until the update applies or is given up.
    UpdatePoint(u16),
}

pub enum State {
    /// In the ready queue (or about to be: the running task is `Running`).
    Ready,
    Running,
    Blocked(Wait),
    Done(Value),
    Failed(String),
}

pub struct Task {
    pub id: u32,
    /// The function it runs, for messages (`error in task 7 (worker)`).
    pub name: String,
    pub state: State,
    /// Its registers and frames while another task runs (empty while it runs).
    pub stack: Vec<Value>,
    pub frames: FrameStack,
    /// The version of the code it runs.
    pub version: u32,
    /// What another task did for the operation this task is blocked in (a value received, a
    /// send completed): the operation, run again, takes it.
    pub token: Option<Value>,
    /// A task not started yet: what it calls, with the arguments.
    pub start: Option<(Value, Vec<Value>)>,
    /// Tasks blocked in `join` of this one.
    pub joiners: Vec<u32>,
    /// Its task value (`<task 7>`), made when first asked for.
    pub handle: Option<ObjRef>,
    /// The sequence number of its current timer (`Waits::add_timer`).
    pub timer: Option<u64>,
    /// The channels a `select` it is blocked in waits on.
    pub select: Vec<ObjRef>,
}

impl Task {
    fn new(id: u32, name: String, version: u32) -> Task {
        Task {
            id,
            name,
            state: State::Ready,
            stack: Vec::new(),
            frames: FrameStack::default(),
            version,
            token: None,
            start: None,
            joiners: Vec::new(),
            handle: None,
            timer: None,
            select: Vec::new(),
        }
    }

    /// How `status()` names its state.
    pub fn status(&self) -> &'static str {
        match self.state {
            State::Running => "running",
            State::Ready => "ready",
            State::Blocked(_) => "blocked",
            State::Done(_) => "done",
            State::Failed(_) => "failed",
        }
    }
}

/// The tasks of a VM.
#[derive(Default)]
pub struct Scheduler {
    /// Every task by id (the running one too: its registers are the VM's meanwhile).
    pub tasks: FxHashMap<u32, Task>,
    pub ready: VecDeque<u32>,
    /// The running task (0: the scheduler is not running: a call from the embedding API or
    /// the REPL, where tasks cannot wait).
    pub current: u32,
    next_task: u32,
    next_channel: u32,
    /// Reductions left to the running task.
    pub budget: u32,
    /// A task suspended only to leave compiled code and resumed at once (the first `spawn`
    /// or socket while compiled code runs), with its budget: it goes on with that budget, as
    /// it would have in the interpreter, not with a fresh one.
    pub(crate) resume_budget: Option<(u32, u32)>,
    /// A task was spawned: reductions are counted and compiled code is not entered.
    pub active: bool,
    /// Tasks waiting at update points, in the order they arrived (woken in that order).
    pub at_points: Vec<u32>,
    /// Timers and standard input, and the event loop.
    pub waits: wait::Waits,
    /// The registers and frames of the last task that ended, for the next one to start.
    pub(crate) spare: Option<(Vec<Value>, FrameStack)>,
    /// How many tasks in `tasks` are alive (`alive`).
    live: usize,
}

impl Scheduler {
    /// How many tasks are alive (not ended); 1 before any was spawned (the program).
    /// Counted as tasks start and end: every update event asks, and a per-task transition
    /// emits one event per task.
    pub fn alive(&self) -> usize {
        self.live.max(1)
    }

    /// Adds task `t` to the table (alive).
    pub(crate) fn insert(&mut self, t: Task) {
        if let Some(old) = self.tasks.insert(t.id, t)
            && !matches!(old.state, State::Done(_) | State::Failed(_))
        {
            return; // replaced a live one: the count stays
        }
        self.live += 1;
    }

    /// Task `id` ended as `end` (once: a task already ended keeps its first end).
    pub(crate) fn end(&mut self, id: u32, end: State) -> Vec<u32> {
        let Some(t) = self.tasks.get_mut(&id) else { return Vec::new() };
        if matches!(t.state, State::Done(_) | State::Failed(_)) {
            return Vec::new();
        }
        t.state = end;
        self.live -= 1;
        std::mem::take(&mut t.joiners)
    }

    /// After a collection: forgets the ended tasks whose task value is gone (nothing can
    /// `join` them or ask their status any more).
    pub fn prune(&mut self, heap: &crate::heap::Heap) {
        self.tasks.retain(|&id, t| {
            let ended = matches!(t.state, State::Done(_) | State::Failed(_));
            !ended || t.handle.is_some_and(|h| matches!(heap.get(h), crate::heap::Obj::Task(i) if *i == id))
        });
    }

    /// Values the tasks that are not running hold (for the collector).
    pub fn roots(&self) -> impl Iterator<Item = Value> + '_ {
        self.tasks
            .values()
            .flat_map(|t| {
                let done = match t.state {
                    State::Done(v) => Some(v),
                    _ => None,
                };
                let start = t.start.iter().flat_map(|(f, args)| std::iter::once(*f).chain(args.iter().copied()));
                let consts = t.frames.iter().flat_map(|f| f.func.consts.iter().copied());
                let select = t.select.iter().map(|c| Value::Obj(*c));
                // A task's value keeps an ended task's record (for `join`), not the other way:
                // while it runs, its value must stay valid (`current_task()` returns it again).
                let handle = t.handle.filter(|_| !matches!(t.state, State::Done(_) | State::Failed(_)));
                let own = t.token.into_iter().chain(handle.map(Value::Obj)).chain(select);
                t.stack.iter().copied().chain(consts).chain(start).chain(done).chain(own)
            })
            .chain(self.waits.sockets.roots())
    }

    /// The frames of the tasks that are not running.
    pub fn other_frames(&self) -> impl Iterator<Item = (u32, &crate::Frame)> + '_ {
        self.tasks.values().flat_map(|t| t.frames.iter().map(move |f| (t.id, f)))
    }

    pub(crate) fn current_task(&mut self) -> Option<&mut Task> {
        let id = self.current;
        self.tasks.get_mut(&id)
    }

    /// The pending update ended (applied, rejected or rolled back): the tasks waiting at
    /// update points go on.
    pub(crate) fn wake_at_points(&mut self) {
        for id in std::mem::take(&mut self.at_points) {
            self.wake(id);
        }
    }

    /// Makes `id` ready: it joins the end of the queue.
    pub(crate) fn wake(&mut self, id: u32) {
        if let Some(t) = self.tasks.get_mut(&id)
            && matches!(t.state, State::Blocked(_))
        {
            t.state = State::Ready;
            self.ready.push_back(id);
        }
    }
}
