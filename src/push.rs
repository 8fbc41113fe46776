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
            flag @ ("--transform" | "--policy" | "--consistency") => {
                update_flag(flag, value, &mut request)?;
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

/// `--transform eager|lazy`, `--policy strict|relaxed`, `--consistency global|per-task`: the
/// settings of an update, for `molt run` and `molt push` alike (into `request`'s overrides).
pub fn update_flag(flag: &str, value: Option<&str>, request: &mut Request) -> Result<(), String> {
    match (flag, value) {
        ("--transform", Some("eager")) => request.transform = Some(TransformMode::Eager),
        ("--transform", Some("lazy")) => request.transform = Some(TransformMode::Lazy),
        ("--transform", _) => return Err("--transform takes `eager` or `lazy`".into()),
        ("--policy", Some("strict")) => request.policy = Some(Policy::Strict),
        ("--policy", Some("relaxed")) => request.policy = Some(Policy::Relaxed),
        ("--policy", _) => return Err("--policy takes `strict` or `relaxed`".into()),
        // Who switches when (docs/tasks.md): every task at once, or each by itself.
        ("--consistency", Some("global")) => request.consistency = Some(Consistency::Global),
        ("--consistency", Some("per-task")) => request.consistency = Some(Consistency::PerTask),
        ("--consistency", _) => return Err("--consistency takes `global` or `per-task`".into()),
        _ => return Err(format!("unknown option '{flag}'")),
    }
    Ok(())
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
