//! Sockets seen from outside the VM: the `molt` binary runs a program on 127.0.0.1 and the test
//! talks to it with `std::net::TcpStream` (bytes a Molt program cannot write, clients that go
//! away), or checks errors whose messages name a port that differs between runs (which
//! `tests/lang/sockets` cannot). Every wait is bounded: reads time out, programs are killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A running `molt run` of a program; killed when dropped.
struct Program {
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    file: PathBuf,
}

impl Program {
    fn start(name: &str, src: &str) -> Program {
        let file = std::env::temp_dir().join(format!("molt-sockets-{}-{name}.molt", std::process::id()));
        std::fs::write(&file, src).expect("write the program");
        let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
            .arg("run")
            .arg(&file)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start molt");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let (tx, stderr) = channel();
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        Program { child, lines, stderr, file }
    }

    /// The next line the program prints.
    fn line(&self) -> String {
        self.lines.recv_timeout(WAIT).expect("the program printed a line in time")
    }

    /// Waits for the end: the exit status, and the rest of stdout and stderr.
    fn finish(mut self) -> (i32, Vec<String>, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for molt") {
                break s;
            }
            assert!(start.elapsed() < WAIT, "the program did not end in time");
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.recv_timeout(WAIT).unwrap_or_default();
        // The reader thread ends at the end of stdout.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            rest.push(line);
        }
        (status.code().unwrap_or(-1), rest, stderr)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn client(port: &str) -> TcpStream {
    let s = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to the program");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("a reply in time");
    line
}

/// Serves one client: replies to each line with its length in characters and the line.
const ECHO: &str = r#"
fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    let c = l.accept();
    loop {
        let line = c.read_line();
        if line == nil {
            print("end");
            return;
        }
        c.write(str(len(line)) + " " + line + "\n");
    }
}
"#;

#[test]
fn bytes_that_are_not_utf8_become_replacement_characters() {
    let p = Program::start("utf8", ECHO);
    let port = p.line();
    let mut s = client(&port);
    s.write_all(b"ok \xff\xfe end\r\n\xc3\xa9t\xc3\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_line(&mut r), "9 ok \u{fffd}\u{fffd} end\n");
    assert_eq!(read_line(&mut r), "3 \u{e9}t\u{fffd}\n");
    drop(s);
    drop(r);
    let (status, rest, stderr) = p.finish();
    assert_eq!((status, rest, stderr.as_str()), (0, vec!["end".to_string()], ""));
}

#[test]
fn a_client_that_goes_away_mid_line_leaves_its_partial_line_then_nil() {
    let p = Program::start("partial", ECHO);
    let port = p.line();
    let mut s = client(&port);
    s.write_all(b"whole\npart").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_line(&mut r), "5 whole\n");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_line(&mut r), "4 part\n");
    let (status, rest, _) = p.finish();
    assert_eq!((status, rest), (0, vec!["end".to_string()]));
}

#[test]
fn many_outside_clients_at_once() {
    let src = r#"
fn handle(c) {
    loop {
        let line = c.read_line();
        if line == nil {
            return;
        }
        c.write(line.upper() + "\n");
    }
}

fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    let tasks = [];
    for i in 0..10 {
        tasks.push(spawn(handle, l.accept()));
    }
    print("accepted");
    for t in tasks {
        t.join();
    }
}
"#;
    let p = Program::start("many", src);
    let port = p.line();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let port = port.clone();
            std::thread::spawn(move || {
                let mut s = client(&port);
                let mut r = BufReader::new(s.try_clone().unwrap());
                for j in 0..50 {
                    s.write_all(format!("client {i} line {j}\n").as_bytes()).unwrap();
                    assert_eq!(read_line(&mut r), format!("CLIENT {i} LINE {j}\n"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client got every reply");
    }
    assert_eq!(p.line(), "accepted");
    let (status, _, stderr) = p.finish();
    assert_eq!((status, stderr.as_str()), (0, ""));
}

#[test]
fn a_line_over_one_mib_is_an_error_of_the_reading_task() {
    let src = r#"
fn handle(c) {
    print(len(c.read_line()));
    c.read_line();
}

fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    let t = spawn(handle, l.accept());
    t.join();
}
"#;
    let p = Program::start("long", src);
    let port = p.line();
    let mut s = client(&port);
    // A line of exactly 1 MiB is fine; the next one, 2 MiB without an end, is not.
    let mut data = vec![b'a'; 1 << 20];
    data.extend_from_slice(b"\r\n");
    s.write_all(&data).unwrap();
    assert_eq!(p.line(), "1048576");
    // The program closes the connection: the rest may not all be written.
    let _ = s.write_all(&vec![b'b'; 2 << 20]);
    let (status, _, stderr) = p.finish();
    assert_eq!(status, 1, "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error in task 2 (handle): read_line 127.0.0.1:"), "{stderr}");
    assert!(
        first.ends_with(
            ": a line longer than the limit of 1 MiB (1048576 bytes) arrived; the connection is closed (the peer must send shorter lines)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("error: task 2 failed: read_line 127.0.0.1:"), "{stderr}");
}

#[test]
fn listening_twice_on_one_port_says_the_address_is_in_use() {
    let src = r#"
fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    listen("127.0.0.1:" + str(l.port()));
}
"#;
    let p = Program::start("in_use", src);
    let port = p.line();
    let (status, _, stderr) = p.finish();
    assert_eq!(status, 1);
    assert_eq!(
        stderr.lines().next().unwrap_or_default(),
        format!(
            "error: listen 127.0.0.1:{port}: address already in use (another socket listens on this port: close it, pick another port, or use port 0 for any free one)"
        )
    );
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let src = r#"
fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    l.close();
    connect("127.0.0.1:" + str(l.port()));
}
"#;
    let p = Program::start("refused", src);
    let port = p.line();
    let (status, _, stderr) = p.finish();
    assert_eq!(status, 1);
    assert_eq!(
        stderr.lines().next().unwrap_or_default(),
        format!(
            "error: connect 127.0.0.1:{port}: connection refused (nothing listens there: is the server running, on this port?)"
        )
    );
}

#[test]
fn writing_to_a_closed_connection_is_an_error() {
    let src = r#"
fn main() {
    let l = listen("127.0.0.1:0");
    let c = connect("127.0.0.1:" + str(l.port()));
    print(l.port());
    c.close();
    c.write("late\n");
}
"#;
    let p = Program::start("write_closed", src);
    let port = p.line();
    let (status, _, stderr) = p.finish();
    assert_eq!(status, 1);
    assert_eq!(
        stderr.lines().next().unwrap_or_default(),
        format!(
            "error: write 127.0.0.1:{port}: the connection is closed (this program closed it: write before close())"
        )
    );
}

#[test]
fn a_server_waiting_for_clients_uses_no_cpu() {
    let src = r#"
fn main() {
    let l = listen("127.0.0.1:0");
    print(l.port());
    let c = l.accept();
    print(c.read_line());
}
"#;
    let p = Program::start("idle", src);
    let port = p.line();
    let pid = p.child.id();
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let before = ticks();
    std::thread::sleep(Duration::from_millis(500));
    // A spinning loop would use about 50 ticks (of 10 ms) here.
    assert!(ticks() - before < 10, "the idle server used CPU");
    let mut s = client(&port);
    s.write_all(b"bye\n").unwrap();
    assert_eq!(p.line(), "bye");
    let (status, _, _) = p.finish();
    assert_eq!(status, 0);
}
