//! The one word the interpreter and compiled code poll at safepoints (loop back-edges, calls,
//! update points): which asynchronous requests are waiting. A single load answers "is there
//! anything to do?", so an update point fused into a loop back-edge costs no more than the
//! back-edge alone.

use std::sync::atomic::{AtomicU32, Ordering};

/// Requests a running program notices at its next safepoint. Shared (`Arc`) with whoever may
/// raise them from another thread: a Ctrl-C handler, the REPL's `:stop`.
#[derive(Debug, Default)]
pub struct Signals(AtomicU32, std::sync::Mutex<Option<std::sync::Arc<mio::Waker>>>);

impl Signals {
    /// Stop the running program with the runtime error "interrupted".
    pub const INTERRUPT: u32 = 1;
    /// An update is waiting for an update point (set and cleared by the VM itself).
    pub const UPDATE: u32 = 2;
    /// The compiled tier is on (`--jit on`): loop back-edges count toward compiling their
    /// function. Set once; keeps back-edges on their slow path.
    pub const TIER: u32 = 4;
    /// The heap is due a collection. Raised for compiled code (`Vm::tier_poll`), whose inline
    /// safepoints (loop back-edges, calls) test only this word: when set they take the slow
    /// path, which collects. Cleared by every collection.
    pub const COLLECT: u32 = 8;
    /// Tasks exist: calls and loop back-edges count reductions (their slow path). Set at the
    /// first `spawn`.
    pub const TASKS: u32 = 16;
    /// Another thread asks for the program's status (`inspect.rs`): answered at the next
    /// safepoint.
    pub const INSPECT: u32 = 32;
    /// The bits that stop the running code at its next safepoint for the VM to look at:
    /// tested together, so that a status request costs the hot path nothing more.
    pub const ATTENTION: u32 = Self::INTERRUPT | Self::INSPECT;

    pub fn new() -> Signals {
        Signals::default()
    }

    /// Every signal bit at once (a relaxed load: the hot-path poll).
    #[inline(always)]
    pub fn load(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks the running program to stop at its next safepoint. Safe from any thread.
    pub fn interrupt(&self) {
        self.0.fetch_or(Self::INTERRUPT, Ordering::SeqCst);
        // A VM asleep in its event loop (every task waiting) wakes up to notice.
        if let Some(w) = self.1.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = w.wake();
        }
    }

    /// Asks the running program for its status at its next safepoint (`Inspector::ask`).
    pub(crate) fn inspect(&self) {
        self.0.fetch_or(Self::INSPECT, Ordering::SeqCst);
        if let Some(w) = self.1.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = w.wake();
        }
    }

    pub(crate) fn clear_inspect(&self) {
        self.0.fetch_and(!Self::INSPECT, Ordering::SeqCst);
    }

    /// The event loop's waker, woken by `interrupt` (tasks/wait.rs).
    pub(crate) fn set_waker(&self, waker: Option<std::sync::Arc<mio::Waker>>) {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = waker;
    }

    /// Withdraws an interrupt request that nothing has consumed yet.
    pub fn clear_interrupt(&self) {
        self.0.fetch_and(!Self::INTERRUPT, Ordering::SeqCst);
    }

    /// Whether an interrupt is requested (it stays requested).
    pub fn interrupted(&self) -> bool {
        self.load() & Self::INTERRUPT != 0
    }

    /// Consumes an interrupt request: true when there was one.
    pub fn take_interrupt(&self) -> bool {
        self.0.fetch_and(!Self::INTERRUPT, Ordering::SeqCst) & Self::INTERRUPT != 0
    }

    /// Tells the VM that its update source has something new (for sources fed from another
    /// thread: the file watcher, the REPL). The VM asks the source at its next update point.
    pub fn raise_update(&self) {
        self.0.fetch_or(Self::UPDATE, Ordering::SeqCst);
        // A VM whose tasks all wait takes an update from a source that says `immediate`
        // while asleep in its event loop: wake it.
        if let Some(w) = self.1.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = w.wake();
        }
    }

    pub(crate) fn set_update(&self, pending: bool) {
        if pending {
            self.0.fetch_or(Self::UPDATE, Ordering::Relaxed);
        } else {
            self.0.fetch_and(!Self::UPDATE, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_collect(&self, due: bool) {
        if due {
            self.0.fetch_or(Self::COLLECT, Ordering::Relaxed);
        } else if self.load() & Self::COLLECT != 0 {
            self.0.fetch_and(!Self::COLLECT, Ordering::Relaxed);
        }
    }

    pub fn set_tasks(&self, on: bool) {
        if on {
            self.0.fetch_or(Self::TASKS, Ordering::SeqCst);
        } else {
            self.0.fetch_and(!Self::TASKS, Ordering::SeqCst);
        }
    }

    pub fn set_tier(&self, on: bool) {
        if on {
            self.0.fetch_or(Self::TIER, Ordering::SeqCst);
        } else {
            self.0.fetch_and(!Self::TIER, Ordering::SeqCst);
        }
    }

    /// The word itself, for compiled code that polls it with atomic loads.
    pub fn word(&self) -> &AtomicU32 {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_independent() {
        let s = Signals::new();
        s.set_update(true);
        s.interrupt();
        assert_eq!(s.load(), Signals::INTERRUPT | Signals::UPDATE);
        assert!(s.take_interrupt());
        assert!(!s.take_interrupt());
        assert_eq!(s.load(), Signals::UPDATE);
        s.set_update(false);
        assert_eq!(s.load(), 0);
    }
}
