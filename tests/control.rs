//! The control socket, as people use it: `molt run --control SOCKET` in the background, and
//! `molt push` / `molt status` from "another shell" (the binary run again). Exact outputs
//! (timings masked) and exit statuses. Every program here ends by itself within seconds, every
//! wait is bounded, and the children are killed when a test ends.

#[path = "common/mask.rs"]
mod mask;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mask::mask;

/// A server in two tasks that waits most of the time (a ticker sleeping 20 ms between
/// messages, main blocked on the channel), for about 6 s at most.
fn server(tag: &str) -> String {
    format!(
        "type Note {{ text }}
let notes = [];
fn greet(n) {{
    return \"{tag} \" + str(n);
}}

fn ticker(ch) {{
    for i in 0..300 {{
        sleep(0.02);
        ch.send(greet(i));
    }}
    ch.close();
}}

fn main() {{
    let ch = channel();
    spawn(ticker, ch);
    notes.push(Note {{ text: \"start\" }});
    loop {{
        let m = ch.recv();
        if m == nil {{
            return;
        }}
        notes.push(Note {{ text: m }});
        update \"between\";
    }}
}}
"
    )
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-control-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn molt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_molt")).current_dir(dir).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Starts `v1.molt` of `dir` with `--control s.sock` (and `extra` options); returns once the
/// socket answers.
fn start(dir: &Path, extra: &[&str]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
    cmd.current_dir(dir).args(["run", "v1.molt", "--control", "s.sock"]).args(extra);
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let running = Running { child };
    let start = Instant::now();
    while UnixStream::connect(dir.join("s.sock")).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "the control socket did not appear");
        std::thread::sleep(Duration::from_millis(10));
    }
    running
}

fn with_versions(name: &str, tags: &[&str]) -> PathBuf {
    let dir = scratch(name);
    for (i, tag) in tags.iter().enumerate() {
        std::fs::write(dir.join(format!("v{}.molt", i + 1)), server(tag)).unwrap();
    }
    dir
}

#[test]
fn push_applies_status_shows_and_undo_goes_back() {
    let dir = with_versions("push", &["v1", "v2"]);
    let _r = start(&dir, &[]);
    let out = molt(&dir, &["push", "s.sock", "v2.molt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        mask(&text(&out.stdout)),
        "update requested (version 1 -> 2): +0 ~1 -0 functions, +0 ~0 -0 types\n\
         update applied (version 1 -> 2): +0 ~1 -0 functions, +0 ~0 -0 types, 0 objects transformed; waited # us, paused # us (# us in transformers)\n"
    );
    let out = molt(&dir, &["status", "s.sock"]);
    assert_eq!(out.status.code(), Some(0));
    let status = mask(&text(&out.stdout));
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "version 2, up # ms, 2 task(s)", "{status}");
    assert!(lines[1].starts_with("  task 1 (main) "), "{status}");
    assert!(lines[1].contains(", version 2"), "{status}");
    // The ticker sleeps, or has just woken.
    assert!(lines[2].starts_with("  task 2 (ticker) "), "{status}");
    assert!(lines[2].contains(", version 2") && lines[2].ends_with(" in ticker (v2.molt:9)"), "{status}");
    let out = molt(&dir, &["push", "s.sock", "--undo", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = mask(&text(&out.stdout));
    assert!(
        json.starts_with("{\"event\":\"requested\",\"from\":2,\"to\":3,\"functions_added\":0,\"functions_changed\":1,"),
        "{json}"
    );
    assert!(json.contains("\n{\"event\":\"applied\",\"from\":2,\"to\":3,"), "{json}");
    let out = molt(&dir, &["status", "s.sock", "--json"]);
    let status = text(&out.stdout);
    assert!(status.starts_with("{\"version\":3,\"uptime_ms\":"), "{status}");
    assert!(
        status.contains("\"history\":[{\"version\":2,\"plan\":\"+0 ~1 -0 functions, +0 ~0 -0 types\"},{\"version\":3,"),
        "{status}"
    );
    // The version before 3 is 1 again (2 was undone): a second undo has nothing left.
    let out = molt(&dir, &["push", "s.sock", "--undo"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "update requested (version 3 -> 4)\nupdate rejected (version 3 -> 4): nothing to undo: version 3 is the oldest version this program still knows\n"
    );
}

#[test]
fn a_push_that_does_not_compile_sends_nothing() {
    let dir = with_versions("compile", &["v1"]);
    std::fs::write(dir.join("bad.molt"), "fn main() {\n    let x = ;\n}\n").unwrap();
    let _r = start(&dir, &[]);
    let out = molt(&dir, &["push", "s.sock", "bad.molt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("bad.molt:2:13"), "{}", text(&out.stderr));
    let out = molt(&dir, &["status", "s.sock"]);
    assert!(text(&out.stdout).starts_with("version 1,"), "{}", text(&out.stdout));
}

#[test]
fn rejected_and_rolled_back_pushes_exit_1() {
    let dir = with_versions("reject", &["v1"]);
    // Removes `Note` while notes are alive: rejected.
    std::fs::write(
        dir.join("gone.molt"),
        server("v2")
            .replace("type Note { text }", "")
            .replace("Note { text: m }", "m")
            .replace("Note { text: \"start\" }", "0"),
    )
    .unwrap();
    // A transformer that fails: rolled back.
    let failing = server("v2")
        .replace("type Note { text }", "type Note { text, n }\ntransform Note(old) { return error(\"no\"); }");
    let failing = failing.replace("Note { text: m }", "Note { text: m, n: 1 }");
    std::fs::write(
        dir.join("fails.molt"),
        failing.replace("Note { text: \"start\" }", "Note { text: \"start\", n: 0 }"),
    )
    .unwrap();
    let _r = start(&dir, &[]);
    let out = molt(&dir, &["push", "s.sock", "gone.molt"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("update rejected (version 1 -> 2): type Note is removed but "), "{stdout}");
    let out = molt(&dir, &["push", "s.sock", "fails.molt"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "update rolled back (version 1 -> 2): transform Note failed: no (at <transform Note> fails.molt:2)"
        ),
        "{stdout}"
    );
    let out = molt(&dir, &["status", "s.sock"]);
    assert!(text(&out.stdout).starts_with("version 1,"), "{}", text(&out.stdout));
}

#[test]
fn a_live_socket_is_never_taken_over_and_a_stale_one_is_replaced() {
    let dir = with_versions("takeover", &["v1"]);
    let mut r = start(&dir, &[]);
    let out = molt(&dir, &["run", "v1.molt", "--control", "s.sock"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "error: --control s.sock: another program is listening on this socket (`molt status s.sock` shows it); stop it or choose another path\n"
    );
    // A killed program leaves its socket file: the next one replaces it.
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    assert!(dir.join("s.sock").exists());
    drop(r);
    let r = start(&dir, &[]);
    let out = molt(&dir, &["status", "s.sock"]);
    assert_eq!(out.status.code(), Some(0));
    drop(r);
    // A path that is not a socket is never replaced.
    std::fs::write(dir.join("plain"), "keep me").unwrap();
    let out = molt(&dir, &["run", "v1.molt", "--control", "plain"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "error: --control plain: the file exists and is not a socket; choose another path\n");
    assert_eq!(std::fs::read_to_string(dir.join("plain")).unwrap(), "keep me");
}

#[test]
fn the_socket_is_private_and_removed_at_exit_and_after_ctrl_c() {
    let dir = with_versions("exit", &["v1"]);
    // A program that ends by itself.
    std::fs::write(dir.join("short.molt"), "fn main() {\n    sleep(0.3);\n    print(\"done\");\n}\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
    let mut child = cmd
        .current_dir(&dir)
        .args(["run", "short.molt", "--control", "short.sock"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start_at = Instant::now();
    while !dir.join("short.sock").exists() && start_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("short.sock")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!dir.join("short.sock").exists(), "removed at exit");
    // Ctrl-C (SIGINT), and a supervisor's SIGTERM: the program stops and removes its socket.
    for signal in ["-INT", "-TERM"] {
        let r = start(&dir, &[]);
        let pid = r.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let start_at = Instant::now();
        while dir.join("s.sock").exists() {
            assert!(start_at.elapsed() < Duration::from_secs(5), "the socket is still there after kill {signal}");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(r);
    }
}

/// Sends raw bytes and returns what the program answered before closing the connection.
fn raw(sock: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    // Frames: a 4-byte length, then JSON.
    let mut text = String::new();
    let mut rest = &out[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..(4 + n).min(rest.len())];
        text.push_str(&String::from_utf8_lossy(body));
        text.push('\n');
        rest = &rest[(4 + n).min(rest.len())..];
    }
    text
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn bad_messages_close_their_connection_and_change_nothing() {
    let dir = with_versions("garbage", &["v1"]);
    let _r = start(&dir, &[]);
    let sock = dir.join("s.sock");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame(b"hello"), r#"{"type":"error","message":"the request is not JSON: expected value at line 1 column 1"}"#),
        (
            vec![0, 0, 1],
            r#"{"type":"error","message":"the message ends inside its length (failed to fill whole buffer)"}"#,
        ),
        (vec![0, 0, 0, 50, b'{'], r#"{"type":"error","message":"the message ends after 1 of its 50 bytes"}"#),
        (
            vec![0x7f, 0xff, 0xff, 0xff],
            r#"{"type":"error","message":"a message of 2147483647 bytes is over the limit of 67108864 bytes"}"#,
        ),
        (
            frame(br#"{"protocol":9,"op":"push"}"#),
            r#"{"type":"error","message":"protocol version 9 is not spoken here (this program speaks 1)"}"#,
        ),
        (
            frame(br#"{"protocol":1,"op":"push"}"#),
            r#"{"type":"error","message":"a push must send the new version's bytecode after the request"}"#,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(raw(&sock, &bytes), format!("{want}\n"));
    }
    // Bytecode that is not bytecode: refused by the verifier.
    let mut push = frame(br#"{"protocol":1,"op":"push"}"#);
    push.extend(frame(b"MOLT garbage"));
    let answer = raw(&sock, &push);
    assert!(answer.starts_with(r#"{"type":"error","message":"the pushed bytecode was refused: "#), "{answer}");
    let out = molt(&dir, &["status", "s.sock"]);
    assert!(text(&out.stdout).starts_with("version 1,"), "{}", text(&out.stdout));
}

#[test]
fn push_usage_and_connection_errors_exit_2() {
    let dir = with_versions("usage", &["v1"]);
    let out = molt(&dir, &["push", "nowhere.sock", "v1.molt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: cannot connect to nowhere.sock: No such file or directory (os error 2) (is a program running with `--control nowhere.sock`?)"),
        "{}",
        text(&out.stderr)
    );
    let out = molt(&dir, &["push", "s.sock"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: `molt push` takes SOCKET and NEW (or SOCKET --undo)\n"));
    let out = molt(&dir, &["push", "s.sock", "v1.molt", "--policy", "loose"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: --policy takes `strict` or `relaxed`\n"));
    let out = molt(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A push made while a per-task transition runs is handled after it ends (one update at a
/// time); both are applied, in order.
#[test]
fn a_push_during_a_transition_waits_for_it() {
    // The ticker changes in every version and stops at an update point after each message:
    // blocked in `sleep` inside changed code it is not quiescent, so each transition lasts
    // until its next point (up to 20 ms), and the second push arrives meanwhile.
    let dir = scratch("transition");
    for (i, tag) in ["v1", "v2", "v3"].iter().enumerate() {
        let code = server(tag)
            .replace("ch.send(greet(i));", &format!("ch.send(greet(i) + \"{tag}\");\n        update \"tick\";"));
        std::fs::write(dir.join(format!("v{}.molt", i + 1)), code).unwrap();
    }
    let _r = start(&dir, &["--consistency", "per-task"]);
    // The second push starts once the first was requested (its first line is out).
    let mut first = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(&dir)
        .args(["push", "s.sock", "v2.molt"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap());
    let mut a = String::new();
    std::io::BufRead::read_line(&mut lines, &mut a).unwrap();
    let b = molt(&dir, &["push", "s.sock", "v3.molt"]);
    lines.read_to_string(&mut a).unwrap();
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{a}");
    assert_eq!(b.status.code(), Some(0), "{}{}", text(&b.stdout), text(&b.stderr));
    let b = text(&b.stdout);
    assert!(a.contains("task 2 (ticker) switched from version 1 to 2"), "{a}");
    assert!(a.contains("update applied (version 1 -> 2)"), "{a}");
    assert!(b.contains("task 2 (ticker) switched from version 2 to 3"), "{b}");
    assert!(b.contains("update applied (version 2 -> 3)"), "{b}");
}
