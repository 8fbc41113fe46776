//! Generated programs with tasks and channels give the same output, errors and exit status
//! under `--jit off`, `on` and `always` (TASKS.md: the interleaving does not depend on the
//! tier). Each program spawns workers that loop, call functions, send and receive on bounded
//! and unbounded channels, yield and fail now and then; `main` compiled before its first
//! `spawn` (`always`) exercises compiled code stepping aside for the scheduler.

use std::path::Path;
use std::process::Command;

/// A small deterministic generator (xorshift): the programs are the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One statement of a worker's loop body (`j` is the loop variable, `acc` an int).
fn statement(r: &mut Rng) -> String {
    match r.below(9) {
        0 => "ch.send(j);".into(),
        1 => "let got = ch.try_recv(); if got != nil { acc = acc + got; }".into(),
        2 => "yield_now();".into(),
        3 => format!("for k in 0..{} {{ acc = acc + k % 7; }}", r.below(3000)),
        4 => format!("acc = acc + helper(j, {});", r.below(50)),
        5 => "out.send(\"w\" + str(id) + \":\" + str(acc));".into(),
        6 => format!("if j == {} and id == {} {{ acc = acc / 0; }}", r.below(20), r.below(4)),
        7 => "let xs = [j, acc]; acc = acc + len(xs);".into(),
        _ => format!("if acc > {} {{ acc = acc % 1000; }}", r.below(100_000)),
    }
}

fn program(seed: u64) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    let workers = 1 + r.below(4);
    let mut s = String::new();
    s.push_str("fn helper(a, b) {\n    let t = 0;\n    for i in 0..b { t = t + a; }\n    return t % 97;\n}\n\n");
    s.push_str("fn worker(id, ch, out, n) {\n    let acc = 0;\n    for j in 0..n {\n");
    for _ in 0..1 + r.below(5) {
        s.push_str(&format!("        {}\n", statement(&mut r)));
    }
    s.push_str("    }\n    out.send(\"done \" + str(id) + \" \" + str(acc));\n    return acc;\n}\n\n");
    let cap = match r.below(3) {
        0 => String::new(),
        _ => (1 + r.below(4)).to_string(),
    };
    s.push_str("fn main() {\n");
    s.push_str(&format!("    let ch = channel({cap});\n    let out = channel();\n    let ts = [];\n"));
    s.push_str(&format!("    for k in 0..{} {{ let warm = helper(k, 3); }}\n", r.below(200)));
    s.push_str(&format!(
        "    for w in 0..{workers} {{\n        ts.push(spawn(worker, w, ch, out, {}));\n    }}\n",
        1 + r.below(30)
    ));
    s.push_str("    let seen = 0;\n    let guard = 0;\n");
    s.push_str(&format!("    while seen < {workers} and guard < 2000 {{\n"));
    s.push_str("        guard = guard + 1;\n");
    s.push_str("        let m = select([out, ch], 0);\n");
    s.push_str("        if m == nil { yield_now(); continue; }\n");
    s.push_str("        if m[0] == out { print(m[1]); if str(m[1]).starts_with(\"done\") { seen = seen + 1; } }\n");
    s.push_str("        else { print(\"took\", m[1]); }\n");
    s.push_str("        let failed = 0;\n");
    s.push_str("        for t in ts { if t.status() == \"failed\" { failed = failed + 1; } }\n");
    s.push_str("        if failed + seen >= len(ts) and guard > 50 { break; }\n");
    s.push_str("    }\n");
    s.push_str("    for t in ts { print(t.id(), t.status()); }\n}\n");
    s
}

fn run(path: &Path, mode: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_molt"))
        .env("NO_COLOR", "1")
        .args(["run", "--jit", mode])
        .arg(path)
        .output()
        .expect("molt runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn generated_task_programs_agree_across_tiers() {
    let dir = std::env::temp_dir().join(format!("molt-tasks-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut failures = Vec::new();
    let mut errors = 0;
    // MOLT_GEN_SEEDS=N runs more programs (by hand: CI runs 60).
    let seeds: u64 = std::env::var("MOLT_GEN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    for seed in 0..seeds {
        let path = dir.join(format!("p{seed}.molt"));
        std::fs::write(&path, program(seed)).expect("write");
        let off = run(&path, "off");
        if off.0 == Some(2) {
            failures.push(format!("seed {seed}: the generator made a program that does not compile:\n{}", off.2));
            continue;
        }
        if !off.2.is_empty() {
            errors += 1;
        }
        for mode in ["on", "always"] {
            let other = run(&path, mode);
            if other != off {
                failures.push(format!(
                    "seed {seed}: --jit {mode} differs from --jit off\n--- program\n{}--- off\n{:?}\n--- {mode}\n{:?}",
                    program(seed),
                    off,
                    other
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The generator must reach the interesting cases: some programs have failing tasks.
    assert!(errors > 0, "no generated program had a failing task");
}
