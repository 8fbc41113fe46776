//! The control socket: pushing updates into a running program and asking for its status from
//! another process (`molt run --control SOCKET`, `molt push`, `molt status`). The protocol is
//! described for other tools in docs/control.md; this module holds its pieces:
//!
//! - a *frame* is a 4-byte big-endian length, then that many bytes (at most `MAX_FRAME`);
//! - a request is one frame holding a JSON object (`Request`), followed for a push by one
//!   frame holding the new version as `.mbc` bytecode;
//! - the program answers with frames each holding one JSON object (`Reply`): the update's
//!   events as they happen (the push ends after `applied`, `rejected` or `rolled_back`), a
//!   status, or an error. Then it closes the connection.
//!
//! `server.rs` is the running program's side, `client.rs` the `molt push` / `molt status` side.

pub mod client;
pub mod server;

use std::io::{Read, Write};

use molt_vm::update::{Consistency, Policy, TransformMode, UpdateSettings};
use serde_json::{Value as Json, json};

/// The protocol's version: a request names it, and a program refuses another.
pub const PROTOCOL: u64 = 1;

/// The largest frame either side accepts (a bigger length closes the connection).
pub const MAX_FRAME: usize = 64 << 20;

/// What a client asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A new version follows in the next frame.
    Push,
    /// Back to the previous version's program.
    Undo,
    Status,
}

/// A request: the operation and, for a push or an undo, the settings it overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub op: Op,
    pub transform: Option<TransformMode>,
    pub policy: Option<Policy>,
    pub consistency: Option<Consistency>,
}

impl Request {
    pub fn to_json(&self) -> Json {
        let op = match self.op {
            Op::Push => "push",
            Op::Undo => "undo",
            Op::Status => "status",
        };
        let mut j = json!({ "protocol": PROTOCOL, "op": op });
        if let Some(t) = self.transform {
            j["transform"] = json!(if t == TransformMode::Lazy { "lazy" } else { "eager" });
        }
        if let Some(p) = self.policy {
            j["policy"] = json!(if p == Policy::Relaxed { "relaxed" } else { "strict" });
        }
        if let Some(c) = self.consistency {
            j["consistency"] = json!(if c == Consistency::PerTask { "per-task" } else { "global" });
        }
        j
    }

    /// Reads a request from the JSON of its frame; the error says what is wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Request, String> {
        let j: Json = serde_json::from_slice(bytes).map_err(|e| format!("the request is not JSON: {e}"))?;
        let Some(obj) = j.as_object() else { return Err("the request is not a JSON object".into()) };
        match obj.get("protocol").and_then(Json::as_u64) {
            Some(PROTOCOL) => {}
            Some(v) => return Err(format!("protocol version {v} is not spoken here (this program speaks {PROTOCOL})")),
            None => return Err("the request has no \"protocol\" version".into()),
        }
        let op = match obj.get("op").and_then(Json::as_str) {
            Some("push") => Op::Push,
            Some("undo") => Op::Undo,
            Some("status") => Op::Status,
            Some(other) => return Err(format!("unknown operation \"{other}\" (push, undo, status)")),
            None => return Err("the request has no \"op\"".into()),
        };
        let word = |key: &str, a: &str, b: &str| -> Result<Option<bool>, String> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) if s == a => Ok(Some(false)),
                Some(Json::String(s)) if s == b => Ok(Some(true)),
                Some(other) => Err(format!("\"{key}\" must be \"{a}\" or \"{b}\", not {other}")),
            }
        };
        let transform =
            word("transform", "eager", "lazy")?.map(|l| if l { TransformMode::Lazy } else { TransformMode::Eager });
        let policy = word("policy", "strict", "relaxed")?.map(|r| if r { Policy::Relaxed } else { Policy::Strict });
        let consistency = word("consistency", "global", "per-task")?
            .map(|p| if p { Consistency::PerTask } else { Consistency::Global });
        Ok(Request { op, transform, policy, consistency })
    }

    /// The program's settings with this request's overrides, or `None` when it has none.
    pub fn settings(&self, base: &UpdateSettings) -> Option<UpdateSettings> {
        if self.transform.is_none() && self.policy.is_none() && self.consistency.is_none() {
            return None;
        }
        let mut s = base.clone();
        if let Some(t) = self.transform {
            s.mode = t;
        }
        if let Some(p) = self.policy {
            s.policy = p;
        }
        if let Some(c) = self.consistency {
            s.consistency = c;
        }
        Some(s)
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).ok().filter(|&n| n as usize <= MAX_FRAME).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a message of {} bytes is over the limit", payload.len()),
        )
    })?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame; `None` at a clean end of the stream (before a length). A length over
