//! Interpreter and JIT speed on the peer programs (`benches/programs/*.molt`) at small sizes,
//! in a long-running program's steady state: each program is loaded into a VM and run once
//! (globals initialised, `main` returned; with the tier on, the hot code compiled), then each
//! iteration runs its `main` again, output discarded. The `jit` group has the tier `on` (the
//! default: functions compile once hot, specialised on what the interpreter saw), so compile
//! time is paid in that first run, not per iteration.
//!
//! `cargo bench --bench interpreter` (a few seconds per program); `-- --test` runs each once.

use std::hint::black_box;
use std::time::Duration;

use molt_vm::Vm;
use molt_vm::tier::JitMode;

use criterion::{Criterion, criterion_group, criterion_main};

/// (program, size) pairs: small enough that one run takes milliseconds.
const CASES: &[(&str, &str)] =
    &[("fib", "25"), ("loop", "1000000"), ("method_call", "100000"), ("binary_trees", "10"), ("nbody", "10000")];

fn compile(name: &str) -> molt::Program {
    let path = format!("{}/benches/programs/{name}.molt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let out = molt::compile_str(&path, &text);
    assert!(out.diagnostics.is_empty(), "{path} does not compile");
    out.program.expect("a program")
}

/// A VM that has run `program` once, and the slot of its `main`.
fn warm(program: &molt::Program, size: &str, jit: bool) -> (Vm, u32) {
    let mut vm = molt::new_vm();
    if jit {
        vm.jit = Some(Box::new(molt_jit::Jit::new().expect("a JIT for this machine")));
        vm.set_jit_mode(JitMode::On);
    }
    vm.out = Box::new(std::io::sink());
    vm.args = vec![size.to_string()];
    vm.run_program(program).expect("the program runs");
    let main = vm.func_slot("main").expect("a main function");
    (vm, main)
}

fn group(c: &mut Criterion, name: &str, jit: bool) {
    let mut g = c.benchmark_group(name);
    for &(program, size) in CASES {
        let (mut vm, main) = warm(&compile(program), size, jit);
        g.bench_function(format!("{program}({size})"), |b| {
            b.iter(|| black_box(vm.call_slot(main, &[]).expect("main runs")))
        });
    }
    g.finish();
}

fn interpreter(c: &mut Criterion) {
    group(c, "interpreter", false);
}

fn jit(c: &mut Criterion) {
    if molt_jit::Jit::new().is_ok() {
        group(c, "jit", true);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = interpreter, jit
}
criterion_main!(benches);
