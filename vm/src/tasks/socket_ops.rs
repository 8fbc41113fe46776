//! The socket built-ins: `listen(addr)`, `connect(addr)`, and the methods of listeners
//! (`accept`, `close`, `port`) and connections (`read_line`, `write`, `close`, `peer`,
//! `port`). An operation the system cannot finish yet waits for the socket's next event: in a
//! task it blocks only that task (suspend and retry, `Wait::Socket`); outside a running
//! program (the REPL's prompt, an embedder's call) the whole VM waits in the event loop.

use std::net::SocketAddr;

use mio::{Interest, Token};

use super::socket::{self, Entry, Io, LINE_LIMIT, LineError, SocketInfo};
use super::{SUSPEND, State, TaskOp, Wait};
use crate::heap::Obj;
use crate::{ObjRef, Value, Vm};

type Res<T> = Result<T, String>;

pub(super) const LISTENER_METHODS: &[(&str, TaskOp)] =
    &[("accept", TaskOp::Accept), ("close", TaskOp::SocketClose), ("port", TaskOp::Port)];

pub(super) const CONNECTION_METHODS: &[(&str, TaskOp)] = &[
    ("read_line", TaskOp::SocketReadLine),
    ("write", TaskOp::Write),
    ("close", TaskOp::SocketClose),
    ("peer", TaskOp::Peer),
    ("port", TaskOp::Port),
];

impl Vm {
    /// Runs socket built-in `op` on `args` (a method's receiver first).
    pub(super) fn socket_op(&mut self, op: TaskOp, args: &[Value]) -> Res<Value> {
        let (name, n) = match op {
            TaskOp::Listen => ("listen()", 1),
            TaskOp::Connect => ("connect()", 1),
            TaskOp::Accept => ("accept()", 1),
            TaskOp::SocketReadLine => ("read_line()", 1),
            TaskOp::Write => ("write()", 2),
            TaskOp::SocketClose => ("close()", 1),
            TaskOp::Peer => ("peer()", 1),
            _ => ("port()", 1),
        };
        if args.len() != n {
            // A method's receiver is not one of its arguments.
            let (want, got) =
                if op == TaskOp::Listen || op == TaskOp::Connect { (n, args.len()) } else { (n - 1, args.len() - 1) };
            return Err(format!("{name} expects {} but got {got}", crate::error::arguments(want)));
        }
        match op {
            TaskOp::Listen => self.listen(args[0]),
            TaskOp::Connect => self.connect(args[0]),
            TaskOp::Accept => self.accept(self.socket_info(args[0])),
            TaskOp::SocketReadLine => self.socket_read_line(self.socket_info(args[0])),
            TaskOp::Write => self.socket_write(self.socket_info(args[0]), args[1]),
            TaskOp::SocketClose => {
                let id = self.socket_info(args[0]).id;
                self.close_socket(id);
                Ok(Value::Nil)
            }
            TaskOp::Peer => {
                let addr = self.socket_info(args[0]).addr.to_string();
                self.heap.new_string(addr)
            }
            _ => Ok(Value::Int(self.socket_info(args[0]).port as i64)),
        }
    }

    /// The first socket starts the tasks' machinery, as the first `spawn` does: from now on
    /// calls and back-edges count reductions (compiled code too). Compiled code running now
    /// leaves: the task is suspended, resumed first, and the interpreter runs the call again.
    fn start_sockets(&mut self) -> Res<()> {
        if self.tasks.active {
            return Ok(());
        }
        self.tasks.active = true;
        self.signals.set_tasks(true);
        if self.tier_depth > 0 && self.can_wait() {
            let id = self.tasks.current;
            if let Some(t) = self.tasks.current_task() {
                t.state = State::Ready;
            }
            self.tasks.ready.push_front(id);
            // The operation runs again when the task resumes and counts its reduction then:
            // give back the one `task_op` counted now.
            self.tasks.resume_budget = Some((id, self.tasks.budget.saturating_add(1)));
            return Err(SUSPEND.into());
        }
        Ok(())
    }

    fn listen(&mut self, v: Value) -> Res<Value> {
        self.start_sockets()?;
        let addr = self.address_arg("listen", v)?;
        let mut l = mio::net::TcpListener::bind(addr).map_err(|e| socket::io_error("listen", &addr.to_string(), &e))?;
        let local = l.local_addr().map_err(|e| socket::io_error("listen", &addr.to_string(), &e))?;
        let id = self.tasks.waits.sockets.next_id();
        self.tasks
            .waits
            .registry()?
            .register(&mut l, Token(id as usize), Interest::READABLE)
            .map_err(|e| socket::io_error("listen", &addr.to_string(), &e))?;
        let h = self.new_socket(SocketInfo { id, listener: true, addr: local, port: local.port() });
        let mut entry = Entry::new(Io::Listener(l), local);
        entry.handle = Some(h);
        self.tasks.waits.sockets.table.insert(id, entry);
        Ok(Value::Obj(h))
    }

