//! The `molt` command line, end to end (../shared/spec/CLI.md, LANGUAGE.md "Errors",
//! docs/messages.md): exit statuses, what goes to stdout and what to stderr, the shape of compile
//! and runtime errors, `.mbc` round trips of every language test, `molt disasm` on source and
//! bytecode, program arguments, and thousands of corrupted `.mbc` files run through `molt run`
//! (which must be rejected with status 2, never crash, never hang).
//!
//! Every run starts the real binary from the package root, with stdin empty and stdout/stderr
//! piped (so stderr is not a terminal), and a timeout.
//!
//! The mutation test is seeded: `MOLT_CLI_FUZZ_SEED=N cargo test --test cli mbc_mutations` reruns
//! it with another seed (`MOLT_CLI_FUZZ_SCALE=K` runs K times as many random mutations); a failure
//! prints the seed, the case and the mutation, and keeps the file.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A run that takes longer than this is killed (and fails its test).
const TIMEOUT: Duration = Duration::from_secs(10);
/// A run of a mutated `.mbc` still going after this long is checked: if the file is valid
/// bytecode, it is a program that happens to run long, and it is stopped.
const GRACE: Duration = Duration::from_secs(2);
/// At most this much of a run's stdout or stderr is kept (the rest is read and dropped), so a
/// corrupted program that prints forever cannot exhaust memory.
const KEEP: usize = 8 << 20;
/// The `.mbc` header: magic, format version, program version, layout hash, body length, checksum.
const MAGIC: &[u8; 8] = b"MOLTBC\r\n";
const HEADER_LEN: usize = 38;
const BODY_LEN_AT: usize = 22;
const CHECKSUM_AT: usize = 30;

// ---------------------------------------------------------------------------------------------
// Running the binary

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What one run of `molt` produced.
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything about the run, for an assertion message.
    fn show(&self, what: &str) -> String {
        let mut err: String = self.stderr.lines().take(40).collect::<Vec<_>>().join("\n");
        if self.stderr.lines().nth(40).is_some() {
            err.push_str("\n[... more stderr ...]");
        }
        let out: String = self.stdout.chars().take(4000).collect();
        format!("{what}\n  status: {}\n  --- stdout ---\n{out}\n  --- stderr ---\n{err}\n", self.status)
    }
}

fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    format!("(cd {} && molt {})", root().display(), args.join(" "))
}

/// Reads a pipe to its end, keeping at most [`KEEP`] bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 1 << 16];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = KEEP.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                }
            }
        }
        kept
    })
}

/// Runs `molt ARGS` from the package root with empty stdin; `Err` if it had to be killed after
/// `timeout` (or could not be started or waited for).
fn try_molt<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> Result<Out, String> {
    try_molt_in(root(), args, timeout)
}

/// Runs `molt ARGS` from `cwd` with empty stdin, like [`try_molt`].
fn try_molt_in<S: AsRef<OsStr>>(cwd: &Path, args: &[S], timeout: Duration) -> Result<Out, String> {
    let out = exec(cwd, args, timeout, None)?;
    Ok(out.expect("no early stop was asked for"))
}

/// After this long, `exec` may ask whether a run that is still going can be stopped early.
type Grace<'a> = (Duration, &'a mut dyn FnMut() -> bool);

/// Runs `molt ARGS` from `cwd`; `Err` if it had to be killed after `timeout`. With a grace
/// `(after, stop)`, once the run has taken `after`, `stop()` is asked (once) whether it may be
/// killed at once: then the result is `Ok(None)`.
fn exec<S: AsRef<OsStr>>(
    cwd: &Path,
    args: &[S],
    timeout: Duration,
    grace: Option<Grace>,
) -> Result<Option<Out>, String> {
    let mut grace = grace;
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(args)
        .current_dir(cwd)
        // Colours must be off because stderr is a pipe, not because of NO_COLOR.
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: cannot start molt: {e}", describe(args)))?;
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if grace.as_ref().is_some_and(|(after, _)| start.elapsed() >= *after) => {
                let stop = grace.take().is_some_and(|(_, stop)| stop());
                if stop {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = (out.join(), err.join());
                    return Ok(None);
                }
            }
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (out.join(), err.join());
                return Err(format!("{}: timed out after {:?}: killed", describe(args), timeout));
            }
            Ok(None) => thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: cannot wait for molt: {e}", describe(args)));
            }
        }
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok(Some(Out { status, stdout, stderr }))
}

