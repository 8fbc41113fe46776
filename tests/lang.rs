//! File-driven language tests: every `tests/lang/**/*.molt` file is one test.
//!
//! Each file is run as `molt run tests/lang/<topic>/<name>.molt [-- ARGS]` from the package root,
//! and checked against the directives written in its comments (see `tests/lang/README.md`):
//!
//! - `// expect: TEXT`               the next line of stdout (exactly, in order, nothing more)
//! - `// expect error: MSG`          a compile error on this line (exit status 2, stdout empty)
//! - `// expect runtime error: MSG`  a runtime error raised on this line (exit status 1)
//! - `// expect stderr: TEXT`       stderr has the line TEXT (these lines in order)
//! - `// stdin: TEXT`                the line TEXT (plus "\n") is fed to the program's stdin
//! - `// args: A B C`                program arguments, passed after `--`
//! - `// skip: REASON`               the test is ignored
//!
//! Run one test with `cargo test --test lang -- topic/name`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

/// A program that runs longer than this is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The directory, relative to the package root, holding the test programs.
const TEST_DIR: &str = "tests/lang";
/// How many lines of stderr a failure report shows (a stack overflow trace can be very long).
const STDERR_LINES_SHOWN: usize = 60;

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = walkdir::WalkDir::new(root.join(TEST_DIR))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.path().extension().is_some_and(|x| x == "molt"))
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root.join(TEST_DIR)).ok()?;
            // Trial names use '/' on every platform, so filters like `lists/push` work everywhere.
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            Some(parts.join("/"))
        })
        .collect();
    names.sort();

    let trials = names
        .into_iter()
        .map(|name| {
            let file = format!("{TEST_DIR}/{name}");
            let source = std::fs::read_to_string(root.join(&file));
            let skip = match &source {
                Ok(src) => matches!(parse_directives(src), Ok(d) if d.skip.is_some()),
                Err(_) => false,
            };
            Trial::test(name, move || {
                let source = source.map_err(|e| format!("cannot read {file}: {e}"))?;
                let directives = parse_directives(&source).map_err(|e| format!("{file}: bad directive: {e}"))?;
                check(&file, &directives)
            })
            .with_ignored_flag(skip)
        })
        .collect();

    libtest_mimic::run(&args, trials).exit();
}

/// What a test file expects, gathered from its comments.
#[derive(Debug, Default)]
struct Directives {
    /// Expected stdout lines, in order.
    stdout: Vec<String>,
    /// Expected compile errors: (1-based line, message).
    compile_errors: Vec<(usize, String)>,
    /// The expected runtime error: (1-based line, message).
    runtime_error: Option<(usize, String)>,
    /// Lines stderr must have, in order (`// expect stderr:`): a failed task's report, say.
    stderr: Vec<String>,
    /// Text fed to the program's standard input.
    stdin: String,
    /// Arguments passed after `--`.
    args: Vec<String>,
    /// Why the test is skipped, if it is.
    skip: Option<String>,
}

/// The text after `marker` on `line`, without exactly one leading space (if there is one).
fn directive<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    let rest = &line[at + marker.len()..];
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn parse_directives(source: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    for (index, raw) in source.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(msg) = directive(line, "// expect runtime error:") {
            if msg.is_empty() {
                return Err(format!("line {line_no}: empty runtime error message"));
            }
            if d.runtime_error.is_some() {
                return Err(format!("line {line_no}: more than one `// expect runtime error:`"));
            }
            d.runtime_error = Some((line_no, msg.to_string()));
        } else if let Some(msg) = directive(line, "// expect error:") {
            if msg.is_empty() {
                return Err(format!("line {line_no}: empty compile error message"));
            }
            d.compile_errors.push((line_no, msg.to_string()));
        } else if let Some(text) = directive(line, "// expect stderr:") {
            d.stderr.push(text.to_string());
        } else if let Some(text) = directive(line, "// expect:") {
            d.stdout.push(text.to_string());
        } else if line.contains("// expect") {
            return Err(format!("line {line_no}: unknown `// expect` directive: {line}"));
        } else if let Some(text) = directive(line, "// stdin:") {
            d.stdin.push_str(text);
            d.stdin.push('\n');
        } else if let Some(text) = directive(line, "// args:") {
            d.args.extend(text.split_whitespace().map(str::to_string));
        } else if let Some(reason) = directive(line, "// skip:") {
            d.skip = Some(reason.to_string());
        }
    }
    if !d.compile_errors.is_empty() && d.runtime_error.is_some() {
        return Err("a file cannot expect both compile errors and a runtime error".into());
    }
    if !d.compile_errors.is_empty() && !d.stdout.is_empty() {
        return Err("a file with compile errors prints nothing: drop its `// expect:` lines".into());
    }
    Ok(d)
}

