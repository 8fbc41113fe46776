//! The sockets of a VM (TASKS.md, "Sockets"): TCP listeners and connections, non-blocking,
//! registered with the tasks' event loop (`wait.rs`, one `mio::Poll`; a socket's token is its
//! id). The heap holds only what a socket shows (`SocketInfo`, in `Obj::Socket`); the socket
//! itself, its buffers and the tasks waiting on it are here, by id, so the heap stays plain
//! data. The operations are in `socket_ops.rs`.
//!
//! Readiness is edge-triggered: an operation tries its I/O first and waits only after the
//! system said "would block", so the next event for the socket wakes it; a task woken by an
//! event runs its operation again (suspend and retry, like every blocking task operation).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::heap::{Heap, Obj};
use crate::{ObjRef, Value};

/// The longest line `read_line` takes from a connection, without its line end: 1 MiB.
pub const LINE_LIMIT: usize = 1 << 20;
/// How much one read asks for.
const CHUNK: usize = 64 * 1024;

/// What a listener or connection value shows: its id in `Sockets`, its kind, its address (a
/// listener's own, a connection's peer) and its local port.
#[derive(Clone, Debug)]
pub struct SocketInfo {
    pub id: u32,
    pub listener: bool,
    pub addr: SocketAddr,
    pub port: u16,
}

pub(crate) enum Io {
    Listener(mio::net::TcpListener),
    Stream(mio::net::TcpStream),
}

/// One open socket.
pub(crate) struct Entry {
    pub io: Io,
    /// Its value (`None` while a `connect` is in progress: the value is made when it succeeds).
    pub handle: Option<ObjRef>,
    /// The address messages name (a listener's own, a connection's peer).
    pub addr: SocketAddr,
    /// Tasks blocked on it, first blocked first, and whether each waits to write (else to
    /// read or accept): an event wakes every task waiting for its direction.
    pub waiters: Vec<(u32, bool)>,
    /// Bytes read; those from `start` are not yet returned as lines, and those from `start`
    /// to `scanned` hold no `\n`.
    pub input: Vec<u8>,
    pub start: usize,
    pub scanned: usize,
    /// The peer ended the stream (what is left in `input` is the last, unterminated line).
    pub eof: bool,
    /// The rest of a `write` the system could not take yet, and the task writing it.
    pub output: Vec<u8>,
    pub writer: Option<u32>,
}

impl Entry {
    pub fn new(io: Io, addr: SocketAddr) -> Entry {
        Entry {
            io,
            handle: None,
            addr,
            waiters: Vec::new(),
            input: Vec::new(),
            start: 0,
            scanned: 0,
            eof: false,
            output: Vec::new(),
            writer: None,
        }
    }

    fn stream(&mut self) -> io::Result<&mut mio::net::TcpStream> {
        match &mut self.io {
            Io::Stream(s) => Ok(s),
            Io::Listener(_) => Err(io::Error::other("not a connection")),
        }
    }

