//! The task and channel built-ins. Each returns its value, an error message, or `SUSPEND`
//! after recording what the running task waits on (see the module doc of `tasks`).

use std::time::{Duration, Instant};

use super::{BUDGET, Channel, SUSPEND, State, Task, TaskOp, Wait};
use crate::heap::Obj;
use crate::native::{BuiltinKind, MethodImpl, NativeDef, Reads};
use crate::{ObjRef, Value, Vm};

type Res<T> = Result<T, String>;

/// The built-in functions (`spawn(f, ...)`, `channel()`, ...), registered by every VM.
pub const FUNCTIONS: &[(&str, TaskOp)] = &[
    ("spawn", TaskOp::Spawn),
    ("channel", TaskOp::Channel),
    ("current_task", TaskOp::CurrentTask),
    ("yield_now", TaskOp::YieldNow),
    ("select", TaskOp::Select),
    ("listen", TaskOp::Listen),
    ("connect", TaskOp::Connect),
];

const TASK_METHODS: &[(&str, TaskOp)] = &[("id", TaskOp::Id), ("join", TaskOp::Join), ("status", TaskOp::Status)];

const CHANNEL_METHODS: &[(&str, TaskOp)] = &[
    ("send", TaskOp::Send),
    ("recv", TaskOp::Recv),
    ("try_recv", TaskOp::TryRecv),
    ("close", TaskOp::Close),
    ("len", TaskOp::Len),
    ("is_closed", TaskOp::IsClosed),
];

/// Never called: a task built-in runs through `Vm::task_op` (its `NativeDef::task`).
fn not_called(_: &mut crate::NativeCtx, _: &[Value]) -> Result<Value, String> {
    Err("internal error: a task built-in called as a plain one".into())
}

impl Vm {
    /// Registers the task and channel built-ins (`Vm::new`).
    pub(crate) fn register_tasks(&mut self) {
        for &(name, op) in FUNCTIONS {
            self.register_native(NativeDef { name, f: not_called, reads: Reads::World, task: Some(op) });
        }
        for &(name, op) in TASK_METHODS {
            self.register_method(BuiltinKind::Task, name, MethodImpl::Task(op), Reads::World);
        }
        for &(name, op) in CHANNEL_METHODS {
            self.register_method(BuiltinKind::Channel, name, MethodImpl::Task(op), Reads::World);
        }
        for &(name, op) in super::socket_ops::LISTENER_METHODS {
            self.register_method(BuiltinKind::Listener, name, MethodImpl::Task(op), Reads::World);
        }
        for &(name, op) in super::socket_ops::CONNECTION_METHODS {
            self.register_method(BuiltinKind::Connection, name, MethodImpl::Task(op), Reads::World);
        }
    }

