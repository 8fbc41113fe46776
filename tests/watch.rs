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
