//! The interrupt flag (Ctrl-C in the REPL, `:stop`) stops a running program at its next
//! safepoint: a loop back-edge or a call, so a recursion without loops stops too.

fn run_interrupted(src: &str) -> String {
    let out = molt::compile_str("interrupt.molt", src);
    let program = out.program.expect("compiles");
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    vm.signals.interrupt();
    let err = vm.run_program(&program).expect_err("interrupted");
    assert!(!vm.signals.interrupted(), "the interrupt is consumed");
    err.message
}

#[test]
fn loops_and_calls_are_interruptible() {
    assert_eq!(run_interrupted("fn main() { while true { } }"), "interrupted");
    assert_eq!(run_interrupted("fn down(n) { return down(n + 1); }\nfn main() { down(0); }"), "interrupted");
}

/// Issue 17, finding 8: an interrupt that stops an update's own code (here an endless
/// `migrate`) rolls the update back and still stands, so the program stops too (it used to be
/// consumed by the update: the program went on until a second interrupt).
#[test]
fn an_interrupted_migrate_rolls_back_and_the_interrupt_stands() {
    use molt_vm::update::EventKind;
    let v1 = molt::compile_str("app.molt", "let n = 1;\nfn main() { }\n").program.expect("compiles");
    let v2 = molt::compile_str("app.molt", "let n = 1;\nfn main() { }\nmigrate { while true { } }\n")
        .program
        .expect("compiles");
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    let (init, _) = vm.load(&v1).expect("loads");
    vm.call_slot(init, &[]).expect("initialises");
    vm.signals.interrupt();
    let events = vm.request_update(v2);
    let last = events.last().expect("events");
    assert_eq!(last.kind, EventKind::RolledBack);
    assert_eq!(last.reason.as_deref(), Some("migrate failed: interrupted (at <migrate> app.molt:3)"));
    assert!(vm.signals.interrupted(), "the interrupt stands for the program");
}

/// An interrupt that reaches a task other than main (here a busy worker main waits for)
/// stops the whole program, not just that task; so does one while every task sleeps.
#[test]
fn an_interrupt_stops_every_task() {
    for src in [
        "fn spin() { while true { } }\nfn main() { let t = spawn(spin); t.join(); }",
        "fn nap() { sleep(1000); }\nfn main() { let t = spawn(nap); t.join(); }",
    ] {
        let program = molt::compile_str("tasks.molt", src).program.expect("compiles");
        let mut vm = molt::new_vm();
        vm.out = Box::new(std::io::sink());
        let signals = vm.signals.clone();
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            signals.interrupt();
        });
        let err = vm.run_program(&program).expect_err("interrupted");
        raiser.join().expect("joins");
        assert_eq!(err.message, "interrupted", "{src}");
    }
}