    /// Runs task built-in `op` on the `argc` values at `start` (a method's receiver first).
    pub(crate) fn task_op(&mut self, op: TaskOp, start: usize, argc: usize) -> Res<Value> {
        // A call of a built-in counts as a reduction; the switch comes at the next call or
        // back-edge (running the built-in again would repeat its effect).
        self.tasks.budget = self.tasks.budget.saturating_sub(1);
        // An update's code (an initialiser, a transformer, `migrate`) must not reach other
        // tasks: a rollback could not take back what they saw.
        if self.dsu.open.is_some()
            && !matches!(
                op,
                TaskOp::Id
                    | TaskOp::Status
                    | TaskOp::Len
                    | TaskOp::IsClosed
                    | TaskOp::Channel
                    | TaskOp::CurrentTask
                    | TaskOp::Peer
                    | TaskOp::Port
            )
        {
            return Err("tasks, channels and sockets cannot be used while an update is being applied (in a transformer, `migrate` or a new global's initialiser)".into());
        }
        let args: Vec<Value> = self.stack[start..start + argc].to_vec();
        let arity = |n: usize, what: &str| -> Res<()> {
            match argc == n {
                true => Ok(()),
                false => Err(format!("{what} expects {} but got {argc}", crate::error::arguments(n))),
            }
        };
        match op {
            TaskOp::Spawn => self.spawn(&args),
            TaskOp::Channel => self.new_channel(&args),
            TaskOp::CurrentTask => {
                arity(0, "current_task()")?;
                let id = self.tasks.current.max(1);
                Ok(Value::Obj(self.task_handle(id)))
            }
            TaskOp::YieldNow => {
                arity(0, "yield_now()")?;
                self.yield_now()
            }
            TaskOp::Id => Ok(Value::Int(task_id(self, args[0]) as i64)),
            TaskOp::Status => {
                arity(1, "status()")?;
                let id = task_id(self, args[0]);
                let s = self.tasks.tasks.get(&id).map_or("done", Task::status);
                Ok(Value::Obj(self.heap.alloc(Obj::Str(s.into()))))
            }
            TaskOp::Join => {
                arity(1, "join()")?;
                self.join(task_id(self, args[0]))
            }
            TaskOp::Send => {
                arity(2, "send()")?;
                self.send(channel_ref(args[0]), args[1])
            }
            TaskOp::Recv => {
                arity(1, "recv()")?;
                self.recv(channel_ref(args[0]), true)
            }
            TaskOp::TryRecv => {
                arity(1, "try_recv()")?;
                self.recv(channel_ref(args[0]), false)
            }
            TaskOp::Close => {
                arity(1, "close()")?;
                self.close(channel_ref(args[0]));
                Ok(Value::Nil)
            }
            TaskOp::Len => {
                arity(1, "len()")?;
                Ok(Value::Int(self.channel(channel_ref(args[0])).queue.len() as i64))
            }
            TaskOp::IsClosed => {
                arity(1, "is_closed()")?;
                Ok(Value::Bool(self.channel(channel_ref(args[0])).closed))
            }
            TaskOp::Select => self.select(&args),
            TaskOp::Sleep => {
                arity(1, "sleep()")?;
                self.sleep_task(args[0])
            }
            TaskOp::ReadLine => {
                arity(0, "read_line()")?;
                self.read_line_task()
            }
            TaskOp::Listen
            | TaskOp::Connect
            | TaskOp::Accept
            | TaskOp::SocketReadLine
            | TaskOp::Write
            | TaskOp::SocketClose
            | TaskOp::Peer
            | TaskOp::Port => self.socket_op(op, &args),
        }
    }

    /// The task value of task `id` (made once).
    pub(crate) fn task_handle(&mut self, id: u32) -> ObjRef {
        if let Some(h) = self.tasks.tasks.get(&id).and_then(|t| t.handle) {
            return h;
        }
        let h = self.heap.alloc(Obj::Task(id));
        if let Some(t) = self.tasks.tasks.get_mut(&id) {
            t.handle = Some(h);
        }
        h
    }

    fn spawn(&mut self, args: &[Value]) -> Res<Value> {
        if let Some(v) = self.take_token() {
            return Ok(v); // made before compiled code left (below)
        }
        let Some((&f, rest)) = args.split_first() else {
            return Err("spawn() expects a function to run (and its arguments)".into());
        };
        let name = self.check_spawnable(f, rest.len())?;
        self.tasks.next_task = self.tasks.next_task.max(1) + 1;
        let id = self.tasks.next_task;
        // It starts in the version of the task that spawns it.
        let mut task = Task::new(id, name, self.code_version());
        task.start = Some((f, rest.to_vec()));
        self.tasks.insert(task);
        self.tasks.ready.push_back(id);
        self.transition_spawned(id);
        let handle = self.task_handle(id);
        if !self.tasks.active {
            self.tasks.active = true;
            self.signals.set_tasks(true);
            // Compiled code is not entered from now on; if some is running, it leaves: the
            // task is suspended and resumed at once, in the interpreter, taking the result.
            if self.tier_depth > 0 && self.can_wait() {
                return self.suspend_to_front(Value::Obj(handle));
            }
        }
        Ok(Value::Obj(handle))
    }

    /// The name of what `spawn(f, ...)` runs with `argc` arguments, or why it cannot.
    fn check_spawnable(&self, f: Value, argc: usize) -> Res<String> {
        let func = match f {
            Value::Func(slot) => self.callee(slot),
            Value::Obj(o) => match self.heap.get(o) {
                Obj::Closure { func, .. } => Some(func.clone()),
                _ => None,
            },
            Value::Native(n) => return Ok(self.natives[n as usize].name.to_string()),
            _ => None,
        };
        let Some(func) = func else {
            return Err(format!("spawn() expects a function to run, not {}", self.repr(f)));
        };
        if func.proto.arity as usize != argc {
            return Err(format!(
                "spawn(): <fn {}> expects {} but got {argc}",
                crate::interp::display_name(&func),
                crate::error::arguments(func.proto.arity as usize)
            ));
        }
        Ok(crate::interp::display_name(&func).to_string())
    }

