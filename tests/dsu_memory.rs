//! DSU.md: "Old code stays alive exactly as long as a frame or a closure still uses it", and
//! "a removed global is dropped once no old code can read it". Through the embedding API:
//! what an update removes is kept while old code (a closure, a function value) can still
//! use it, and released at the first collection after the last user is gone.

use molt_vm::update::{EventKind, UpdateSource};
use molt_vm::{Program, Vm};

mod common;
use common::Buffer;

fn compile(src: &str, version: u32) -> Program {
    common::compile("memory.molt", src, version)
}

struct Versions(Vec<&'static str>, usize);

impl UpdateSource for Versions {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        let src = self.0.get(self.1)?;
        self.1 += 1;
        Some(Ok(compile(src, self.1 as u32 + 1)))
    }
    fn has_more(&self) -> bool {
        self.1 < self.0.len()
    }
}

/// Runs `v1` with the later versions applied at its update points; the VM afterwards.
fn run(v1: &str, later: Vec<&'static str>) -> (Vm, String) {
    let mut vm: Vm = molt::new_vm();
    let out = Buffer::default();
    vm.out = Box::new(out.clone());
    let n = later.len();
    vm.set_update_source(Box::new(Versions(later, 0)));
    if let Err(e) = vm.run_program(&compile(v1, 1)) {
        panic!("{e}");
    }
    let applied = vm.dsu.events.iter().filter(|e| e.kind == EventKind::Applied).count();
    assert_eq!(applied, n, "{:?}", vm.dsu.events);
    // A collection finds what old code can no longer use and drops it; the next one frees
    // the objects only a dropped global held.
    vm.collect_garbage(0);
    vm.collect_garbage(0);
    let text = String::from_utf8(out.0.borrow().clone()).unwrap();
    (vm, text)
}

const V1: &str = "
let big = [];
let keep = nil;
fn total() { let s = 0; for x in big { s += x[0]; } return s; }
fn main() {
    for i in 0..20000 { big.push([i]); }
    keep = fn() { return total(); };
    print(keep());
    for r in 0..3 { update; }
}
";

/// v2: `big` and `total` are gone; the v1 closure in `keep` still reads them.
const V2_KEEPS: &str = "
let keep = nil;
fn main() {
    for r in 0..3 {
        update;
        let junk = [];
        for i in 0..5000 { junk.push([i]); }
        print(keep());
    }
}
";

