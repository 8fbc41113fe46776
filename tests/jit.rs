//! Compiled and interpreted code are indistinguishable except for speed: every tests/lang
//! program and every tests/dsu scenario gives the same stdout, stderr and exit status under
//! `--jit always` (every function the tier handles is compiled at its first call).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn molt(args: &[&str], stdin: &str, env: &[(String, String)]) -> Output {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(root)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("molt runs");
    let _ = child.stdin.take().map(|mut s| s.write_all(stdin.as_bytes()));
    child.wait_with_output().expect("molt finishes")
}

/// Drops the timing fields of update events (they differ from run to run).
fn scrub(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| {
            match (l.find("; waited"), l.find(",\"wait_us\""), l.find(" ms)").or(l.find(" us after the request)"))) {
                (Some(i), _, _) | (None, Some(i), _) => &l[..i],
                // "... (N ms)" and a task's "switched ... (N us after the request)": times vary.
                // "abandoned after waiting N update points (M ms)": the time varies.
                (None, None, Some(i)) => &l[..l[..i].rfind('(').unwrap_or(i)],
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn compare(what: &str, args: Vec<String>, stdin: &str, env: &[(String, String)], failures: &mut Vec<String>) {
    // The interpreter alone (`off`; the default `on` would compile hot code too) against
    // every function compiled (`always`); programs with tasks and sockets also against `on`
    // (hot code compiling while tasks run: the same interleaving in all three).
    let plain: Vec<&str> = args.iter().map(String::as_str).collect();
    let with = |mode: &'static str| {
        let mut a = plain.clone();
        a.splice(2..2, ["--jit", mode]);
        molt(&a, stdin, env)
    };
    let a = with("off");
    let modes: &[&str] = match what.contains("tasks") || what.contains("sockets") {
        true => &["always", "on"],
        false => &["always"],
    };
    for &mode in modes {
        let b = with(mode);
        if a.stdout != b.stdout || scrub(&a.stderr) != scrub(&b.stderr) || a.status.code() != b.status.code() {
            failures.push(format!(
                "{what}: interpreted exit {:?}, --jit {mode} exit {:?}\n--- interpreted stdout\n{}--- compiled stdout\n{}--- compiled stderr\n{}",
                a.status.code(),
                b.status.code(),
                String::from_utf8_lossy(&a.stdout),
                String::from_utf8_lossy(&b.stdout),
                String::from_utf8_lossy(&b.stderr)
            ));
        }
    }
}

#[test]
fn lang_programs_behave_the_same_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut n = 0;
    for entry in walkdir::WalkDir::new(root.join("tests/lang")).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "molt") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let stdin: String = text
            .lines()
            .filter_map(|l| l.split("// stdin:").nth(1))
            .map(|s| format!("{}\n", s.strip_prefix(' ').unwrap_or(s)))
            .collect();
        let mut args = vec!["run".to_string(), path.strip_prefix(root).unwrap().display().to_string()];
        if let Some(a) = text.lines().find_map(|l| l.split("// args:").nth(1)) {
            args.push("--".into());
            args.extend(a.split_whitespace().map(String::from));
        }
        compare(&path.display().to_string(), args, &stdin, &[], &mut failures);
        n += 1;
    }
    assert!(n > 100);
    assert!(failures.is_empty(), "{} programs differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn dsu_scenarios_behave_the_same_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root.join("tests/dsu")).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let rel = dir.strip_prefix(root).unwrap().to_path_buf();
        if !dir.join("v1.molt").exists() {
            continue;
        }
        let mut args = vec!["run".to_string(), rel.join("v1.molt").display().to_string()];
        for i in 2..100 {
            let v = rel.join(format!("v{i}.molt"));
            if !root.join(&v).exists() {
                break;
            }
            args.push("--update".into());
            args.push(v.display().to_string());
        }
        if let Ok(extra) = std::fs::read_to_string(dir.join("args")) {
            // The scenario's own options, but its `--jit MODE`: the comparison sets the mode.
            let mut words = extra.split_whitespace();
            while let Some(w) = words.next() {
                match w {
                    "--jit" => {
                        words.next();
                    }
                    w => args.push(w.to_string()),
                }
            }
        }
        // The scenario's environment (`env`: `NAME=value` lines, as tests/dsu.rs reads them).
        let env: Vec<(String, String)> = std::fs::read_to_string(dir.join("env"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        compare(&rel.display().to_string(), args, "", &env, &mut failures);
    }
    assert!(failures.is_empty(), "{} scenarios differ:\n{}", failures.len(), failures.join("\n"));
}

/// `MOLT_JIT_REPORT=1` lists each compiled function with its compile time and code size.
#[test]
fn compile_report_names_functions_with_time_and_size() {
    let out = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("MOLT_JIT_REPORT", "1")
        .args(["run", "--jit", "always", "benches/programs/loop.molt", "--", "1000"])
        .output()
        .expect("molt runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "500500\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("jit: run: ") && l.ends_with(" bytes"))
        .unwrap_or_else(|| panic!("no report for run:\n{err}"));
    let parts: Vec<&str> = line.trim_start_matches("jit: run: ").split(' ').collect();
    assert!(parts.len() == 4 && parts[1] == "us," && parts[3] == "bytes", "{line}");
    assert!(parts[2].parse::<usize>().unwrap() > 0, "{line}");
}

/// Under `--jit on`, a function called once but looping long moves into compiled code at a
/// loop head (on-stack replacement); call-heavy functions, which compiled code would not run
/// faster yet, stay interpreted.
#[test]
fn jit_on_compiles_hot_loops_in_place_and_hot_functions() {
    let run = |program: &str, arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_molt"))
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .env("MOLT_JIT_REPORT", "1")
            .args(["run", "--jit", "on", program, "--", arg])
            .output()
            .expect("molt runs")
    };
    let out = run("benches/programs/loop.molt", "100000");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5000050000\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jit: 1 functions compiled") && err.contains("jit: run: "), "{err}");
    // A function called often enough is compiled (fib 20: 21,891 calls); one called less
    // stays interpreted (fib 10: 177 calls).
    let out = run("benches/programs/fib.molt", "20");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6765\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jit: 1 functions compiled") && err.contains("jit: fib: "), "{err}");
    let out = run("benches/programs/fib.molt", "10");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "55\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jit: 0 functions compiled"), "{err}");
}

/// `--jit always` compiles every function: a function the tier fails to translate would run
/// interpreted without a word (it did for every function computing `==` as a value, until
/// session 9), so the lang suite's functions must all compile.
#[test]
fn every_function_of_the_lang_programs_compiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for entry in walkdir::WalkDir::new(root.join("tests/lang")).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "molt") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_molt"))
            .current_dir(root)
            .env("MOLT_JIT_REPORT", "1")
            .args(["run", "--jit", "always", &rel])
            .stdin(Stdio::null())
            .output()
            .expect("molt runs");
        let err = String::from_utf8_lossy(&out.stderr);
        failures.extend(err.lines().filter(|l| l.contains("not compiled")).map(|l| format!("{rel}: {l}")));
    }
    assert!(failures.is_empty(), "{} functions not compiled:\n{}", failures.len(), failures.join("\n"));
}