/// Runs `molt ARGS`; panics on a timeout. Never a crash: every run is checked for a signal, a
/// Rust panic (status 101) and a "panicked" message.
fn molt<S: AsRef<OsStr>>(args: &[S]) -> Out {
    let out = try_molt(args, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let what = describe(args);
    assert!(out.code().is_some(), "{}", out.show(&format!("{what}: killed by a signal")));
    assert_ne!(out.code(), Some(101), "{}", out.show(&format!("{what}: a Rust panic")));
    assert!(!out.stderr.contains("panicked"), "{}", out.show(&format!("{what}: a Rust panic")));
    out
}

/// Asserts the exit status, stdout and stderr of a run exactly.
#[track_caller]
fn assert_run(out: &Out, what: &str, code: i32, stdout: &str, stderr: &str) {
    assert_eq!(out.code(), Some(code), "{}", out.show(&format!("{what}: wrong exit status")));
    assert_eq!(out.stdout, stdout, "{}", out.show(&format!("{what}: wrong stdout")));
    assert_eq!(out.stderr, stderr, "{}", out.show(&format!("{what}: wrong stderr")));
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("molt-cli-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("cannot write a temp file");
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `src` to `.mbc` bytes (through `molt compile NAME.molt -o NAME.mbc` run inside `dir`,
/// so the file name recorded in the bytecode, and so the bytes, do not depend on the temp dir).
fn compile(dir: &TempDir, name: &str, src: &str) -> Vec<u8> {
    dir.file(&format!("{name}.molt"), src);
    let (source, mbc) = (format!("{name}.molt"), format!("{name}.mbc"));
    let out = try_molt_in(&dir.0, &["compile", &source, "-o", &mbc], TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_run(&out, &format!("(cd {} && molt compile {source} -o {mbc})", dir.0.display()), 0, "", "");
    std::fs::read(dir.0.join(&mbc)).expect("molt compile wrote no file")
}

// ---------------------------------------------------------------------------------------------
// help, usage errors, exit statuses

#[test]
fn help_exits_0_with_usage_on_stdout() {
    for cmd in ["help", "--help", "-h"] {
        let out = molt(&[cmd]);
        assert_eq!(out.code(), Some(0), "{}", out.show(&format!("molt {cmd}")));
        assert!(out.stdout.starts_with("usage:"), "{}", out.show(&format!("molt {cmd}: usage on stdout")));
        for word in ["run", "check", "compile", "disasm"] {
            assert!(out.stdout.contains(&format!("molt {word}")), "{}", out.show(&format!("molt {cmd}: {word}")));
        }
        assert_eq!(out.stderr, "", "{}", out.show(&format!("molt {cmd}: nothing on stderr")));
    }
}

#[test]
fn usage_errors_exit_2_on_stderr_only() {
    let dir = TempDir::new("usage");
    let ok = dir.file("ok.molt", "fn main() { print(\"ran\"); }\n");
    let missing = dir.path("missing.molt");
    let missing_mbc = dir.path("missing.mbc");
    let out_mbc = dir.path("out.mbc");
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["RUN", &ok],
        vec!["run"],
        vec!["run", &missing],
        vec!["run", &missing_mbc],
        vec!["run", &ok, "extra.molt"],
        vec!["run", &ok, "--frob"],
        vec!["run", "--frob", &ok],
        vec!["run", &ok, "--jit"],
        vec!["run", &ok, "--jit", "sideways"],
        vec!["run", &ok, "--policy", "lax"],
        vec!["run", &ok, "--transform"],
        vec!["run", &ok, "--update"],
        vec!["run", "--", "a"],
        vec!["check"],
        vec!["check", &missing],
        vec!["check", &ok, &ok],
        vec!["compile"],
        vec!["compile", &ok, "-o"],
        vec!["compile", &ok, "--out", &out_mbc],
        vec!["compile", &ok, "-o", &out_mbc, "extra"],
        vec!["compile", &missing, "-o", &out_mbc],
        vec!["disasm"],
        vec!["disasm", &missing],
        vec!["disasm", &ok, &ok],
    ];
    for args in &cases {
        let out = molt(args);
        let what = describe(args);
        assert_eq!(out.code(), Some(2), "{}", out.show(&format!("{what}: expected exit status 2")));
        assert_eq!(out.stdout, "", "{}", out.show(&format!("{what}: nothing on stdout (the program must not run)")));
        assert!(out.stderr.starts_with("error"), "{}", out.show(&format!("{what}: an error on stderr")));
        assert!(!out.stderr.contains('\x1b'), "{}", out.show(&format!("{what}: no colour escapes")));
    }
    assert!(!Path::new(&out_mbc).exists(), "a failed `molt compile` wrote {out_mbc}");
}

/// The spec's form is `molt compile FILE -o OUT.mbc`; without `-o` it should be a usage error,
/// but molt writes FILE.mbc next to the source.
#[test]
fn compile_without_o_is_a_usage_error() {
    let dir = TempDir::new("compile-no-o");
    let src = dir.file("prog.molt", "fn main() { print(1); }\n");
    let out = molt(&["compile", &src]);
    assert_eq!(out.code(), Some(2), "{}", out.show(&format!("molt compile {src} (no -o)")));
    assert!(!Path::new(&dir.path("prog.mbc")).exists(), "`molt compile {src}` without -o wrote prog.mbc");
}

#[test]
fn exit_statuses_0_1_2_with_output_on_the_right_stream() {
    let dir = TempDir::new("status");
    let ok = dir.file("ok.molt", "fn main() {\n    print(\"one\");\n    print(1, 2.5, nil, [true]);\n}\n");
    assert_run(&molt(&["run", &ok]), "success", 0, "one\n1 2.5 nil [true]\n", "");

    let rt = dir.file("rt.molt", "fn main() {\n    print(\"before\");\n    print(1 / 0);\n}\n");
    assert_run(
        &molt(&["run", &rt]),
        "runtime error",
        1,
        "before\n",
        &format!("error: division by zero\n  at main ({rt}:3)\n"),
    );

    let ce = dir.file("ce.molt", "fn main() {\n    print(\"never\");\n    print(nope);\n}\n");
    let out = molt(&["run", &ce]);
    assert_eq!(out.code(), Some(2), "{}", out.show("compile error: status 2"));
    assert_eq!(out.stdout, "", "{}", out.show("compile error: nothing runs"));
    assert!(out.stderr.contains("error[E0003]: undefined name 'nope'"), "{}", out.show("compile error"));

    // The same three through .mbc files (a compile error never makes one).
    for (src, code) in [(&ok, 0), (&rt, 1)] {
        let mbc = src.replace(".molt", ".mbc");
        assert_run(&molt(&["compile", src, "-o", &mbc]), "compile", 0, "", "");
        let (a, b) = (molt(&["run", src]), molt(&["run", &mbc]));
        assert_eq!(b.code(), Some(code), "{}", b.show("run .mbc"));
        assert_eq!((a.stdout, a.stderr), (b.stdout, b.stderr), "source and .mbc runs differ");
    }
    let mbc = dir.path("ce.mbc");
    let out = molt(&["compile", &ce, "-o", &mbc]);
    assert_eq!(out.code(), Some(2), "{}", out.show("compile of a broken file"));
    assert!(!Path::new(&mbc).exists(), "a compile error still wrote {mbc}");
}

#[test]
fn args_after_double_dash_reach_the_program() {
    let dir = TempDir::new("args");
    let src = dir.file("args.molt", "fn main() {\n    print(args());\n    print(len(args()));\n}\n");
    let mbc = dir.path("args.mbc");
    assert_run(&molt(&["compile", &src, "-o", &mbc]), "compile", 0, "", "");
    for file in [&src, &mbc] {
        assert_run(&molt(&["run", file, "--", "a", "b"]), "run -- a b", 0, "[\"a\", \"b\"]\n2\n", "");
        assert_run(&molt(&["run", file]), "run (no args)", 0, "[]\n0\n", "");
        assert_run(&molt(&["run", file, "--"]), "run --", 0, "[]\n0\n", "");
        // After `--` nothing is an option of molt's, and spaces stay inside an argument.
        assert_run(
            &molt(&["run", file, "--", "--jit", "x y", "--", ""]),
            "run -- --jit 'x y' -- ''",
            0,
            "[\"--jit\", \"x y\", \"--\", \"\"]\n4\n",
            "",
        );
    }
}

/// Arguments that are not UTF-8 (possible on Unix) are input like any other: a program argument
/// or a file name must not make molt panic.
#[cfg(unix)]
#[test]
fn non_utf8_arguments_are_not_a_panic() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let dir = TempDir::new("non-utf8");
    let src = dir.file("args.molt", "fn main() {\n    print(len(args()));\n}\n");
    let bad_arg = OsString::from_vec(vec![b'x', 0xff]);
    let bad_file = OsString::from_vec(vec![b'n', 0xff, b'.', b'm', b'o', b'l', b't']);
    for args in [
        vec![OsString::from("run"), OsString::from(&src), OsString::from("--"), bad_arg],
        vec![OsString::from("run"), bad_file.clone()],
        vec![OsString::from("check"), bad_file],
    ] {
        let out = try_molt(&args, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let what = describe(&args);
        assert!(matches!(out.code(), Some(0..=2)), "{}", out.show(&format!("{what}: exit status 0, 1 or 2")));
        assert!(!out.stderr.contains("panicked"), "{}", out.show(&format!("{what}: a Rust panic")));
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime errors: stdout flushed, error and stack trace on stderr

const CHAIN: &str = "fn c(n) {
    if n > 0 {
        error(\"boom \" + str(n));
    }
    return n;
}
fn b(n) {
    let r = c(n);
    return r;
}
fn a(n) {
    print(\"in a\", n);
    return b(n) + 1;
}
fn main() {
    print(\"start\");
    print(a(0));
    print(a(7));
    print(\"not reached\");
}
";

#[test]
fn runtime_error_trace_innermost_first_and_stdout_kept() {
    let dir = TempDir::new("trace");
    let src = dir.file("chain.molt", CHAIN);
    let stdout = "start\nin a 0\n1\nin a 7\n";
    let stderr =
        format!("error: boom 7\n  at c ({src}:3)\n  at b ({src}:8)\n  at a ({src}:13)\n  at main ({src}:18)\n");
    assert_run(&molt(&["run", &src]), "3-deep call chain", 1, stdout, &stderr);

    // From bytecode: the same output, the frames still name the source file and lines.
    let mbc = dir.path("chain.mbc");
    assert_run(&molt(&["compile", &src, "-o", &mbc]), "compile", 0, "", "");
    assert_run(&molt(&["run", &mbc]), "3-deep call chain from .mbc", 1, stdout, &stderr);

    // Relative paths are printed as given.
    let rel = "tests/lang/runtime_errors/error_in_nested_call.molt";
    let out = molt(&["run", rel]);
    let stderr = format!("error: too big: 3\n  at inner ({rel}:4)\n  at middle ({rel}:9)\n  at main ({rel}:13)\n");
    assert_run(&out, rel, 1, "3\n", &stderr);
}

#[test]
fn output_before_a_runtime_error_is_flushed() {
    // Much more than any stdout buffer: every line must still arrive, before the error.
    let dir = TempDir::new("flush");
    let src = dir.file(
        "flush.molt",
        "fn main() {\n    for i in 0..20000 {\n        print(\"line\", i);\n    }\n    let xs = [];\n    print(xs[3]);\n}\n",
    );
    let expected: String = (0..20000).map(|i| format!("line {i}\n")).collect();
    let stderr = format!("error: list index 3 out of range (length 0)\n  at main ({src}:6)\n");
    assert_run(&molt(&["run", &src]), "20000 lines then an error", 1, &expected, &stderr);
    // A partial last line (no newline yet) is flushed too, and stays off stderr.
    let src = dir.file("partial.molt", "fn main() {\n    print(\"a\");\n    assert(false, \"stop\");\n}\n");
    assert_run(
        &molt(&["run", &src]),
        "assert",
        1,
        "a\n",
        &format!("error: assertion failed: stop\n  at main ({src}:3)\n"),
    );
}

/// A consumer that closes stderr early (`molt run F 2>&1 >/dev/null | head -1`) must not turn a
/// runtime error into a Rust panic.
#[test]
fn closed_stderr_is_not_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(["run", "tests/lang/runtime_errors/stack_overflow.molt"])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start molt");
    let mut pipe = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut pipe, &mut first).expect("cannot read stderr");
    assert_eq!(first, "error: stack overflow\n");
    drop(pipe); // like `head -1` exiting
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("molt did not exit after stderr was closed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(1), "molt run stack_overflow.molt with stderr closed early: {status}");
}

// ---------------------------------------------------------------------------------------------
// Compile errors

#[test]
fn compile_error_rendering_is_exact() {
    let dir = TempDir::new("ce");
    let src = dir.file("one.molt", "fn main() {\n    let y = 1;\n    print(x);\n}\n");
    let expected = format!(
        "error[E0003]: undefined name 'x'\n  \u{250c}\u{2500} {src}:3:11\n  \u{2502}\n3 \u{2502}     print(x);\n  \u{2502}           ^ not declared anywhere\n\n"
    );
    for cmd in ["run", "check", "disasm"] {
        assert_run(&molt(&[cmd, &src]), &format!("molt {cmd} one.molt"), 2, "", &expected);
    }
    let mbc = dir.path("one.mbc");
    assert_run(&molt(&["compile", &src, "-o", &mbc]), "molt compile one.molt", 2, "", &expected);
}

/// `path:line:col` of every `┌─ ` location line, in order.
fn locations(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.trim_start().strip_prefix("\u{250c}\u{2500} ")).map(str::to_string).collect()
}

#[test]
fn every_compile_error_is_reported_in_order() {
    let dir = TempDir::new("ce3");
    let src = dir.file(
        "three.molt",
        "type P { x }\n\
         fn main() {\n\
         \x20   print(nope);\n\
         \x20   let a = 1;\n\
         \x20   let p = P { x: 1, z: 2 };\n\
         }\n\
         fn f(a) {\n\
         \x20   return a + ;\n\
         }\n\
         fn g() {\n\
         \x20   f(1, 2);\n\
         }\n",
    );
    let out = molt(&["check", &src]);
    assert_eq!(out.code(), Some(2), "{}", out.show("check with four errors"));
    assert_eq!(out.stdout, "", "{}", out.show("check with four errors: stdout"));
    let want: Vec<String> = ["3:11", "5:23", "8:16", "11:5"].iter().map(|lc| format!("{src}:{lc}")).collect();
    assert_eq!(locations(&out.stderr), want, "{}", out.show("the four locations, in source order"));
    let heads: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(heads.len(), 5, "{}", out.show("four errors and a summary"));
    assert_eq!(heads[0], "error[E0003]: undefined name 'nope'");
    assert_eq!(heads[1], "error[E0007]: type P has no field 'z'");
    assert!(heads[2].starts_with("error[E0001]: syntax error: unexpected ';'"), "{}", heads[2]);
    assert_eq!(heads[3], "error[E0009]: 'f' expects 1 argument but got 2");
    assert_eq!(heads[4], "error: 4 errors found");
    // Each error shows its source line.
    for line in
        ["3 \u{2502}     print(nope);", "5 \u{2502}     let p = P { x: 1, z: 2 };", "8 \u{2502}     return a + ;"]
    {
        assert!(out.stderr.contains(line), "{}", out.show(&format!("the source line `{line}`")));
    }
    assert!(out.stderr.contains("11 \u{2502}     f(1, 2);"), "{}", out.show("source line 11"));
    // `run` reports the same and runs nothing.
    let run = molt(&["run", &src]);
    assert_run(&run, "molt run three.molt", 2, "", &out.stderr);
}

#[test]
fn check_is_silent_on_a_clean_file_and_runs_nothing() {
    let dir = TempDir::new("check");
    // Would print and fail at run time: `check` only compiles.
    let clean = dir.file("clean.molt", "fn main() {\n    print(\"hello\");\n    error(\"boom\");\n}\n");
    assert_run(&molt(&["check", &clean]), "check clean.molt", 0, "", "");
    let broken = dir.file("broken.molt", "fn main() {\n    print(\"hello\")\n}\n");
    let out = molt(&["check", &broken]);
    assert_eq!(out.code(), Some(2), "{}", out.show("check broken.molt"));
    assert_eq!(out.stdout, "", "{}", out.show("check broken.molt: stdout"));
    assert!(out.stderr.starts_with("error[E0001]: syntax error"), "{}", out.show("check broken.molt"));
    assert!(out.stderr.contains(&format!("{broken}:3:1")), "{}", out.show("check broken.molt: location"));
    // The language tests with compile errors fail `check` too; a clean .mbc passes it.
    let out = molt(&["check", "tests/lang/compile_errors/multiple_errors.molt"]);
    assert_eq!(out.code(), Some(2), "{}", out.show("check multiple_errors.molt"));
    let mbc = dir.path("clean.mbc");
    assert_run(&molt(&["compile", &clean, "-o", &mbc]), "compile", 0, "", "");
    assert_run(&molt(&["check", &mbc]), "check clean.mbc", 0, "", "");
}

#[test]
fn no_colour_escapes_when_stderr_is_not_a_terminal() {
    let dir = TempDir::new("colour");
    let ce = dir.file("ce.molt", "fn main() {\n    print(x);\n    let = ;\n}\n");
    let rt = dir.file("rt.molt", "fn main() {\n    print(-\"s\");\n}\n");
    for args in [["check", &ce], ["run", &ce], ["run", &rt], ["run", "tests/lang/compile_errors/multiple_errors.molt"]]
    {
        let out = molt(&args);
        assert!(out.code() == Some(1) || out.code() == Some(2), "{}", out.show("an error"));
        assert!(!out.stderr.is_empty(), "{}", out.show("an error on stderr"));
        assert!(!out.stderr.contains('\x1b'), "{}", out.show(&format!("{}: ANSI escape on a pipe", describe(&args))));
    }
}

// ---------------------------------------------------------------------------------------------
// .mbc round trips and disasm, for every language test

#[test]
fn mbc_round_trip_of_every_language_test() {
    let dir = TempDir::new("roundtrip");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root().join("tests/lang"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "molt"))
        .map(|e| e.path().strip_prefix(root()).expect("under the root").to_path_buf())
        .collect();
    files.sort();
    let (mut checked, mut skipped_io, mut rejected) = (0, 0, 0);
    let mut failures = Vec::new();
    for (i, rel) in files.iter().enumerate() {
        let src = rel.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(root().join(rel)).expect("cannot read a test file");
        if text.contains("// stdin:") || text.contains("// args:") {
            skipped_io += 1;
            continue;
        }
        if molt(&["check", &src]).code() != Some(0) {
            rejected += 1;
            continue;
        }
        checked += 1;
        let mbc = dir.path(&format!("{i}.mbc"));
        let compiled = molt(&["compile", &src, "-o", &mbc]);
        if compiled.code() != Some(0) || !compiled.stdout.is_empty() || !compiled.stderr.is_empty() {
            failures.push(compiled.show(&format!("molt compile {src} -o {mbc}")));
            continue;
        }
        let (a, b) = (molt(&["run", &src]), molt(&["run", &mbc]));
        if a.status.code() != b.status.code() || a.stdout != b.stdout || a.stderr != b.stderr {
            failures.push(format!("{}{}", a.show(&format!("molt run {src}")), b.show(&format!("molt run {mbc}"))));
        }
        let (da, db) = (molt(&["disasm", &src]), molt(&["disasm", &mbc]));
        if da.code() != Some(0) || db.code() != Some(0) || !da.stderr.is_empty() || !db.stderr.is_empty() {
            failures.push(format!(
                "{}{}",
                da.show(&format!("molt disasm {src}")),
                db.show(&format!("molt disasm {mbc}"))
            ));
        } else if da.stdout != db.stdout {
            failures.push(format!("molt disasm {src} and molt disasm {mbc} print different text"));
        } else if text.contains("fn main()")
            && !da.stdout.lines().any(|l| l.starts_with("fn ") && l.contains(" main ("))
        {
            failures.push(da.show(&format!("molt disasm {src}: no `main` function listed")));
        }
    }
    eprintln!("round trip: {checked} files, {skipped_io} skipped (stdin/args), {rejected} compile errors");
    assert!(checked >= 200, "only {checked} language tests round-tripped: is tests/lang there?");
    assert!(rejected >= 30, "only {rejected} language tests failed `molt check`: compile_errors/ should");
    assert!(failures.is_empty(), "{} of {checked} round trips failed:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Invalid .mbc files

/// FNV-1a 64, the `.mbc` body checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Rewrites the header's body length and checksum to match the body, so that a corrupted body
/// gets past the checksum to the decoder and the verifier.
fn fix_header(file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    let body_len = (file.len() - HEADER_LEN) as u64;
    let sum = fnv1a(&file[HEADER_LEN..]);
    file[BODY_LEN_AT..BODY_LEN_AT + 8].copy_from_slice(&body_len.to_le_bytes());
    file[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn invalid_mbc_files_exit_2() {
    let dir = TempDir::new("badmbc");
    let good = compile(&dir, "good", "fn main() {\n    print(\"good\");\n}\n");
    assert_eq!(&good[..8], MAGIC, "the file format starts with its magic");
    assert_run(&molt(&["run", &dir.path("good.mbc")]), "run good.mbc", 0, "good\n", "");

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("magic only", MAGIC.to_vec()),
        ("half the magic", MAGIC[..4].to_vec()),
        ("the header only", good[..HEADER_LEN].to_vec()),
        ("source text", b"fn main() { print(1); }\n".to_vec()),
        ("last byte cut", good[..good.len() - 1].to_vec()),
        ("one trailing byte", [&good[..], &[0]].concat()),
        ("random text", b"MOLTBC but not really".to_vec()),
    ];
    let mut v = good.clone();
    v[8] = 99; // format version
    cases.push(("format version 99", v));
    let mut v = good.clone();
    v[HEADER_LEN + 3] ^= 0x40;
    cases.push(("a body byte flipped (checksum)", v));
    let mut v = good.clone();
    v[14] ^= 1; // layout hash
    cases.push(("layout hash", v));
    let mut v = good.clone();
    v[10] ^= 1; // program version (the body has its own copy)
    cases.push(("program version", v));
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&good[8..HEADER_LEN]);
    fix_header(&mut v);
    cases.push(("a valid header with an empty body", v));
    let mut v = good.clone();
    v.truncate(good.len() / 2);
    fix_header(&mut v);
    cases.push(("half a body, header fixed", v));
    let mut v = good.clone();
    v.push(0);
    fix_header(&mut v);
    cases.push(("a byte after the program, header fixed", v));

    for (what, bytes) in &cases {
        let file = dir.file("bad.mbc", bytes);
        for cmd in ["run", "check", "disasm"] {
            let out = molt(&[cmd, &file]);
            assert_eq!(out.code(), Some(2), "{}", out.show(&format!("molt {cmd} on an invalid .mbc: {what}")));
            assert_eq!(out.stdout, "", "{}", out.show(&format!("molt {cmd}: {what}: stdout")));
            assert!(
                out.stderr.starts_with("error: ") && out.stderr.contains("invalid bytecode file"),
                "{}",
                out.show(&format!("molt {cmd}: {what}: an `invalid bytecode file` error"))
            );
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.show(&format!("molt {cmd}: {what}: one line")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutated .mbc files through `molt run`

/// xorshift64*: seeded, so a failing case can be reproduced from the seed and its number.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545f4914f6cdd1d)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        // Boundary values are more interesting than uniform noise.
        const SPECIAL: [u8; 8] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x10];
        if self.below(3) == 0 { SPECIAL[self.below(SPECIAL.len())] } else { self.next() as u8 }
    }
}

const FUZZ_TINY: &str = "fn main() { print(\"hi\"); }\n";

const FUZZ_RECORDS: &str = "type Point {
    x,
    y = 0,
    fn norm1() { return abs(self.x) + abs(self.y); }
    fn shift(dx) { self.x += dx; return self; }
}
let total = 0;
fn apply(f, xs) {
    let out = [];
    for x in xs { out.push(f(x)); }
    return out;
}
fn main() {
    let ps = [Point { x: 1, y: 2 }, Point { x: -3 }];
    let k = 10;
    let add = fn(p) { return p.norm1() + k; };
    print(apply(add, ps));
    let i = 0;
    while i < 3 {
        ps[0].shift(i);
        i += 1;
        if i == 2 { continue; }
        total += i;
    }
    let m = {\"a\": 1, \"b\": [1, 2]};
    for key in m { print(key, m[key]); }
    print(ps[0], total, \"s\" + str(1.5), ps.map(fn(p) { return p.x; }));
    update;
}
";

const FUZZ_MIXED: &str = "let names = [\"ada\", \"bob\"];
type Node { value, next = nil }
fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
fn build(n) {
    let head = nil;
    for i in 0..n { head = Node { value: i, next: head }; }
    return head;
}
fn sum(node) {
    let s = 0;
    loop {
        if node == nil { break; }
        s += node.value;
        node = node.next;
    }
    return s;
}
fn main() {
    print(fib(12), names.map(fn(s) { return s.upper(); }));
    let parts = \"a,b,c\".split(\",\");
    print(parts.join(\"-\"), len(parts), 7 / 2, 7.0 / 2, sum(build(5)));
    let counter = 0;
    let bump = fn(by) { return by * 2; };
    for p in parts { counter += bump(len(p)); }
    print(counter, type_of(bump), min(3, 4), \"x\" < \"y\");
    error(\"done\");
}
";

/// Runs one mutated file; `Err` describes what went wrong.
fn run_mutant(file: &str, bytes: &[u8], stats: &mut [usize; 4]) -> Result<(), String> {
    std::fs::write(file, bytes).map_err(|e| format!("cannot write {file}: {e}"))?;
    // A mutation can leave a valid program that loops forever (say `i += 1` now adds to another
    // register): that is no bug of the loader. Such a run is stopped early once `molt disasm`
    // (which loads and verifies without running) accepts the file; a file it rejects gets the
    // whole timeout, and a timeout then fails the test.
    let mut validity = None;
    let mut still_running_but_valid = || {
        let valid = molt_validity(file);
        let stop = matches!(valid, Ok(true));
        validity = Some(valid);
        stop
    };
    let run = exec(root(), &["run", file], TIMEOUT, Some((GRACE, &mut still_running_but_valid)));
    let out = match run {
        Ok(Some(out)) => out,
        Ok(None) => {
            stats[3] += 1;
            return Ok(());
        }
        Err(e) => {
            return Err(match validity {
                Some(Err(v)) => format!("{e}; {v}"),
                _ => format!("{e}: `molt disasm` rejects the file, so loading it hangs"),
            });
        }
    };
    let bad = |why: &str| Err(out.show(&format!("molt run {file}: {why}")));
    match out.code() {
        None => bad("killed by a signal"),
        Some(101) => bad("exit status 101 (a Rust panic)"),
        _ if out.stderr.contains("panicked") => bad("a Rust panic"),
        Some(2) => {
            stats[2] += 1;
            if !out.stdout.is_empty() {
                return bad("output from a rejected file");
            }
            if !out.stderr.starts_with("error: ") || !out.stderr.contains("invalid bytecode file") {
                return bad("status 2 without an `invalid bytecode file` error");
            }
            Ok(())
        }
        Some(code @ (0 | 1)) => {
            // A mutation that leaves a valid program: the loader must agree it is one.
            stats[code as usize] += 1;
            match molt_validity(file) {
                Ok(true) => Ok(()),
                Ok(false) => bad("ran, but `molt disasm` rejects the same file"),
                Err(e) => bad(&e),
            }
        }
        Some(_) => bad("an exit status other than 0, 1 or 2"),
    }
}

/// Whether `molt disasm FILE` accepts the file (it loads and verifies without running).
fn molt_validity(file: &str) -> Result<bool, String> {
    let out = try_molt(&["disasm", file], TIMEOUT)?;
    match out.code() {
        Some(0) => Ok(true),
        Some(2) if out.stderr.contains("invalid bytecode file") => Ok(false),
        _ => Err(out.show(&format!("molt disasm {file}: neither valid nor rejected"))),
    }
}

#[test]
fn mbc_mutations_never_crash_the_cli() {
    let seed: u64 = std::env::var("MOLT_CLI_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0001);
    let scale: usize = std::env::var("MOLT_CLI_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let dir = TempDir::new("mutations");
    let seeds = [
        ("tiny", compile(&dir, "tiny", FUZZ_TINY)),
        ("records", compile(&dir, "records", FUZZ_RECORDS)),
        ("mixed", compile(&dir, "mixed", FUZZ_MIXED)),
    ];
    // The unmutated programs behave.
    assert_run(&molt(&["run", &dir.path("tiny.mbc")]), "tiny.mbc", 0, "hi\n", "");
    let records = molt(&["run", &dir.path("records.mbc")]);
    assert_eq!(records.code(), Some(0), "{}", records.show("records.mbc"));
    let mixed = molt(&["run", &dir.path("mixed.mbc")]);
    assert_eq!(mixed.code(), Some(1), "{}", mixed.show("mixed.mbc"));
    assert!(mixed.stderr.starts_with("error: done\n  at main ("), "{}", mixed.show("mixed.mbc"));

    let file = dir.path("mutant.mbc");
    let start = Instant::now();
    let mut stats = [0usize; 4];
    let mut runs = 0usize;
    let mut long_running = Vec::new();
    let mut case = |what: String, bytes: Vec<u8>| {
        runs += 1;
        let timeouts = stats[3];
        let result = run_mutant(&file, &bytes, &mut stats);
        if stats[3] > timeouts {
            long_running.push(format!("case {runs}: {what}"));
        }
        if let Err(e) = result {
            let keep = std::env::temp_dir().join(format!("molt-cli-mutant-{seed}-{runs}.mbc"));
            let _ = std::fs::write(&keep, &bytes);
            panic!("seed {seed}, case {runs}: {what}\nthe file is kept at {}\n{e}", keep.display());
        }
    };

    // Fixed cases.
    case("an empty file".into(), Vec::new());
    for n in 1..=MAGIC.len() {
        case(format!("the first {n} bytes of the magic"), MAGIC[..n].to_vec());
    }
    case("the magic and a newline".into(), [&MAGIC[..], b"\n"].concat());

    // Truncations of the small file at every length: as is, and with the header fixed up so the
    // decoder (not the checksum) has to notice.
    let tiny = &seeds[0].1;
    for n in 0..tiny.len() {
        case(format!("tiny.mbc truncated to {n} bytes"), tiny[..n].to_vec());
    }
    for n in HEADER_LEN..tiny.len() {
        let mut v = tiny[..n].to_vec();
        fix_header(&mut v);
        case(format!("tiny.mbc truncated to {n} bytes, header fixed"), v);
    }

    // Random mutations of all three files.
    let mut rng = Rng::new(seed);
    for i in 0..2200 * scale {
        let (name, orig) = &seeds[i % seeds.len()];
        let mut v = orig.clone();
        let kind = rng.below(10);
        let mut what = format!("{name}.mbc (seed {seed}, iteration {i}): ");
        match kind {
            // Bit flips in the body, header fixed (most cases: they reach the verifier).
            0..=3 => {
                for _ in 0..1 + rng.below(3) {
                    let at = HEADER_LEN + rng.below(v.len() - HEADER_LEN);
                    let bit = rng.below(8);
                    v[at] ^= 1 << bit;
                    what += &format!("flip bit {bit} of byte {at}; ");
                }
                fix_header(&mut v);
                what += "header fixed";
            }
            // Byte overwrites in the body, header fixed.
            4..=6 => {
                for _ in 0..1 + rng.below(4) {
                    let at = HEADER_LEN + rng.below(v.len() - HEADER_LEN);
                    let b = rng.byte();
                    what += &format!("byte {at} = {b:#04x} (was {:#04x}); ", v[at]);
                    v[at] = b;
                }
                fix_header(&mut v);
                what += "header fixed";
            }
            // Insert, delete or duplicate a run of body bytes, header fixed.
            7 => {
                let at = HEADER_LEN + rng.below(v.len() - HEADER_LEN);
                let n = 1 + rng.below(8);
                match rng.below(3) {
                    0 => {
                        let end = (at + n).min(v.len());
                        v.drain(at..end);
                        what += &format!("delete bytes {at}..{end}; ");
                    }
                    1 => {
                        let ins: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                        what += &format!("insert {ins:02x?} at {at}; ");
                        v.splice(at..at, ins);
                    }
                    _ => {
                        let end = (at + n).min(v.len());
                        let dup = v[at..end].to_vec();
                        v.splice(end..end, dup);
                        what += &format!("duplicate bytes {at}..{end}; ");
                    }
                }
                fix_header(&mut v);
                what += "header fixed";
            }
            // Bit flips or overwrites anywhere, header not fixed (mostly the checks of the header).
            8 => {
                for _ in 0..1 + rng.below(2) {
                    let at = rng.below(v.len());
                    let b = rng.byte();
                    what += &format!("byte {at} = {b:#04x} (was {:#04x}); ", v[at]);
                    v[at] = b;
                }
                what += "header not fixed";
            }
            // Garbage: random bytes, half of them behind a valid-looking header.
            _ => {
                let n = rng.below(1500);
                let garbage: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                if rng.below(2) == 0 {
                    v.truncate(HEADER_LEN);
                    v.extend_from_slice(&garbage);
                    fix_header(&mut v);
                    what += &format!("{n} random bytes behind the header (fixed); ");
                } else {
                    v = garbage;
                    what += &format!("{n} random bytes; ");
                }
            }
        }
        case(what, v);
    }
    let elapsed = start.elapsed();
    eprintln!(
        "mbc mutations: seed {seed}, {runs} runs in {elapsed:.1?}: {} rejected (status 2), {} valid and ran \
         (status 0), {} valid with a runtime error (status 1), {} valid but still running after {GRACE:?} (stopped)",
        stats[2], stats[0], stats[1], stats[3]
    );
    for what in &long_running {
        eprintln!("  valid, still running after {GRACE:?}: {what}");
    }
    assert!(runs >= 2200 * scale, "only {runs} mutations were run");
    assert!(stats[2] * 4 >= runs * 3, "most mutations must be rejected: {stats:?} of {runs}");
}

/// A global or field default whose expression needs more registers than a frame can have is
/// the compile error E0018, as a function body is (it used to crash the VM), also when it
/// arrives as an update: the update is rejected and version 1 goes on.
#[test]
fn oversized_initialisers_are_compile_errors() {
    let dir = TempDir::new("oversized");
    let items = vec!["1"; 60_010].join(", ");
    let big = dir.file("big.molt", format!("let xs = [{items}];\nfn main() {{ print(len(xs)); }}\n"));
    let out = molt(&["check", big.as_str()]);
    assert_eq!(out.code(), Some(2), "{}", out.show("molt check: wrong status"));
    assert!(out.stderr.contains("error[E0018]: expression too large"), "{}", out.show("molt check"));

    let v1 = dir.file("v1.molt", "fn main() { for i in 0..2 { print(version(), i); update; } }\n");
    let v2 = dir.file("v2.molt", format!("let xs = [{items}];\nfn main() {{ }}\n"));
    let out = molt(&["run", v1.as_str(), "--update", v2.as_str()]);
    assert_eq!(out.code(), Some(0), "{}", out.show("molt run --update: wrong status"));
    assert_eq!(out.stdout, "1 0\n1 1\n", "{}", out.show("molt run --update"));
    assert!(out.stderr.contains("E0018") || out.stderr.contains("expression too large"), "{}", out.show("run"));
}