/// What one run of the binary produced.
struct Run {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `molt run FILE [-- ARGS]` from the package root, feeding `stdin`, with a timeout.
fn run_molt(file: &str, d: &Directives) -> Result<Run, Failed> {
    let exe = env!("CARGO_BIN_EXE_molt");
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg(file);
    if !d.args.is_empty() {
        cmd.arg("--").args(&d.args);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = format!("cd {} && NO_COLOR=1 {exe} run {file}", env!("CARGO_MANIFEST_DIR"));
    if !d.args.is_empty() {
        let _ = write!(command, " -- {}", d.args.join(" "));
    }
    if !d.stdin.is_empty() {
        let _ = write!(command, "   (stdin: {:?})", d.stdin);
    }

    let mut child = cmd.spawn().map_err(|e| format!("{command}\ncannot start {exe}: {e}"))?;

    // Feed stdin and drain stdout/stderr on their own threads, so that no pipe can fill up
    // and block the child while we wait for it.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = d.stdin.clone().into_bytes();
    let writer = thread::spawn(move || {
        // The program may exit without reading its input: a broken pipe is fine.
        let _ = stdin.write_all(&input);
        // Dropping `stdin` closes it, so the program sees end of input.
    });
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= TIMEOUT => {
                timed_out = true;
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break status,
                    Err(e) => return Err(format!("{command}\ncannot wait for molt: {e}").into()),
                }
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                let _ = child.kill();
                return Err(format!("{command}\ncannot wait for molt: {e}").into());
            }
        }
    };
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let run = Run { command, status, stdout, stderr };
    if timed_out {
        return Err(report(&run, d, &[format!("timed out after {} s: killed", TIMEOUT.as_secs())]).into());
    }
    Ok(run)
}

/// Splits stdout into lines; every line printed must end with a newline.
fn stdout_lines(stdout: &str) -> (Vec<String>, bool) {
    if stdout.is_empty() {
        return (Vec::new(), true);
    }
    let complete = stdout.ends_with('\n');
    let body = stdout.strip_suffix('\n').unwrap_or(stdout);
    (body.split('\n').map(str::to_string).collect(), complete)
}

