//! The VM thread. The VM (which uses `Rc`, so it is not `Send`) lives on this one thread for the
//! whole session; the editor thread sends it requests over a channel and waits for `Done`.
//!
//! While `:run` runs `main` here, the thread is inside the program: requests are then taken by the
//! program's update source at its update points. An `Apply` becomes the next update; anything else
//! is kept for when the program has ended or was stopped.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use molt_vm::update::{EventKind, UpdateEvent, UpdateSource};
use molt_vm::{Program, Value, Vm};

use super::Shared;
use super::session::{Earlier, Version};

pub enum Req {
    /// Request the update held in `Session::in_flight` (applied at once when nothing runs,
    /// else at the running program's next update point).
    Apply {
        id: u64,
        program: Program,
    },
    /// Link the hidden function `func` of `program` (no new version: nothing the program
    /// defines changes), run it and print its value unless it is nil.
    Eval {
        id: u64,
        program: Program,
        func: String,
    },
    /// Start over on a fresh VM with `program` (version 1): its globals are initialised.
    Load {
        id: u64,
        program: Program,
    },
    /// Run `main` in the background.
    Run {
        id: u64,
    },
    /// Print the globals with their values.
    Globals {
        id: u64,
    },
    Quit,
}

impl Req {
    fn id(&self) -> u64 {
        match self {
            Req::Apply { id, .. }
            | Req::Eval { id, .. }
            | Req::Load { id, .. }
            | Req::Run { id }
            | Req::Globals { id } => *id,
            Req::Quit => 0,
        }
    }
}

/// A request was handled (`ok`: without error).
pub struct Done {
    pub id: u64,
}

/// Where everything the session prints goes: rustyline's external printer when the terminal
/// has one (output appears above the line being typed), else stdout.
pub struct Out {
    printer: Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>>,
}

impl Out {
    pub fn new(printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>) -> Out {
        Out { printer: Mutex::new(printer) }
    }

    /// Prints `text` (a newline is added when it has none).
    pub fn print(&self, text: impl Into<String>) {
        let mut text = text.into();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut guard = self.printer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = guard.as_mut() {
            if p.print(text.clone()).is_ok() {
                return;
            }
            *guard = None;
        }
        // A closed or full stdout loses the text; the session goes on (its input decides
        // when it ends).
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

/// `vm.out`: the program's output, forwarded a line at a time.
struct VmOut {
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

impl Write for VmOut {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if let Some(end) = self.buf.iter().rposition(|&c| c == b'\n') {
            let lines: Vec<u8> = self.buf.drain(..=end).collect();
            self.shared.out.print(String::from_utf8_lossy(&lines).into_owned());
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.shared.out.print(String::from_utf8_lossy(&rest).into_owned());
        }
        Ok(())
    }
}

type Deferred = Rc<RefCell<VecDeque<Req>>>;

/// The running program's update source: the REPL's pushed versions.
struct ReplSource {
    shared: Arc<Shared>,
    rx: Rc<Receiver<Req>>,
    deferred: Deferred,
}

impl UpdateSource for ReplSource {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        if !self.shared.running.load(Ordering::SeqCst) {
            return None; // an evaluation at the prompt: nothing else can arrive meanwhile
        }
        loop {
            match self.rx.try_recv() {
                Ok(Req::Apply { program, .. }) => {
                    self.shared.applies_sent.fetch_sub(1, Ordering::SeqCst);
                    return Some(Ok(program));
                }
                Ok(other) => self.deferred.borrow_mut().push_back(other),
                Err(_) => return None,
            }
        }
    }

    /// The prompt counts the versions it sends and raises the VM's update signal after each
    /// (see `Repl::send`), so a running program polls only the signal word.
    fn has_more(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst) && self.shared.applies_sent.load(Ordering::SeqCst) > 0
    }
}

