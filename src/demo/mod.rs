//! `molt demo`: a guided live update. A small bank runs; three new versions arrive while it
//! runs: one retypes its records through a transformer, one has a migration that fails and is
//! rolled back, one fixes it. Everything needed is compiled into the binary.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;

use molt_vm::Program;
use molt_vm::update::event::escape_controls;
use molt_vm::update::{EventKind, UpdateEvent, UpdateSource};

const VERSIONS: [(&str, &str); 4] = [
    ("<demo: first program>", include_str!("v1.molt")),
    ("<demo: second program>", include_str!("v2.molt")),
    ("<demo: third program>", include_str!("v3.molt")),
    ("<demo: fourth program>", include_str!("v4.molt")),
];

/// At which update point (counted from the start) each new version arrives.
const ARRIVALS: [u32; 3] = [3, 6, 9];

fn compile(i: usize) -> Result<Program, String> {
    let (name, text) = VERSIONS[i];
    let out = molt_compiler::compile_source(name, text, &crate::compile_options(i as u32 + 1));
    match out.program {
        Some(p) if out.diagnostics.is_empty() => Ok(p),
        _ => Err(crate::diagnostics::render_plain(&out.files, &out.diagnostics)),
    }
}

/// Hands over version k+1 at the ARRIVALS[k]-th update point.
struct Schedule {
    points: u32,
    next: usize,
}

impl UpdateSource for Schedule {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        self.points += 1;
        if self.next < ARRIVALS.len() && self.points >= ARRIVALS[self.next] {
            self.next += 1;
            let explain = [
                "the second program arrives: Account's float `balance` becomes integer `cents` plus a `currency`;\n  `transform Account(old)` converts each live record, `report` prints the new format.",
                "the third program arrives: its `migrate` block capitalises every owner, then raises an error half-way.",
                "the fourth program arrives: the migration is fixed; it computes a new global, `bank_total`.\n  The third program was rolled back and used no version number, so this one becomes version 3.",
            ][self.next - 1];
            say(&format!("\n>> {explain}"));
            return Some(compile(self.next));
        }
        None
    }

    fn has_more(&self) -> bool {
        self.next < ARRIVALS.len()
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn explain(e: &UpdateEvent) {
    match e.kind {
        EventKind::Requested => say(&format!("   plan: {}", e.summary)),
        EventKind::Waiting => say(&format!("   waiting: {}", escape_controls(e.reason.as_deref().unwrap_or("")))),
        EventKind::Applied => say(&format!(
            "   applied at the next `update \"tick\"`: now version {}; {} record(s) transformed in place{},\n   paused {} us, of which {} us in transformers. The loop goes on in the new code:\n",
            e.to,
            e.objects_transformed,
            if e.objects_transformed > 0 { " (the same objects: every reference sees the new shape)" } else { "" },
            e.pause_us,
            e.transform_us
        )),
        EventKind::Rejected => say(&format!("   rejected: {}", escape_controls(e.reason.as_deref().unwrap_or("")))),
        EventKind::RolledBack => say(&format!(
            "   rolled back: {}\n   Nothing changed: the owners keep their names, the program goes on in version {}:\n",
            escape_controls(e.reason.as_deref().unwrap_or("")),
            e.from
        )),
        // The demo has one task: it switches with the update.
        EventKind::Switched | EventKind::Reverted => {}
    }
}

/// Runs the demo; `molt demo --fast` skips the pauses between ticks; with `events`
/// (`--events FILE`), every update event is also written to that file as a JSON line, as
/// `--trace-updates=json` prints it, for `molt timeline`.
pub fn run(fast: bool, events: Option<&Path>) -> std::process::ExitCode {
    let v1 = match compile(0) {
        Ok(p) => p,
        Err(e) => {
            crate::report!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Created before anything runs, so that a path that cannot be written is reported at once.
    let mut events_file = match events.map(|p| (p, std::fs::File::create(p))) {
        None => None,
        Some((_, Ok(f))) => Some(f),
        Some((p, Err(e))) => {
            crate::report!("error: cannot write '{}': {e}", p.display());
            return std::process::ExitCode::from(2);
        }
    };
    let write_error: Rc<RefCell<Option<std::io::Error>>> = Rc::default();
    say("Molt live-update demo");
    say("=====================");
    say("A small bank (version 1, built into this binary: src/demo/ in Molt's repository) runs a loop");
    say("with `update \"tick\";` at its head: the place where a new version may take over. Three new");
    say("programs arrive while it runs; each one that applies becomes the next version.\n");
    let mut vm = crate::new_vm();
    let (out, output) = crate::output::Stdout::new(false);
    vm.out = Box::new(out);
    if fast {
        vm.args = vec!["fast".into()];
    }
    let failed = write_error.clone();
    vm.dsu.on_event = Some(Box::new(move |e: &UpdateEvent| {
        explain(e);
        if let Some(f) = &mut events_file {
            if let Err(err) = writeln!(f, "{}", e.json()) {
                failed.borrow_mut().get_or_insert(err);
            }
        }
    }));
    vm.set_update_source(Box::new(Schedule { points: 0, next: 0 }));
    let result = vm.run_program(&v1);
    vm.flush();
    if let (Some(path), Some(e)) = (events, write_error.borrow_mut().take()) {
        crate::report!("error: cannot write '{}': {e}", path.display());
        return std::process::ExitCode::from(2);
    }
    match result {
        Ok(()) => {
            say(&format!(
                "\nThe program ended in version {}, with all its state: no restart, nothing lost.",
                vm.version
            ));
            say("Try it yourself: molt run FILE --update NEW_FILE --trace-updates (see examples/).");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => match output.error() {
            // `print` on a closed pipe (`molt demo | head`): the reader is gone.
            Some((std::io::ErrorKind::BrokenPipe, _)) => std::process::ExitCode::SUCCESS,
            _ => {
                crate::report_raw!("{e}");
                std::process::ExitCode::from(1)
            }
        },
    }
}
