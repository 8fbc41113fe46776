//! Looking at a running program from another thread: the REPL's `:tasks`, and (issue 15)
//! `molt status` through the control socket. The VM's state is not shared across threads;
//! instead another thread asks (`Inspector::ask`), which raises `Signals::INSPECT` and wakes
//! the event loop, and the VM answers at its next safepoint (a loop back-edge, a call, a task
//! switch, or waking in the event loop) with a `Status`: plain data, printable and testable.

use crate::Vm;
use crate::signals::Signals;
use crate::tasks::{State, Wait};
use std::fmt;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// One task as `:tasks` and `molt status` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    pub id: u32,
    /// The function it runs (its start).
    pub name: String,
    /// `running`, `ready`, `blocked`, `done`, `failed`.
    pub state: &'static str,
    /// The version of the code it runs.
    pub version: u32,
    /// Its innermost frame: `serve (server.molt:12)`.
    pub at: Option<String>,
    /// What a blocked task waits on.
    pub waits: Option<String>,
}

/// A running program, seen at one safepoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The newest version (during a per-task transition, the one tasks switch to).
    pub version: u32,
    pub uptime_ms: u64,
    /// Live tasks by id (ended ones are left out).
    pub tasks: Vec<TaskStatus>,
    /// The update waiting for quiescence, or the transition in progress, in words.
    pub pending: Option<String>,
    /// The versions so far: (version, plan summary), oldest first.
    pub history: Vec<(u32, String)>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "version {}, up {} ms, {} task(s)", self.version, self.uptime_ms, self.tasks.len())?;
        for t in &self.tasks {
            write!(f, "  task {} ({}) {}, version {}", t.id, t.name, t.state, t.version)?;
            if let Some(w) = &t.waits {
                write!(f, ", {w}")?;
            }
            if let Some(at) = &t.at {
                write!(f, ", in {at}")?;
            }
            writeln!(f)?;
        }
        if let Some(p) = &self.pending {
            writeln!(f, "update: {p}")?;
        }
        Ok(())
    }
}

/// Questions from other threads waiting for the VM's answer.
#[derive(Debug, Default)]
pub struct Questions {
    waiting: Mutex<Vec<Sender<Status>>>,
}

/// What another thread keeps to ask a VM for its status.
#[derive(Clone, Debug)]
pub struct Inspector {
    questions: Arc<Questions>,
    signals: Arc<Signals>,
}

impl Inspector {
    /// Asks the VM for its status: the answer arrives on the receiver at the VM's next
    /// safepoint (never, if the program blocks the whole VM meanwhile: wait with a timeout).
    pub fn ask(&self) -> Receiver<Status> {
        let (tx, rx) = channel();
        self.questions.waiting.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        self.signals.inspect();
        rx
    }
}

impl Questions {
    fn take(&self) -> Vec<Sender<Status>> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Vm {
    /// The handle other threads ask through (made after `signals` is set: it raises them).
    pub fn inspector(&self) -> Inspector {
        Inspector { questions: self.questions.clone(), signals: self.signals.clone() }
    }

    /// Answers the questions waiting (`Signals::INSPECT` was seen at a safepoint).
    #[cold]
    pub(crate) fn answer_inspections(&mut self) {
        self.signals.clear_inspect();
        let askers = self.questions.take();
        if askers.is_empty() {
            return;
        }
        let status = self.status();
        for a in askers {
            let _ = a.send(status.clone());
        }
    }

    /// The program's status now.
    pub fn status(&self) -> Status {
        let mut ids: Vec<u32> = self.tasks.tasks.keys().copied().collect();
        ids.sort_unstable();
        let mut tasks = Vec::new();
        for id in ids {
            let t = &self.tasks.tasks[&id];
            if matches!(t.state, State::Done(_) | State::Failed(_)) {
                continue;
            }
            let frames = if id == self.tasks.current { &self.frames } else { &t.frames };
            let waits = match t.state {
                State::Blocked(w) => Some(self.describe_wait(w)),
                _ => None,
            };
            let at = match t.start {
                Some(_) => Some("not started".to_string()),
                None => crate::tasks::where_waits(frames),
            };
            tasks.push(TaskStatus { id, name: t.name.clone(), state: t.status(), version: t.version, at, waits });
        }
        // A program that never spawned (or code run at the REPL's prompt) is one task.
        if tasks.is_empty() && !self.frames.is_empty() {
            let at = crate::tasks::where_waits(&self.frames);
            let name = self.frames.first().map_or(String::new(), |f| f.func.proto.name.clone());
            tasks.push(TaskStatus { id: 1, name, state: "running", version: self.version, at, waits: None });
        }
        let pending = match (&self.dsu.pending, self.in_transition()) {
            (Some(p), _) => {
                Some(format!("version {} waits for every task to be quiescent: {}", p.plan.to, p.plan.summary()))
            }
            (None, true) => Some(self.transition_summary()),
            (None, false) => None,
        };
        let history = self.dsu.history.iter().map(|p| (p.to, p.summary())).collect();
        Status { version: self.version, uptime_ms: self.started.elapsed().as_millis() as u64, tasks, pending, history }
    }

    /// What a blocked task waits on, in words.
    pub(crate) fn describe_wait(&self, wait: Wait) -> String {
        match wait {
            Wait::Recv(c) => format!("waits to receive from {}", self.repr(crate::Value::Obj(c))),
            Wait::Send(c) => format!("waits to send on {}", self.repr(crate::Value::Obj(c))),
            Wait::Join(j) => format!("waits for task {j} to end"),
            Wait::UpdatePoint(_) => "waits at an update point".to_string(),
            Wait::Sleep => "sleeps".to_string(),
            Wait::Select => "waits in select()".to_string(),
            Wait::ReadLine => "waits for a line of input".to_string(),
            Wait::Socket(s) => self.describe_socket_wait(s),
        }
    }

    /// `waits to read from <connection 127.0.0.1:53412>`, `waits for a client on <listener ...>`.
    fn describe_socket_wait(&self, id: u32) -> String {
        let Some(e) = self.tasks.waits.sockets.table.get(&id) else { return format!("waits on socket {id}") };
        let shown = e.handle.map_or_else(|| e.addr.to_string(), |h| self.repr(crate::Value::Obj(h)));
        match (&e.io, e.writer.is_some()) {
            (crate::tasks::socket::Io::Listener(_), _) => format!("waits for a client on {shown}"),
            (_, true) => format!("waits to write to {shown}"),
            (_, false) if e.handle.is_none() => format!("waits to connect to {shown}"),
            (_, false) => format!("waits to read from {shown}"),
        }
    }
}
