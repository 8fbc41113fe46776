//! The `molt` command line as a user meets it: exit statuses, what goes to stdout and stderr,
//! compile errors with their locations, `.mbc` files round-tripping every tests/lang program,
//! and the verifier facing damaged bytecode files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn molt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("molt runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn exit_statuses_and_streams() {
    let dir = scratch("streams");
    let ok = dir.join("ok.molt");
    std::fs::write(&ok, "fn main() { print(\"hi\", 1 + 2); }\n").unwrap();
    let out = molt(&["run", ok.to_str().unwrap()]);
    assert_eq!((out.status.code(), text(&out.stdout), text(&out.stderr)), (Some(0), "hi 3\n".into(), String::new()));

    // A runtime error: output so far on stdout, the error and a trace (innermost first) on stderr.
    let bad = dir.join("bad.molt");
    std::fs::write(&bad, "fn inner(x) {\n    return x / 0;\n}\nfn outer() {\n    return inner(1);\n}\nfn main() {\n    print(\"before\");\n    outer();\n}\n").unwrap();
    let out = molt(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "before\n");
    let f = bad.to_str().unwrap();
    assert_eq!(
        text(&out.stderr),
        format!("error: division by zero\n  at inner ({f}:2)\n  at outer ({f}:5)\n  at main ({f}:9)\n")
    );

    // Compile errors: every one reported, with file:line:col, exit 2, nothing on stdout.
    let broken = dir.join("broken.molt");
    std::fs::write(&broken, "fn main() {\n    print(nope);\n    let p = Point { x: 1 };\n    let y = 1 + ;\n}\n")
        .unwrap();
    let out = molt(&["run", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    let b = broken.to_str().unwrap();
    for want in [
        "error[E0003]: undefined name 'nope'".to_string(),
        format!("{b}:2:11"),
        "error[E0005]: unknown type 'Point'".to_string(),
        format!("{b}:3:13"),
        "error[E0001]: syntax error: unexpected ';'".to_string(),
        format!("{b}:4:17"),
        "error: 3 errors found".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe:\n{err}");
    assert_eq!(molt(&["check", broken.to_str().unwrap()]).status.code(), Some(2));
    let checked = molt(&["check", ok.to_str().unwrap()]);
    assert_eq!((checked.status.code(), checked.stdout.len(), checked.stderr.len()), (Some(0), 0, 0));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["run"],
        vec!["run", "no/such/file.molt"],
        vec!["run", "x.molt", "--policy", "sometimes"],
        vec!["run", "x.molt", "--jit", "maybe"],
        vec!["compile", "a.molt", "-x", "b"],
        vec!["check"],
        vec!["plan", "only-one.molt"],
    ] {
        let out = molt(&args);
        assert_eq!(out.status.code(), Some(2), "molt {args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).starts_with("error"), "molt {args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(molt(&["help"]).status.code(), Some(0));
}

#[test]
fn program_arguments_after_double_dash() {
    let out = molt(&["run", "tests/lang/builtins/args.molt", "--", "alpha", "beta", "42"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("[\"alpha\", \"beta\", \"42\"]\n"));
}

/// Every tests/lang program that compiles runs the same from its `.mbc` file.
#[test]
fn mbc_round_trip_of_every_lang_program() {
    let dir = scratch("mbc");
    let mut n = 0;
    for entry in walkdir::WalkDir::new(root().join("tests/lang")).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "molt") {
            continue;
        }
        let src = std::fs::read_to_string(path).unwrap_or_default();
        if src.contains("// stdin:") || src.contains("// args:") || src.contains("// expect error") {
            continue;
        }
        let rel = path.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
        let mbc = dir.join(format!("p{n}.mbc"));
        let c = molt(&["compile", &rel, "-o", mbc.to_str().unwrap()]);
        assert_eq!(c.status.code(), Some(0), "compile {rel}: {}", text(&c.stderr));
        let (a, b) = (molt(&["run", &rel]), molt(&["run", mbc.to_str().unwrap()]));
        assert_eq!(a.status.code(), b.status.code(), "{rel}");
        assert_eq!(text(&a.stdout), text(&b.stdout), "{rel}");
        assert_eq!(text(&a.stderr), text(&b.stderr), "{rel}");
        let (d1, d2) = (molt(&["disasm", &rel]), molt(&["disasm", mbc.to_str().unwrap()]));
        assert_eq!((d1.status.code(), text(&d1.stdout)), (Some(0), text(&d2.stdout)), "disasm {rel}");
        n += 1;
    }
    assert!(n > 150, "only {n} programs");
}

/// Damaged bytecode files are rejected with exit 2 and a message, never a crash.
#[test]
fn damaged_mbc_files_are_rejected_cleanly() {
    let dir = scratch("damage");
    let good = dir.join("good.mbc");
    let c = molt(&["compile", "examples/tour.molt", "-o", good.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0));
    let bytes = std::fs::read(&good).unwrap();
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bad = dir.join("bad.mbc");
    for case in 0..300 {
        let mut b = bytes.clone();
        match case % 4 {
            0 => b.truncate((rand() as usize) % b.len()),
            1 => {
                let i = (rand() as usize) % b.len();
                b[i] ^= 1 << (rand() % 8);
            }
            2 => {
                let i = (rand() as usize) % b.len();
                b[i] = rand() as u8;
            }
            _ => b = (0..(rand() % 200) as usize).map(|_| rand() as u8).collect(),
        }
        std::fs::write(&bad, &b).unwrap();
        let out = molt(&["run", bad.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert!(matches!(out.status.code(), Some(0..=2)), "case {case}: status {:?}\n{err}", out.status);
        assert!(!err.contains("panicked"), "case {case}: {err}");
        if out.status.code() == Some(2) {
            assert!(err.contains("invalid bytecode file"), "case {case}: {err}");
        }
    }
}

/// Update events on stderr come after the program output printed before them (the program's
/// buffered stdout is flushed first), as a person reading a terminal expects.
#[test]
fn update_events_follow_earlier_output() {
    let dir = scratch("order");
    let v1 = dir.join("v1.molt");
    let v2 = dir.join("v2.molt");
    std::fs::write(&v1, "fn main() {\n    for i in 0..2 {\n        print(\"before\", i);\n        update;\n    }\n}\n")
        .unwrap();
    std::fs::write(&v2, "fn main() {\n    for i in 0..2 {\n        print(\"after\", i);\n        update;\n    }\n}\n")
        .unwrap();
    let cmd = format!(
        "'{}' run '{}' --update '{}' --trace-updates 2>&1",
        env!("CARGO_BIN_EXE_molt"),
        v1.display(),
        v2.display()
    );
    let out = Command::new("sh").args(["-c", &cmd]).output().expect("sh runs");
    let merged = text(&out.stdout);
    let lines: Vec<&str> = merged.lines().collect();
    assert_eq!(lines[0], "before 0", "{merged}");
    assert!(lines[1].starts_with("update requested (version 1 -> 2)"), "{merged}");
    assert!(lines[2].starts_with("update applied (version 1 -> 2)"), "{merged}");
    assert_eq!(lines[3], "after 1", "{merged}");
}

/// `molt plan OLD NEW` prints what an update would change, for a person, and runs nothing.
#[test]
fn plan_prints_the_update_plan() {
    let out = molt(&["plan", "tests/dsu/retype_account/v1.molt", "tests/dsu/retype_account/v2.molt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "update plan: tests/dsu/retype_account/v1.molt -> tests/dsu/retype_account/v2.molt\n\
         \x20 functions changed: describe, main\n\
         \x20 functions unchanged: 0\n\
         \x20 type changed: Account (+cents +currency, -balance)\n\
         \x20 globals added: total\n\
         \x20 transformers: Account\n\
         \x20 migrate block: yes\n"
    );
    // A rename without a transformer is flagged.
    let dir = scratch("plan");
    let (a, b) = (dir.join("a.molt"), dir.join("b.molt"));
    std::fs::write(&a, "type P { name }\nfn main() { }\n").unwrap();
    std::fs::write(&b, "type P { title = \"\" }\nfn main() { }\n").unwrap();
    let out = molt(&["plan", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains(
            "warning: type P: field name removed and title added; if this is a rename, write a `transform P(old)` to keep the data"
        ),
        "{}",
        text(&out.stdout)
    );
}

/// `molt plan` names the function a changed lambda is written in: the outermost one for a
/// lambda in a lambda, a method by its qualified name, and none for a global's initialiser.
#[test]
fn plan_names_whose_lambdas_changed() {
    let dir = scratch("plan-lambdas");
    let version = |n: u32| {
        format!(
            "type Acc {{ n, fn step() {{ let f = fn(x) {{ return x + {n}; }}; return f(self.n); }} }}\n\
             let g = fn() {{ return {n}; }};\n\
             fn main() {{ let f = fn() {{ let h = fn(y) {{ return y * {n}; }}; return h(2); }}; print(f(), Acc {{ n: 1 }}.step(), g()); }}\n"
        )
    };
    let (v1, v2) = (dir.join("v1.molt"), dir.join("v2.molt"));
    std::fs::write(&v1, version(1)).unwrap();
    std::fs::write(&v2, version(2)).unwrap();
    let out = molt(&["plan", v1.to_str().unwrap(), v2.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let line = stdout.lines().find(|l| l.contains("lambdas changed in")).unwrap_or_default();
    assert_eq!(line, "  lambdas changed in: Acc.step, main", "{stdout}");
}

/// `--consistency global|per-task` choose the model; anything else is a usage error (exit 2)
/// and nothing runs.
#[test]
fn consistency_takes_global_or_per_task() {
    for model in ["global", "per-task"] {
        let out = molt(&["run", "docs/tutorial/11-tasks/v1.molt", "--consistency", model]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("main v1 round 0 v1 step 0 3000\n"));
    }
    let out = molt(&["run", "docs/tutorial/11-tasks/v1.molt", "--consistency", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("error: --consistency takes `global` or `per-task`\n"));
}