/// Reports an update event and keeps the session in step with the VM.
fn on_event(shared: &Shared, e: &UpdateEvent) {
    let superseded = e.reason.as_deref().is_some_and(|r| r.starts_with("superseded"));
    if superseded {
        return; // the REPL re-requests a pending update itself (see `settle`)
    }
    let outcome = matches!(e.kind, EventKind::Applied | EventKind::Rejected | EventKind::RolledBack);
    if !outcome && shared.asking_again.load(Ordering::SeqCst) {
        return; // its `requested` (and `waiting`) lines were shown when the program took it
    }
    let mut s = shared.session.lock().unwrap_or_else(|p| p.into_inner());
    // An evaluation while the program runs is an update too; its success shows as its output.
    let quiet = e.kind == EventKind::Applied && s.in_flight.as_ref().is_some_and(|p| p.what.starts_with("evaluation"));
    if shared.trace.load(Ordering::SeqCst) || (outcome && !quiet) {
        // While the program runs, the VM's `waited` counts from when the program took the
        // update at an update point; say also how long after the push that was.
        let since = match s.pushed_at {
            Some(t) if outcome && shared.running.load(Ordering::SeqCst) => {
                format!("; {} ms after the push", t.elapsed().as_millis())
            }
            _ => String::new(),
        };
        shared.out.print(format!("[{}{since}]", e.human()));
    }
    if !outcome {
        return;
    }
    let push = s.in_flight.take();
    if e.kind == EventKind::Applied {
        s.version = e.to;
        if let Some(p) = push {
            let plan = molt_vm::update::UpdatePlan::new(&s.current, &p.program, e.from);
            // The version it leaves can be gone back to (not after an undo, which forgets it,
            // nor after an evaluation, which defines nothing).
            if p.undoes.is_none() && !p.what.starts_with("evaluation") {
                let earlier = Earlier {
                    program: s.current.clone(),
                    items: s.items.clone(),
                    file: s.file.clone(),
                    sources: s.sources.clone(),
                };
                s.undo.push(earlier);
            }
            s.versions.push(Version { version: e.to, what: p.what, plan: Some(plan), pause_us: e.pause_us });
            s.current = p.program;
            s.items = p.items;
            s.file = p.file;
            s.sources = p.sources;
        }
        drop(s);
        shared.refresh_names();
    } else if let Some(earlier) = push.and_then(|p| p.undoes) {
        s.undo.push(earlier); // not applied: it can be tried again
    }
}

/// The session, for `read_line` (a built-in is a plain `fn`): set once, when the VM thread
/// starts.
static SESSION: OnceLock<Arc<Shared>> = OnceLock::new();

