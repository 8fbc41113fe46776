//! The running program's side of the control socket (`molt run --control SOCKET`).
//!
//! A thread accepts connections on the Unix socket; each connection gets a short-lived thread
//! that reads its request. A push or an undo is queued for the VM, which takes it through its
//! update source (`ControlSource`) as soon as it can: at an update point, or between two tasks'
//! turns (a server whose tasks all wait takes it at once). The VM thread hands the update's
//! events back through a channel as they happen; the connection thread writes them out. A
//! status request is answered by the VM at its next safepoint (`Inspector`). Nothing a client
//! sends is trusted: the bytecode is verified as any `.mbc` file is, and a malformed,
//! truncated or oversized message closes that connection and changes nothing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use molt_vm::Program;
use molt_vm::inspect::Inspector;
use molt_vm::signals::Signals;
use molt_vm::update::{EventKind, Incoming, UpdateEvent, UpdateSettings, UpdateSource};
use serde_json::Value as Json;

use super::{Op, Received, error_reply, event_reply, read_request, status_reply, write_frame};
use crate::FileUpdates;

/// How long a client may take to send its request.
const REQUEST_TIME: Duration = Duration::from_secs(10);
/// How long a status request waits for the program's answer.
const STATUS_TIME: Duration = Duration::from_secs(5);
/// Connections handled at once; more are refused.
const MAX_CONNECTIONS: usize = 32;

/// A push or an undo waiting for the VM, with where its events go.
struct Pushed {
    program: Option<Program>,
    settings: Option<UpdateSettings>,
    reply: Sender<Json>,
}