/// v3: the closure is dropped: nothing can read `big` or call `total` any more.
const V3_DROPS: &str = "
let keep = nil;
fn main() {
    for r in 0..3 {
        update;
        keep = nil;
        let junk = [];
        for i in 0..5000 { junk.push([i]); }
    }
    print(\"v3\");
}
";

#[test]
fn removed_code_and_globals_stay_while_old_code_can_use_them() {
    let (vm, out) = run(V1, vec![V2_KEEPS]);
    assert_eq!(out, "199990000\n199990000\n199990000\n199990000\n");
    assert_eq!(vm.old_code_kept(), (1, 1), "the closure still calls total() and reads big");
    assert!(vm.heap.live() > 20000, "big's lists are alive: {}", vm.heap.live());
}

#[test]
fn removed_code_and_globals_are_dropped_when_no_old_code_can_use_them() {
    let (vm, out) = run(V1, vec![V2_KEEPS, V3_DROPS]);
    assert_eq!(out, "199990000\n199990000\nv3\n");
    assert_eq!(vm.old_code_kept(), (0, 0), "nothing can call total() or read big");
    assert!(vm.heap.live() < 1000, "big's lists were freed: {} objects live", vm.heap.live());
}

#[test]
fn a_removed_function_held_as_a_value_stays() {
    let v1 = "
let f = nil;
fn hello() { return \"hello\"; }
fn main() { f = hello; for r in 0..2 { update; } }
";
    let v2 = "
let f = nil;
fn main() { for r in 0..2 { update; let junk = []; for i in 0..3000 { junk.push([i]); } print(f()); } }
";
    let (vm, out) = run(v1, vec![v2]);
    assert_eq!(out, "hello\nhello\n");
    assert_eq!(vm.old_code_kept(), (1, 0));
}

fn forwards(vm: &Vm) -> usize {
    vm.types.iter().filter(|t| t.forward.is_some()).count()
}

const P1: &str = "
type P { a }
let ps = [];
let mk = nil;
fn main() {
    mk = fn(a) { return P { a: a }; };
    ps.push(mk(1));
    for r in 0..3 { update; }
}
";

/// v2: P gains b through a transformer; the v1 closure in `mk` can still build v1 records.
const P2_KEEPS: &str = "
type P { a, b }
let ps = [];
let mk = nil;
transform P(old) { return P { a: old.a, b: old.a * 10 }; }
fn main() { for r in 0..3 { update; ps.push(mk(r + 2)); print(ps); } }
";

/// v3: the closure is dropped: no code can build a v1 P, so its conversion is released.
const P3_DROPS: &str = "
type P { a, b }
let ps = [];
let mk = nil;
fn main() { for r in 0..3 { update; mk = nil; } print(ps); }
";

#[test]
fn a_layouts_transformer_stays_while_old_code_can_build_it_and_goes_after() {
    let (vm, out) = run(P1, vec![P2_KEEPS]);
    assert!(out.ends_with("P { a: 3, b: 30 }, P { a: 4, b: 40 }]\n"), "{out}");
    assert_eq!(forwards(&vm), 1, "the v1 closure can still build a v1 P");
    let (vm, out) = run(P1, vec![P2_KEEPS, P3_DROPS]);
    assert!(out.ends_with("[P { a: 1, b: 10 }, P { a: 2, b: 20 }]\n"), "{out}");
    assert_eq!(forwards(&vm), 0, "no code can build a v1 P any more");
}

/// The embedding API in lazy mode: `Vm::show` converts what it shows (as `print` does), so an
/// embedder never sees an instance in its old shape; `repr` shows the heap as it is.
#[test]
fn show_converts_instances_that_owe_a_lazy_conversion() {
    let mut vm: Vm = molt::new_vm();
    vm.dsu.settings.mode = molt_vm::update::TransformMode::Lazy;
    vm.out = Box::new(Buffer::default());
    let v1 = "type Acc { id, bal }\nlet accs = [Acc { id: 1, bal: 10 }];\nfn get() { return accs; }\nfn main() { }\n";
    let v2 = "type Account { id, cents, currency = \"EUR\" }\n\
              transform Acc(old) { return Account { id: old.id, cents: old.bal * 100 }; }\n\
              let accs = [];\nfn get() { return accs; }\nfn main() { }\n";
    vm.run_program(&compile(v1, 1)).expect("v1 runs");
    let events = vm.request_update(compile(v2, 2));
    assert!(events.iter().any(|e| e.kind == EventKind::Applied), "{events:?}");
    let get = vm.func_slot("get").expect("get");
    let accs = vm.call_slot(get, &[]).expect("get runs");
    assert_eq!(vm.repr(accs), "[Acc { id: 1, bal: 10 }]", "not converted yet (lazy)");
    assert_eq!(vm.show(accs).unwrap(), "[Account { id: 1, cents: 1000, currency: \"EUR\" }]");
    assert_eq!(vm.repr(accs), "[Account { id: 1, cents: 1000, currency: \"EUR\" }]");
}

/// A program updated for ever keeps a bounded record of its updates: the VM keeps the latest
/// `KEPT` events and plans at least, `events_dropped` counting the older events (they grew by
/// about 2 KB per update: 20 MB over benches/soak.sh's 10,000 updates).
#[test]
fn update_history_is_bounded() {
    use molt_vm::update::{EventKind, KEPT};
    let a = molt::compile_str("app.molt", "fn f() { return 1; }\nfn main() { }\n").program.expect("compiles");
    let b = molt::compile_str("app.molt", "fn f() { return 2; }\nfn main() { }\n").program.expect("compiles");
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    let (init, _) = vm.load(&a).expect("loads");
    vm.call_slot(init, &[]).expect("initialises");
    let updates = 3 * KEPT;
    for i in 0..updates {
        let events = vm.request_update(if i % 2 == 0 { b.clone() } else { a.clone() });
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Requested, EventKind::Applied], "update {i}");
    }
    assert_eq!(vm.version as usize, 1 + updates);
    assert_eq!(vm.dsu.events_dropped + vm.dsu.events.len(), 2 * updates);
    assert!(vm.dsu.events.len() >= KEPT && vm.dsu.events.len() < 2 * KEPT, "{}", vm.dsu.events.len());
    assert!(vm.dsu.history.len() >= KEPT && vm.dsu.history.len() < 2 * KEPT, "{}", vm.dsu.history.len());
    assert_eq!(vm.dsu.events.last().map(|e| (e.kind, e.to)), Some((EventKind::Applied, 1 + updates as u32)));
}

