//! The client's side of the control socket: `molt push` and `molt status`.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use molt_vm::Program;
use serde_json::Value as Json;

use super::{Request, read_frame, write_frame};

/// How a push ended, as its exit status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 0
    Applied,
    /// 1: rejected, rolled back, abandoned, reversed, or never applied.
    NotApplied,
    /// 2: a usage, connection or protocol error.
    Error,
}

impl Outcome {
    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Applied => 0,
            Outcome::NotApplied => 1,
            Outcome::Error => 2,
        })
    }
}

fn connect(socket: &Path) -> Result<UnixStream, String> {
    UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is a program running with `--control {}`?)",
            socket.display(),
            socket.display()
        )
    })
}

fn send_json(stream: &mut UnixStream, j: &Json) -> Result<(), String> {
    write_frame(stream, &serde_json::to_vec(j).unwrap_or_default()).map_err(|e| format!("cannot send: {e}"))
}

/// The next reply, parsed; `None` when the program closed the connection.
fn reply(stream: &mut UnixStream) -> Result<Option<Json>, String> {
    match read_frame(stream)? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("the program's reply is not JSON: {e}"))
        }
    }
}

/// Pushes `program` (or, without one, an undo) and prints the update's events as they come:
/// one line each for people, or the JSON objects of `--trace-updates=json` with `json`.
pub fn push(socket: &Path, request: &Request, program: Option<&Program>, json: bool) -> Outcome {
    match push_inner(socket, request, program, json) {
        Ok(outcome) => outcome,
        Err(why) => {
            crate::report!("error: {why}");
            Outcome::Error
        }
    }
}

fn push_inner(socket: &Path, request: &Request, program: Option<&Program>, json: bool) -> Result<Outcome, String> {
    let mut stream = connect(socket)?;
    send_json(&mut stream, &request.to_json())?;
    if let Some(p) = program {
        write_frame(&mut stream, &molt_vm::mbc::write(p)).map_err(|e| format!("cannot send the new version: {e}"))?;
    }
    let mut out = String::new();
    loop {
        let Some(r) = reply(&mut stream)? else {
            break Err("the program closed the connection before the update ended (did it stop?)".to_string());
        };
        match r["type"].as_str() {
            Some("event") => {
                let line = if json { r["event"].to_string() } else { r["human"].as_str().unwrap_or("").to_string() };
                out.push_str(&line);
                out.push('\n');
                crate::output::print(&std::mem::take(&mut out));
                match r["event"]["event"].as_str() {
                    Some("applied") => break Ok(Outcome::Applied),
                    Some("rejected" | "rolled_back") => break Ok(Outcome::NotApplied),
                    _ => {}
                }
            }
            Some("not_applied") => {
                crate::report!("{}", r["message"].as_str().unwrap_or("the update was not applied"));
                break Ok(Outcome::NotApplied);
            }
            Some("error") => break Err(r["message"].as_str().unwrap_or("the program refused the request").to_string()),
            _ => break Err(format!("unexpected reply from the program: {r}")),
        }
    }
}

/// `molt status`: the running program's status, for people or (with `json`) as one JSON
/// object.
pub fn status(socket: &Path, json: bool) -> Outcome {
    let result = (|| -> Result<String, String> {
        let mut stream = connect(socket)?;
        let request = Request { op: super::Op::Status, transform: None, policy: None, consistency: None };
        send_json(&mut stream, &request.to_json())?;
        let Some(r) = reply(&mut stream)? else {
            return Err("the program closed the connection without an answer".into());
        };
        match r["type"].as_str() {
            Some("status") if json => Ok(format!("{}\n", r["status"])),
            Some("status") => Ok(r["human"].as_str().unwrap_or("").to_string()),
            Some("error") => Err(r["message"].as_str().unwrap_or("the program refused the request").to_string()),
            _ => Err(format!("unexpected reply from the program: {r}")),
        }
    })();
    match result {
        Ok(text) => {
            crate::output::print(&text);
            Outcome::Applied
        }
        Err(why) => {
            crate::report!("error: {why}");
            Outcome::Error
        }
    }
}