/// `read_line()` in the REPL. The editor owns the terminal (docs/repl.md, "Input"): the
/// program reads the lines given with `:input TEXT`, in order. A running program (`:run`)
/// waits for one (`:stop`, Ctrl-C and leaving the session interrupt the wait); code run at
/// the prompt takes one given beforehand, or fails with an error that says how to give it.
fn repl_read_line(ctx: &mut molt_vm::NativeCtx, args: &[Value]) -> Result<Value, String> {
    if !args.is_empty() {
        return Err(format!("read_line() expects 0 arguments but got {}", args.len())); // as the standard one
    }
    let _ = ctx.out.flush();
    let Some(shared) = SESSION.get() else { return Ok(Value::Nil) };
    let mut told = false;
    let mut input = shared.input.lock().unwrap_or_else(|p| p.into_inner());
    let line = loop {
        if let Some(line) = input.pop_front() {
            break line;
        }
        if !shared.running.load(Ordering::SeqCst) {
            return Err(
                "read_line(): no input was given: at the prompt a program reads the lines given with :input TEXT (give them first, then run the code)"
                    .into(),
            );
        }
        if shared.signals.interrupted() {
            shared.signals.take_interrupt();
            return Err("interrupted".into());
        }
        if !told {
            told = true;
            shared.waiting_input.store(true, Ordering::SeqCst);
            shared.out.print("[the program is waiting for input: :input TEXT gives it a line]");
        }
        input = shared.input_ready.wait_timeout(input, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
    };
    shared.waiting_input.store(false, Ordering::SeqCst);
    drop(input);
    ctx.heap.check_string(Some(line.len()), "read_line()")?;
    ctx.heap.new_string(line)
}

fn make_vm(shared: &Arc<Shared>, rx: &Rc<Receiver<Req>>, deferred: &Deferred) -> Vm {
    let mut vm = crate::new_vm();
    // Registered after the standard one, which it replaces for the programs loaded here.
    vm.register_native(molt_vm::NativeDef {
        name: "read_line",
        f: repl_read_line,
        reads: molt_vm::Reads::World,
        task: None,
    });
    // The prompt says when an update is running its code.
    vm.dsu.applying = shared.applying.clone();
    vm.signals = shared.signals.clone();
    *shared.inspector.lock().unwrap_or_else(|p| p.into_inner()) = Some(vm.inspector());
    vm.out = Box::new(VmOut { shared: shared.clone(), buf: Vec::new() });
    let sh = shared.clone();
    vm.dsu.on_event = Some(Box::new(move |e: &UpdateEvent| on_event(&sh, e)));
    vm.set_update_source(Box::new(ReplSource { shared: shared.clone(), rx: rx.clone(), deferred: deferred.clone() }));
    vm
}

/// Loads `program` into `vm` and initialises its globals.
fn load(shared: &Shared, vm: &mut Vm, program: &Program) {
    match vm.load(program) {
        Ok((init, _)) => {
            shared.signals.clear_interrupt();
            let r = vm.call_slot(init, &[]);
            vm.flush();
            if let Err(e) = r {
                shared.out.print(format!("{e}").trim_end().to_string());
            }
        }
        Err(e) => shared.out.print(format!("error: {e}")),
    }
}

/// Runs the hidden function `func` of `program` without making a new version.
fn eval(shared: &Shared, vm: &mut Vm, program: &Program, func: &str) {
    let map = match vm.slot_map(program) {
        Ok(m) => m,
        Err(e) => return shared.out.print(format!("error: {e}")),
    };
    // The function and the lambdas it makes (however deeply nested), by the `Closure`
    // instructions that make them.
    let makers = program.closure_makers();
    let target = program.function_index(func);
    let made_by_target = |mut i: usize| {
        for _ in 0..makers.len() {
            let Some(Some(m)) = makers.get(i) else { break };
            if Some(*m) == target {
                return true;
            }
            i = *m as usize;
        }
        false
    };
    for (i, f) in program.functions.iter().enumerate() {
        if f.name == func || made_by_target(i) {
            let linked = vm.link_function(program, i, &map);
            let slot = linked.slot as usize;
            vm.funcs.set(slot, Some(Rc::new(linked)));
        }
    }
    let Some(slot) = vm.func_slot(func) else { return shared.out.print("error: the evaluation was not compiled") };
    shared.signals.clear_interrupt();
    let r = vm.call_slot(slot, &[]);
    vm.flush();
    match r {
        Ok(Value::Nil) => {}
        Ok(v) => shared.out.print(vm.repr(v)),
        Err(e) => shared.out.print(format!("{e}").trim_end().to_string()),
    }
}

fn globals(shared: &Shared, vm: &Vm) {
    let names = shared.session.lock().unwrap_or_else(|p| p.into_inner()).current.globals.clone();
    if names.is_empty() {
        return shared.out.print("(no globals)");
    }
    let mut text = String::new();
    for n in names {
        let v = vm.global_names.get_index_of(&n).and_then(|i| vm.globals.get(i).copied()).unwrap_or(Value::Nil);
        text.push_str(&format!("{n} = {}\n", vm.repr(v)));
    }
    shared.out.print(text);
}

/// After the program ended: an update that was pushed but not applied is applied now (the VM is
/// quiescent), whether it still waits in the channel or was already taken by the program.
fn settle(shared: &Shared, vm: &mut Vm, rx: &Receiver<Req>, deferred: &Deferred) {
    loop {
        match rx.try_recv() {
            Ok(Req::Apply { program, .. }) => {
                shared.applies_sent.fetch_sub(1, Ordering::SeqCst);
                vm.request_update(program);
            }
            Ok(other) => deferred.borrow_mut().push_back(other),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    let waiting =
        shared.session.lock().unwrap_or_else(|p| p.into_inner()).in_flight.as_ref().map(|p| p.program.clone());
    if let Some(program) = waiting {
        shared.asking_again.store(true, Ordering::SeqCst);
        vm.request_update(program);
        shared.asking_again.store(false, Ordering::SeqCst);
    }
}

/// The VM thread's loop: handles requests until `Quit` or until the editor thread is gone.
pub fn serve(shared: Arc<Shared>, rx: Receiver<Req>, done: Sender<Done>, program: Program) {
    let _ = SESSION.set(shared.clone());
    let rx = Rc::new(rx);
    let deferred: Deferred = Rc::new(RefCell::new(VecDeque::new()));
    let mut vm = make_vm(&shared, &rx, &deferred);
    load(&shared, &mut vm, &program);
    loop {
        let next = deferred.borrow_mut().pop_front();
        let req = match next {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let id = req.id();
        match req {
            Req::Quit => break,
            Req::Apply { program, .. } => {
                shared.applies_sent.fetch_sub(1, Ordering::SeqCst);
                vm.request_update(program);
            }
            Req::Eval { program, func, .. } => eval(&shared, &mut vm, &program, &func),
            Req::Load { program, .. } => {
                vm = make_vm(&shared, &rx, &deferred);
                load(&shared, &mut vm, &program);
            }
            Req::Globals { .. } => globals(&shared, &vm),
            Req::Run { .. } => {
                let Some(main) = vm.func_slot("main") else {
                    shared.out.print("error: the program has no `main` function");
                    let _ = done.send(Done { id });
                    continue;
                };
                shared.signals.clear_interrupt();
                shared.running.store(true, Ordering::SeqCst);
                shared.out.print("[main is running in the background; :reload pushes an edit, :stop stops it]");
                let _ = done.send(Done { id });
                // As task 1, with the tasks it spawns (dropped when it ends).
                let r = vm.run_as_task(main);
                vm.flush();
                shared.running.store(false, Ordering::SeqCst);
                shared.waiting_input.store(false, Ordering::SeqCst);
                match r {
                    Ok(_) => shared.out.print("[main finished]"),
                    Err(e) if e.message == "interrupted" => shared.out.print("[main stopped]"),
                    Err(e) => shared.out.print(format!("{e}[main ended with an error]")),
                }
                settle(&shared, &mut vm, &rx, &deferred);
                continue;
            }
        }
        let _ = done.send(Done { id });
    }
    vm.flush();
}
