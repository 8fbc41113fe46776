//! Size limits (docs/messages.md, "Size limits"): programs that grow memory without bound end
//! with a runtime error (status 1, `error: MESSAGE` and the trace), never Rust's
//! allocation-failure abort, the same under every `--jit` mode.
//!
//! The built-in limits are large (a 1 GiB string, 2^27 list items, 2^24 map entries, half the
//! machine's memory for the heap), so most cases here lower them through the environment:
//! `MOLT_TEST_LIMITS` (only for tests, it can only lower the per-value limits) and
//! `MOLT_MAX_HEAP` (the heap limit, for users too). tests/lang/runtime_errors has the cases
//! that reach the built-in limits without allocating much (`join`, `replace`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program file of this test (in a temp dir), named as traces show it.
fn program(name: &str, src: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-cli-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
    let path = dir.join(name);
    std::fs::write(&path, src).expect("cannot write a temp file");
    path
}

/// Runs `molt run FILE --jit MODE` with `env` and `stdin`.
fn run(file: &Path, jit: &str, env: &[(&str, &str)], stdin: &[u8]) -> Output {
    run_with(file, &[], jit, env, stdin)
}

/// `run`, with more options (`--update FILE`) after the file.
fn run_with(file: &Path, more: &[&str], jit: &str, env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(file.parent().unwrap_or(root()))
        .env("NO_COLOR", "1")
        .env_remove("MOLT_MAX_HEAP")
        .env_remove("MOLT_TEST_LIMITS")
        .envs(env.iter().copied())
        .args(["run", file.file_name().and_then(|f| f.to_str()).unwrap_or("")])
        .args(more)
        .args(["--jit", jit])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("molt runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // Written from a thread: the program may stop reading (a closed pipe is fine).
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("molt runs");
    let _ = writer.join();
    out
}

/// Runs `src` (as `name`) under every `--jit` mode with `env`, and checks the exit status,
/// stdout and stderr exactly (the same for every mode).
#[track_caller]
fn check(name: &str, env: &[(&str, &str)], src: &str, stdin: &[u8], status: i32, stdout: &str, stderr: &str) {
    let file = program(name, src);
    for jit in ["off", "on", "always"] {
        let out = run(&file, jit, env, stdin);
        let show = || {
            format!(
                "{name} --jit {jit} with {env:?}\n  status: {}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        assert_eq!(out.status.code(), Some(status), "wrong exit status: {}", show());
        assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "wrong stdout: {}", show());
        assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "wrong stderr: {}", show());
    }
}

const SMALL: (&str, &str) = ("MOLT_TEST_LIMITS", "string=1M,list=1000,map=1000");

/// The issue's program: doubling a string forever.
#[test]
fn doubling_a_string_stops_at_the_string_limit() {
    let src = "fn main() {\n    let s = \"ab\";\n    while true { print(len(s)); s = s + s; }\n}\n";
    let lengths: String = (1..=20).map(|k| format!("{}\n", 1u64 << k)).collect();
    check(
        "double.molt",
        &[SMALL],
        src,
        b"",
        1,
        &lengths,
        "error: string too long: concatenation would make 2097152 bytes (limit 1048576)\n  at main (double.molt:3)\n",
    );
}

#[test]
fn doubling_a_string_stops_at_the_heap_limit() {
    let src = "fn main() {\n    let s = \"ab\";\n    while true { s = s + s; }\n}\n";
    check(
        "double_heap.molt",
        &[("MOLT_MAX_HEAP", "16M")],
        src,
        b"",
        1,
        "",
        "error: out of memory: the heap limit of 16777216 bytes is reached (set MOLT_MAX_HEAP to raise it)\n  at main (double_heap.molt:3)\n",
    );
}

#[test]
fn lists_stop_at_the_list_limit() {
    let push = "fn main() {\n    let l = [];\n    while true { l.push(len(l)); }\n}\n";
    check(
        "push.molt",
        &[SMALL],
        push,
        b"",
        1,
        "",
        "error: list too long: push() would make 1001 items (limit 1000)\n  at main (push.molt:3)\n",
    );
    let insert = "fn main() {\n    let l = [];\n    while true { l.insert(0, 1); }\n}\n";
    check(
        "insert.molt",
        &[SMALL],
        insert,
        b"",
        1,
        "",
        "error: list too long: insert() would make 1001 items (limit 1000)\n  at main (insert.molt:3)\n",
    );
    // Lists built from a string: the count first, nothing built past the limit.
    let split = r#"fn main() {
    let s = "a,";
    while len(s) < 1000 { s = s + s; }
    print(len(s.split(",")));
    s = s + s;
    print(len(s.split(",")));
}
"#;
    check(
        "split.molt",
        &[SMALL],
        split,
        b"",
        1,
        "513\n",
        "error: list too long: split() would make 1025 items (limit 1000)\n  at main (split.molt:6)\n",
    );
    let chars = "fn main() {\n    let s = \"\u{e9}\";\n    while len(s) < 1000 { s = s + \"x\"; }\n    print(len(s.chars()));\n    s.split(\"\").len();\n    (s + \"y\").chars();\n}\n";
    check(
        "chars.molt",
        &[SMALL],
        chars,
        b"",
        1,
        "1000\n",
        "error: list too long: chars() would make 1001 items (limit 1000)\n  at main (chars.molt:6)\n",
    );
}

