//! Runtime errors and their stack traces.

use std::fmt;

/// One line of a stack trace: `  at FUNCTION (FILE:LINE)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// "1 argument", "2 arguments": for arity messages.
pub fn arguments(n: usize) -> String {
    if n == 1 { "1 argument".to_string() } else { format!("{n} arguments") }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    pub message: String,
    /// Innermost first.
    pub trace: Vec<TraceFrame>,
    /// Not an error: the running task waits (it is suspended, and runs again later).
    suspended: bool,
}

impl RuntimeError {
    pub fn new(message: impl Into<String>) -> RuntimeError {
        RuntimeError { message: message.into(), trace: Vec::new(), suspended: false }
    }

    /// The running task is suspended (see `tasks`): unwinds to the scheduler, frames kept.
    pub fn suspend() -> RuntimeError {
        RuntimeError {
            message: "internal error: a task suspended where it cannot be".into(),
            trace: Vec::new(),
            suspended: true,
        }
    }

    pub fn is_suspend(&self) -> bool {
        self.suspended
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        // A deep recursion would print 100,000 frames: show both ends of long traces.
        const HEAD: usize = 20;
        const TAIL: usize = 10;
        let n = self.trace.len();
        for (i, t) in self.trace.iter().enumerate() {
            if n > HEAD + TAIL + 1 && i == HEAD {
                writeln!(f, "  ... {} more frames ...", n - HEAD - TAIL)?;
            }
            if n > HEAD + TAIL + 1 && (HEAD..n - TAIL).contains(&i) {
                continue;
            }
            writeln!(f, "  at {} ({}:{})", t.function, t.file, t.line)?;
        }
        Ok(())
    }
}
