//! What an update costs, measured through the embedding API (`Vm::request_update`, which plans,
//! validates and, with no code running, applies at once):
//!
//! - `pause_by_functions`: a code-only update of a program with N functions, 10% of them changed.
//! - `transform_by_records`: an eager update that converts N live records, with the default
//!   transformer (a field added with a default) and with an explicit `transform`; plus the lazy
//!   mode (commit only; records are converted at first use) for comparison.
//! - `update_points`: the steady-state cost of an `update;` point in a tight loop.
//! - `pause_with_tasks`: a code-only update applied while N tasks are blocked on a channel
//!   (the global model: every task's quiescence checked, their frames moved); timed by the
//!   `applied` event's `pause_us` of a whole run; and the same update as a per-task
//!   transition (`per_task_transition`), timed by `transition_us` (request to last switch).
//!
//! Each timed iteration gets a fresh VM built outside the timed part; only `request_update` is
//! timed. `cargo bench --bench update_latency` takes about 2–3 minutes on 2 cores;
//! `-- --test` runs every case once (the largest sizes are skipped in that mode).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use molt::{Program, Vm};
use molt_vm::update::{Consistency, EventKind, TransformMode, UpdateEvent};

/// `-- --test` (the CI smoke run): skip the sizes whose set-up alone takes seconds.
fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn compile(name: &str, text: &str, version: u32) -> Program {
    let out = molt_compiler::compile_source(name, text, &molt::compile_options(version));
    if let Some(d) = out.diagnostics.first() {
        panic!("{name} does not compile: {}", d.message);
    }
    out.program.expect("a program")
}

/// A VM that has run `program` (globals initialised, `main` returned), output discarded.
fn loaded(program: &Program, args: &[String], mode: TransformMode) -> Vm {
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    vm.args = args.to_vec();
    vm.dsu.settings.mode = mode;
    vm.run_program(program).expect("version 1 runs");
    vm
}

/// Applies `v2` and checks that it was applied; returns the applied event.
fn apply(vm: &mut Vm, v2: Program) -> UpdateEvent {
    let events = vm.request_update(v2);
    match events.iter().find(|e| e.kind != EventKind::Requested) {
        Some(e) if e.kind == EventKind::Applied => e.clone(),
        other => panic!("the update was not applied: {other:?}"),
    }
}

/// Times `iters` updates from `v1` to `v2`, each on a fresh VM; only `request_update` is timed.
fn time_updates(iters: u64, v1: &Program, v2: &Program, args: &[String], mode: TransformMode) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut vm = loaded(v1, args, mode);
        let next = v2.clone();
        let t = Instant::now();
        let events = vm.request_update(next);
        total += t.elapsed();
        black_box(events);
        drop(vm);
    }
    total
}

/// N functions `f_i(x)`; in version 2 every tenth function's body changes.
fn functions_program(n: usize, version: u32) -> String {
    let mut s = String::from("let k = 1;\n");
    for i in 0..n {
        let extra = if version > 1 && i % 10 == 0 { " + 1" } else { "" };
        s += &format!("fn f_{i}(x) {{ return x * {i} + k{extra}; }}\n");
    }
    s += "fn main() {\n    let s = 0;\n";
    for i in 0..n.min(10) {
        s += &format!("    s += f_{i}(1);\n");
    }
    s += "    print(s);\n}\n";
    s
}

fn pause_by_functions(c: &mut Criterion) {
    let mut g = c.benchmark_group("pause_by_functions");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let sizes: &[usize] = if smoke() { &[10, 100] } else { &[10, 100, 1000, 10_000] };
    for &n in sizes {
        let v1 = compile("fns_v1.molt", &functions_program(n, 1), 1);
        let v2 = compile("fns_v2.molt", &functions_program(n, 2), 2);
        let e = apply(&mut loaded(&v1, &[], TransformMode::Eager), v2.clone());
        assert_eq!(e.functions_changed, n.div_ceil(10), "{n} functions: {}", e.summary);
        if n >= 1000 {
            g.sampling_mode(SamplingMode::Flat);
        }
        g.bench_with_input(BenchmarkId::new("request_update", n), &n, |b, _| {
            b.iter_custom(|iters| time_updates(iters, &v1, &v2, &[], TransformMode::Eager))
        });
    }
    g.finish();
}

const RECORDS_V1: &str = "type P { a, b }
let items = [];
fn main() {
    let n = int(args()[0]);
    for i in 0..n { items.push(P { a: i, b: i }); }
}
";

/// Version 2 with the default transformer: field `c` added with a default.
const RECORDS_DEFAULT: &str = "type P { a, b, c = 0 }
let items = [];
fn main() {
    let n = int(args()[0]);
    for i in 0..n { items.push(P { a: i, b: i }); }
}
";

/// Version 2 with an explicit transformer computing the new field.
const RECORDS_EXPLICIT: &str = "type P { a, b, c }
let items = [];
transform P(old) {
    return P { a: old.a, b: old.b, c: old.a + old.b };
}
fn main() {
    let n = int(args()[0]);
    for i in 0..n { items.push(P { a: i, b: i, c: 2 * i }); }
}
";