#[test]
fn maps_stop_at_the_map_limit() {
    // Overwriting a key of a full map is fine; a new key is not.
    let set = r#"fn main() {
    let m = {};
    for i in 0..1000 { m.set(i, i); }
    m.set(5, "five");
    m[6] = "six";
    print(len(m), m[5], m[6]);
    m["new"] = 1;
}
"#;
    check(
        "map_index.molt",
        &[SMALL],
        set,
        b"",
        1,
        "1000 five six\n",
        "error: map too large: adding a key would make 1001 entries (limit 1000)\n  at main (map_index.molt:7)\n",
    );
    let grow = "fn main() {\n    let m = {};\n    let i = 0;\n    while true { m.set(str(i), i); i += 1; }\n}\n";
    check(
        "map_set.molt",
        &[SMALL],
        grow,
        b"",
        1,
        "",
        "error: map too large: adding a key would make 1001 entries (limit 1000)\n  at main (map_set.molt:4)\n",
    );
}

#[test]
fn strings_built_by_methods_stop_at_the_string_limit() {
    // Upper and lower case may be longer than the string: "ΐ" (2 bytes) is "Ϊ́" (6), "İ" (2)
    // is "i̇" (3).
    let src = "fn main() {\n    let a = \"\u{390}\";\n    let b = \"\u{130}\";\n    while len(a) < 256 { a = a + a; b = b + b; }\n    print(len(b.lower()));\n    a.upper();\n}\n";
    check(
        "case.molt",
        &[("MOLT_TEST_LIMITS", "string=1000")],
        src,
        b"",
        1,
        "512\n",
        "error: string too long: upper() would make 1536 bytes (limit 1000)\n  at main (case.molt:6)\n",
    );
    let join = "fn main() {\n    let l = [\"abc\"];\n    while true { l.push(l.join(\"--\")); }\n}\n";
    check(
        "join.molt",
        &[("MOLT_TEST_LIMITS", "string=1000")],
        join,
        b"",
        1,
        "",
        "error: string too long: join() would make 1278 bytes (limit 1000)\n  at main (join.molt:3)\n",
    );
    let replace = "fn main() {\n    let s = \"ab\";\n    while true { s = s.replace(\"a\", \"aa\"); }\n}\n";
    check(
        "replace.molt",
        &[("MOLT_TEST_LIMITS", "string=1000")],
        replace,
        b"",
        1,
        "",
        "error: string too long: replace() would make 1025 bytes (limit 1000)\n  at main (replace.molt:3)\n",
    );
}

