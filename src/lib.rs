//! The `molt` facade: wires the compiler, the VM and the standard library together. The CLI,
//! the tests and the benches all go through these few functions.

/// Writes a line to stderr, ignoring failure: a closed stderr (`molt ... 2>&1 | head -1`) must
/// not turn an error report into a panic. `report!` adds a newline, `report_raw!` does not.
#[macro_export]
macro_rules! report {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

#[macro_export]
macro_rules! report_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

/// mimalloc instead of the system allocator: Molt allocates one object per record, string,
/// list and closure, and the update engine one field array per transformed record; glibc's
/// malloc/free were the top of those profiles (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod control;
pub mod demo;
pub mod diagnostics;
pub mod output;
pub mod repl;
pub mod watch;

/// The fuzz targets' checks (`fuzz/`), shared with the corpus replay in `tests/fuzz_corpus.rs`.
#[doc(hidden)]
pub mod fuzzing;

use std::path::Path;

pub use molt_compiler::{Diagnostic, Options, Output, SourceFile};
pub use molt_vm::{Program, RuntimeError, Vm};

/// Compiler options for a fresh program: the built-in names and the prelude.
pub fn compile_options(version: u32) -> Options {
    Options {
        builtins: molt_stdlib::builtin_names(),
        prelude: Some((molt_stdlib::PRELUDE_NAME.to_string(), molt_stdlib::PRELUDE.to_string())),
        version,
        overrides: Default::default(),
    }
}

/// A VM with the standard library installed.
pub fn new_vm() -> Vm {
    let mut vm = Vm::new();
    molt_stdlib::install(&mut vm);
    vm
}

/// Compiles a source file.
pub fn compile_path(path: &Path) -> Output {
    molt_compiler::compile_file(path, &compile_options(1))
}

/// Compiles source text held in memory (tests, the REPL).
pub fn compile_str(name: &str, text: &str) -> Output {
    molt_compiler::compile_source(name, text, &compile_options(1))
}

/// Why a program could not be loaded.
pub enum LoadError {
    /// Compile errors, to be rendered with their files.
    Compile(Vec<SourceFile>, Vec<Diagnostic>),
    /// An unreadable or invalid bytecode file, or an unreadable source file.
    Other(String),
}

/// Loads a program from a `.mbc` bytecode file or compiles a source file.
pub fn load_program(path: &Path) -> Result<Program, LoadError> {
    if path.extension().is_some_and(|e| e == "mbc") {
        let bytes =
            std::fs::read(path).map_err(|e| LoadError::Other(format!("cannot read '{}': {e}", path.display())))?;
        return molt_vm::mbc::read(&bytes).map_err(|e| LoadError::Other(format!("{}: {e}", path.display())));
    }
    // An unreadable file is a plain error (there is no source line to show).
    if let Err(e) = molt_compiler::read_source(path) {
        return Err(LoadError::Other(format!("cannot read '{}': {e}", path.display())));
    }
    let out = compile_path(path);
    match out.program {
        Some(p) if out.diagnostics.is_empty() => {
            // The compiler's output is held to the same rules as a bytecode file, so that a
            // compiler bug is a clear error instead of a crash.
            molt_vm::verify::verify(&p).map_err(|e| {
                LoadError::Other(format!("{}: internal compiler error, please report it: {e}", path.display()))
            })?;
            Ok(p)
        }
        _ => Err(LoadError::Compile(out.files, out.diagnostics)),
    }
}

/// How `molt run` runs a program.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub args: Vec<String>,
    /// `--update FILE`s, taken in order at update points.
    pub updates: Vec<std::path::PathBuf>,
    pub settings: molt_vm::update::UpdateSettings,
    pub trace: Trace,
    /// `--watch`: the program's source files, watched for changes.
    pub watch: Option<Vec<std::path::PathBuf>>,
    /// `--jit off|on|always` (the `molt` binary's default is `on`).
    pub jit: molt_vm::tier::JitMode,
    /// `--jit` was given: say so when the machine has no JIT.
    pub jit_asked: bool,
    /// `--self-update` (a testing aid): the program itself is pushed as an update at every
    /// update point; a correct engine never changes the program's output (except `version()`).
    pub self_update: bool,
    /// `--control SOCKET`: listen there for `molt push` and `molt status`.
    pub control: Option<std::path::PathBuf>,
}

/// Offers the same program at every update point.
struct SelfUpdate(Program);

impl molt_vm::update::UpdateSource for SelfUpdate {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        Some(Ok(self.0.clone()))
    }

    fn has_more(&self) -> bool {
        true
    }
}

/// `--trace-updates[=json]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trace {
    #[default]
    Off,
    Human,
    Json,
}

/// Compiles update files one at a time, when the VM asks for the next.
pub struct FileUpdates {
    files: std::collections::VecDeque<std::path::PathBuf>,
    version: u32,
}

impl FileUpdates {
    pub fn new(files: Vec<std::path::PathBuf>) -> FileUpdates {
        FileUpdates { files: files.into(), version: 1 }
    }
}

/// Loads a new version for an update: the reason is one line naming the file and position.
pub fn load_update(path: &Path, version: u32) -> Result<Program, String> {
    if path.extension().is_some_and(|e| e == "mbc") {
        return match load_program(path) {
            Ok(p) => Ok(p),
            Err(LoadError::Other(m)) => Err(m),
            Err(LoadError::Compile(..)) => Err(format!("cannot load '{}'", path.display())),
        };
    }
    let out = molt_compiler::compile_file(path, &compile_options(version));
    match (out.program, out.diagnostics.first()) {
        (Some(p), None) => match molt_vm::verify::verify(&p) {
            Ok(()) => Ok(p),
            Err(e) => Err(format!("{}: internal compiler error, please report it: {e}", path.display())),
        },
        (_, Some(d)) => {
            let f = &out.files[d.file];
            let (line, col) = f.line_col(d.span.0);
            let more = out.diagnostics.len() - 1;
            let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
            Err(format!("compile error in {}:{line}:{col}: {}{more}", f.path, d.message))
        }
        (None, None) => Err(format!("cannot compile '{}'", path.display())),
    }
}

