//! `molt run --watch`: a background thread polls the program's files; when one changes and
//! then stays unchanged for a moment (a save is complete), it compiles the whole program and
//! hands the new version to the VM, which applies it at the next update point.
//!
//! - The files watched are the import closure of every version compiled so far: a file a
//!   later version imports is watched from then on.
//! - Each save is the whole program, so a newer one supersedes a version still waiting for
//!   its update point (`UpdateSource::supersedes`): a stuck update does not hold later saves
//!   back.
//! - A save that drops a global says so on stderr before the update can apply: the global's
//!   value is gone, and a later save that adds it back starts it from its initialiser.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
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

/// The files to watch for `program`, whose entry file is `entry`: the entry file first, then
/// its imports (the prelude is not a file).
pub fn sources(entry: &Path, program: &Program) -> Vec<PathBuf> {
    let mut files = vec![entry.to_path_buf()];
    add_sources(&mut files, program);
    files
}

/// Adds the files of `program` not yet in `files`.
fn add_sources(files: &mut Vec<PathBuf>, program: &Program) {
    for f in program.files.iter().filter(|f| !f.starts_with('<')).map(PathBuf::from) {
        if !files.contains(&f) {
            files.push(f);
        }
    }
}

/// The warning a version that drops globals of the one before it gets.
fn removed_globals(before: &[String], after: &Program, entry: &Path) -> Option<String> {
    let gone: Vec<String> = before.iter().filter(|g| !after.globals.contains(g)).map(|g| format!("'{g}'")).collect();
    if gone.is_empty() {
        return None;
    }
    let (s, its) = if gone.len() == 1 { ("", "its value is") } else { ("s", "their values are") };
    Some(format!(
        "molt: warning: the edit saved to {} removes global{s} {} ({its} lost when it applies; a later version that adds {} back starts from the initialiser)",
        entry.display(),
        gone.join(", "),
        if gone.len() == 1 { "it" } else { "them" }
    ))
}

pub struct Watcher {
    /// The entry file, for the "never applied" lines.
    entry: String,
    rx: Receiver<Result<Program, String>>,
    /// A version taken from the channel by `has_more`, not yet handed over.
    ready: RefCell<Option<Result<Program, String>>>,
}

impl Watcher {
    /// Watches `files` (the sources of `program`, the running version; the first is the entry
    /// file). `signals` are the VM's: raised when a new version is ready.
    pub fn start(mut files: Vec<PathBuf>, program: &Program, signals: Arc<Signals>) -> Watcher {
        let (tx, rx) = channel();
        add_sources(&mut files, program);
        let mut globals = program.globals.clone();
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
                let update = crate::load_update(&entry, version);
                if let Ok(p) = &update {
                    if let Some(warning) = removed_globals(&globals, p, &entry) {
                        crate::report!("{warning}");
                    }
                    globals.clone_from(&p.globals);
                    // Files this version imports are watched from now on.
                    let known = files.len();
                    add_sources(&mut files, p);
                    if files.len() > known {
                        seen.extend(stamp(&files[known..]));
                    }
                }
                if tx.send(update).is_err() {
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

    /// Each save is the whole program: a newer one replaces a version still waiting.
    fn supersedes(&self) -> bool {
        true
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