    /// The next line, without its `\n` or `\r\n`: `Ok(None)` when the system has no more
    /// bytes for now (wait for the next event); the last line without a line end, then `nil`,
    /// at the end of the stream. A line longer than `LINE_LIMIT` is `Err(Long)`.
    pub fn read_line(&mut self) -> Result<Option<Option<Vec<u8>>>, LineError> {
        loop {
            if let Some(i) = self.input[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let mut line = self.input[self.start..end].to_vec();
                if line.ends_with(b"\r") {
                    line.pop();
                }
                (self.start, self.scanned) = (end + 1, end + 1);
                if self.start == self.input.len() {
                    self.input.clear();
                    (self.start, self.scanned) = (0, 0);
                }
                if line.len() > LINE_LIMIT {
                    return Err(LineError::Long);
                }
                return Ok(Some(Some(line)));
            }
            self.scanned = self.input.len();
            // A `\r` may still end the line: one byte more than the limit is not yet too long.
            if self.input.len() - self.start > LINE_LIMIT + 1 {
                return Err(LineError::Long);
            }
            if self.eof {
                let rest = self.input.split_off(self.start);
                self.input.clear();
                (self.start, self.scanned) = (0, 0);
                return Ok(Some((!rest.is_empty()).then_some(rest)));
            }
            // Only the start of a line is left: it moves to the front before more is read.
            if self.start > 0 {
                self.input.drain(..self.start);
                self.scanned -= self.start;
                self.start = 0;
            }
            let len = self.input.len();
            self.input.resize(len + CHUNK, 0);
            let got = match &mut self.io {
                Io::Stream(s) => s.read(&mut self.input[len..]),
                Io::Listener(_) => Err(io::Error::other("not a connection")),
            };
            self.input.truncate(len + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LineError::Io(e)),
            }
        }
    }

    /// Writes what is left in `output`: `Ok(true)` when all of it is written, `Ok(false)` when
    /// the system takes no more for now (wait for the next event).
    pub fn flush(&mut self) -> io::Result<bool> {
        while !self.output.is_empty() {
            let mut out = std::mem::take(&mut self.output);
            let r = self.stream().and_then(|s| s.write(&out));
            match r {
                Ok(0) => {
                    self.output = out;
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) => {
                    out.drain(..n);
                    self.output = out;
                }
                Err(e) => {
                    self.output = out;
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(false),
                        io::ErrorKind::Interrupted => {}
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(true)
    }
}

/// Why `read_line` found no line.
pub(crate) enum LineError {
    Long,
    Io(io::Error),
}

/// Every open socket, by id.
#[derive(Default)]
pub struct Sockets {
    pub(crate) table: FxHashMap<u32, Entry>,
    next: u32,
    /// The sockets the poll reported events for, not yet handled (`Vm::wake_waiting`): the
    /// id, readable (or closed, or failed), writable (or closed, or failed).
    pub events: Vec<(u32, bool, bool)>,
    /// Connections being made, by the task that waits in `connect` (the socket's id).
    pub(crate) connecting: FxHashMap<u32, u32>,
    /// How many tasks wait on a socket.
    blocked: usize,
}

impl Sockets {
    /// A fresh id (never 0: token 0 is the poll's waker).
    pub(crate) fn next_id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// Whether a task waits on a socket (then the event loop has something to wait for).
    pub fn waiting(&self) -> bool {
        self.blocked > 0
    }

    /// Task `task` waits for the next event of socket `id` (`write`: that it can write).
    pub(crate) fn wait(&mut self, id: u32, task: u32, write: bool) {
        if let Some(e) = self.table.get_mut(&id)
            && !e.waiters.iter().any(|w| w.0 == task)
        {
            e.waiters.push((task, write));
            self.blocked += 1;
        }
    }

    /// The tasks that wait on socket `id` for an event that came (`read`, `write`), taken
    /// (they are woken: they run their operation again).
    pub fn take_waiters(&mut self, id: u32, read: bool, write: bool) -> Vec<u32> {
        let Some(e) = self.table.get_mut(&id) else { return Vec::new() };
        let mut woken = Vec::new();
        e.waiters.retain(|&(t, w)| {
            let wake = if w { write } else { read };
            if wake {
                woken.push(t);
            }
            !wake
        });
        self.blocked = self.blocked.saturating_sub(woken.len());
        woken
    }

    /// The values of sockets tasks wait on (for the collector: their socket stays open).
    pub fn roots(&self) -> impl Iterator<Item = Value> + '_ {
        self.table.values().filter(|e| !e.waiters.is_empty()).filter_map(|e| e.handle).map(Value::Obj)
    }

    /// After a collection: closes the sockets whose value is garbage (a connection being made
    /// has no value yet and stays).
    pub fn prune(&mut self, heap: &Heap, registry: Option<&mio::Registry>) {
        let gone: Vec<u32> = self
            .table
            .iter()
            .filter(|&(&id, e)| e.handle.is_some_and(|h| !matches!(heap.get(h), Obj::Socket(s) if s.id == id)))
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            self.close(id, registry);
        }
    }

    /// Closes socket `id` (nothing when it is closed already); returns the tasks that waited
    /// on it (to be woken: they find it closed).
    pub fn close(&mut self, id: u32, registry: Option<&mio::Registry>) -> Vec<u32> {
        let Some(mut e) = self.table.remove(&id) else { return Vec::new() };
        if let Some(r) = registry {
            let _ = match &mut e.io {
                Io::Listener(l) => r.deregister(l),
                Io::Stream(s) => r.deregister(s),
            };
        }
        self.blocked = self.blocked.saturating_sub(e.waiters.len());
        e.waiters.iter().map(|w| w.0).collect()
    }
}

/// An address argument (`"127.0.0.1:7000"`, `"localhost:7000"`) as a socket address.
pub(crate) fn resolve(what: &str, text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = || format!("{what}(): {text:?} is not an address; write HOST:PORT, such as \"127.0.0.1:7000\"");
    if !text.contains(':') {
        return Err(bad());
    }
    let mut addrs = text.to_socket_addrs().map_err(|_| bad())?.collect::<Vec<_>>();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().ok_or_else(bad)
}

/// A failed socket operation as a runtime error: `connect 127.0.0.1:1: connection refused
/// (...)`: the operation, the address, the system's reason and what to do.
pub(crate) fn io_error(op: &str, addr: &str, e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut reason = text.to_string();
    if let Some(c) = reason.get(..1) {
        reason.replace_range(..1, &c.to_lowercase());
    }
    let hint = match e.kind() {
        io::ErrorKind::ConnectionRefused => " (nothing listens there: is the server running, on this port?)",
        io::ErrorKind::AddrInUse => {
            " (another socket listens on this port: close it, pick another port, or use port 0 for any free one)"
        }
        io::ErrorKind::AddrNotAvailable => " (this machine has no such address: use 127.0.0.1 or one of its own)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: use a higher port, or port 0)",
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            " (the peer closed the connection)"
        }
        io::ErrorKind::TimedOut => " (no answer from that address: is it reachable?)",
        _ => "",
    };
    format!("{op} {addr}: {reason}{hint}")
}
