//! End to end: the TCP key-value server (examples/kv_server) under load from four clients while
//! new versions are pushed into it through its control socket (`molt push`): v2 (a record type
//! change with a transformer), v1 (back: the default transformer), v2 again, then v3 (code
//! only) under per-task consistency, and an undo. No reply may be wrong, no written key may be
//! lost, every push must be applied. Only 127.0.0.1; every loop is bounded in count and time.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One client: SET and GET on its own keys until `stop` (at most `max` requests), checking
/// every reply; returns what it wrote last per key, or the first problem.
fn client(addr: &str, me: usize, stop: Arc<AtomicBool>, max: usize) -> Result<Vec<(String, String)>, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("client {me}: connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut last: Vec<Option<String>> = vec![None; 20];
    let mut line = String::new();
    let mut done = 0;
    for i in 0..max {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        done += 1;
        // Writes and reads each go round all the keys (3 is prime to 20), reads elsewhere than writes.
        let k = (i / 2 * 3 + (i % 2) * 11 + me) % last.len();
        let write = i % 2 == 0;
        let request = match write {
            true => format!("SET c{me}-k{k} v{i}\n"),
            false => format!("GET c{me}-k{k}\n"),
        };
        w.write_all(request.as_bytes()).map_err(|e| format!("client {me}: write: {e}"))?;
        line.clear();
        reader.read_line(&mut line).map_err(|e| format!("client {me}: read: {e}"))?;
        let got = line.trim_end();
        let want = match (write, &last[k]) {
            (true, _) => "OK".to_string(),
            (false, Some(v)) => format!("VALUE {v}"),
            (false, None) => "MISSING".to_string(),
        };
        if got != want {
            return Err(format!("client {me}: {} -> {got:?}, expected {want:?}", request.trim_end()));
        }
        if write {
            last[k] = Some(format!("v{i}"));
        }
    }
    if done < 50 {
        return Err(format!("client {me} made only {done} requests"));
    }
    Ok(last.iter().enumerate().filter_map(|(k, v)| Some((format!("c{me}-k{k}"), v.clone()?))).collect())
}

fn push(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_molt")).current_dir(dir).arg("push").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "molt push {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn pushes_under_load_lose_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("molt-kv-push-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("kv.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .current_dir(root)
        .args(["run", "examples/kv_server/v1.molt", "--control"])
        .arg(&sock)
        .args(["--", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _server = Server(child);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first.trim_end().strip_prefix("listening on ").expect("the server says where it listens").to_string();
    // Its output must keep flowing (a full pipe would block it).
    std::thread::spawn(move || for _ in out.lines() {});

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|me| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || client(&addr, me, stop, 2_000_000))
        })
        .collect();
    let started = Instant::now();
    let v = |n: u32| root.join(format!("examples/kv_server/v{n}.molt")).display().to_string();
    let mut log = String::new();
    for (args, applied) in [
        (vec![v(2)], "update applied (version 1 -> 2)"),
        (vec![v(1)], "update applied (version 2 -> 3)"),
        (vec![v(2)], "update applied (version 3 -> 4)"),
        (vec![v(3), "--consistency".into(), "per-task".into()], "update applied (version 4 -> 5)"),
        (vec!["--undo".into()], "update applied (version 5 -> 6)"),
    ] {
        std::thread::sleep(Duration::from_millis(150));
        let mut a: Vec<&str> = vec![sock.to_str().unwrap()];
        a.extend(args.iter().map(String::as_str));
        let text = push(&dir, &a);
        assert!(text.contains(applied), "{text}");
        log.push_str(&text);
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::SeqCst);
    assert!(started.elapsed() < Duration::from_secs(60));
    let mut written = Vec::new();
    for c in clients {
        written.extend(c.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{log}")));
    }
    assert_eq!(written.len(), 80, "every client wrote each of its 20 keys");
    // Every key as its client last wrote it, on a fresh connection.
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    for (k, value) in written {
        writeln!(w, "GET {k}").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), format!("VALUE {value}"), "key {k}");
    }
}