fn transform_by_records(c: &mut Criterion) {
    let mut g = c.benchmark_group("transform_by_records");
    g.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_secs(2));
    g.sampling_mode(SamplingMode::Flat);
    let v1 = compile("records_v1.molt", RECORDS_V1, 1);
    let cases = [
        ("default", compile("records_default.molt", RECORDS_DEFAULT, 2), TransformMode::Eager),
        ("explicit", compile("records_explicit.molt", RECORDS_EXPLICIT, 2), TransformMode::Eager),
        ("lazy_commit", compile("records_default.molt", RECORDS_DEFAULT, 2), TransformMode::Lazy),
        // An explicit transformer that reads only its instance stays lazy (`lazy_safe`).
        ("lazy_commit_explicit", compile("records_explicit.molt", RECORDS_EXPLICIT, 2), TransformMode::Lazy),
    ];
    let sizes: &[usize] = if smoke() { &[1000] } else { &[1000, 10_000, 100_000, 1_000_000] };
    for &n in sizes {
        let args = vec![n.to_string()];
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(if n >= 1_000_000 { 10 } else { 20 });
        for (label, v2, mode) in &cases {
            if n == sizes[0] {
                let e = apply(&mut loaded(&v1, &args, *mode), v2.clone());
                let expect = if *mode == TransformMode::Eager { n } else { 0 };
                assert_eq!(e.objects_transformed, expect, "{label}: {}", e.summary);
            }
            g.bench_with_input(BenchmarkId::new(*label, n), &n, |b, _| {
                b.iter_custom(|iters| time_updates(iters, &v1, v2, &args, *mode))
            });
        }
    }
    g.finish();
}

/// The same loop without and with an update point in its body.
fn loop_program(with_update: bool) -> String {
    let point = if with_update { " update;" } else { "" };
    format!(
        "fn run(n) {{
    let s = 0;
    for i in 0..n {{ s += i;{point} }}
    return s;
}}
fn main() {{ print(run(int(args()[0]))); }}
"
    )
}

fn update_points(c: &mut Criterion) {
    let mut g = c.benchmark_group("update_points");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let n = 1_000_000u64;
    g.throughput(Throughput::Elements(n));
    for (label, with) in [("without", false), ("with", true)] {
        let program = compile("loop.molt", &loop_program(with), 1);
        let mut vm = molt::new_vm();
        vm.out = Box::new(std::io::sink());
        vm.args = vec![n.to_string()];
        let (init, main) = vm.load(&program).expect("loads");
        vm.call_slot(init, &[]).expect("globals");
        let main = main.expect("a main");
        g.bench_function(BenchmarkId::new(label, n), |b| b.iter(|| vm.call_slot(main, &[]).expect("runs")));
    }
    g.finish();
}

/// An update source that hands over one program, once.
struct Once(Option<Program>);

impl molt_vm::update::UpdateSource for Once {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        self.0.take().map(Ok)
    }
    fn has_more(&self) -> bool {
        self.0.is_some()
    }
}

/// `main` spawns N tasks that block on a channel, then reaches its update point; version 2
/// changes a function none of them is in.
fn tasks_program(version: u32) -> String {
    format!(
        "fn describe(x) {{ return \"v{version} \" + str(x); }}
fn waiter(ch) {{ return ch.recv(); }}
fn main() {{
    let n = int(args()[0]);
    let ch = channel();
    for i in 0..n {{ spawn(waiter, ch); }}
    yield_now();
    update;
    print(describe(n));
    ch.close();
}}
"
    )
}

fn pause_with_tasks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pause_with_tasks");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(3));
    let (v1, v2) = (compile("tasks.molt", &tasks_program(1), 1), compile("tasks.molt", &tasks_program(2), 2));
    let sizes: &[usize] = if smoke() { &[100] } else { &[100, 1_000, 10_000] };
    for &n in sizes {
        g.bench_with_input(BenchmarkId::new("global", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut vm = molt::new_vm();
                    vm.out = Box::new(std::io::sink());
                    vm.args = vec![n.to_string()];
                    vm.set_update_source(Box::new(Once(Some(v2.clone()))));
                    vm.run_program(&v1).expect("runs");
                    let applied = vm.dsu.events.iter().find(|e| e.kind == EventKind::Applied).expect("applied");
                    assert_eq!(applied.tasks, n + 1);
                    total += Duration::from_micros(applied.pause_us.max(1));
                }
                total
            })
        });
        // Per-task consistency: every task switches by itself (the waiters at once, blocked
        // in unchanged code; main at its point); timed from the request to the last switch.
        g.bench_with_input(BenchmarkId::new("per_task_transition", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut vm = molt::new_vm();
                    vm.out = Box::new(std::io::sink());
                    vm.args = vec![n.to_string()];
                    vm.dsu.settings.consistency = Consistency::PerTask;
                    vm.set_update_source(Box::new(Once(Some(v2.clone()))));
                    vm.run_program(&v1).expect("runs");
                    let applied = vm.dsu.events.iter().find(|e| e.kind == EventKind::Applied).expect("applied");
                    assert_eq!(applied.tasks, n + 1);
                    total += Duration::from_micros(applied.transition_us.unwrap_or(0).max(1));
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pause_by_functions, transform_by_records, update_points, pause_with_tasks);
criterion_main!(benches);