    fn new_channel(&mut self, args: &[Value]) -> Res<Value> {
        let cap = match args {
            [] => None,
            [Value::Int(n)] if *n >= 1 => Some(*n as usize),
            [v] => return Err(format!("channel(n): n must be an int of at least 1, not {}", self.repr(*v))),
            _ => return Err(format!("channel() expects 0 or 1 arguments but got {}", args.len())),
        };
        self.tasks.next_channel += 1;
        let c = Channel::new(self.tasks.next_channel, cap);
        Ok(Value::Obj(self.heap.alloc(Obj::Channel(Box::new(c)))))
    }

    fn yield_now(&mut self) -> Res<Value> {
        if self.take_token().is_some() || !self.can_wait() {
            return Ok(Value::Nil);
        }
        let id = self.tasks.current;
        if let Some(t) = self.tasks.current_task() {
            t.token = Some(Value::Nil);
            t.state = State::Ready;
        }
        self.tasks.ready.push_back(id);
        Err(SUSPEND.into())
    }

    fn join(&mut self, id: u32) -> Res<Value> {
        let me = self.tasks.current.max(1);
        match self.tasks.tasks.get(&id).map(|t| &t.state) {
            Some(State::Done(v)) => return Ok(*v),
            Some(State::Failed(msg)) => return Err(format!("task {id} failed: {msg}")),
            None => return Ok(Value::Nil),
            Some(_) if id == me => return Err(format!("task {id} cannot join itself (it would wait forever)")),
            Some(_) => {}
        }
        if let Some(t) = self.tasks.tasks.get_mut(&id) {
            t.joiners.push(me);
        }
        self.block(Wait::Join(id), "join()")
    }

    fn send(&mut self, ch: ObjRef, v: Value) -> Res<Value> {
        if self.take_token().is_some() {
            return Ok(Value::Nil); // a receiver took it while this task waited
        }
        let me = self.tasks.current.max(1);
        let c = self.channel_mut(ch);
        if c.closed {
            return Err("send on a closed channel".into());
        }
        if let Some(r) = c.receivers.pop_front() {
            // Handed to the receiver that blocked first.
            self.deliver(r, ch, v);
            return Ok(Value::Nil);
        }
        if !c.is_full() {
            c.queue.push_back(v);
            return Ok(Value::Nil);
        }
        if self.can_wait() {
            self.channel_mut(ch).senders.push_back((me, v));
        }
        self.block(Wait::Send(ch), "send()")
    }

    /// `recv()` (`wait`), or `try_recv()`.
    fn recv(&mut self, ch: ObjRef, wait: bool) -> Res<Value> {
        if wait && let Some(v) = self.take_token() {
            return Ok(v);
        }
        let me = self.tasks.current.max(1);
        let c = self.channel_mut(ch);
        if let Some(v) = c.queue.pop_front() {
            // Room now: the first blocked sender's value moves in, and its send is done.
            if let Some((s, sv)) = c.senders.pop_front() {
                c.queue.push_back(sv);
                if let Some(t) = self.tasks.tasks.get_mut(&s) {
                    t.token = Some(Value::Nil);
                }
                self.tasks.wake(s);
            }
            return Ok(v);
        }
        if c.closed || !wait {
            return Ok(Value::Nil);
        }
        if self.can_wait() {
            self.channel_mut(ch).receivers.push_back(me);
        }
        self.block(Wait::Recv(ch), "recv()")
    }

    /// `close()`: every waiter wakes; receivers get nil, senders the closed-channel error.
    fn close(&mut self, ch: ObjRef) {
        let c = self.channel_mut(ch);
        c.closed = true;
        let receivers: Vec<u32> = c.receivers.drain(..).collect();
        let senders: Vec<u32> = c.senders.drain(..).map(|(s, _)| s).collect();
        for r in receivers {
            self.deliver(r, ch, Value::Nil);
        }
        for s in senders {
            self.tasks.wake(s);
        }
    }

    /// Gives `v`, received on `ch`, to the blocked receiver `r` and wakes it: `recv` takes
    /// the value, `select` the pair `[ch, v]` (and stops waiting on its other channels).
    fn deliver(&mut self, r: u32, ch: ObjRef, v: Value) {
        let selecting = self.tasks.tasks.get(&r).is_some_and(|t| matches!(t.state, State::Blocked(Wait::Select)));
        let token = match selecting {
            true => {
                self.stop_selecting(r);
                Value::Obj(self.heap.alloc(Obj::List(vec![Value::Obj(ch), v])))
            }
            false => v,
        };
        if let Some(t) = self.tasks.tasks.get_mut(&r) {
            t.token = Some(token);
        }
        self.tasks.wake(r);
    }

