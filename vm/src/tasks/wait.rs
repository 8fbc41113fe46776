//! What tasks wait for outside the VM: timers (`sleep`, `select` with a timeout) and lines of
//! standard input (`read_line`). When no task is ready, the VM sleeps in the event loop
//! (`mio::Poll`) until the first timer is due or something arrives; sockets register with the
//! same poll (`socket.rs`, token: the socket's id). Standard input is read by a helper thread (a pipe, a terminal or a file
//! alike: `epoll` cannot watch a regular file), which wakes the poll for each line.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A line of standard input as the reader thread found it: its bytes (without the line end),
/// `None` at the end of input, or why it could not be read.
pub type Line = Result<Option<Vec<u8>>, String>;

const WAKE: mio::Token = mio::Token(0);

/// Timers and standard input, and the poll the VM sleeps in.
#[derive(Default)]
pub struct Waits {
    /// (due, sequence, task): the earliest first. A task's timer is current while the task's
    /// `timer` is that sequence number (a task woken otherwise leaves a stale entry).
    pub timers: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    next_timer: u64,
    /// Tasks blocked in `read_line`, first blocked first.
    pub readers: VecDeque<u32>,
    /// Lines read ahead and not yet taken.
    pub lines: VecDeque<Line>,
    /// Standard input ended (every later `read_line` gives nil at once).
    pub eof: bool,
    stdin: Option<Receiver<Line>>,
    /// The sockets: their table, waiters and the events the poll reported.
    pub sockets: super::socket::Sockets,
    poll: Option<(mio::Poll, mio::Events, Arc<mio::Waker>)>,
}

impl Waits {
    /// A timer for task `id` at `due`; returns its sequence number.
    pub fn add_timer(&mut self, due: Instant, id: u32) -> u64 {
        self.next_timer += 1;
        self.timers.push(Reverse((due, self.next_timer, id)));
        self.next_timer
    }

    /// The timers due by `now`: (sequence, task), in order.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            out.push((seq, id));
        }
        out
    }

    /// Whether anything outside the VM can still wake a task.
    pub fn any(&self) -> bool {
        !self.timers.is_empty() || (!self.readers.is_empty() && self.stdin.is_some()) || self.sockets.waiting()
    }

    /// Starts reading standard input on a helper thread (once). Lines longer than `limit`
    /// bytes are an error.
    pub fn start_stdin(&mut self, limit: usize) -> Result<(), String> {
        if self.stdin.is_some() || self.eof {
            return Ok(());
        }
        let waker = self.poll()?.2.clone();
        let (tx, rx) = channel();
        let reader = move || {
            let stdin = std::io::stdin();
            loop {
                let line = read_one(&mut stdin.lock(), limit);
                let end = !matches!(line, Ok(Some(_)));
                if tx.send(line).is_err() {
                    return;
                }
                let _ = waker.wake();
                if end {
                    return;
                }
            }
        };
        std::thread::Builder::new()
            .name("molt-stdin".into())
            .spawn(reader)
            .map_err(|e| format!("read_line(): cannot start reading standard input: {e}"))?;
        self.stdin = Some(rx);
        Ok(())
    }

    /// Lines the reader thread sent since the last look.
    pub fn take_lines(&mut self) {
        let Some(rx) = &self.stdin else { return };
        while let Ok(line) = rx.try_recv() {
            self.lines.push_back(line);
        }
    }

    /// Sleeps until the first timer is due, a line arrives or `signals` is interrupted
    /// (`timeout` None: no timer).
    pub fn sleep(&mut self, timeout: Option<Duration>, signals: &crate::signals::Signals) -> Result<(), String> {
        let waker = self.poll()?.2.clone();
        signals.set_waker(Some(waker));
        if signals.interrupted() {
            return Ok(());
        }
        self.poll_events(timeout)
    }

    /// Takes the socket events that are ready now, without waiting (at every task switch while
    /// a task waits on a socket: a busy program must still see them).
    pub fn poll_now(&mut self) -> Result<(), String> {
        self.poll_events(Some(Duration::ZERO))
    }

    /// Polls (waiting at most `timeout`) and records which sockets had events.
    fn poll_events(&mut self, timeout: Option<Duration>) -> Result<(), String> {
        let (poll, events, _) = self.poll()?;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting for timers, input and sockets failed: {e}")),
        }
        let ids = events.iter().filter(|e| e.token() != WAKE).map(|e| {
            let fail = e.is_error();
            let read = e.is_readable() || e.is_read_closed() || fail;
            let write = e.is_writable() || e.is_write_closed() || fail;
            (e.token().0 as u32, read, write)
        });
        let ids: Vec<(u32, bool, bool)> = ids.collect();
        self.sockets.events.extend(ids);
        Ok(())
    }

    /// Closes socket `id`; returns the tasks that waited on it.
    pub(crate) fn close_socket(&mut self, id: u32) -> Vec<u32> {
        let registry = self.poll.as_ref().map(|p| p.0.registry());
        self.sockets.close(id, registry)
    }

    /// After a collection: closes the sockets whose value is garbage.
    pub(crate) fn prune_sockets(&mut self, heap: &crate::heap::Heap) {
        let registry = self.poll.as_ref().map(|p| p.0.registry());
        self.sockets.prune(heap, registry);
    }

    /// The registry sockets register with (`socket.rs`).
    pub(crate) fn registry(&mut self) -> Result<&mio::Registry, String> {
        Ok(self.poll()?.0.registry())
    }

    fn poll(&mut self) -> Result<&mut (mio::Poll, mio::Events, Arc<mio::Waker>), String> {
        if self.poll.is_none() {
            let poll = mio::Poll::new().map_err(|e| format!("cannot start the event loop: {e}"))?;
            let waker =
                mio::Waker::new(poll.registry(), WAKE).map_err(|e| format!("cannot start the event loop: {e}"))?;
            self.poll = Some((poll, mio::Events::with_capacity(256), Arc::new(waker)));
        }
        Ok(self.poll.as_mut().expect("made above"))
    }
}

/// One line of `input`, as `read_line` gives it: without `\n` or `\r\n` (also the
/// stdlib's `read_line`, outside tasks).
pub fn read_one(input: &mut impl BufRead, limit: usize) -> Line {
    let mut bytes = Vec::new();
    match input.by_ref().take(limit as u64 + 2).read_until(b'\n', &mut bytes) {
        Ok(0) => Ok(None),
        Ok(_) => {
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            } else if bytes.len() > limit {
                return Err(format!(
                    "string too long: read_line() found a line of more than the limit of {limit} bytes"
                ));
            }
            Ok(Some(bytes))
        }
        Err(e) => Err(format!("read_line(): cannot read standard input: {e}")),
    }
}
