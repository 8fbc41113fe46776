//! `molt run --watch`: saving the program's file pushes an update into the running program.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `molt run FILE --watch`, its output piped.
fn watch(file: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(["run", file.to_str().unwrap(), "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_saved_edit_is_applied_while_the_program_runs() {
    let dir = std::env::temp_dir().join(format!("molt-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.molt");
    let v1 = "let hits = 0;\nfn greet(i) { return \"hello \" + str(i); }\nfn main() {\n    loop {\n        update;\n        hits += 1;\n        print(version(), greet(hits));\n        if hits > 400 { return; }\n        sleep(0.05);\n    }\n}\n";
    std::fs::write(&file, v1).unwrap();
    let mut child = watch(&file);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "1 hello 1");
    std::fs::write(&file, v1.replace("hello", "howdy")).unwrap();
    let mut seen_new = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("2 howdy ") {
            seen_new = Some(line);
            break;
        }
        assert!(line.starts_with("1 hello "), "unexpected line {line}");
        assert!(start.elapsed() < Duration::from_secs(15), "the edit was not applied in time");
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen_new.expect("the new version ran");
    // State carried over: the counter went on from where version 1 left it.
    let n: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 1, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// DSU.md: "If the program ends while an update is pending or waiting, a line on stderr says
/// it was never applied": also an edit saved under `--watch` that no update point took.
#[test]
fn an_edit_the_program_never_takes_is_reported_as_never_applied() {
    let dir = std::env::temp_dir().join(format!("molt-watch-late-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.molt");
    std::fs::write(&file, "fn f() { return 1; }\nfn main() { print(\"started\"); sleep(2.0); print(f()); }\n").unwrap();
    let mut child = watch(&file);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    std::fs::write(&file, "fn f() { return 2; }\nfn main() { print(\"started\"); sleep(2.0); print(f()); }\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest, vec!["1".to_string()], "the program has no update point: it finishes in version 1");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("update to version 2 was never applied (the edit saved to")
            && err.contains("the program ended before reaching an update point"),
        "stderr: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `molt run FILE --watch ARGS...`, its output piped.
fn watch_with(file: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(["run", file.to_str().unwrap(), "--watch"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-watch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads lines until one satisfies `done`, returning the lines read (the last one included).
/// Gives up (failing the test) if the program ends first.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let stop = done(&line);
        seen.push(line);
        if stop {
            return seen;
        }
    }
    let last = &seen[seen.len().saturating_sub(3)..];
    panic!("the program ended before the expected line; it printed {} lines, the last {last:?}", seen.len());
}

/// A program that prints `word` and a counter at an update point 20 times a second, for
/// about a minute at most.
fn ticker(word: &str) -> String {
    format!(
        "let hits = 0;\nfn main() {{\n    loop {{\n        update;\n        hits += 1;\n        print(\"{word}\", hits);\n        if hits > 1200 {{ return; }}\n        sleep(0.05);\n    }}\n}}\n"
    )
}

/// Issue 17, finding 6: a file that only a later version imports is watched too.
#[test]
fn a_file_imported_by_a_later_version_is_watched() {
    let dir = scratch("imports");
    let file = dir.join("app.molt");
    std::fs::write(&file, ticker("plain")).unwrap();
    let lib = dir.join("lib.molt");
    std::fs::write(&lib, "fn word() { return \"lib-one\"; }\n").unwrap();
    let mut child = watch(&file);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, |l| l.starts_with("plain "));
    // The new version imports lib.molt, which the first one did not.
    let v2 = ticker("X").replace("print(\"X\", hits)", "print(word(), hits)");
    std::fs::write(&file, format!("import \"lib.molt\";\n{v2}")).unwrap();
    read_until(&mut lines, |l| l.starts_with("lib-one "));
    // An edit of lib.molt alone is applied.
    std::fs::write(&lib, "fn word() { return \"lib-two\"; }\n").unwrap();
    let seen = read_until(&mut lines, |l| l.starts_with("lib-two ") || !l.starts_with("lib-one "));
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.last().unwrap().starts_with("lib-two "), "{seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, finding 6: an update that waits (here a save that removed `main`, which is
/// running) is superseded by the next save, instead of holding it back until it times out.
#[test]
fn a_newer_save_supersedes_a_waiting_update() {
    let dir = scratch("supersede");
    let file = dir.join("app.molt");
    std::fs::write(&file, ticker("one")).unwrap();
    let mut child = watch_with(&file, &["--trace-updates"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, |l| l.starts_with("one "));
    // No `main`: it cannot apply while `main` runs, so it waits.
    std::fs::write(&file, "let hits = 0;\nfn other() { return 1; }\n").unwrap();
    // Wait until the watcher has taken that save (its compile error-free version is pending).
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    read_until(&mut err, |l| l.contains("update requested"));
    std::fs::write(&file, ticker("three")).unwrap();
    read_until(&mut lines, |l| l.starts_with("three "));
    let _ = child.kill();
    let _ = child.wait();
    let err: Vec<String> = err.map(|l| l.unwrap()).collect();
    let superseded: Vec<&String> = err.iter().filter(|l| l.contains("update rejected")).collect();
    assert_eq!(superseded.len(), 1, "stderr: {err:?}");
    assert!(superseded[0].contains("superseded by a newer update before it could be applied"), "stderr: {err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, finding 6: a save that drops a global warns before the global's value is lost
/// (a later save that adds it back starts it again from its initialiser).
#[test]
fn a_save_that_removes_a_global_warns() {
    let dir = scratch("global");
    let file = dir.join("app.molt");
    std::fs::write(&file, ticker("one")).unwrap();
    let mut child = watch_with(&file, &["--policy", "relaxed"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, |l| l.starts_with("one "));
    let v2 = "let count = 0;\nfn main() {\n    loop {\n        update;\n        count += 1;\n        print(\"two\", count);\n        if count > 1200 { return; }\n        sleep(0.05);\n    }\n}\n";
    std::fs::write(&file, v2).unwrap();
    read_until(&mut lines, |l| l.starts_with("two "));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let path = file.display();
    assert_eq!(
        err,
        format!(
            "molt: warning: the edit saved to {path} removes global 'hits' (its value is lost when it applies; a later version that adds it back starts from the initialiser)\n"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
