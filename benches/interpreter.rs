//! Interpreter and JIT speed on the peer programs (`benches/programs/*.molt`) at small sizes:
//! each program is compiled once, then run per iteration on a fresh VM with its output
//! discarded. The `jit` group runs them under `--jit always` with one Cranelift compiler kept
//! across iterations (its code is shared by content), so compile time is paid once, in the
//! warm-up, not per iteration.
//!
//! `cargo bench --bench interpreter` (a few seconds per program); `-- --test` runs each once.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use molt_vm::tier::{CompiledCode, Feedback, JitMode, TierCompiler};
use molt_vm::{NativeDef, Proto, Value};

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

/// One compiler shared by the fresh VMs of every iteration.
struct SharedJit(Rc<RefCell<molt_jit::Jit>>);

impl TierCompiler for SharedJit {
    fn compile(
        &mut self,
        proto: &Proto,
        consts: &[Value],
        natives: &[NativeDef],
        feedback: Feedback,
    ) -> Option<Box<dyn CompiledCode>> {
        self.0.borrow_mut().compile(proto, consts, natives, feedback)
    }
}

fn run(program: &molt::Program, size: &str, jit: Option<&Rc<RefCell<molt_jit::Jit>>>) {
    let mut vm = molt::new_vm();
    if let Some(jit) = jit {
        vm.jit = Some(Box::new(SharedJit(jit.clone())));
        // The default mode: functions compile once hot, specialised on what the interpreter
        // saw (typed loops, inlined methods). The first iteration compiles; later ones get
        // that code back from the shared compiler (by content), as a long-running program
        // would keep it.
        vm.set_jit_mode(JitMode::On);
    }
    vm.out = Box::new(std::io::sink());
    vm.args = vec![size.to_string()];
    vm.run_program(program).expect("the program runs");
    black_box(&vm);
}

fn interpreter(c: &mut Criterion) {
    let mut g = c.benchmark_group("interpreter");
    for &(name, size) in CASES {
        let program = compile(name);
        g.bench_function(format!("{name}({size})"), |b| b.iter(|| run(&program, size, None)));
    }
    g.finish();
}

fn jit(c: &mut Criterion) {
    let Ok(compiler) = molt_jit::Jit::new() else { return };
    let compiler = Rc::new(RefCell::new(compiler));
    let mut g = c.benchmark_group("jit");
    for &(name, size) in CASES {
        let program = compile(name);
        g.bench_function(format!("{name}({size})"), |b| b.iter(|| run(&program, size, Some(&compiler))));
    }
    g.finish();
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
