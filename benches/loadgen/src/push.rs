//! Pushes: `molt push SOCKET FILE` run as a subprocess at set times during the load.

use crate::options::Push;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A push that was due, as it went.
#[derive(Debug, Clone)]
pub struct PushRun {
    pub push: Push,
    /// ms after the load's start; `None` when it never ran (the load ended first).
    pub start_ms: Option<f64>,
    pub end_ms: Option<f64>,
    /// The exit status of `molt push`; `None` when it did not run, was killed or could not start.
    pub status: Option<i32>,
    /// What it printed (stdout, then stderr), or why it did not run.
    pub output: String,
}

/// A push may take this long before it is killed (and counted as failed).
const PUSH_LIMIT: Duration = Duration::from_secs(60);
const OUTPUT_LIMIT: usize = 4000;

fn read_all(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        s
    })
}

fn run_one(molt: &str, extra: &[String], p: &Push, start: Instant) -> PushRun {
    let mut run = PushRun { push: p.clone(), start_ms: None, end_ms: None, status: None, output: String::new() };
    let t0 = start.elapsed();
    let child = Command::new(molt)
        .arg("push")
        .arg(&p.socket)
        .arg(&p.file)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    run.start_ms = Some(t0.as_secs_f64() * 1000.0);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            run.end_ms = run.start_ms;
            run.output = format!("could not start `{molt} push`: {e}");
            return run;
        }
    };
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let begun = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if begun.elapsed() < PUSH_LIMIT => std::thread::sleep(Duration::from_micros(500)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(_) => break None,
        }
    };
    run.end_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
    run.status = status.and_then(|s| s.code());
    let mut text = out.join().unwrap_or_default();
    text.push_str(&err.join().unwrap_or_default());
    if status.is_none() {
        text.push_str(&format!("\n(killed after {} s)", PUSH_LIMIT.as_secs()));
    }
    if text.len() > OUTPUT_LIMIT {
        let mut cut = OUTPUT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    run.output = text.trim_end().to_string();
    run
}

/// Runs the pushes in order, each at its time, until `done` (the load ended); the pushes not
/// yet due then are reported as not run.
pub fn run_all(
    molt: String,
    extra: Vec<String>,
    pushes: Vec<Push>,
    start: Instant,
    done: Arc<AtomicBool>,
) -> Vec<PushRun> {
    let mut runs = Vec::new();
    for p in pushes {
        let due = start + Duration::from_millis(p.at_ms);
        while Instant::now() < due && !done.load(Ordering::Relaxed) {
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(2)));
        }
        if done.load(Ordering::Relaxed) {
            runs.push(PushRun {
                push: p,
                start_ms: None,
                end_ms: None,
                status: None,
                output: "not run: the load ended first".to_string(),
            });
            continue;
        }
        runs.push(run_one(&molt, &extra, &p, start));
    }
    runs
}