    /// Task `id` no longer waits in `select`: off every channel's receivers, its timer void.
    pub(crate) fn stop_selecting(&mut self, id: u32) {
        let channels = match self.tasks.tasks.get_mut(&id) {
            Some(t) => {
                t.timer = None;
                std::mem::take(&mut t.select)
            }
            None => return,
        };
        for c in channels {
            if let Obj::Channel(c) = self.heap.get_mut(c) {
                c.receivers.retain(|&r| r != id);
            }
        }
    }

    /// `select(channels)`, `select(channels, seconds)`: `[channel, value]` from the first of
    /// `channels` with a value (or closed and drained: the value is nil); with a timeout, nil
    /// when it passes first.
    fn select(&mut self, args: &[Value]) -> Res<Value> {
        if let Some(v) = self.take_token() {
            return Ok(v);
        }
        let (list, timeout) = match args {
            [l] => (*l, None),
            [l, s] => (*l, Some(self.seconds("select()", *s)?)),
            _ => return Err(format!("select() expects 1 or 2 arguments but got {}", args.len())),
        };
        let channels: Vec<ObjRef> = match list {
            Value::Obj(o) => match self.heap.get(o) {
                Obj::List(items) => items.iter().map(|v| self.channel_arg(*v)).collect::<Res<_>>()?,
                _ => return Err(format!("select() expects a list of channels, not {}", self.repr(list))),
            },
            _ => return Err(format!("select() expects a list of channels, not {}", self.repr(list))),
        };
        for &ch in &channels {
            let c = self.channel(ch);
            if !c.queue.is_empty() || c.closed {
                let v = self.recv(ch, false)?;
                return Ok(Value::Obj(self.heap.alloc(Obj::List(vec![Value::Obj(ch), v]))));
            }
        }
        if timeout == Some(Duration::ZERO) || channels.is_empty() && timeout.is_none() && !self.can_wait() {
            return Ok(Value::Nil);
        }
        if !self.can_wait() {
            return self.block(Wait::Select, "select()");
        }
        let me = self.tasks.current;
        for &ch in &channels {
            self.channel_mut(ch).receivers.push_back(me);
        }
        let timer = timeout.map(|d| self.tasks.waits.add_timer(Instant::now() + d, me));
        if let Some(t) = self.tasks.current_task() {
            t.select = channels;
            t.timer = timer;
        }
        self.block(Wait::Select, "select()")
    }

    /// `sleep(seconds)` in a task: only this task waits.
    fn sleep_task(&mut self, v: Value) -> Res<Value> {
        if self.take_token().is_some() {
            return Ok(Value::Nil);
        }
        let d = self.seconds("sleep()", v)?;
        let me = self.tasks.current;
        let seq = self.tasks.waits.add_timer(Instant::now() + d, me);
        if let Some(t) = self.tasks.current_task() {
            t.timer = Some(seq);
        }
        self.block(Wait::Sleep, "sleep()")
    }

    /// `read_line()` in a task: only this task waits for the line.
    fn read_line_task(&mut self) -> Res<Value> {
        if let Some(v) = self.take_token() {
            return Ok(v);
        }
        let _ = self.out.flush();
        self.tasks.waits.take_lines();
        if self.tasks.waits.readers.is_empty()
            && let Some(line) = self.tasks.waits.lines.pop_front()
        {
            return self.line_value(line);
        }
        if self.tasks.waits.eof {
            return Ok(Value::Nil);
        }
        self.tasks.waits.start_stdin(self.heap.limits.string_bytes)?;
        let me = self.tasks.current;
        self.tasks.waits.readers.push_back(me);
        self.block(Wait::ReadLine, "read_line()")
    }

    /// A line from the reader thread as `read_line` returns it.
    pub(crate) fn line_value(&mut self, line: super::wait::Line) -> Res<Value> {
        match line? {
            None => {
                self.tasks.waits.eof = true;
                Ok(Value::Nil)
            }
            Some(bytes) => {
                let line = String::from_utf8(bytes).map_err(|_| {
                    "read_line(): cannot read standard input: stream did not contain valid UTF-8".to_string()
                })?;
                self.heap.check_string(Some(line.len()), "read_line()")?;
                self.heap.new_string(line)
            }
        }
    }