fn check(file: &str, d: &Directives) -> Result<(), Failed> {
    let run = run_molt(file, d)?;
    let mut problems = Vec::new();
    let code = run.status.code();

    if !d.compile_errors.is_empty() {
        if code != Some(2) {
            problems.push(format!("expected exit status 2 (compile error), got {}", run.status));
        }
        if !run.stdout.is_empty() {
            problems.push("expected no output on stdout after a compile error".to_string());
        }
        for (line, msg) in &d.compile_errors {
            let needle = format!("]: {msg}");
            if !run.stderr.lines().any(|l| l.contains("error[E") && l.contains(&needle)) {
                problems.push(format!("expected a compile error `error[E....]: {msg}` (for line {line}) on stderr"));
            }
            let location = format!("{file}:{line}:");
            if !run.stderr.contains(&location) {
                problems.push(format!("expected the location `{location}` on stderr ({msg})"));
            }
        }
    } else {
        let (actual, complete) = stdout_lines(&run.stdout);
        if actual != d.stdout {
            problems.push(stdout_diff(&d.stdout, &actual));
        } else if !complete {
            problems.push("stdout does not end with a newline".to_string());
        }
        match &d.runtime_error {
            Some((line, msg)) => {
                if code != Some(1) {
                    problems.push(format!("expected exit status 1 (runtime error), got {}", run.status));
                }
                // First, unless lines other tasks reported come before it (`// expect stderr:`).
                let wanted = format!("error: {msg}");
                let first = match d.stderr.is_empty() {
                    true => run.stderr.lines().next().unwrap_or(""),
                    false => run.stderr.lines().find(|l| *l == wanted).unwrap_or(""),
                };
                if first != wanted {
                    problems.push(format!("expected stderr's first line to be `{wanted}`, got `{first}`"));
                }
                let marker = format!(":{line})");
                let mut after_error = run.stderr.lines().skip_while(|l| *l != wanted).skip(1);
                match after_error.find(|l| l.starts_with("  at ")) {
                    Some(frame) if frame.contains(&marker) => {}
                    Some(frame) => problems.push(format!(
                        "expected the innermost stack frame to be at line {line} (`{marker}`), \
                         got `{frame}`"
                    )),
                    None => {
                        problems.push(format!("expected a stack trace (`  at FUNCTION ({file}:{line})`) on stderr"))
                    }
                }
            }
            None => {
                if code != Some(0) {
                    problems.push(format!("expected exit status 0, got {}", run.status));
                }
                if !run.stderr.is_empty() && d.stderr.is_empty() {
                    problems.push("expected nothing on stderr".to_string());
                }
            }
        }
    }

    // `// expect stderr:` lines, in order (others may come between them).
    let mut lines = run.stderr.lines();
    for want in &d.stderr {
        if !lines.any(|l| l == want) {
            problems.push(format!("expected the line `{want}` on stderr (after the lines expected before it)"));
        }
    }

    if problems.is_empty() { Ok(()) } else { Err(report(&run, d, &problems).into()) }
}

/// Shows where expected and actual stdout part ways.
fn stdout_diff(expected: &[String], actual: &[String]) -> String {
    let mut s = String::from("stdout differs from the `// expect:` lines");
    let first_diff = expected.iter().zip(actual).position(|(e, a)| e != a).unwrap_or(expected.len().min(actual.len()));
    let _ = write!(
        s,
        " (first difference at output line {}; expected {} lines, got {})",
        first_diff + 1,
        expected.len(),
        actual.len()
    );
    s
}

/// The full failure report: what was run, what went wrong, and everything it printed.
fn report(run: &Run, d: &Directives, problems: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "command: {}", run.command);
    let _ = writeln!(s, "status: {}", run.status);
    for p in problems {
        let _ = writeln!(s, "problem: {p}");
    }
    if !d.compile_errors.is_empty() {
        let _ = writeln!(s, "--- expected compile errors:");
        for (line, msg) in &d.compile_errors {
            let _ = writeln!(s, "    line {line}: {msg}");
        }
    }
    if let Some((line, msg)) = &d.runtime_error {
        let _ = writeln!(s, "--- expected runtime error: line {line}: {msg}");
    }
    let _ = writeln!(s, "--- expected stdout ({} lines):", d.stdout.len());
    for l in &d.stdout {
        let _ = writeln!(s, "    {l}");
    }
    let (actual, _) = stdout_lines(&run.stdout);
    let _ = writeln!(s, "--- actual stdout ({} lines):", actual.len());
    for l in &actual {
        let _ = writeln!(s, "    {l}");
    }
    let err_lines: Vec<&str> = run.stderr.lines().collect();
    let _ = writeln!(s, "--- stderr ({} lines):", err_lines.len());
    for l in err_lines.iter().take(STDERR_LINES_SHOWN) {
        let _ = writeln!(s, "    {l}");
    }
    if err_lines.len() > STDERR_LINES_SHOWN {
        let _ = writeln!(s, "    ... ({} more lines)", err_lines.len() - STDERR_LINES_SHOWN);
    }
    s
}
