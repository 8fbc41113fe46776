//! molt-loadgen against a small key-value server in this test (threads, 127.0.0.1, port 0):
//! a correct server gives a clean report and exit 0; a server that forgets keys, or answers
//! wrongly, is caught (exit 1, counted as lost or wrong). Bounded: the load lasts at most 2 s.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy)]
enum Fault {
    None,
    /// Every 50th SET answers OK but stores nothing.
    ForgetSets,
    /// Every 40th GET of a stored key answers MISSING.
    WrongGets,
}

/// Serves the v1 protocol until the test process ends; returns the port.
fn stub(fault: Fault) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let store = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let store = store.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let (mut sets, mut gets) = (0u64, 0u64);
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { return };
                    let words: Vec<&str> = line.split(' ').collect();
                    let reply = match words.as_slice() {
                        ["SET", k, v] => {
                            sets += 1;
                            if !(matches!(fault, Fault::ForgetSets) && sets % 50 == 0) {
                                store.lock().unwrap().insert(k.to_string(), v.to_string());
                            }
                            "OK".to_string()
                        }
                        ["GET", k] => {
                            gets += 1;
                            match store.lock().unwrap().get(*k) {
                                Some(_) if matches!(fault, Fault::WrongGets) && gets % 40 == 0 => "MISSING".to_string(),
                                Some(v) => format!("VALUE {v}"),
                                None => "MISSING".to_string(),
                            }
                        }
                        ["QUIT"] => "BYE".to_string(),
                        _ => format!("ERROR unknown command: {}", words[0]),
                    };
                    if w.write_all(format!("{reply}\n").as_bytes()).is_err() || reply == "BYE" {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn loadgen(port: u16, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_molt-loadgen"))
        .args(["--addr", &format!("127.0.0.1:{port}"), "--clients", "3", "--requests", "2000", "--seconds", "2"])
        .args(["--keys", "20"])
        .args(extra)
        .output()
        .expect("run molt-loadgen");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn clean_against_a_correct_server() {
    let port = stub(Fault::None);
    let samples = std::env::temp_dir().join(format!("loadgen-samples-{}.csv", std::process::id()));
    let (code, text) = loadgen(port, &["--samples", samples.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("errors: 0 (wrong replies 0, connection errors 0)"), "{text}");
    assert!(text.contains("final check: 60 keys written, 0 missing, 0 wrong"), "{text}");
    let csv = std::fs::read_to_string(&samples).unwrap();
    let _ = std::fs::remove_file(&samples);
    assert_eq!(csv.lines().next(), Some("t_ms,latency_us,client,op,ok"));
    assert!(csv.lines().count() > 100, "{} lines", csv.lines().count());

    // JSON, and a push that cannot start (no such binary): reported, and the run fails.
    let (code, text) = loadgen(
        port,
        &["--json", "--key-prefix", "j-", "--molt", "/nonexistent/molt", "--push", "0:/tmp/x.sock:v2.molt"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with('{') && text.trim_end().ends_with('}'), "{text}");
    assert!(text.contains(r#""wrong_replies":0,"connection_errors":0"#), "{text}");
    assert!(text.contains(r#""exit_status":null"#) && text.contains("could not start"), "{text}");
}

#[test]
fn lost_writes_are_found() {
    let (code, text) = loadgen(stub(Fault::ForgetSets), &["--write-ratio", "0.9"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("result: FAILED"), "{text}");
    // A forgotten SET shows as a wrong GET during the load or as a key missing or wrong at the end.
    assert!(!text.contains("errors: 0 (") || !text.contains("0 missing, 0 wrong"), "{text}");
}

#[test]
fn wrong_replies_are_counted() {
    let (code, text) = loadgen(stub(Fault::WrongGets), &["--write-ratio", "0.3"]);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("wrong replies 0,"), "{text}");
}

#[test]
fn usage_errors_and_no_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_molt-loadgen")).args(["--addr", "192.168.0.1:80"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only 127.0.0.1"));
    // A port nobody listens on: bind one, drop it, use it.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, text) = loadgen(port, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot connect to 127.0.0.1:"), "{text}");
}