    /// A duration in seconds, for `sleep` and `select`'s timeout (at most 1e6 s).
    fn seconds(&self, what: &str, v: Value) -> Res<Duration> {
        let s = match v {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            _ => return Err(format!("{}() expects a number, not {}", what.trim_end_matches("()"), self.type_of(v))),
        };
        Ok(if s.is_finite() && s > 0.0 { Duration::from_secs_f64(s.min(1e6)) } else { Duration::ZERO })
    }

    /// A channel in `select`'s list, or the error naming what is there instead.
    fn channel_arg(&self, v: Value) -> Res<ObjRef> {
        match v {
            Value::Obj(o) if matches!(self.heap.get(o), Obj::Channel(_)) => Ok(o),
            _ => Err(format!("select() expects a list of channels, and {} is not one", self.repr(v))),
        }
    }

    /// The running task waits for `wait`: suspended, or the error of an operation that
    /// cannot wait where it is (`what`).
    pub(super) fn block(&mut self, wait: Wait, what: &str) -> Res<Value> {
        if !self.can_wait() {
            return Err(format!(
                "{what} would wait here, where a task cannot wait (inside a built-in's callback, a transformer, `migrate`, or outside a running program)"
            ));
        }
        if let Some(t) = self.tasks.current_task() {
            t.state = State::Blocked(wait);
        }
        Err(SUSPEND.into())
    }

    /// Suspends the running task and resumes it first, with `v` as the operation's result.
    fn suspend_to_front(&mut self, v: Value) -> Res<Value> {
        let id = self.tasks.current;
        if let Some(t) = self.tasks.current_task() {
            t.token = Some(v);
            t.state = State::Ready;
        }
        self.tasks.ready.push_front(id);
        // The operation runs again when the task resumes (taking its result) and counts its
        // reduction then: give back the one `task_op` counted now.
        self.tasks.resume_budget = Some((id, self.tasks.budget.saturating_add(1)));
        Err(SUSPEND.into())
    }

    fn take_token(&mut self) -> Option<Value> {
        self.tasks.current_task().and_then(|t| t.token.take())
    }

    /// Whether the running task can be suspended here: the scheduler runs it, and no native
    /// code (a built-in's callback, a transformer, ...) is between it and the scheduler.
    pub(crate) fn can_wait(&self) -> bool {
        self.tasks.current != 0 && self.callback_depth == 0
    }

    /// A reduction at a call or a loop back-edge: true when the running task has used its
    /// budget and another is ready (the caller suspends it).
    pub(crate) fn reduce(&mut self) -> bool {
        if self.tasks.budget > 1 {
            self.tasks.budget -= 1;
            return false;
        }
        self.tasks.budget = BUDGET;
        // A pushed update is noticed here too, so that one task computing alone (no switches,
        // no update points) does not leave it unseen; it applies at the next point or switch.
        if self.signals.load() & crate::signals::Signals::UPDATE != 0 && self.can_wait() {
            self.take_immediate_request();
        }
        if self.tasks.ready.is_empty() || !self.can_wait() {
            return false;
        }
        let id = self.tasks.current;
        if let Some(t) = self.tasks.current_task() {
            t.state = State::Ready;
        }
        self.tasks.ready.push_back(id);
        true
    }

    fn channel(&self, r: ObjRef) -> &Channel {
        match self.heap.get(r) {
            Obj::Channel(c) => c,
            _ => unreachable!("a channel method on a channel"),
        }
    }

    fn channel_mut(&mut self, r: ObjRef) -> &mut Channel {
        match self.heap.get_mut(r) {
            Obj::Channel(c) => c,
            _ => unreachable!("a channel method on a channel"),
        }
    }
}

/// The receiver of a task method (method resolution made sure it is a task).
fn task_id(vm: &Vm, v: Value) -> u32 {
    match v {
        Value::Obj(o) => match vm.heap.get(o) {
            Obj::Task(id) => *id,
            _ => 0,
        },
        _ => 0,
    }
}

/// The receiver of a channel method (method resolution made sure it is a channel).
fn channel_ref(v: Value) -> ObjRef {
    match v {
        Value::Obj(o) => o,
        _ => ObjRef(u32::MAX),
    }
}
