//! `molt repl [FILE]`: the interactive session. See docs/repl.md.
//!
//! Two threads: this one runs the rustyline editor, compiles what is typed and decides what to
//! do; the VM thread (`vmthread`) owns the VM and runs code. The session's source (`session`)
//! is shared between them behind a mutex; the VM thread's update-event hook keeps it in step
//! with the VM (an update is committed to the session only when the VM applied it).

mod helper;
pub mod session;
mod vmthread;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use molt_compiler::ast::Item;
use molt_vm::Program;
use molt_vm::signals::Signals;
use molt_vm::update::UpdatePlan;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

pub use helper::highlight;
use helper::{COMMANDS, Names, ReplHelper};
use session::{
    EVAL_PREFIX, Parsed, PromptItem, Push, Session, Typed, classify, item_name, item_text, render, snapshot,
};
use vmthread::{Done, Out, Req};

/// State both threads see.
pub struct Shared {
    pub session: Mutex<Session>,
    pub out: Out,
    /// `main` runs on the VM thread (`:run`).
    pub running: AtomicBool,
    /// `:trace on`: every update event is shown, not only outcomes.
    pub trace: AtomicBool,
    /// While the VM thread asks again for an update that was waiting when the program
    /// stopped (`settle`): its `requested` was already shown.
    pub asking_again: AtomicBool,
    /// The VM's signal word: Ctrl-C and `:stop` raise its interrupt; a version sent while
    /// `main` runs raises its update signal.
    pub signals: Arc<Signals>,
    /// Versions sent to the VM thread and not yet taken by it (`Req::Apply`).
    pub applies_sent: std::sync::atomic::AtomicUsize,
    pub names: Arc<Mutex<Names>>,
    /// Lines given with `:input`, not yet read by the program's `read_line()`.
    pub input: Mutex<std::collections::VecDeque<String>>,
    /// Signalled when a line is given.
    pub input_ready: std::sync::Condvar,
    /// The running program waits in `read_line()`.
    pub waiting_input: AtomicBool,
    /// An update is being applied (the VM's `dsu.applying`): its code may be running.
    pub applying: Arc<AtomicBool>,
    /// How to ask the VM thread's current VM for its status while `main` runs (`:tasks`).
    pub inspector: Mutex<Option<molt_vm::inspect::Inspector>>,
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recomputes the completion names from the running program.
    pub fn refresh_names(&self) {
        let names = Names::of(&self.session().current);
        *self.names.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }
}

/// Where the history is kept: `$MOLT_HISTORY` (empty: no history file), else
/// `$XDG_DATA_HOME/molt/history`, else `~/.local/share/molt/history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOLT_HISTORY") {
        return if p.is_empty() { None } else { Some(PathBuf::from(p)) };
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local").join("share"),
    };
    Some(data.join("molt").join("history"))
}

struct Repl {
    shared: Arc<Shared>,
    tx: Sender<Req>,
    done: Receiver<Done>,
    next_req: u64,
}

/// Compiles the program a session starts from: FILE alone, or nothing but the prelude.
fn compile_start(file: Option<&PathBuf>) -> Result<(Program, HashMap<String, String>), String> {
    if let Some(f) = file {
        // Checked here: the session imports FILE from its own `<repl>` entry file, whose
        // `import` line would otherwise take the blame.
        if f.is_dir() {
            return Err(format!("error: cannot load '{}': it is a directory (give a .molt file)", f.display()));
        }
        if let Err(e) = molt_compiler::read_source(f) {
            return Err(format!("error: cannot read '{}': {e}", f.display()));
        }
    }
    let empty = Session::new(empty_program(), file.cloned(), HashMap::new());
    let out = Session::compile(empty.compose(true, &[], None, true), 1);
    let sources = snapshot(&out);
    match out.program {
        Some(p) if out.diagnostics.is_empty() => Ok((p, sources)),
        _ => Err(render(&out, None)),
    }
}