/// `MAX_FRAME` or a stream that ends inside a frame is an error, and nothing is allocated
/// for a length that is not there.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match r.read(&mut len[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot read: {e}")),
    }
    r.read_exact(&mut len[1..]).map_err(|e| format!("the message ends inside its length ({e})"))?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(format!("a message of {n} bytes is over the limit of {MAX_FRAME} bytes"));
    }
    let mut buf = Vec::new();
    let got = r.take(n as u64).read_to_end(&mut buf).map_err(|e| format!("cannot read: {e}"))?;
    if got < n {
        return Err(format!("the message ends after {got} of its {n} bytes"));
    }
    Ok(Some(buf))
}

/// What a connection asks: its request and, for a push, the new version (verified).
#[derive(Debug)]
pub struct Received {
    pub request: Request,
    pub program: Option<molt_vm::Program>,
}

/// Reads what a connection sends, as the program's side does (`server.rs`; the fuzz check
/// `fuzzing::control` too): the request frame, then for a push the bytecode frame, verified
/// by `mbc::read`. `None` when the stream ends before a request. Nothing after what the
/// request needs is read.
pub fn read_request(r: &mut impl Read) -> Result<Option<Received>, String> {
    let Some(head) = read_frame(r)? else { return Ok(None) };
    let request = Request::from_json(&head)?;
    let program = match request.op {
        Op::Status | Op::Undo => None,
        Op::Push => {
            let Some(body) = read_frame(r)? else {
                return Err("a push must send the new version's bytecode after the request".into());
            };
            let program = molt_vm::mbc::read(&body).map_err(|e| format!("the pushed bytecode was refused: {e}"))?;
            Some(program)
        }
    };
    Ok(Some(Received { request, program }))
}

/// A reply frame's JSON: an event (with its line for people), a status, or an error.
pub fn event_reply(e: &molt_vm::update::UpdateEvent) -> Json {
    let event: Json = serde_json::from_str(&e.json()).unwrap_or(Json::Null);
    json!({ "type": "event", "event": event, "human": e.human() })
}

pub fn error_reply(message: &str) -> Json {
    json!({ "type": "error", "message": message })
}

/// The update was taken but will never be applied (the program ended first).
pub fn not_applied_reply(message: &str) -> Json {
    json!({ "type": "not_applied", "message": message })
}

pub fn status_reply(s: &molt_vm::inspect::Status) -> Json {
    let tasks: Vec<Json> = s
        .tasks
        .iter()
        .map(|t| {
            json!({ "id": t.id, "function": t.name, "state": t.state, "version": t.version, "at": t.at, "waits": t.waits })
        })
        .collect();
    let history: Vec<Json> = s.history.iter().map(|(v, summary)| json!({ "version": v, "plan": summary })).collect();
    let status = json!({
        "version": s.version,
        "uptime_ms": s.uptime_ms,
        "tasks": tasks,
        "pending": s.pending,
        "history": history,
    });
    json!({ "type": "status", "status": status, "human": s.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        let r = Request {
            op: Op::Push,
            transform: Some(TransformMode::Lazy),
            policy: None,
            consistency: Some(Consistency::PerTask),
        };
        let bytes = serde_json::to_vec(&r.to_json()).unwrap();
        assert_eq!(Request::from_json(&bytes), Ok(r));
        assert_eq!(Request::from_json(b"[1]"), Err("the request is not a JSON object".to_string()));
        assert_eq!(
            Request::from_json(br#"{"protocol":2,"op":"push"}"#),
            Err("protocol version 2 is not spoken here (this program speaks 1)".to_string())
        );
        assert_eq!(
            Request::from_json(br#"{"protocol":1,"op":"explode"}"#),
            Err("unknown operation \"explode\" (push, undo, status)".to_string())
        );
        assert_eq!(
            Request::from_json(br#"{"protocol":1,"op":"push","policy":"loose"}"#),
            Err("\"policy\" must be \"strict\" or \"relaxed\", not \"loose\"".to_string())
        );
    }

    #[test]
    fn frames_round_trip_and_bad_lengths_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r), Ok(Some(b"hello".to_vec())));
        assert_eq!(read_frame(&mut r), Ok(None));
        let mut r: &[u8] = &[0, 0, 0, 9, b'a'];
        assert_eq!(read_frame(&mut r), Err("the message ends after 1 of its 9 bytes".to_string()));
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut r).unwrap_err().contains("over the limit"));
        let mut r: &[u8] = &[0, 0];
        assert!(read_frame(&mut r).unwrap_err().starts_with("the message ends inside its length"));
    }
}