/// Shared by the connection threads (which add) and the VM's source (which takes).
#[derive(Default)]
pub struct Queue {
    items: Mutex<VecDeque<Pushed>>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pushed>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The control socket of a running program: removes its file when dropped (at the end of
/// `molt run`, also after Ctrl-C).
pub struct Control {
    path: PathBuf,
    /// The socket file's identity: only this file is removed (not one made by another program
    /// after a user deleted ours).
    id: (u64, u64),
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where the update in flight sends its events (set while the VM handles a pushed update).
pub type InFlight = Rc<RefCell<Option<Sender<Json>>>>;

impl Control {
    /// Listens on `path`. Refuses to take over a socket something listens on, and a path that
    /// is not a socket; replaces a stale socket. The file is made for its owner only.
    pub fn start(
        path: &Path,
        settings: UpdateSettings,
        inspector: Inspector,
        signals: Arc<Signals>,
    ) -> Result<(Control, Arc<Queue>), String> {
        let shown = path.display();
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(format!("--control {shown}: the file exists and is not a socket; choose another path"));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "--control {shown}: another program is listening on this socket (`molt status {shown}` shows it); stop it or choose another path"
                ));
            }
            // Nothing listens: a socket left by a program that was killed.
            std::fs::remove_file(path)
                .map_err(|e| format!("--control {shown}: cannot replace the stale socket: {e}"))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("--control {shown}: cannot listen: {e}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("--control {shown}: cannot make the socket private: {e}"))?;
        let m = std::fs::symlink_metadata(path).map_err(|e| format!("--control {shown}: {e}"))?;
        let queue = Arc::new(Queue::default());
        let accept =
            Acceptor { queue: queue.clone(), settings, inspector, signals, live: Arc::new(AtomicUsize::new(0)) };
        std::thread::Builder::new()
            .name("molt-control".into())
            .spawn(move || accept.run(listener))
            .map_err(|e| format!("--control {shown}: cannot start its thread: {e}"))?;
        Ok((Control { path: path.to_path_buf(), id: (m.dev(), m.ino()) }, queue))
    }
}

/// What the accepting thread needs to serve a connection.
#[derive(Clone)]
struct Acceptor {
    queue: Arc<Queue>,
    settings: UpdateSettings,
    inspector: Inspector,
    signals: Arc<Signals>,
    live: Arc<AtomicUsize>,
}

impl Acceptor {
    fn run(self, listener: UnixListener) {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if let Err(why) = same_user(&stream) {
                let _ = write_frame(&mut stream, &serde_json::to_vec(&error_reply(&why)).unwrap_or_default());
                continue;
            }
            if self.live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                self.live.fetch_sub(1, Ordering::SeqCst);
                let why = format!("refused: {MAX_CONNECTIONS} control connections are open already; try again");
                let _ = write_frame(&mut stream, &serde_json::to_vec(&error_reply(&why)).unwrap_or_default());
                continue;
            }
            let me = self.clone();
            let spawned = std::thread::Builder::new().name("molt-control-conn".into()).spawn(move || {
                me.serve(stream);
                me.live.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// One connection: its request, then the replies. Errors are sent back as an error reply
    /// (when the connection still works) and end the connection.
    fn serve(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(REQUEST_TIME));
        let result = self.handle(&mut stream);
        if let Err(why) = result {
            let _ = write_frame(&mut stream, &serde_json::to_vec(&error_reply(&why)).unwrap_or_default());
        }
    }

    fn handle(&self, stream: &mut UnixStream) -> Result<(), String> {
        let Some(Received { request, program }) = read_request(stream)? else { return Ok(()) };
        if request.op == Op::Status {
            return self.status(stream);
        }
        let (tx, rx) = channel();
        let settings = request.settings(&self.settings);
        self.queue.lock().push_back(Pushed { program, settings, reply: tx });
        self.signals.raise_update();
        forward(stream, rx)
    }

    fn status(&self, stream: &mut UnixStream) -> Result<(), String> {
        let status = self.inspector.ask().recv_timeout(STATUS_TIME).map_err(|_| {
            format!(
                "the program did not answer within {} s: it is inside one long built-in call (a `sleep` or `read_line` before any task was spawned); try again",
                STATUS_TIME.as_secs()
            )
        })?;
        write_frame(stream, &serde_json::to_vec(&status_reply(&status)).unwrap_or_default()).map_err(|e| e.to_string())
    }
}

/// Writes the update's replies as the VM sends them, until its outcome (the VM drops the
/// sender then). A client that goes away does not cancel the update.
fn forward(stream: &mut UnixStream, rx: Receiver<Json>) -> Result<(), String> {
    for reply in rx {
        if write_frame(stream, &serde_json::to_vec(&reply).unwrap_or_default()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Only the user running the program may control it (peer credentials).
fn same_user(stream: &UnixStream) -> Result<(), String> {
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("refused: the peer's credentials cannot be read ({e})"))?;
    let me = nix::unistd::getuid().as_raw();
    if creds.uid() != me {
        return Err(format!("refused: only the program's owner (uid {me}) may control it, not uid {}", creds.uid()));
    }
    Ok(())
}

/// The VM's update source with a control socket: the `--update` files first (at update points,
/// as always), then what clients push, as soon as the VM can take it.
pub struct ControlSource {
    files: FileUpdates,
    queue: Arc<Queue>,
    in_flight: InFlight,
}

impl ControlSource {
    pub fn new(files: FileUpdates, queue: Arc<Queue>) -> (ControlSource, InFlight) {
        let in_flight: InFlight = Rc::default();
        (ControlSource { files, queue, in_flight: in_flight.clone() }, in_flight)
    }
}

/// Called with every update event: the pushed update in flight gets its events; its outcome
/// ends it.
pub fn forward_event(in_flight: &InFlight, e: &UpdateEvent) {
    let mut slot = in_flight.borrow_mut();
    let Some(tx) = slot.as_ref() else { return };
    let _ = tx.send(event_reply(e));
    if matches!(e.kind, EventKind::Applied | EventKind::Rejected | EventKind::RolledBack) {
        *slot = None;
    }
}

impl UpdateSource for ControlSource {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        self.files.next_update()
    }

    fn next_request(&mut self) -> Option<Result<Incoming, String>> {
        if self.files.has_more() {
            *self.in_flight.borrow_mut() = None;
            return self.files.next_request();
        }
        let p = self.queue.lock().pop_front()?;
        *self.in_flight.borrow_mut() = Some(p.reply);
        Some(Ok(Incoming { program: p.program, settings: p.settings }))
    }

    fn has_more(&self) -> bool {
        self.files.has_more() || !self.queue.lock().is_empty()
    }

    /// Pushed updates are taken as soon as the VM can (once the `--update` files are done).
    fn immediate(&self) -> bool {
        !self.files.has_more()
    }

    fn unhandled(&mut self) -> Vec<String> {
        let mut names = self.files.unhandled();
        for p in self.queue.lock().drain(..) {
            let what = if p.program.is_some() { "a pushed version" } else { "an undo" };
            let _ = p.reply.send(super::not_applied_reply("the program ended before the update could be applied"));
            names.push(what.to_string());
        }
        names
    }
}