/// Type slots are never reused (compiled code may be specialised on a slot number), so each
/// type change costs one slot for ever; an update that changes one type of a program with
/// several must add that one slot only. It added one per type of the program, the unchanged
/// ones as empty placeholders (benches/soak.sh with tasks: two types, two slots per update).
#[test]
fn a_type_change_adds_one_type_slot_whatever_the_other_types() {
    let src = |fields: &str, item: &str| {
        format!(
            "type A {{ a }}\ntype B {{ b }}\ntype C {{ c }}\ntype Item {{ {fields} }}\n\
             let keep = [A {{ a: 1 }}, B {{ b: 2 }}, C {{ c: 3 }}];\n\
             let items = [Item {{ {item} }}];\nfn get() {{ return [keep, items]; }}\nfn main() {{ }}\n"
        )
    };
    let a = molt::compile_str("app.molt", &src("id", "id: 7")).program.expect("compiles");
    let b = molt::compile_str("app.molt", &src("id, tag = 0", "id: 7, tag: 0")).program.expect("compiles");
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    let (init, _) = vm.load(&a).expect("loads");
    vm.call_slot(init, &[]).expect("initialises");
    let before = vm.types.len();
    let updates = 10;
    for i in 0..updates {
        let events = vm.request_update(if i % 2 == 0 { b.clone() } else { a.clone() });
        assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Applied), "update {i}: {events:?}");
    }
    assert_eq!(vm.types.len(), before + updates, "one new slot per type change");
    assert!(vm.types.iter().all(|t| !t.name.starts_with("<unused")), "no placeholder slots");
    let get = vm.func_slot("get").expect("get");
    let both = vm.call_slot(get, &[]).expect("get runs");
    assert_eq!(
        vm.repr(both),
        "[[A { a: 1 }, B { b: 2 }, C { c: 3 }], [Item { id: 7 }]]",
        "after an even number of updates, v1 with its records converted back"
    );
}

/// What made a type change cost memory for ever: the replaced layout (its names, maps and
/// transformer) stayed in its slot. Slots are still never reused, but an outdated layout that
/// no live record has, no code can build and no conversion needs is released at a collection:
/// the slot then points at one shared empty layout (benches/soak.sh: about 0.5 KB per update).
#[test]
fn outdated_layouts_are_released_once_nothing_can_use_them() {
    let src = |fields: &str, item: &str| {
        format!(
            "type Item {{ {fields} }}\nlet items = [];\n\
             fn fill() {{ for i in 0..100 {{ items.push(Item {{ {item} }}); }} }}\n\
             fn get() {{ return items[99]; }}\nfn main() {{ }}\n"
        )
    };
    let a = molt::compile_str("app.molt", &src("id", "id: i")).program.expect("compiles");
    let b = molt::compile_str("app.molt", &src("id, tag = 5", "id: i, tag: 0")).program.expect("compiles");
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    let (init, _) = vm.load(&a).expect("loads");
    vm.call_slot(init, &[]).expect("initialises");
    let fill = vm.func_slot("fill").expect("fill");
    vm.call_slot(fill, &[]).expect("fills");
    for i in 0..20 {
        let events = vm.request_update(if i % 2 == 0 { b.clone() } else { a.clone() });
        assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Applied), "update {i}: {events:?}");
    }
    assert_eq!(vm.types.len(), 21, "one slot per type change, never reused");
    vm.collect_garbage(0);
    assert_eq!(vm.outdated_layouts_kept(), 0, "every record was converted: no old layout is needed");
    assert_eq!(vm.types.iter().filter(|t| t.released).count(), 20);
    let get = vm.func_slot("get").expect("get");
    let last = vm.call_slot(get, &[]).expect("get runs");
    assert_eq!(vm.repr(last), "Item { id: 99 }");
}

/// A layout old code can still build, or that records still owe a lazy conversion from, is
/// kept; it is released after the last such user goes.
#[test]
fn an_outdated_layout_stays_while_old_code_can_build_it_or_records_owe_a_conversion() {
    // The v1 closure in `mk` can build a v1 P: its layout (and its conversion) stay.
    let (mut vm, _) = run(P1, vec![P2_KEEPS]);
    vm.collect_garbage(0);
    assert_eq!(vm.outdated_layouts_kept(), 1, "the v1 closure can still build a v1 P");
    let (mut vm, _) = run(P1, vec![P2_KEEPS, P3_DROPS]);
    vm.collect_garbage(0);
    assert_eq!(vm.outdated_layouts_kept(), 0, "no code can build a v1 P any more");

    // Lazy: the record keeps its old layout until it is first used.
    let mut vm: Vm = molt::new_vm();
    vm.dsu.settings.mode = molt_vm::update::TransformMode::Lazy;
    vm.out = Box::new(Buffer::default());
    let v1 = "type Acc { id, bal }\nlet accs = [Acc { id: 1, bal: 10 }];\nfn get() { return accs; }\nfn main() { }\n";
    let v2 = "type Acc { id, cents }\n\
              transform Acc(old) { return Acc { id: old.id, cents: old.bal * 100 }; }\n\
              let accs = [];\nfn get() { return accs; }\nfn main() { }\n";
    vm.run_program(&compile(v1, 1)).expect("v1 runs");
    let events = vm.request_update(compile(v2, 2));
    assert!(events.iter().any(|e| e.kind == EventKind::Applied), "{events:?}");
    vm.collect_garbage(0);
    assert_eq!(vm.outdated_layouts_kept(), 1, "the record still has its v1 layout");
    let get = vm.func_slot("get").expect("get");
    let accs = vm.call_slot(get, &[]).expect("get runs");
    assert_eq!(vm.show(accs).unwrap(), "[Acc { id: 1, cents: 1000 }]");
    vm.collect_garbage(0);
    assert_eq!(vm.outdated_layouts_kept(), 0, "converted: the v1 layout is released");
}
