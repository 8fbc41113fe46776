//! The compiled tier under stress, in process (through the embedding API): thousands of
//! updates applied between calls of a compiled hot function, record layouts changing under
//! compiled field access, deep recursion and errors raised in compiled code. Each run under
//! `--jit always` must print exactly what the interpreter prints, and compiled code must not
//! grow with the number of updates (functions with the same code share their machine code).

use molt_vm::tier::JitMode;
use molt_vm::update::{EventKind, TransformMode, UpdateSource};
use molt_vm::{Program, Vm};

mod common;
use common::Buffer;

fn compile(src: &str, version: u32) -> Program {
    common::compile("stress.molt", src, version)
}

/// Hands out the given sources in turn, one per update point, `count` times in all.
struct Alternate {
    sources: Vec<&'static str>,
    next: usize,
    count: usize,
}

impl UpdateSource for Alternate {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        if self.next >= self.count {
            return None;
        }
        let src = self.sources[self.next % self.sources.len()];
        self.next += 1;
        // Every earlier update applied: this one makes version next + 1.
        Some(Ok(compile(src, self.next as u32 + 1)))
    }

    fn has_more(&self) -> bool {
        self.next < self.count
    }
}

struct Run {
    out: String,
    error: Option<String>,
    applied: usize,
    compiled: usize,
    /// Heap objects alive (not yet collected) at the end.
    live: usize,
    /// Machine code in memory at the end, and compiled in all.
    code_bytes: usize,
    code_compiled: usize,
}

/// Runs on a thread with a large stack, as the `molt` binary does: compiled code calling
/// other code nests native frames (up to `MAX_TIER_DEPTH` activations).
fn run(v1: &'static str, updates: Vec<&'static str>, count: usize, jit: JitMode, mode: TransformMode) -> Run {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || run_here(v1, updates, count, jit, mode))
        .expect("a thread")
        .join()
        .expect("the run finished")
}

fn run_here(v1: &str, updates: Vec<&'static str>, count: usize, jit: JitMode, mode: TransformMode) -> Run {
    let mut vm: Vm = molt::new_vm();
    vm.dsu.settings.mode = mode;
    let out = Buffer::default();
    vm.out = Box::new(out.clone());
    if jit != JitMode::Off {
        vm.jit = Some(Box::new(molt_jit::Jit::new().expect("a JIT for this machine")));
        vm.set_jit_mode(jit);
    }
    vm.set_update_source(Box::new(Alternate { sources: updates, next: 0, count }));
    // Counted as they happen: the VM keeps only the latest events (`update::KEPT`).
    let applied_count = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = applied_count.clone();
    vm.dsu.on_event = Some(Box::new(move |e| counter.set(counter.get() + usize::from(e.kind == EventKind::Applied))));
    let error = vm.run_program(&compile(v1, 1)).err().map(|e| e.to_string());
    let applied = applied_count.get();
    let compiled = vm.jit.as_ref().map_or(0, |j| j.report().len());
    let text = String::from_utf8(out.0.borrow().clone()).expect("utf-8 output");
    let code_bytes = vm.jit.as_ref().map_or(0, |j| j.live_code_bytes());
    let code_compiled = vm.jit.as_ref().map_or(0, |j| j.report().iter().map(|(_, _, b)| b).sum());
    Run { out: text, error, applied, compiled, live: vm.heap.live(), code_bytes, code_compiled }
}

/// Runs under the interpreter and under `--jit always`; both must agree exactly.
fn same_both_ways(v1: &'static str, updates: Vec<&'static str>, count: usize) -> Run {
    same_both_ways_in(v1, updates, count, TransformMode::Eager)
}

fn same_both_ways_in(v1: &'static str, updates: Vec<&'static str>, count: usize, mode: TransformMode) -> Run {
    let plain = run(v1, updates.clone(), count, JitMode::Off, mode);
    let jit = run(v1, updates, count, JitMode::Always, mode);
    assert_eq!(plain.out, jit.out, "output differs between the interpreter and the JIT");
    assert_eq!(plain.error, jit.error, "errors differ between the interpreter and the JIT");
    assert_eq!(plain.applied, jit.applied, "applied updates differ");
    jit
}

