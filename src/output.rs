//! Standard output for the CLI, with its errors kept instead of lost or turned into panics.
//!
//! `println!` panics when stdout is closed or full, and Rust's `stdout()` silently drops what is
//! written to a closed descriptor (`molt ... >&-`). Everything `molt` prints on stdout goes
//! through a duplicate of descriptor 1 instead, so every failure is seen:
//! - a closed pipe (`molt disasm big.molt | head -1`) ends the command quietly, status 0, as
//!   `head` expects of any tool;
//! - any other failure (a full disk, a closed descriptor) is an error on stderr, status 1:
//!   `error: cannot write to standard output: No space left on device (os error 28)`.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::rc::Rc;

/// A duplicate of descriptor 1; `EBADF` when stdout was closed.
fn stdout_file() -> io::Result<File> {
    if closed_at_start() {
        return Err(io::Error::from_raw_os_error(9)); // EBADF, as a write to it would have been
    }
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// Whether descriptor 1 was closed when `molt` started (`molt run p.molt >&-`). Rust's runtime
/// opens `/dev/null` read-write in place of a closed standard descriptor, so what the program
/// writes would vanish without an error; a shell's `>/dev/null` opens it write-only instead.
#[cfg(target_os = "linux")]
fn closed_at_start() -> bool {
    static CLOSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CLOSED.get_or_init(|| {
        let null = std::fs::read_link("/proc/self/fd/1").is_ok_and(|p| p == std::path::Path::new("/dev/null"));
        let read_write = || {
            let info = std::fs::read_to_string("/proc/self/fdinfo/1").ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            Some(u32::from_str_radix(flags, 8).ok()? & 3 == 2) // O_ACCMODE == O_RDWR
        };
        null && read_write().unwrap_or(false)
    })
}

#[cfg(not(target_os = "linux"))]
fn closed_at_start() -> bool {
    false
}

/// The status and message a failed write of stdout ends a command with (see the module doc).
pub fn failed(e: &io::Error) -> ExitCode {
    if e.kind() == ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    crate::report!("error: cannot write to standard output: {e}");
    ExitCode::from(1)
}

/// Writes `text` to stdout and flushes it: the command's status (see `failed`).
pub fn print(text: &str) -> ExitCode {
    match stdout_file().and_then(|mut f| f.write_all(text.as_bytes())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

/// A running program's output (`vm.out`): stdout, buffered or not. The first write error is
/// kept (`error()`), and every later write fails the same way, so an error swallowed by a
/// flush the VM makes on its own (before an update event, `sleep`, `read_line`) still stops the
/// next `print`.
pub struct Stdout {
    /// `Err`: descriptor 1 could not be duplicated (it is closed); reported at the first write.
    out: Result<BufWriter<File>, (ErrorKind, String)>,
    error: Rc<Cell<Option<ErrorKind>>>,
    /// The first error's text, for the final report.
    message: Rc<std::cell::RefCell<String>>,
}

/// What a `Stdout` saw, kept by the CLI after the VM took the writer.
#[derive(Clone)]
pub struct Status {
    error: Rc<Cell<Option<ErrorKind>>>,
    message: Rc<std::cell::RefCell<String>>,
}

impl Status {
    /// The first write error, if any: its kind and its text.
    pub fn error(&self) -> Option<(ErrorKind, String)> {
        self.error.get().map(|k| (k, self.message.borrow().clone()))
    }
}

impl Stdout {
    /// `buffered`: output leaves in blocks (`molt run`) or as written (`molt demo`, whose own
    /// lines go between the program's).
    pub fn new(buffered: bool) -> (Stdout, Status) {
        let capacity = if buffered { 8 << 10 } else { 0 };
        let out = stdout_file().map(|f| BufWriter::with_capacity(capacity, f)).map_err(|e| (e.kind(), e.to_string()));
        let status = Status { error: Rc::new(Cell::new(None)), message: Default::default() };
        (Stdout { out, error: status.error.clone(), message: status.message.clone() }, status)
    }

    fn check<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if self.error.get().is_none() {
                self.error.set(Some(e.kind()));
                *self.message.borrow_mut() = e.to_string();
            }
        }
        r
    }

    fn sticky(&self) -> Option<io::Error> {
        let kind = self.error.get()?;
        Some(io::Error::new(kind, self.message.borrow().clone()))
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.sticky() {
            return Err(e);
        }
        let r = match &mut self.out {
            Ok(w) => w.write(buf),
            Err((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
        };
        self.check(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.sticky() {
            return Err(e);
        }
        let r = match &mut self.out {
            Ok(w) => w.flush(),
            Err(_) => Ok(()), // nothing was written
        };
        self.check(r)
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        // Whatever is left after an error stays unwritten (BufWriter would try again).
        if self.error.get().is_some() {
            if let Ok(w) = std::mem::replace(&mut self.out, Err((ErrorKind::Other, String::new()))) {
                let _ = w.into_parts();
            }
        }
    }
}