impl molt_vm::update::UpdateSource for FileUpdates {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        let path = self.files.pop_front()?;
        self.version += 1;
        Some(load_update(&path, self.version))
    }

    fn has_more(&self) -> bool {
        !self.files.is_empty()
    }

    fn unhandled(&mut self) -> Vec<String> {
        self.files.drain(..).map(|f| f.display().to_string()).collect()
    }
}

/// Why `run_program` failed.
pub enum RunError {
    /// A runtime error (the program's own, or `print` failing to write).
    Runtime(RuntimeError),
    /// The program's output could not be written: its last output, at the final flush, or any
    /// write to a closed pipe (which ends the program quietly: `output::failed`).
    Output(std::io::Error),
    /// Nothing ran: the control socket could not be set up (exit status 2).
    Setup(String),
}

/// Runs a whole program on a fresh VM, with updates from `opts`.
pub fn run_program(program: &Program, opts: &RunOptions) -> Result<(), RunError> {
    let mut vm = new_vm();
    let (out, output) = output::Stdout::new(true);
    vm.out = Box::new(out);
    vm.args = opts.args.clone();
    vm.dsu.settings = opts.settings.clone();
    if opts.jit != molt_vm::tier::JitMode::Off {
        match molt_jit::Jit::new() {
            Ok(jit) => {
                vm.jit = Some(Box::new(jit));
                vm.set_jit_mode(opts.jit);
            }
            Err(e) if opts.jit_asked => report!("warning: the JIT is not available here ({e}); running interpreted"),
            Err(_) => {}
        }
    }
    // `--control`: pushed updates come after the `--update` files, through one source.
    let mut control = None;
    let mut in_flight = None;
    if let Some(path) = &opts.control {
        let (guard, queue) =
            control::server::Control::start(path, opts.settings.clone(), vm.inspector(), vm.signals.clone())
                .map_err(RunError::Setup)?;
        let (source, events) = control::server::ControlSource::new(FileUpdates::new(opts.updates.clone()), queue);
        vm.set_update_source(Box::new(source));
        in_flight = Some(events);
        interrupt_on_ctrl_c(&vm.signals, path);
        control = Some(guard);
    }
    let trace = opts.trace;
    vm.dsu.on_event = Some(Box::new(move |e: &molt_vm::update::UpdateEvent| {
        use molt_vm::update::EventKind;
        if let Some(f) = &in_flight {
            control::server::forward_event(f, e);
        }
        let always = matches!(e.kind, EventKind::Rejected | EventKind::RolledBack);
        match trace {
            Trace::Json => report!("{}", e.json()),
            Trace::Human => report!("{}", e.human()),
            Trace::Off if always => report!("{}", e.human()),
            Trace::Off => {}
        }
        // Under `=json` the JSON line (with its `reason`) is the one line a rejection or a
        // rollback gets (DSU.md: "one line each"); a person reading it sees the reason there.
    }));
    if control.is_some() {
        // The source is set above.
    } else if opts.self_update {
        vm.set_update_source(Box::new(SelfUpdate(program.clone())));
    } else if let Some(files) = &opts.watch {
        vm.set_update_source(Box::new(watch::Watcher::start(files.clone(), program, vm.signals.clone())));
    } else if !opts.updates.is_empty() {
        vm.set_update_source(Box::new(FileUpdates::new(opts.updates.clone())));
    }
    let result = vm.run_program(program);
    drop(control); // the socket file goes as the program ends
    let failed_before = output.error();
    // Flushed here, not by `Vm::flush`, which drops the error: output lost is a failure.
    let flushed = vm.out.flush();
    // MOLT_JIT_REPORT=1: what the compiled tier compiled, how long it took, how big it is.
    if std::env::var_os("MOLT_JIT_REPORT").is_some() {
        if let Some(jit) = &vm.jit {
            let report = jit.report();
            report!("jit: {} functions compiled", report.len());
            for (name, us, bytes) in report {
                report!("jit: {name}: {us} us, {bytes} bytes");
            }
        }
    }
    match (result, failed_before) {
        // `print` on a closed pipe: the reader is gone, the program ends quietly.
        (Err(_), Some((std::io::ErrorKind::BrokenPipe, m))) => {
            Err(RunError::Output(std::io::Error::new(std::io::ErrorKind::BrokenPipe, m)))
        }
        (Err(e), _) => Err(RunError::Runtime(e)),
        (Ok(()), _) => flushed.map_err(RunError::Output),
    }
}

/// Ctrl-C (or SIGTERM, SIGHUP) stops the program (an interrupt at its next safepoint, so that
/// `molt run` returns and removes its control socket); a second one removes the socket and
/// exits at once.
fn interrupt_on_ctrl_c(signals: &std::sync::Arc<molt_vm::signals::Signals>, socket: &Path) {
    let signals = signals.clone();
    let socket = socket.to_path_buf();
    let pressed = std::sync::atomic::AtomicBool::new(false);
    let _ = ctrlc::set_handler(move || {
        if pressed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = std::fs::remove_file(&socket);
            std::process::exit(130);
        }
        signals.interrupt();
    });
}