    /// `l.accept()`: the next client's connection; nil once the listener is closed.
    fn accept(&mut self, info: SocketInfo) -> Res<Value> {
        let id = info.id;
        loop {
            let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) else { return Ok(Value::Nil) };
            let Io::Listener(l) = &e.io else { return Ok(Value::Nil) };
            match l.accept() {
                Ok((s, peer)) => return self.add_connection(s, peer, "accept"),
                Err(e) => match e.kind() {
                    std::io::ErrorKind::WouldBlock => self.wait_socket(id, false, "accept()")?,
                    // A client that gave up before it was accepted: take the next one.
                    std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::ConnectionReset => {}
                    _ => return Err(socket::io_error("accept on", &info.addr.to_string(), &e)),
                },
            }
        }
    }

    /// `connect(addr)`: starts the connection, then waits until it is made or failed. A task
    /// that waits keeps its socket in `Sockets::connecting` (the call runs again when it wakes).
    fn connect(&mut self, v: Value) -> Res<Value> {
        self.start_sockets()?;
        let me = self.tasks.current;
        let id = match self.tasks.waits.sockets.connecting.get(&me) {
            Some(&id) => id,
            None => {
                let addr = self.address_arg("connect", v)?;
                let mut s = mio::net::TcpStream::connect(addr)
                    .map_err(|e| socket::io_error("connect", &addr.to_string(), &e))?;
                let id = self.tasks.waits.sockets.next_id();
                self.tasks
                    .waits
                    .registry()?
                    .register(&mut s, Token(id as usize), Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| socket::io_error("connect", &addr.to_string(), &e))?;
                self.tasks.waits.sockets.table.insert(id, Entry::new(Io::Stream(s), addr));
                self.tasks.waits.sockets.connecting.insert(me, id);
                id
            }
        };
        loop {
            let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) else {
                self.tasks.waits.sockets.connecting.remove(&me);
                return Err("connect(): the connection was closed while it was being made".into());
            };
            let addr = e.addr;
            let Io::Stream(s) = &e.io else { return Err("internal error: connect on a listener".into()) };
            // The system says how a connection in progress ended through its pending error;
            // a peer address means it is made.
            let state = match s.take_error() {
                Ok(Some(err)) | Err(err) => Err(err),
                Ok(None) => match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(err) if err.kind() == std::io::ErrorKind::NotConnected => Ok(false),
                    Err(err) => Err(err),
                },
            };
            match state {
                Ok(false) => self.wait_socket(id, true, "connect()")?,
                Ok(true) => {
                    self.tasks.waits.sockets.connecting.remove(&me);
                    let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) else { continue };
                    let Io::Stream(s) = &e.io else { continue };
                    let _ = s.set_nodelay(true);
                    let port = s.local_addr().map_or(0, |a| a.port());
                    let h = self.new_socket(SocketInfo { id, listener: false, addr, port });
                    if let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) {
                        e.handle = Some(h);
                    }
                    return Ok(Value::Obj(h));
                }
                Err(err) => {
                    self.tasks.waits.sockets.connecting.remove(&me);
                    self.close_socket(id);
                    return Err(socket::io_error("connect", &addr.to_string(), &err));
                }
            }
        }
    }

    /// A connection `accept` took: registered, and its value.
    fn add_connection(&mut self, mut s: mio::net::TcpStream, peer: SocketAddr, op: &str) -> Res<Value> {
        let _ = s.set_nodelay(true);
        let port = s.local_addr().map_or(0, |a| a.port());
        let id = self.tasks.waits.sockets.next_id();
        self.tasks
            .waits
            .registry()?
            .register(&mut s, Token(id as usize), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| socket::io_error(op, &peer.to_string(), &e))?;
        let h = self.new_socket(SocketInfo { id, listener: false, addr: peer, port });
        let mut entry = Entry::new(Io::Stream(s), peer);
        entry.handle = Some(h);
        self.tasks.waits.sockets.table.insert(id, entry);
        Ok(Value::Obj(h))
    }

    /// `c.read_line()`: the next line (not UTF-8: U+FFFD), nil at the end of the stream or once
    /// the connection is closed. A line over 1 MiB closes the connection and is an error.
    fn socket_read_line(&mut self, info: SocketInfo) -> Res<Value> {
        let id = info.id;
        loop {
            let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) else { return Ok(Value::Nil) };
            match e.read_line() {
                Ok(Some(None)) => return Ok(Value::Nil),
                Ok(Some(Some(bytes))) => {
                    let line = String::from_utf8_lossy(&bytes).into_owned();
                    self.heap.check_string(Some(line.len()), "read_line()")?;
                    return self.heap.new_string(line);
                }
                Ok(None) => self.wait_socket(id, false, "read_line()")?,
                Err(LineError::Long) => {
                    self.close_socket(id);
                    return Err(format!(
                        "read_line {}: a line longer than the limit of 1 MiB ({LINE_LIMIT} bytes) arrived; the connection is closed (the peer must send shorter lines)",
                        info.addr
                    ));
                }
                Err(LineError::Io(err)) => return Err(socket::io_error("read_line", &info.addr.to_string(), &err)),
            }
        }
    }

    /// `c.write(s)`: all of `s`, as UTF-8. Writes of several tasks on one connection do not
    /// mix: a write waits until the one before it is done.
    fn socket_write(&mut self, info: SocketInfo, v: Value) -> Res<Value> {
        let id = info.id;
        let me = self.tasks.current;
        let text = match v {
            Value::Obj(o) => match self.heap.get(o) {
                Obj::Str(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(text) = text else {
            return Err(format!("write() expects a string, not {} (use str(x))", self.type_of(v)));
        };
        loop {
            let Some(e) = self.tasks.waits.sockets.table.get_mut(&id) else {
                return Err(format!(
                    "write {}: the connection is closed (this program closed it: write before close())",
                    info.addr
                ));
            };
            match e.writer {
                Some(w) if w == me => {}
                Some(_) => {
                    self.wait_socket(id, true, "write()")?;
                    continue;
                }
                None => {
                    e.output = text.as_bytes().to_vec();
                    e.writer = Some(me);
                }
            }
            let done = match e.flush() {
                Ok(true) => Ok(Value::Nil),
                Ok(false) => {
                    self.wait_socket(id, true, "write()")?;
                    continue;
                }
                Err(err) => Err(socket::io_error("write", &info.addr.to_string(), &err)),
            };
            e.writer = None;
            e.output.clear();
            // Writers that waited for this one go on (no event may come for them).
            for t in self.tasks.waits.sockets.take_waiters(id, false, true) {
                self.tasks.wake(t);
            }
            return done;
        }
    }

    /// Closes socket `id` (again: nothing); the tasks waiting on it wake and find it closed.
    pub(crate) fn close_socket(&mut self, id: u32) {
        for t in self.tasks.waits.close_socket(id) {
            self.tasks.wake(t);
        }
    }

    /// Socket `id` cannot go on before its next event (`write`: one that lets it write). In a task: the task waits for it (the
    /// suspension error). Outside a running program: the VM sleeps until an event, and the
    /// caller tries again (`Ok`).
    fn wait_socket(&mut self, id: u32, write: bool, what: &str) -> Res<()> {
        if self.tasks.current == 0 {
            let _ = self.out.flush();
            self.tasks.waits.sleep(None, &self.signals)?;
            self.tasks.waits.sockets.events.clear();
            if self.signals.take_interrupt() {
                return Err("interrupted".into());
            }
            return Ok(());
        }
        if self.can_wait() {
            let me = self.tasks.current;
            self.tasks.waits.sockets.wait(id, me, write);
        }
        self.block(Wait::Socket(id), what).map(|_| ())
    }

    fn new_socket(&mut self, info: SocketInfo) -> ObjRef {
        self.heap.alloc(Obj::Socket(Box::new(info)))
    }

    /// The receiver of a socket method (method resolution made sure it is a socket).
    fn socket_info(&self, v: Value) -> SocketInfo {
        match v {
            Value::Obj(o) => match self.heap.get(o) {
                Obj::Socket(s) => (**s).clone(),
                _ => SocketInfo { id: 0, listener: false, addr: ([0, 0, 0, 0], 0).into(), port: 0 },
            },
            _ => SocketInfo { id: 0, listener: false, addr: ([0, 0, 0, 0], 0).into(), port: 0 },
        }
    }

    /// The address argument of `listen`/`connect`.
    fn address_arg(&self, what: &str, v: Value) -> Res<SocketAddr> {
        if let Value::Obj(o) = v
            && let Obj::Str(s) = self.heap.get(o)
        {
            return socket::resolve(what, s);
        }
        Err(format!("{what}() expects an address string such as \"127.0.0.1:7000\", not {}", self.type_of(v)))
    }
}