/// A list holding another twice, 40 levels deep, prints 2^40 times: str() and print() stop at
/// the limit instead of building the text.
#[test]
fn printing_stops_at_the_string_limit() {
    let src = "fn main() {\n    let l = [\"abc\"];\n    for i in 0..40 { l = [l, l]; }\n    print(len(str(l[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0])));\n    MODE;\n}\n";
    let str_src = src.replace("MODE", "str(l)");
    check(
        "str_dag.molt",
        &[("MOLT_TEST_LIMITS", "string=100000")],
        &str_src,
        b"",
        1,
        "2812\n",
        "error: string too long: str() would make more than the limit of 100000 bytes\n  at main (str_dag.molt:5)\n",
    );
    let print_src = src.replace("MODE", "print(l)");
    check(
        "print_dag.molt",
        &[("MOLT_TEST_LIMITS", "string=100000")],
        &print_src,
        b"",
        1,
        "2812\n",
        "error: string too long: print() would make more than the limit of 100000 bytes\n  at main (print_dag.molt:5)\n",
    );
}

/// A value shown inside an error message is cut at the string limit, with `...` (an escape
/// whole or not at all): here a key of 128 newlines, 258 bytes when quoted.
#[test]
fn long_values_in_messages_are_cut() {
    let src = "fn main() {\n    let k = \"\\n\";\n    while len(k) < 100 { k = k + k; }\n    let m = {};\n    print(m[k]);\n}\n";
    let key = format!("\"{}...", "\\n".repeat(74));
    check(
        "key.molt",
        &[("MOLT_TEST_LIMITS", "string=150")],
        src,
        b"",
        1,
        "",
        &format!("error: key not found: {key}\n  at main (key.molt:5)\n"),
    );
}

#[test]
fn read_line_stops_at_the_string_limit() {
    let src = "fn main() {\n    print(len(read_line()));\n    print(len(read_line()));\n}\n";
    let mut input = "x".repeat(1000);
    input.push('\n');
    input.push_str(&"y".repeat(5000));
    check(
        "read_line.molt",
        &[("MOLT_TEST_LIMITS", "string=1000")],
        src,
        input.as_bytes(),
        1,
        "1000\n",
        "error: string too long: read_line() found a line of more than the limit of 1000 bytes\n  at main (read_line.molt:3)\n",
    );
}

/// Live data past the heap limit: many medium strings kept in a list, or records and lists
/// (allocated without a check each: the collection at the loop's back-edge finds them live).
#[test]
fn live_data_stops_at_the_heap_limit() {
    let heap = ("MOLT_MAX_HEAP", "16M");
    let message = |file: &str, line: u32| {
        format!(
            "error: out of memory: the heap limit of 16777216 bytes is reached (set MOLT_MAX_HEAP to raise it)\n  at main ({file}:{line})\n"
        )
    };
    let keep = "fn main() {\n    let s = \"ab\";\n    while len(s) < 100000 { s = s + s; }\n    let keep = [];\n    while true { keep.push(s + str(len(keep))); }\n}\n";
    check("keep.molt", &[heap], keep, b"", 1, "", &message("keep.molt", 5));
    let records =
        "type Node { next, a = 1 }\nfn main() {\n    let x = nil;\n    while true { x = Node { next: x }; }\n}\n";
    check("records.molt", &[heap], records, b"", 1, "", &message("records.molt", 4));
    let lists = "fn main() {\n    let x = [];\n    while true { x = [x, x, x, x]; }\n}\n";
    check("lists.molt", &[heap], lists, b"", 1, "", &message("lists.molt", 3));
    let closures =
        "fn main() {\n    let fs = [];\n    while true { let n = len(fs); fs.push(fn() { return n; }); }\n}\n";
    check("closures.molt", &[heap], closures, b"", 1, "", &message("closures.molt", 3));
    // In a callee: its list literal finds no room.
    let calls = "fn grow(x) { return [x, x, x]; }\nfn main() {\n    let x = [];\n    while true { x = grow(x); }\n}\n";
    let in_grow = message("calls.molt", 4).replace("  at main", "  at grow (calls.molt:1)\n  at main");
    check("calls.molt", &[heap], calls, b"", 1, "", &in_grow);
}