/// `same_both_ways_in`, and with the tier `on` too: functions compiled once hot, specialised
/// on what the interpreter saw (record types at field accesses, floats), which later
/// versions then contradict.
fn same_three_ways_in(v1: &'static str, updates: Vec<&'static str>, count: usize, mode: TransformMode) -> Run {
    let always = same_both_ways_in(v1, updates.clone(), count, mode);
    let on = run(v1, updates, count, JitMode::On, mode);
    assert_eq!(always.out, on.out, "output differs with the tier on");
    assert_eq!(always.error, on.error, "errors differ with the tier on");
    assert_eq!(always.applied, on.applied, "applied updates differ with the tier on");
    assert!(on.compiled > 0, "nothing got hot enough to compile with the tier on");
    on
}

/// A program that calls the compiled hot function `work` 3,000 times, with an update point
/// between calls; `step` is what `work` adds per iteration (versions differ only there).
fn hot_program(step: &str) -> &'static str {
    let src = format!(
        "
let total = 0;
fn work(n) {{
    let s = 0;
    for i in 0..n {{ s += {step}; }}
    return s;
}}
fn main() {{
    for round in 0..3000 {{
        total += work(300);
        if round % 500 == 0 {{ print(version(), round, total); }}
        update;
    }}
    print(\"done\", version(), total);
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn thousands_of_updates_between_calls_of_a_compiled_function() {
    // `work` changes body on every update (two versions, alternating).
    let (v1, other) = (hot_program("i * 3 + 1"), hot_program("i * 2"));
    let r = same_both_ways(v1, vec![other, v1], 2999);
    assert_eq!(r.applied, 2999, "every update applies");
    assert!(r.out.ends_with("done 3000 336825000\n"), "{}", r.out);
    // Three distinct pieces of code (work x2, main...) however many versions ran: the machine
    // code of a function is shared by every version with the same code.
    assert!(r.compiled <= 12, "{} functions compiled for 3000 versions", r.compiled);
}

/// A program whose hot function reads and writes fields of `P`, declared as `decl`; `score`
/// is what it sums per record. Leaked: the update source hands out `&'static str`s.
fn fields_program(decl: &str, score: &str) -> &'static str {
    let src = format!(
        "
type P {{ {decl} }}
let ps = [];
fn sum(n) {{
    let s = 0;
    for i in 0..n {{
        let p = ps[i % len(ps)];
        s += {score};
        p.x = p.x + 1;
    }}
    return s;
}}
fn main() {{
    for i in 0..50 {{ ps.push(P {{ x: i, y: i * 2 }}); }}
    let total = 0;
    for round in 0..400 {{
        total += sum(200);
        update;
    }}
    print(version(), total, ps[3]);
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn record_layouts_change_under_compiled_field_access() {
    let v1 = fields_program("x, y", "p.x * 10 + p.y");
    // The fields in the other order: a new layout (new type slot); the default transformer
    // moves the values by name. Then a field added with a default.
    let swapped = fields_program("y, x", "p.x * 10 + p.y");
    let wider = fields_program("x, y, z = 7", "p.x * 10 + p.y + p.z");
    let r = same_both_ways(v1, vec![swapped, wider, v1], 399);
    assert_eq!(r.applied, 399);
    assert!(r.out.starts_with("400 "), "{}", r.out);
    // The same with lazy conversions: compiled field access must leave records that still
    // owe their conversion to the VM.
    let r = same_both_ways_in(v1, vec![swapped, wider, v1], 399, TransformMode::Lazy);
    assert_eq!(r.applied, 399);
    assert!(r.out.starts_with("400 "), "{}", r.out);
}

/// `fields_program` with a loop body the tier compiles typed (no call in it): its field
/// accesses are specialised on the record type the interpreter met, which the next update
/// replaces, and the values turn from ints to floats and back.
fn typed_fields_program(decl: &str, score: &str, step: &str) -> &'static str {
    let src = format!(
        "
type P {{ {decl} }}
let ps = [];
fn sum(qs, n, k) {{
    let s = 0;
    for i in 0..n {{
        let p = qs[i % k];
        s = s + {score};
        p.x = p.x + {step};
    }}
    for q in qs {{
        s = s + q.y;
    }}
    return s;
}}
fn main() {{
    for i in 0..50 {{ ps.push(P {{ x: i, y: i * 2 }}); }}
    let total = 0;
    for round in 0..400 {{
        total += sum(ps, 1500, len(ps)); // past the tier's threshold in every version
        update;
    }}
    print(version(), total, ps[3]);
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn record_layouts_and_types_change_under_typed_loops() {
    let v1 = typed_fields_program("x, y", "p.x * 10 + p.y", "1");
    let swapped = typed_fields_program("y, x", "p.x * 10 - p.y", "0.5");
    let wider = typed_fields_program("x, y, z = 7", "p.x * 10 + p.y * p.z", "1");
    for mode in [TransformMode::Eager, TransformMode::Lazy] {
        let r = same_three_ways_in(v1, vec![swapped, wider, v1], 399, mode);
        assert_eq!(r.applied, 399);
        assert!(r.out.starts_with("400 "), "{}", r.out);
    }
}

#[test]
fn deep_recursion_and_errors_in_compiled_code_have_the_interpreters_traces() {
    let deep = "
fn down(n) { if n == 0 { return 0; } return 1 + down(n - 1); }
fn fail(n) { if n == 0 { return [1][5]; } return fail(n - 1); }
fn main() {
    print(down(20000));
    print(fail(30));
}
";
    let r = same_both_ways(deep, vec![], 0);
    assert_eq!(r.out, "20000\n");
    let error = r.error.expect("an index error");
    assert!(error.contains("index 5 out of range"), "{error}");
    // 31 frames of `fail`: long traces show their two ends and count the middle.
    assert_eq!(error.matches("at fail (").count(), 29, "{error}");
    assert!(error.contains("... 2 more frames ..."), "{error}");
    let overflow = "fn f(n) { return f(n + 1) + 1; }\nfn main() { f(0); }\n";
    let r = same_both_ways(overflow, vec![], 0);
    assert!(r.error.expect("a stack overflow").contains("stack overflow"));
}

#[test]
fn compiled_loops_collect_garbage() {
    // Three million short-lived lists, made in a compiled loop (the allocations go through
    // the VM, the loop's back-edge is inline): the heap must still be collected.
    let src = "
fn main() {
    let s = 0;
    for i in 0..3000000 { let l = [i, i]; s += len(l); }
    print(s);
}
";
    let r = same_both_ways(src, vec![], 0);
    assert_eq!(r.out, "6000000\n");
    assert!(r.live < 1_000_000, "{} objects never collected", r.live);
}

#[test]
fn updates_inside_callees_of_suspended_compiled_frames() {
    // `main` (compiled, unchanged by every update) is suspended in a call of `tick` whenever
    // an update applies at `tick`'s update point; it then goes on reading fields of its
    // records, on its (old) function's inline caches.
    fn program(k: &str) -> &'static str {
        let src = format!(
            "
type P {{ x, y }}
fn tick(i) {{ update; return i % {k}; }}
fn main() {{
    let ps = [P {{ x: 1, y: 2 }}, P {{ x: 3, y: 4 }}];
    let s = 0;
    for i in 0..3000 {{
        let p = ps[i % 2];
        s += p.x * 10 + tick(i) + p.y;
        p.y = p.y + 1;
    }}
    print(version(), s, ps[0], ps[1]);
}}
"
        );
        Box::leak(src.into_boxed_str())
    }
    let r = same_both_ways(program("7"), vec![program("5"), program("7")], 999);
    assert_eq!(r.applied, 999);
    assert!(r.out.starts_with("1000 "), "{}", r.out);
}

#[test]
fn code_of_dead_versions_is_freed() {
    // 1,500 updates, each a new body for the hot function: 1,500 distinct pieces of code
    // compiled, and almost all of them dead (no frame, table slot or closure uses them).
    let versions: Vec<&'static str> = (0..1500).map(|k| hot_program(&format!("i * {k} + 1"))).collect();
    let r = same_both_ways(hot_program("i * 3 + 1"), versions, 1500);
    assert_eq!(r.applied, 1500);
    assert!(r.compiled >= 1500, "{} compiled", r.compiled);
    // What is left in memory: the live versions and a window of recent ones (a few modules),
    // not everything ever compiled.
    assert!(r.code_bytes * 5 < r.code_compiled, "{} bytes live of {} compiled", r.code_bytes, r.code_compiled);
}

/// A program whose hot loop calls small methods of `P` (inlined once the tier compiles the
/// loop): `decl` declares P's fields, `methods` its methods; `call` is what the loop sums.
fn methods_program(decl: &str, methods: &str, call: &str) -> &'static str {
    let src = format!(
        "
type P {{
    {decl}
    {methods}
}}
fn sum(ps, n) {{
    let s = 0;
    for i in 0..n {{
        let p = ps[i % 3];
        s += {call};
    }}
    return s;
}}
fn main() {{
    let ps = [P {{ x: 1, y: 2 }}, P {{ x: 3, y: 4 }}, P {{ x: 5, y: 6 }}];
    let total = 0;
    for round in 0..300 {{
        total += sum(ps, 1500); // past the tier's threshold in every version
        update;
    }}
    print(version(), total, ps[1]);
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn updates_change_and_remove_inlined_methods() {
    // The methods change body, the layout changes (a new type slot), a method is removed
    // (old code still calls it: its last version runs) and comes back, eager and lazy.
    let (get, bump) = ("fn get() { return self.x; }", "fn bump() { self.x = self.y; return self; }");
    let v1 = methods_program("x, y,", &format!("{get} {bump}"), "p.bump().get()");
    let body = methods_program(
        "x, y,",
        "fn get() { return self.y; } fn bump() { self.y = self.x; return self; }",
        "p.bump().get()",
    );
    let layout = methods_program(
        "y, x, z = 0,",
        "fn get() { return self.z; } fn bump() { self.z = self.x; return self; }",
        "p.bump().get()",
    );
    let removed = methods_program("x, y,", bump, "p.bump().x");
    for mode in [TransformMode::Eager, TransformMode::Lazy] {
        let r = same_three_ways_in(v1, vec![body, layout, v1, removed], 299, mode);
        assert_eq!(r.applied, 299);
        assert!(r.out.starts_with("300 "), "{}", r.out);
    }
}

/// A hot loop calling `pick`, a function that is all quick returns (inlined at the call site
/// once the loop compiles); versions change its body, remove it and bring it back.
fn pick_program(pick: &str) -> &'static str {
    let src = format!(
        "
{pick}
fn sum(n) {{
    let s = 0;
    for i in 0..n {{
        s = s + pick(i % 10);
    }}
    return s;
}}
fn main() {{
    let total = 0;
    for round in 0..200 {{
        total += sum(1500); // past the tier's threshold in every version
        update;
    }}
    print(version(), total);
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn updates_change_functions_whose_quick_returns_are_inlined() {
    let v1 = pick_program("fn pick(i) { if i < 5 { return 1; } return 2; }");
    let v2 = pick_program("fn pick(i) { if i < 3 { return 10; } if i > 8 { return i * 3; } return 0; }");
    // No quick return: every call goes to the function (which the inlined guard must see).
    let v3 = pick_program("fn pick(i) { let l = [i]; return len(l); }");
    let r = same_three_ways_in(v1, vec![v2, v3, v1], 199, TransformMode::Eager);
    assert_eq!(r.applied, 199);
    assert!(r.out.starts_with("200 "), "{}", r.out);
}

/// `pad` is too long to compile (over 1,000 instructions), so it fills the frame stack in
/// the interpreter; then `rec` (compiled) reaches the bottom, where `call` is one call too
/// many, or not, depending on `n`. An inlined call (a quick return, a small method) makes no
/// frame, but must fail exactly where the interpreter's call fails.
fn limit_program(call: &str, n: usize) -> &'static str {
    let dead: String = (0..1000).map(|i| format!("        print({i});\n")).collect();
    let src = format!(
        "
type T {{ v, fn get() {{ return self.v; }} }}
let t = T {{ v: 3 }};
fn leaf(x) {{ if x < 5 {{ return x; }} return x; }}
fn rec(n) {{ if n < 1 {{ return {call}; }} return 1 + rec(n - 1); }}
fn pad(n, k) {{
    if n < 1 {{ return rec(k); }}
    if n < 0 {{
{dead}    }}
    return 1 + pad(n - 1, k);
}}
fn main() {{
    for i in 0..300 {{ rec(10); }}
    print(pad({n}, 10));
}}
"
    );
    Box::leak(src.into_boxed_str())
}

#[test]
fn inlined_calls_fail_at_the_frame_limit_as_calls_do() {
    for call in ["leaf(3)", "t.get()"] {
        let mut overflowed = 0;
        for n in 99_980..99_992 {
            let r = same_three_ways_in(limit_program(call, n), vec![], 0, TransformMode::Eager);
            overflowed += r.error.is_some_and(|e| e.contains("stack overflow")) as usize;
        }
        // The range straddles the limit.
        assert!((1..12).contains(&overflowed), "{call}: {overflowed} of 12 overflowed");
    }
}
