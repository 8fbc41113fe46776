//! examples/kv_server, the TCP key-value server, updated while clients stay connected: the
//! `molt` binary serves it on 127.0.0.1 (port 0: the port it prints), the test talks to it with
//! `std::net::TcpStream` and hands the later versions over with `--update` (each one handled at
//! the first update point reached, which is between two requests of a client). Every reply is
//! checked exactly, before and after each update. Every wait is bounded: reads time out, loops
//! count, and the server is killed when the test ends (also when it fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// `molt run examples/kv_server/v1.molt ARGS -- 127.0.0.1:0`; killed when dropped.
struct Server {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    port: u16,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
            .current_dir(root)
            .arg("run")
            .arg("examples/kv_server/v1.molt")
            .args(args)
            .args(["--", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start molt");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let mut server = Server { child, stdout, stderr, port: 0 };
        let first = server.line();
        let port = first
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first line: {first:?}"));
        server.port = port;
        server
    }

    /// The next line the server prints on stdout.
    fn line(&self) -> String {
        match self.stdout.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => panic!("the server printed no line in time; stderr: {}", self.stderr_now()),
        }
    }

    /// What the server wrote on stderr so far.
    fn stderr_now(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits for a line on stderr that contains every one of `parts` (bounded in time).
    fn stderr_line_with(&self, parts: &[&str]) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < WAIT {
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) {
                if parts.iter().all(|p| line.contains(p)) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("no stderr line with {parts:?}; saw:\n{}", seen.join("\n"));
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the server");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let local = stream.local_addr().unwrap().to_string();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let client = Client { stream, reader, local };
        // The server says when the client's task runs (and is about to block in read_line).
        assert_eq!(self.line(), format!("connected {} (v1)", client.local));
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    local: String,
}

impl Client {
    /// Sends one request and returns the reply line, without its newline.
    fn ask(&mut self, request: &str) -> String {
        self.stream.write_all(format!("{request}\n").as_bytes()).expect("send a request");
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply).expect("a reply in time");
        assert!(n > 0, "the server closed the connection after {request:?}");
        assert!(reply.ends_with('\n'), "a whole line: {reply:?}");
        reply.trim_end().to_string()
    }

    /// Asks and checks the reply.
    fn expect(&mut self, request: &str, reply: &str) {
        assert_eq!(self.ask(request), reply, "reply to {request:?}");
    }

    /// The server closed the connection: the next read sees the end of the stream.
    fn expect_closed(&mut self) {
        let mut rest = String::new();
        assert_eq!(self.reader.read_line(&mut rest).expect("end of stream in time"), 0, "{rest:?}");
    }
}

#[test]
fn v1_protocol() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect("GET a", "MISSING");
    c.expect("SET a hello world", "OK");
    c.expect("GET a", "VALUE hello world");
    c.expect("set a 2", "OK");
    c.expect("get a", "VALUE 2");
    c.expect("GET", "ERROR usage: GET key");
    c.expect("SET a", "ERROR usage: SET key value");
    c.expect("", "ERROR empty request");
    c.expect("COUNT", "ERROR unknown command: COUNT");
    c.expect("QUIT", "BYE");
    c.expect_closed();
    assert_eq!(server.line(), format!("closed {} after 10 requests (v1)", c.local));
}

/// v1 -> v2 (Entry gains `writes`, set to 1 by the transformer) while two clients are
/// connected: one that has just made a request, one idle in `read_line()` since before.
#[test]
fn update_to_v2_keeps_clients_and_entries() {
    let server = Server::start(&["--update", "examples/kv_server/v2.molt", "--trace-updates=json"]);
    let mut idle = server.connect();
    let mut c = server.connect();
    // v1 serves the first request; the update applies at the point after it.
    c.expect("SET a 1", "OK");
    server.stderr_line_with(&[r#""event":"applied""#, r#""to":2"#, r#""objects_transformed":1"#]);
    c.expect("INFO a", "INFO a writes=1");
    c.expect("SET a 2", "OK");
    c.expect("INFO a", "INFO a writes=2");
    c.expect("GET a", "VALUE 2");
    c.expect("SET b x", "OK");
    c.expect("COUNT", "COUNT 2");
    c.expect("DEL a", "OK");
    c.expect("DEL a", "MISSING");
    c.expect("GET a", "MISSING");
    c.expect("INFO a", "MISSING");
    c.expect("NOPE x", "ERROR unknown command: NOPE");
    // The client that was idle across the update is served by v2 and sees the same store.
    idle.expect("GET b", "VALUE x");
    idle.expect("INFO b", "INFO b writes=1");
    idle.expect("QUIT", "BYE");
    idle.expect_closed();
    assert_eq!(server.line(), format!("closed {} after 3 requests (v2)", idle.local));
    c.expect("COUNT", "COUNT 1");
}

/// v1 -> v2 (a type change: applied under the global model even with `--consistency
/// per-task`) -> v3 (code only: a per-task transition, each task switching by itself).
#[test]
fn update_to_v3_per_task() {
    let server = Server::start(&[
        "--update",
        "examples/kv_server/v2.molt",
        "--update",
        "examples/kv_server/v3.molt",
        "--consistency",
        "per-task",
        "--trace-updates=json",
    ]);
    let mut idle = server.connect();
    let mut c = server.connect();
    c.expect("COUNT", "ERROR unknown command: COUNT");
    server.stderr_line_with(&[r#""event":"applied""#, r#""to":2"#]);
    c.expect("SET ab 1", "OK");
    server.stderr_line_with(&[r#""event":"applied""#, r#""to":3"#]);
    c.expect("SET ac two", "OK");
    c.expect("SET b 3", "OK");
    c.expect("KEYS a", "KEYS 2 ab ac");
    c.expect("KEYS zz", "KEYS 0");
    c.expect("INFO ac", "INFO ac writes=1 length=3");
    idle.expect("KEYS", "KEYS 3 ab ac b");
    idle.expect("GET ab", "VALUE 1");
    idle.expect("QUIT", "BYE");
    idle.expect_closed();
    assert_eq!(server.line(), format!("closed {} after 3 requests (v3)", idle.local));
    c.expect("QUIT", "BYE");
    c.expect_closed();
}

#[test]
fn bad_address_is_an_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(root)
        .args(["run", "examples/kv_server/v1.molt", "--", "nonsense"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("molt runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#""nonsense" is not an address"#), "{err}");
    assert!(out.stdout.is_empty());
}
