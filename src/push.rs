//! `molt push SOCKET NEW|--undo [--transform ..] [--policy ..] [--consistency ..] [--json]` and
//! `molt status SOCKET [--json]`: the command line of the control socket's client
//! (`molt::control::client`; the protocol: docs/control.md).

use std::path::Path;
use std::process::ExitCode;

use molt::control::{Op, Request};
use molt_vm::update::{Consistency, Policy, TransformMode};

pub fn cmd_push(args: &[String]) -> Result<ExitCode, String> {
    let mut request = Request { op: Op::Push, transform: None, policy: None, consistency: None };
    let (mut json, mut positional) = (false, Vec::new());
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).map(String::as_str);
        match args[i].as_str() {
            "--undo" => request.op = Op::Undo,
            "--json" => json = true,
            "--transform" => {
                request.transform = Some(match value {
                    Some("eager") => TransformMode::Eager,
                    Some("lazy") => TransformMode::Lazy,
                    _ => return Err("--transform takes `eager` or `lazy`".into()),
                });
                i += 1;
            }
            "--policy" => {
                request.policy = Some(match value {
                    Some("strict") => Policy::Strict,
                    Some("relaxed") => Policy::Relaxed,
                    _ => return Err("--policy takes `strict` or `relaxed`".into()),
                });
                i += 1;
            }
            "--consistency" => {
                request.consistency = Some(match value {
                    Some("global") => Consistency::Global,
                    Some("per-task") => Consistency::PerTask,
                    _ => return Err("--consistency takes `global` or `per-task`".into()),
                });
                i += 1;
            }
            a if a.starts_with('-') => return Err(format!("unknown option '{a}' for `molt push`")),
            a => positional.push(a.to_string()),
        }
        i += 1;
    }
    let (socket, new) = match (positional.as_slice(), &request.op) {
        ([s], Op::Undo) => (s.clone(), None),
        ([_, _], Op::Undo) => return Err("`molt push SOCKET --undo` takes no NEW file".into()),
        ([s, n], _) => (s.clone(), Some(n.clone())),
        _ => return Err("`molt push` takes SOCKET and NEW (or SOCKET --undo)".into()),
    };
    // Compiled here: a file that does not compile is reported like `molt check` and never sent.
    let program = match new {
        Some(n) => match crate::load(Path::new(&n)) {
            Ok(p) => Some(p),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    Ok(molt::control::client::push(Path::new(&socket), &request, program.as_ref(), json).code())
}

pub fn cmd_status(args: &[String]) -> Result<ExitCode, String> {
    let (mut json, mut socket) = (false, None);
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            a if a.starts_with('-') => return Err(format!("unknown option '{a}' for `molt status`")),
            a if socket.is_none() => socket = Some(a.to_string()),
            _ => return Err("`molt status` takes one SOCKET".into()),
        }
    }
    let Some(socket) = socket else { return Err("`molt status` takes one SOCKET".into()) };
    Ok(molt::control::client::status(Path::new(&socket), json).code())
}
