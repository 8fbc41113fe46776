//! What `molt` does when its output cannot be written (a closed pipe, a full disk, a closed
//! descriptor), how it refuses to overwrite its input, and how it keeps error output bounded
//! (docs/messages.md "Output", "Compile errors"). Every run starts the real binary in a scratch
//! directory, with a timeout; outputs and statuses are compared exactly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-cli-output-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where the run's stdout goes.
enum Stdout {
    /// A pipe whose reading end is closed as soon as the child starts (`| head -0`).
    ClosedPipe,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// The descriptor is closed (`>&-`).
    Closed,
    /// A pipe read to its end.
    Piped,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn wait(mut child: Child) -> Run {
    let start = Instant::now();
    let out = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = out {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    let mut err = child.stderr.take().expect("stderr is piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("molt did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run { code: status.code(), stdout: reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// `molt ARGS` in `dir`, stdout as `to`.
fn molt(dir: &Path, args: &[&str], to: Stdout) -> Run {
    let bin = env!("CARGO_BIN_EXE_molt");
    let mut cmd = match to {
        Stdout::Closed => {
            let mut c = Command::new("sh");
            c.arg("-c").arg("exec \"$0\" \"$@\" >&-").arg(bin).args(args);
            c
        }
        _ => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    cmd.current_dir(dir).stdin(Stdio::null()).stderr(Stdio::piped());
    match to {
        Stdout::ClosedPipe | Stdout::Piped => cmd.stdout(Stdio::piped()),
        Stdout::Full => cmd.stdout(std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full")),
        Stdout::Closed => cmd.stdout(Stdio::inherit()),
    };
    let mut child = cmd.spawn().expect("start molt");
    if let Stdout::ClosedPipe = to {
        drop(child.stdout.take());
    }
    wait(child)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A program whose disassembly is far bigger than a pipe's buffer.
fn big_program(dir: &Path) {
    let mut s = String::from("fn main() {\n");
    for i in 0..3000 {
        s.push_str(&format!("  let x{i} = {i} + 1;\n"));
    }
    s.push_str("}\n");
    write(dir, "big.molt", &s);
}

const THREE_PRINTS: &str = "fn main() {\n  print(1);\n  print(2);\n  print(3);\n}\n";
const FOREVER: &str = "fn main() {\n  let i = 0;\n  while true {\n    print(i);\n    i = i + 1;\n  }\n}\n";
const ENOSPC: &str = "No space left on device (os error 28)";
const EBADF: &str = "Bad file descriptor (os error 9)";

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = scratch("pipe");
    big_program(&dir);
    write(&dir, "forever.molt", FOREVER);
    for args in [&["disasm", "big.molt"][..], &["plan", "big.molt", "big.molt"], &["run", "forever.molt"]] {
        let r = molt(&dir, args, Stdout::ClosedPipe);
        assert_eq!((r.code, r.stderr.as_str()), (Some(0), ""), "molt {args:?}");
    }
}

#[test]
fn a_full_disk_is_an_error_with_status_1() {
    let dir = scratch("full");
    write(&dir, "p.molt", THREE_PRINTS);
    write(&dir, "forever.molt", FOREVER);
    let msg = format!("error: cannot write to standard output: {ENOSPC}\n");
    for args in [&["help"][..], &["disasm", "p.molt"], &["plan", "p.molt", "p.molt"]] {
        let r = molt(&dir, args, Stdout::Full);
        assert_eq!((r.code, r.stderr.as_str()), (Some(1), msg.as_str()), "molt {args:?}");
    }
    // A few prints stay in the buffer until the end: the final flush reports it.
    let r = molt(&dir, &["run", "p.molt"], Stdout::Full);
    assert_eq!((r.code, r.stderr.as_str()), (Some(1), msg.as_str()));
    // More output than the buffer: the `print` that fills it fails, a runtime error.
    let r = molt(&dir, &["run", "forever.molt"], Stdout::Full);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (Some(1), format!("error: print(): cannot write output: {ENOSPC}\n  at main (forever.molt:4)\n").as_str())
    );
}

#[test]
fn a_closed_stdout_is_an_error_with_status_1() {
    let dir = scratch("closed");
    write(&dir, "p.molt", THREE_PRINTS);
    write(&dir, "quiet.molt", "fn main() {\n  let x = 1;\n}\n");
    let r = molt(&dir, &["run", "p.molt"], Stdout::Closed);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (Some(1), format!("error: print(): cannot write output: {EBADF}\n  at main (p.molt:2)\n").as_str())
    );
    let r = molt(&dir, &["help"], Stdout::Closed);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (Some(1), format!("error: cannot write to standard output: {EBADF}\n").as_str())
    );
    // Nothing to write, nothing lost.
    let r = molt(&dir, &["run", "quiet.molt"], Stdout::Closed);
    assert_eq!((r.code, r.stderr.as_str()), (Some(0), ""));
    // `>/dev/null` is not a closed stdout.
    let r = molt(&dir, &["run", "p.molt"], Stdout::Piped);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (Some(0), "1\n2\n3\n", ""));
}

#[test]
fn compile_refuses_to_overwrite_its_source() {
    let dir = scratch("overwrite");
    write(&dir, "x.molt", THREE_PRINTS);
    write(&dir, "main.molt", "import \"x.molt\";\n");
    std::os::unix::fs::symlink("x.molt", dir.join("sym.molt")).unwrap();
    std::fs::hard_link(dir.join("x.molt"), dir.join("hard.molt")).unwrap();
    let usage = molt(&dir, &["help"], Stdout::Piped).stdout;
    for (args, out, source) in [
        (&["compile", "x.molt", "-o", "x.molt"][..], "x.molt", "x.molt"),
        (&["compile", "-o", "./x.molt", "x.molt"], "./x.molt", "x.molt"),
        (&["compile", "x.molt", "-o", "sym.molt"], "sym.molt", "x.molt"),
        (&["compile", "x.molt", "-o", "hard.molt"], "hard.molt", "x.molt"),
        // An imported file is a source too.
        (&["compile", "main.molt", "-o", "x.molt"], "x.molt", "x.molt"),
    ] {
        let r = molt(&dir, args, Stdout::Piped);
        let msg = format!(
            "error: -o {out} names the source file {source}: the bytecode would overwrite it (write it to another file, e.g. -o x.mbc)\n\n{usage}"
        );
        assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (Some(2), "", msg.as_str()), "molt {args:?}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("x.molt")).unwrap(), THREE_PRINTS);
    let r = molt(&dir, &["compile", "x.molt", "-o", "x.mbc"], Stdout::Piped);
    assert_eq!((r.code, r.stderr.as_str()), (Some(0), ""));
    let r = molt(&dir, &["run", "x.mbc"], Stdout::Piped);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1\n2\n3\n"));
}

#[test]
fn a_long_source_line_is_quoted_as_a_window_around_the_column() {
    let dir = scratch("window");
    write(
        &dir,
        "long.molt",
        &format!("fn main() {{ let s = \"{}\"; print(zz); let t = \"{}\"; }}\n", "é".repeat(150), "x".repeat(100)),
    );
    let r = molt(&dir, &["check", "long.molt"], Stdout::Piped);
    let quoted = format!("…{}\"; print(zz); let t = \"{}…", "é".repeat(31), "x".repeat(66));
    assert_eq!(quoted.chars().count(), 122);
    let expected = format!(
        "error[E0003]: undefined name 'zz'\n  ┌─ long.molt:1:181\n  │\n1 │ {quoted}\n  │ {}^^ not declared anywhere\n\n",
        " ".repeat(41)
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (Some(2), "", expected.as_str()));
}

#[test]
fn thousands_of_errors_on_one_line_show_the_first_50() {
    let dir = scratch("many");
    // 8000 errors on one 24 KB line: rendering each with the whole line took minutes and
    // hundreds of megabytes.
    write(&dir, "nest.molt", &format!("fn main() {{ {}{} }}\n", "{ y; ".repeat(4000), "}".repeat(4000)));
    let start = Instant::now();
    let r = molt(&dir, &["check", "nest.molt"], Stdout::Piped);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr.matches("error[E").count(), 50);
    assert!(r.stderr.len() < 20_000, "{} bytes of errors", r.stderr.len());
    let first = format!(
        "error[E0001]: syntax error: unexpected ';', expected one of 'or', ':'\n  ┌─ nest.molt:1:16\n  │\n1 │ fn main() {{ {}{{ y…\n  │                ^\n\n",
        "{ y; ".repeat(21)
    );
    assert!(r.stderr.starts_with(&first), "{}", &r.stderr[..first.len().min(r.stderr.len())]);
    assert!(r.stderr.ends_with(
        "note: 7950 more errors are not shown (the first 50 are above; fixing them often fixes the rest)\nerror: 8000 errors found\n"
    ));
}

#[test]
fn a_rollback_reason_is_one_line_with_its_control_characters_escaped() {
    let dir = scratch("escape");
    let main = "fn main() {\n  for i in [1, 2] {\n    update \"tick\";\n    print(i);\n  }\n}\n";
    write(&dir, "v1.molt", main);
    write(&dir, "v2.molt", &format!("{main}migrate {{\n  error(\"bad\\nnews\\u{{1b}}[31m\\t!\");\n}}\n"));
    let r = molt(&dir, &["run", "v1.molt", "--update", "v2.molt"], Stdout::Piped);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            Some(0),
            "1\n2\n",
            "update rolled back (version 1 -> 2): migrate failed: bad\\nnews\\u{1b}[31m\\t! (at <migrate> v2.molt:8)\n"
        )
    );
}

#[test]
fn a_source_file_that_is_not_utf8_is_reported_with_its_position() {
    let dir = scratch("utf8");
    std::fs::write(dir.join("bad.molt"), b"fn main() {\n  print(\"h\xc3\xa9\xff\");\n}\n").unwrap();
    write(&dir, "main.molt", "import \"bad.molt\";\n");
    let bad = "bad.molt:2:12: invalid UTF-8 (byte 0xff): source files must be UTF-8 text";
    let r = molt(&dir, &["run", "bad.molt"], Stdout::Piped);
    assert_eq!((r.code, r.stderr.as_str()), (Some(2), format!("error: cannot read 'bad.molt': {bad}\n").as_str()));
    let r = molt(&dir, &["check", "main.molt"], Stdout::Piped);
    let expected = format!(
        "error[E0016]: cannot read import 'bad.molt': {bad}\n  ┌─ main.molt:1:1\n  │\n1 │ import \"bad.molt\";\n  │ ^^^^^^^^^^^^^^^^^^\n\n"
    );
    assert_eq!((r.code, r.stderr.as_str()), (Some(2), expected.as_str()));
}

#[test]
fn a_duplicate_definition_points_at_the_first() {
    let dir = scratch("dup");
    write(&dir, "lib.molt", "fn helper() { return 1; }\n");
    write(
        &dir,
        "dup.molt",
        "import \"lib.molt\";\nfn helper() { return 2; }\ntype P { a, fn a() { return 1; } }\nfn main() {}\n",
    );
    let r = molt(&dir, &["check", "dup.molt"], Stdout::Piped);
    let expected = "error[E0004]: duplicate definition of 'helper'\n  ┌─ dup.molt:2:4\n  │\n2 │ fn helper() { return 2; }\n  │    ^^^^^^\n  │\n  = 'helper' is first defined at lib.molt:1:4\n\n\
                    error[E0004]: duplicate definition of 'P.a'\n  ┌─ dup.molt:3:16\n  │\n3 │ type P { a, fn a() { return 1; } }\n  │                ^\n  │\n  = 'P.a' is first defined at dup.molt:3:10\n\n\
                    error: 2 errors found\n";
    assert_eq!((r.code, r.stderr.as_str()), (Some(2), expected));
}
