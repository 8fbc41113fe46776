//! `molt run --watch`: a background thread polls the program's files; when one changes and
//! then stays unchanged for a moment (a save is complete), it compiles the whole program and
//! hands the new version to the VM, which applies it at the next update point.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use molt_vm::Program;
use molt_vm::signals::Signals;
use molt_vm::update::UpdateSource;

/// How often the files are looked at, and how long they must stay unchanged.
const POLL: Duration = Duration::from_millis(100);
const SETTLE: Duration = Duration::from_millis(200);

/// What is compared between polls: each file's contents (hashed). Timestamps alone miss two
/// saves within one tick of the file system's clock when the size does not change either.
type Stamp = Vec<Option<u64>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    use std::hash::{Hash, Hasher};
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).ok()?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            Some(h.finish())
        })
        .collect()
}

pub struct Watcher {
    /// The entry file, for the "never applied" lines.
    entry: String,
    rx: Receiver<Result<Program, String>>,
    /// A version taken from the channel by `has_more`, not yet handed over.
    ready: RefCell<Option<Result<Program, String>>>,
}

impl Watcher {
    /// Watches `files` (the program's sources; the first is the entry file).
    /// `signals` are the VM's: raised when a new version is ready.
    pub fn start(files: Vec<PathBuf>, signals: Arc<Signals>) -> Watcher {
        let (tx, rx) = channel();
        // The baseline is taken now, before the program runs: an edit saved while the thread
        // starts up must count as a change.
        let mut seen = stamp(&files);
        let shown = files[0].display().to_string();
        std::thread::spawn(move || {
            let entry = files[0].clone();
            let mut version = 1;
            loop {
                std::thread::sleep(POLL);
                let now = stamp(&files);
                if now == seen {
                    continue;
                }
                // Debounce: wait until the files stop changing, so a half-written save is
                // never compiled.
                let mut last = now;
                loop {
                    std::thread::sleep(SETTLE);
                    let again = stamp(&files);
                    if again == last {
                        break;
                    }
                    last = again;
                }
                seen = last;
                version += 1;
                if tx.send(crate::load_update(&entry, version)).is_err() {
                    return; // the program ended
                }
                signals.raise_update();
            }
        });
        Watcher { entry: shown, rx, ready: RefCell::new(None) }
    }
}

impl UpdateSource for Watcher {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        self.ready.borrow_mut().take().or_else(|| self.rx.try_recv().ok())
    }

    fn has_more(&self) -> bool {
        let mut ready = self.ready.borrow_mut();
        if ready.is_none() {
            *ready = self.rx.try_recv().ok();
        }
        ready.is_some()
    }

    /// Saved edits the program ended before taking (DSU.md: a line says each was never
    /// applied). The last one stands for all: each save is the whole program.
    fn unhandled(&mut self) -> Vec<String> {
        let mut last = self.ready.borrow_mut().take();
        while let Ok(v) = self.rx.try_recv() {
            last = Some(v);
        }
        match last {
            Some(Ok(_)) => vec![format!("the edit saved to {}", self.entry)],
            Some(Err(e)) => vec![format!("the edit saved to {}, which does not compile: {e}", self.entry)],
            None => Vec::new(),
        }
    }
}
