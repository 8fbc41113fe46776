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