fn empty_program() -> Program {
    crate::compile_str("<repl>", "").program.unwrap_or(Program {
        version: 1,
        files: Vec::new(),
        globals: Vec::new(),
        global_inits: Vec::new(),
        functions: Vec::new(),
        types: Vec::new(),
        names: Vec::new(),
        natives: Vec::new(),
        init: 0,
        main: None,
        transforms: Vec::new(),
        migrate: None,
    })
}

const BANNER: &str = "molt repl: type definitions, statements or expressions; :help lists the commands, Ctrl-D leaves";

/// Runs the REPL; `file` is loaded first.
pub fn main(file: Option<PathBuf>) -> ExitCode {
    let config = match Config::builder().auto_add_history(false).max_history_size(1000) {
        Ok(b) => b.build(),
        Err(e) => {
            crate::report!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rl: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(rl) => rl,
        Err(e) => {
            crate::report!("error: cannot start the line editor: {e}");
            return ExitCode::from(2);
        }
    };
    let printer = rl.create_external_printer().ok().map(|p| Box::new(p) as Box<dyn rustyline::ExternalPrinter + Send>);
    let names = Arc::new(Mutex::new(Names::default()));
    rl.set_helper(Some(ReplHelper::new(names.clone())));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }

    let (program, sources, file, startup_error) = match compile_start(file.as_ref()) {
        Ok((p, sources)) => (p, sources, file, None),
        Err(e) => (empty_program(), HashMap::new(), None, Some(e)),
    };
    let shared = Arc::new(Shared {
        session: Mutex::new(Session::new(program.clone(), file.clone(), sources)),
        out: Out::new(printer),
        running: AtomicBool::new(false),
        trace: AtomicBool::new(false),
        asking_again: AtomicBool::new(false),
        signals: Arc::new(Signals::new()),
        applies_sent: std::sync::atomic::AtomicUsize::new(0),
        names,
        input: Mutex::new(std::collections::VecDeque::new()),
        input_ready: std::sync::Condvar::new(),
        waiting_input: AtomicBool::new(false),
        applying: Arc::new(AtomicBool::new(false)),
        inspector: Mutex::new(None),
    });
    shared.refresh_names();
    {
        // Ctrl-C while code runs (the editor is not reading): interrupt it, keep the session.
        let signals = shared.signals.clone();
        let _ = ctrlc::set_handler(move || signals.interrupt());
    }
    let (tx, rx) = channel();
    let (done_tx, done) = channel();
    let vm_shared = shared.clone();
    let vm_thread = std::thread::Builder::new()
        .name("molt-vm".into())
        .stack_size(1 << 30)
        .spawn(move || vmthread::serve(vm_shared, rx, done_tx, program));
    let Ok(vm_thread) = vm_thread else {
        crate::report!("error: cannot start the VM thread");
        return ExitCode::from(2);
    };
    let mut repl = Repl { shared: shared.clone(), tx, done, next_req: 1 };

    repl.say(BANNER);
    if let Some(e) = startup_error {
        repl.say(e.trim_end());
        repl.say("(starting with an empty session; fix the file and :load it)");
    } else if let Some(f) = &file {
        repl.say(format!("loaded {}", f.display()));
    }
    loop {
        match rl.readline("molt> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                if !repl.entry(&line) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {
                if shared.running.load(Ordering::SeqCst) {
                    repl.say("(the program is still running; :stop stops it, :quit leaves)");
                }
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                repl.say(format!("error: {e}"));
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = rl.append_history(h) {
            let _ = rl
                .save_history(h)
                .map_err(|_| crate::report!("warning: cannot save the history to {}: {e}", h.display()));
        }
    }
    shared.signals.interrupt();
    let _ = repl.tx.send(Req::Quit);
    drop(rl);
    let _ = vm_thread.join();
    ExitCode::SUCCESS
}

impl Repl {
    fn say(&self, text: impl Into<String>) {
        self.shared.out.print(text);
    }

    fn running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    fn id(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Waits until the VM thread reports request `id` handled.
    fn wait_for(&mut self, id: u64) {
        loop {
            match self.done.recv() {
                Ok(d) if d.id == id => return,
                Ok(_) => continue,
                Err(_) => return self.say("error: the VM thread has stopped"),
            }
        }
    }

    /// Sends a request and waits until the VM thread has handled it.
    fn call(&mut self, make: impl FnOnce(u64) -> Req) {
        let id = self.id();
        if self.tx.send(make(id)).is_err() {
            self.say("error: the VM thread has stopped");
            return;
        }
        self.wait_for(id);
    }

    /// Handles one entry; false to leave.
    fn entry(&mut self, line: &str) -> bool {
        let t = line.trim();
        if let Some(cmd) = t.strip_prefix(':') {
            let (name, arg) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
            return self.command(name, arg.trim());
        }
        self.input(line);
        true
    }

    fn command(&mut self, name: &str, arg: &str) -> bool {
        let full = format!(":{name}");
        let matches: Vec<&str> = COMMANDS.iter().map(|c| c.0).filter(|c| c.starts_with(&full)).collect();
        let cmd = match matches.as_slice() {
            [one] => *one,
            _ if matches.contains(&full.as_str()) => full.as_str(),
            [] => {
                self.say(format!("unknown command '{full}' (:help lists them)"));
                return true;
            }
            _ => {
                self.say(format!("'{full}' could be {}", matches.join(", ")));
                return true;
            }
        };
        match cmd {
            ":quit" => return false,
            ":help" => self.help(),
            ":load" => self.load(arg),
            ":run" => self.run(),
            ":stop" => self.stop(),
            ":input" => self.give_input(arg),
            ":reload" => self.reload(false),
            ":plan" => self.reload(true),
            ":versions" => self.versions(),
            ":trace" => match arg {
                "on" => {
                    self.shared.trace.store(true, Ordering::SeqCst);
                    self.say("trace on: every update event is shown");
                }
                "off" => {
                    self.shared.trace.store(false, Ordering::SeqCst);
                    self.say("trace off: only applied, rejected and rolled-back updates are shown");
                }
                _ => self.say("usage: :trace on|off"),
            },
            ":globals" => self.globals(),
            ":types" => self.types(),
            ":funcs" => self.funcs(),
            ":tasks" => self.tasks(),
            ":undo" => self.undo(),
            _ => {}
        }
        true
    }

    fn help(&self) {
        let mut s = String::from("commands:\n");
        for (c, arg, what) in COMMANDS {
            let head = if arg.is_empty() { c.to_string() } else { format!("{c} {arg}") };
            s.push_str(&format!("  {head:<16} {what}\n"));
        }
        s.push_str(
            "anything else is Molt: definitions (fn, type, let, import) become an update of the running\n\
             program; statements and expressions run at once and an expression's value is printed.\n\
             Input continues on the next line while it is incomplete. Ctrl-C interrupts, Ctrl-D leaves.",
        );
        self.say(s);
    }

    fn load(&mut self, arg: &str) {
        if arg.is_empty() {
            return self.say("usage: :load FILE");
        }
        if self.running() {
            return self.say("the program is running: :stop it before loading another");
        }
        let file = PathBuf::from(arg);
        match compile_start(Some(&file)) {
            Err(e) => {
                self.say(e.trim_end());
                self.say(format!("{} was not loaded; the session is unchanged", file.display()));
            }
            Ok((program, sources)) => {
                let summary = format!(
                    "loaded {} (version 1: {} functions, {} types, {} globals{})",
                    file.display(),
                    program.functions.iter().filter(|f| molt_vm::update::plan::is_visible(&f.name)).count(),
                    program.types.len(),
                    program.globals.len(),
                    if program.main.is_some() { "; :run starts main" } else { "" }
                );
                *self.shared.session() = Session::new(program.clone(), Some(file), sources);
                self.shared.refresh_names();
                self.call(|id| Req::Load { id, program });
                self.say(summary);
            }
        }
    }

    fn run(&mut self) {
        if self.running() {
            return self.say("the program is already running (:stop stops it)");
        }
        if self.shared.session().current.main.is_none() {
            return self.say("there is no `main` to run (:load a program, or define fn main() at the prompt)");
        }
        self.call(|id| Req::Run { id });
    }

    /// Stops the running program. An update whose code is running (`migrate`, a transformer,
    /// a new global's initialiser) is interrupted and rolled back, then the program stops
    /// (the VM raises the interrupt again after the rollback).
    /// `:undo`: an update back to the previous version's program (and prompt items): a new
    /// version number, applied like any update; a second `:undo` goes one further back.
    fn undo(&mut self) {
        if self.busy() {
            return;
        }
        let earlier = self.shared.session().undo.pop();
        let Some(e) = earlier else {
            return self.say("nothing to undo: this is the session's first version (or every later one was undone)");
        };
        let push = Push {
            program: e.program.clone(),
            items: e.items.clone(),
            file: e.file.clone(),
            sources: e.sources.clone(),
            what: ":undo".into(),
            undoes: Some(e),
        };
        self.push(push);
    }

    /// `:tasks`: asks the running program for its tasks at its next safepoint.
    fn tasks(&mut self) {
        if !self.running() {
            return self.say("nothing is running (`:run` starts main; its tasks are listed here while it runs)");
        }
        let inspector = self.shared.inspector.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(inspector) = inspector else { return self.say("nothing is running") };
        match inspector.ask().recv_timeout(Duration::from_secs(2)) {
            Ok(status) => self.say(status.to_string().trim_end()),
            Err(_) => self.say(
                "the program did not answer within 2 s: it is inside one long built-in call (`sleep`, `read_line` before any task was spawned); try again",
            ),
        }
    }

    fn stop(&mut self) {
        if !self.running() {
            return self.say("nothing is running");
        }
        if self.shared.applying.load(Ordering::SeqCst) {
            self.say("[interrupting the update's code: it is rolled back, then the program stops]");
        }
        self.shared.signals.interrupt();
        let start = Instant::now();
        while self.running() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.running() {
            self.say("(asked to stop: the program stops at its next loop iteration)");
        }
    }

    /// `:input TEXT`: a line for the program's `read_line()` (the editor owns the terminal).
    fn give_input(&mut self, text: &str) {
        let waiting = self.shared.waiting_input.load(Ordering::SeqCst);
        let mut input = self.shared.input.lock().unwrap_or_else(|p| p.into_inner());
        input.push_back(text.to_string());
        let queued = input.len();
        drop(input);
        self.shared.input_ready.notify_all();
        if !waiting {
            let lines = if queued == 1 { "1 line".to_string() } else { format!("{queued} lines") };
            self.say(format!("({lines} of input waiting for the program's next read_line())"));
        }
    }

    fn busy(&self) -> bool {
        if self.shared.session().in_flight.is_some() {
            if self.shared.applying.load(Ordering::SeqCst) {
                self.say("an update is being applied: the program is running its code (migrate, a transformer or a new global's initialiser); try again once it is applied or rolled back, or :stop to roll it back and stop the program");
            } else {
                self.say("an update is still waiting for the program's next update point; try again once it is applied or rejected");
            }
            return true;
        }
        false
    }

    /// Hands an update to the VM: applied now when nothing runs, else at the next update point.
    fn push(&mut self, push: Push) {
        let program = push.program.clone();
        let what = push.what.clone();
        let id = self.id();
        let mut s = self.shared.session();
        s.in_flight = Some(push);
        s.pushed_at = Some(Instant::now());
        self.shared.applies_sent.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(Req::Apply { id, program });
        // A running program takes it at its next update point.
        self.shared.signals.raise_update();
        drop(s);
        if self.running() {
            self.say(match what.starts_with("evaluation") {
                true => "[the program is running: this runs at its next update point]".to_string(),
                false => format!("[{what}: pushed, it applies at the program's next update point]"),
            });
            return;
        }
        self.wait_for(id);
    }

    /// `:reload` (or `:plan` with `plan_only`).
    fn reload(&mut self, plan_only: bool) {
        if !plan_only && self.busy() {
            return;
        }
        let (comp, version, current, file, mut items, dropped) = {
            let s = self.shared.session();
            let Some(file) = s.file.clone() else {
                drop(s);
                return self.say("no program is loaded (:load FILE)");
            };
            let names = s.file_names();
            let (dropped, kept): (Vec<PromptItem>, Vec<PromptItem>) =
                s.items.iter().cloned().partition(|i| i.name.as_ref().is_some_and(|n| names.contains(n)));
            let comp = s.compose(true, &kept, None, true);
            (comp, s.version + 1, s.current.clone(), file, kept, dropped)
        };
        let mut out = Session::compile(comp, version);
        // Definitions typed at the prompt that no longer compile against the file (it changed
        // a type they build, removed a function they call) give way to it, as same-named
        // ones do: the update leaves them out, and says so.
        let mut stale: Vec<PromptItem> = Vec::new();
        let in_prompt = |out: &molt_compiler::Output| -> Option<Vec<u32>> {
            let ids: Option<Vec<u32>> = out
                .diagnostics
                .iter()
                .map(|d| out.files.get(d.file)?.path.strip_prefix("<prompt ")?.strip_suffix('>')?.parse().ok())
                .collect();
            ids.filter(|ids| !ids.is_empty())
        };
        let prompt_only = in_prompt(&out);
        if let Some(ids) = &prompt_only {
            let (bad, good): (Vec<PromptItem>, Vec<PromptItem>) =
                items.iter().cloned().partition(|i| ids.contains(&i.id));
            // Functions only: leaving a global out would drop its value.
            if bad.iter().all(|i| i.text.trim_start().starts_with("fn ")) {
                let retry = Session::compile(self.shared.session().compose(true, &good, None, true), version);
                if retry.diagnostics.is_empty() && retry.program.is_some() {
                    self.say(render(&out, None).trim_end());
                    (out, items, stale) = (retry, good, bad);
                }
            }
        }
        let sources = snapshot(&out);
        let program = match out.program {
            Some(p) if out.diagnostics.is_empty() => p,
            _ => {
                self.say(render(&out, None).trim_end());
                let what = if plan_only { "no plan" } else { "not pushed: the program goes on unchanged" };
                if prompt_only.is_some() {
                    return self.say(format!(
                        "{} compiles, but definitions typed at the prompt do not compile against it (above): {what}; type them again to fit the file, then :reload",
                        file.display()
                    ));
                }
                return self.say(format!("{} does not compile: {what}", file.display()));
            }
        };
        let plan = UpdatePlan::new(&current, &program, version - 1);
        self.say(plan.to_string().trim_end());
        for d in &dropped {
            let n = d.name.as_deref().unwrap_or("?");
            let verb = if plan_only { "would replace" } else { "replaces" };
            self.say(format!("note: the file's definition of {n} {verb} the one typed at the prompt"));
        }
        for d in &stale {
            let n = d.name.as_deref().unwrap_or("an import");
            let verb = if plan_only { "would be left out" } else { "is left out" };
            self.say(format!(
                "note: {n}, typed at the prompt, does not compile against {} any more (above): it {verb} (type it again to fit)",
                file.display()
            ));
        }
        if plan_only {
            return;
        }
        self.push(Push { program, items, file: Some(file), sources, what: ":reload".into(), undoes: None });
    }

    fn versions(&self) {
        let s = self.shared.session();
        let mut text = String::new();
        for v in &s.versions {
            match &v.plan {
                None => text.push_str(&format!("version {}: {}\n", v.version, v.what)),
                Some(p) => text.push_str(&format!(
                    "version {}: {} ({}), paused {} us\n",
                    v.version,
                    v.what,
                    p.summary(),
                    v.pause_us
                )),
            }
        }
        drop(s);
        self.say(text);
    }

    fn globals(&mut self) {
        if self.running() {
            // Read at the program's next update point, like any evaluation while it runs.
            let globals = self.shared.session().current.globals.clone();
            if globals.is_empty() {
                return self.say("(no globals)");
            }
            let body: Vec<String> = globals
                .iter()
                .map(|g| format!("print(\"{g} = \" + str([{g}]).slice(1, len(str([{g}])) - 1));"))
                .collect();
            return self.code(&body.join("\n"), None);
        }
        self.call(|id| Req::Globals { id });
    }

    fn types(&self) {
        let s = self.shared.session();
        if s.current.types.is_empty() {
            drop(s);
            return self.say("(no types)");
        }
        let mut text = String::new();
        for t in &s.current.types {
            let fields: Vec<String> = t
                .fields
                .iter()
                .zip(&t.defaults)
                .map(|(f, d)| if d.is_some() { format!("{f} = ..") } else { f.clone() })
                .collect();
            let methods: Vec<&str> = t.methods.iter().map(|(m, _)| m.as_str()).collect();
            text.push_str(&format!("type {} {{ {} }}", t.name, fields.join(", ")));
            if !methods.is_empty() {
                text.push_str(&format!("  methods: {}", methods.join(", ")));
            }
            text.push('\n');
        }
        drop(s);
        self.say(text);
    }

    fn funcs(&self) {
        let s = self.shared.session();
        let mut text = String::new();
        for f in &s.current.functions {
            if !molt_vm::update::plan::is_visible(&f.name) || f.name.contains('.') {
                continue;
            }
            let mut params: Vec<&molt_vm::LocalInfo> =
                f.locals.iter().filter(|l| (l.reg as usize) < f.arity as usize).collect();
            params.sort_by_key(|l| l.reg);
            params.dedup_by_key(|l| l.reg);
            let params: Vec<&str> = params.iter().map(|l| l.name.as_str()).collect();
            let file = s.current.files.get(f.file as usize).map_or("?", |p| p.as_str());
            let place = if file.starts_with("<prompt") { "prompt".to_string() } else { format!("{file}:{}", f.line) };
            text.push_str(&format!("fn {}({})  [{place}]\n", f.name, params.join(", ")));
        }
        drop(s);
        self.say(if text.is_empty() { "(no functions)".to_string() } else { text });
    }

    /// Molt typed at the prompt.
    fn input(&mut self, text: &str) {
        match classify(text) {
            Parsed::Empty => {}
            Parsed::Items(items) => self.items(text, items),
            Parsed::Code { body, value } => self.code(&body, value),
            Parsed::Mixed { items, split, body, value } => {
                let before = self.shared.session().version;
                self.items(&text[..split], items);
                // The statements use what was just defined: they run once it is (at once when
                // nothing runs; a running program takes it at its next update point first).
                if self.shared.session().version != before || self.running() {
                    self.code(&body, value);
                }
            }
            Parsed::Incomplete | Parsed::Invalid { as_items: false } => self.code(text, None),
            Parsed::Invalid { as_items: true } => self.definitions_error(text),
        }
    }

    /// Reports the errors of input that reads as items.
    fn definitions_error(&mut self, text: &str) {
        let s = self.shared.session();
        let comp = s.compose(false, &s.items, Some(("<input>", text)), false);
        let version = s.version + 1;
        drop(s);
        let out = Session::compile(comp, version);
        self.say(render(&out, None).trim_end());
    }

    /// Definitions: an update of the running program. A `let` of an existing global is an
    /// assignment instead (a global's initialiser runs once).
    fn items(&mut self, text: &str, items: Vec<Item>) {
        let mut assignments = Vec::new();
        let mut new_items = Vec::new();
        let mut one_shot = Vec::new();
        {
            let s = self.shared.session();
            for item in &items {
                match item {
                    Item::Global { name, init } if s.is_global(&name.name) => {
                        assignments.push(format!("{} = {};", name.name, &text[init.span.0..init.span.1]))
                    }
                    Item::Transform { span, .. } | Item::Migrate { span, .. } => one_shot.push(*span),
                    _ => new_items.push(item.clone()),
                }
            }
        }
        if !new_items.is_empty() || !one_shot.is_empty() {
            if self.busy() {
                return;
            }
            let before = self.shared.session().version;
            self.define(text, &new_items, &one_shot);
            if self.shared.session().version == before && !self.running() {
                return; // not applied: the assignments would see the old program
            }
        }
        if !assignments.is_empty() {
            let body = assignments.join("\n");
            self.code(&body, None);
        }
    }

    fn define(&mut self, text: &str, new_items: &[Item], one_shot: &[(usize, usize)]) {
        let (out, sources, file, items) = {
            let mut s = self.shared.session();
            let names: Vec<&str> = new_items.iter().filter_map(item_name).collect();
            let mut items: Vec<PromptItem> =
                s.items.iter().filter(|i| !i.name.as_deref().is_some_and(|n| names.contains(&n))).cloned().collect();
            for item in new_items {
                if let Some(t) = item_text(text, item) {
                    let id = s.fresh_id();
                    items.push(PromptItem { name: item_name(item).map(str::to_string), text: t, id });
                }
            }
            // transform / migrate typed with the definitions: part of this update only.
            let mut extra = String::new();
            for &(a, b) in one_shot {
                extra.push_str(&text[a..b]);
                extra.push('\n');
            }
            let extra_name = format!("<input {}>", s.fresh_id());
            let extra = if extra.is_empty() { None } else { Some((extra_name.as_str(), extra.as_str())) };
            let comp = s.compose(false, &items, extra, false);
            let out = Session::compile(comp, s.version + 1);
            (out, s.sources.clone(), s.file.clone(), items)
        };
        let program = match out.program {
            Some(p) if out.diagnostics.is_empty() => p,
            _ => {
                self.say(render(&out, None).trim_end());
                return self.say("(nothing was defined: the program goes on unchanged)");
            }
        };
        let names: Vec<&str> = new_items.iter().filter_map(item_name).collect();
        let what = if names.is_empty() { "prompt".to_string() } else { format!("prompt: {}", names.join(", ")) };
        self.push(Push { program, items, file, sources, what, undoes: None });
    }

    /// Statements (and a final expression, whose value is printed) run at once in a hidden
    /// function compiled in the context of the session.
    fn code(&mut self, body: &str, value: Option<(usize, usize)>) {
        let running = self.running();
        if running && self.busy() {
            return;
        }
        let (out, func, name, text, prefix, inserts, push) = {
            let mut s = self.shared.session();
            let n = s.fresh_id();
            let func = format!("{EVAL_PREFIX}{n}");
            let prefix = format!("fn {func}() {{");
            let (text, inserts) = match value {
                Some((a, b)) => {
                    (format!("{}return ({}){}", &body[..a], &body[a..b], &body[b..]), vec![(a, 8), (b + 8, 1)])
                }
                None => (body.to_string(), Vec::new()),
            };
            let mut full = format!("{prefix}{text}\n}}\n");
            if running {
                // The program runs: the code runs at its next update point, as the `migrate`
                // block of an update that adds nothing else.
                full.push_str(&format!(
                    "migrate {{ let v = {func}(); if v != nil {{ let s = str([v]); print(s.slice(1, len(s) - 1)); }} }}\n"
                ));
            }
            let name = format!("<input {n}>");
            let comp = s.compose(false, &s.items, Some((&name, &full)), false);
            let version = if running { s.version + 1 } else { s.version };
            let push = running.then(|| (s.items.clone(), s.file.clone(), s.sources.clone()));
            (Session::compile(comp, version), func, name, body.to_string(), prefix.len(), inserts, push)
        };
        let program = match out.program {
            Some(p) if out.diagnostics.is_empty() => p,
            _ => {
                return self
                    .say(render(&out, Some(Typed { file: &name, text: &text, prefix, inserts: &inserts })).trim_end());
            }
        };
        match push {
            Some((items, file, sources)) => self.push(Push {
                program,
                items,
                file,
                sources,
                what: "evaluation at an update point".into(),
                undoes: None,
            }),
            None => self.call(|id| Req::Eval { id, program, func }),
        }
    }
}

/// `molt repl` arguments: at most one FILE.
pub fn cmd(args: &[String]) -> Result<Option<PathBuf>, String> {
    match args {
        [] => Ok(None),
        [f] if !f.starts_with('-') => Ok(Some(Path::new(f).to_path_buf())),
        _ => Err("`molt repl` takes at most one FILE".into()),
    }
}