/// An update whose new global's initialiser grows without bound fails at the heap limit
/// (collections are paused during an update; the safepoint still fails past the limit), is
/// rolled back, and the program goes on in its old version.
#[test]
fn an_update_growing_without_bound_rolls_back() {
    let v1 = "let count = 0;\nfn main() {\n    for i in 0..3 {\n        count += 1;\n        print(version(), count);\n        update;\n    }\n}\n";
    let v2 = v1.replace("let count = 0;\n", "let count = 0;\nlet hog = grow();\nfn grow() {\n    let x = [];\n    while true { x = [x, x, x]; }\n    return x;\n}\n");
    let file = program("update_v1.molt", v1);
    program("update_v2.molt", &v2);
    for jit in ["off", "on", "always"] {
        let out = run_with(&file, &["--update", "update_v2.molt"], jit, &[("MOLT_MAX_HEAP", "16M")], b"");
        let what = format!("--jit {jit}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1 1\n1 2\n1 3\n", "{what}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "update rolled back (version 1 -> 2): initialising new global 'hog' failed: out of memory: the heap limit of 16777216 bytes is reached (set MOLT_MAX_HEAP to raise it) (at grow update_v2.molt:5)\n",
            "{what}"
        );
    }
}

/// Garbage is collected by bytes, not only by objects: a loop making big garbage strings
/// runs in a small heap limit (each iteration makes 2 MiB of garbage, 400 MiB in all).
#[test]
fn big_garbage_is_collected_in_time() {
    let src = "fn main() {\n    let s = \"ab\";\n    while len(s) < 1048576 { s = s + s; }\n    let n = 0;\n    for i in 0..200 { let t = s + s; n += len(t); }\n    print(n);\n}\n";
    check("garbage.molt", &[("MOLT_MAX_HEAP", "16M")], src, b"", 0, "419430400\n", "");
}

#[test]
fn bad_limit_settings_are_usage_errors() {
    let file = program("ok.molt", "fn main() { print(1); }\n");
    for (env, message) in [
        (
            ("MOLT_MAX_HEAP", "lots"),
            "error: MOLT_MAX_HEAP=lots: expected a size in bytes, or with K, M or G (`512M`, `8G`)\n",
        ),
        (("MOLT_MAX_HEAP", "100G"), "error: MOLT_MAX_HEAP=100G: the heap limit must be between 1M and 64G\n"),
        (
            ("MOLT_TEST_LIMITS", "strings=1"),
            "error: MOLT_TEST_LIMITS=strings=1: expected `string=N,list=N,map=N` (sizes may only go down)\n",
        ),
        (
            ("MOLT_TEST_LIMITS", "string=lots"),
            "error: MOLT_TEST_LIMITS=string=lots: expected `string=N,list=N,map=N` (sizes may only go down)\n",
        ),
    ] {
        let out = run(&file, "on", &[env], b"");
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{env:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{env:?}");
    }
    // Sizes with K, M or G, any case, with or without a B: the program runs.
    let sizes =
        [("MOLT_MAX_HEAP", "64M"), ("MOLT_MAX_HEAP", "64m"), ("MOLT_MAX_HEAP", "64MB"), ("MOLT_MAX_HEAP", "64MiB")];
    let more = [("MOLT_MAX_HEAP", "1G"), ("MOLT_MAX_HEAP", "67108864"), ("MOLT_TEST_LIMITS", "string=1M")];
    let tests = [
        ("MOLT_TEST_LIMITS", "string=1m,list=64K"),
        ("MOLT_TEST_LIMITS", "map=1KB"),
        ("MOLT_TEST_LIMITS", "list=2KiB"),
    ];
    for env in sizes.into_iter().chain(more).chain(tests) {
        let out = run(&file, "on", &[env], b"");
        assert_eq!(
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()),
            (Some(0), "1\n".into()),
            "{env:?}"
        );
    }
}
