//! The `molt` command line: `run`, `check`, `compile`, `disasm`. See ../shared/spec/CLI.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use molt::{LoadError, diagnostics};

mod push;
mod timeline;

const USAGE: &str = "usage:
  molt run FILE [OPTIONS] [-- ARGS...]
                                   run a program (source .molt or bytecode .mbc)
      --update FILE                a new version, applied at an update point (repeatable)
      --policy strict|relaxed      frames of changed functions: wait for them, or let them finish
      --transform eager|lazy       convert changed records at the update, or at first use
      --consistency global|per-task
                                   every task switches to a new version together (the
                                   default), or each task as soon as it can (code-only updates)
      --watch                      apply each saved edit of the program's files
      --control SOCKET             listen on a Unix socket for `molt push` and `molt status`
      --jit off|on|always          the compiled tier (default on: hot code compiles; `always`
                                   compiles every function at its first call)
      --trace-updates[=json]       print every update event on stderr
  molt push SOCKET NEW [--transform eager|lazy] [--policy strict|relaxed]
       [--consistency global|per-task] [--json]
                                   push NEW into the program running with --control SOCKET;
                                   print its update events (exit 0 applied, 1 not applied)
  molt push SOCKET --undo          update that program back to its previous version's program
  molt status SOCKET [--json]      that program's version, tasks, pending update, history
  molt check FILE                  compile only; report every error
  molt compile FILE -o OUT.mbc     write versioned bytecode
  molt disasm FILE                 print the bytecode with source lines
  molt plan OLD NEW                print the update plan from OLD to NEW
  molt timeline EVENTS.jsonl -o OUT.svg
                                   draw --trace-updates=json events as an SVG timeline
  molt repl [FILE]                 interactive session (see docs/repl.md)
  molt demo [--fast] [--events FILE]
                                   a guided live-update demo (--fast: no pauses;
                                   --events: also write its update events to FILE as
                                   --trace-updates=json prints them, for `molt timeline`)
  molt help                        this text

environment: MOLT_MAX_HEAP=SIZE   the heap limit (`512M`, `8G`; default: half the memory)

exit status: 0 success, 1 runtime error, 2 compile error, usage error or invalid bytecode";

fn usage_error(msg: &str) -> ExitCode {
    molt::report!("error: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Loads FILE or reports why not (exit status 2).
fn load(path: &Path) -> Result<molt::Program, ExitCode> {
    molt::load_program(path).map_err(|e| {
        match e {
            LoadError::Compile(files, diags) => diagnostics::emit_stderr(&files, &diags),
            LoadError::Other(msg) => molt::report!("error: {msg}"),
        }
        ExitCode::from(2)
    })
}

fn cmd_run(args: &[String]) -> ExitCode {
    use molt_vm::tier::JitMode;
    let mut file = None;
    // The compiled tier is on unless asked otherwise (hot functions and loops compile).
    let mut opts = molt::RunOptions { jit: JitMode::On, ..Default::default() };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = |i: usize| args.get(i + 1).map(String::as_str);
        match a {
            "--" => {
                opts.args = args[i + 1..].to_vec();
                break;
            }
            "--update" => match value(i) {
                Some(f) => {
                    opts.updates.push(PathBuf::from(f));
                    i += 1;
                }
                None => return usage_error("--update needs a FILE"),
            },
            flag @ ("--policy" | "--consistency" | "--transform") => {
                let mut set = molt::control::Request {
                    op: molt::control::Op::Push,
                    transform: None,
                    policy: None,
                    consistency: None,
                };
                if let Err(e) = push::update_flag(flag, value(i), &mut set) {
                    return usage_error(&e);
                }
                opts.settings = set.settings(&opts.settings).unwrap_or(opts.settings);
            }
            "--trace-updates" => opts.trace = molt::Trace::Human,
            "--trace-updates=json" => opts.trace = molt::Trace::Json,
            "--trace-updates=human" => opts.trace = molt::Trace::Human,
            "--jit" => match value(i) {
                Some("off") => opts.jit = JitMode::Off,
                Some("on") => (opts.jit, opts.jit_asked) = (JitMode::On, true),
                Some("always") => (opts.jit, opts.jit_asked) = (JitMode::Always, true),
                _ => return usage_error("--jit takes `off`, `on` or `always`"),
            },
            "--watch" => opts.watch = Some(Vec::new()),
            "--control" => match value(i) {
                Some(p) => {
                    opts.control = Some(PathBuf::from(p));
                    i += 1;
                }
                None => return usage_error("--control needs a SOCKET path"),
            },
            "--self-update" => opts.self_update = true,
            _ if a.starts_with('-') => return usage_error(&format!("unknown option '{a}'")),
            _ if file.is_none() => file = Some(PathBuf::from(a)),
            _ => return usage_error(&format!("unexpected argument '{a}' (program arguments go after `--`)")),
        }
        if matches!(a, "--policy" | "--transform" | "--jit" | "--consistency") {
            i += 1;
        }
        i += 1;
    }
    let Some(file) = file else { return usage_error("`molt run` needs a FILE") };
    let program = match load(&file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if opts.watch.is_some() {
        if !opts.updates.is_empty() {
            return usage_error("--watch and --update cannot be used together");
        }
        if opts.control.is_some() {
            return usage_error("--watch and --control cannot be used together (push each version with `molt push`)");
        }
        opts.watch = Some(molt::watch::sources(&file, &program));
    }
    match molt::run_program(&program, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(molt::RunError::Runtime(e)) => {
            molt::report_raw!("{e}");
            ExitCode::from(1)
        }
        Err(molt::RunError::Output(e)) => molt::output::failed(&e),
        Err(molt::RunError::Setup(e)) => {
            molt::report!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn cmd_check(args: &[String]) -> ExitCode {
    let [file] = args else { return usage_error("`molt check` takes exactly one FILE") };
    match load(Path::new(file)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn cmd_compile(args: &[String]) -> ExitCode {
    let (file, out) = match args {
        [f, o, out] if o == "-o" => (f, out.clone()),
        [o, out, f] if o == "-o" => (f, out.clone()),
        _ => return usage_error("`molt compile` takes FILE -o OUT.mbc"),
    };
    if same_file(Path::new(file), Path::new(&out)) {
        return overwrite_error(&out, file);
    }
    let program = match load(Path::new(file)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Nor an imported file.
    if let Some(f) = program.files.iter().find(|f| !f.starts_with('<') && same_file(Path::new(f), Path::new(&out))) {
        return overwrite_error(&out, f);
    }
    match std::fs::write(&out, molt_vm::mbc::write(&program)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            molt::report!("error: cannot write '{out}': {e}");
            ExitCode::from(2)
        }
    }
}

/// Whether `a` and `b` name one existing file (through another path, a symbolic or a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return (x.dev(), x.ino()) == (y.dev(), y.ino());
        }
    }
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

fn overwrite_error(out: &str, source: &str) -> ExitCode {
    let mbc = Path::new(source).with_extension("mbc");
    usage_error(&format!(
        "-o {out} names the source file {source}: the bytecode would overwrite it (write it to another file, e.g. -o {})",
        mbc.display()
    ))
}

fn cmd_disasm(args: &[String]) -> ExitCode {
    let [file] = args else { return usage_error("`molt disasm` takes exactly one FILE") };
    match load(Path::new(file)) {
        Ok(p) => molt::output::print(&molt_vm::disasm::disassemble(&p)),
        Err(code) => code,
    }
}

fn cmd_plan(args: &[String]) -> ExitCode {
    let [old, new] = args else { return usage_error("`molt plan` takes OLD and NEW") };
    let (old, new) = match (load(Path::new(old)), load(Path::new(new))) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let plan = molt_vm::update::UpdatePlan::new(&old, &new, 1).to_string();
    // The files have no running versions: name them instead of "version 1 -> 2".
    let body = plan.split_once('\n').map_or("", |(_, rest)| rest);
    molt::output::print(&format!("update plan: {} -> {}\n{body}", args[0], args[1]))
}

/// `molt demo [--fast] [--events FILE]`.
fn cmd_demo(args: &[String]) -> ExitCode {
    let mut fast = false;
    let mut events = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--fast" => fast = true,
            "--events" => match args.get(i + 1) {
                Some(f) => {
                    events = Some(PathBuf::from(f));
                    i += 1;
                }
                None => return usage_error("--events needs a FILE"),
            },
            a => return usage_error(&format!("unknown option '{a}' (`molt demo` takes --fast and --events FILE)")),
        }
        i += 1;
    }
    molt::demo::run(fast, events.as_deref())
}

/// Deeply nested source (or data being printed) recurses deeply in the compiler and printer:
/// run on a thread with a large stack (reserved, not committed) instead of the main thread's
/// 8 MB, so such input is handled rather than crashing.
const STACK: usize = 1 << 30;

fn main() -> ExitCode {
    match std::thread::Builder::new().name("molt".into()).stack_size(STACK).spawn(real_main) {
        Ok(t) => t.join().unwrap_or(ExitCode::from(101)),
        Err(_) => real_main(),
    }
}

fn real_main() -> ExitCode {
    // Lossy: an argument that is not UTF-8 becomes U+FFFD instead of a panic.
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let Some(cmd) = args.first() else { return usage_error("no command given") };
    let rest = &args[1..];
    // The size limits (`MOLT_MAX_HEAP`, docs/messages.md): a bad value is reported before
    // anything runs, as a bad option is.
    if matches!(cmd.as_str(), "run" | "repl" | "demo") {
        if let Err(e) = molt_vm::limits::Limits::from_env() {
            molt::report!("error: {e}");
            return ExitCode::from(2);
        }
    }
    match cmd.as_str() {
        "run" => cmd_run(rest),
        "check" => cmd_check(rest),
        "compile" => cmd_compile(rest),
        "disasm" => cmd_disasm(rest),
        "help" | "--help" | "-h" => molt::output::print(&format!("{USAGE}\n")),
        "plan" => cmd_plan(rest),
        "timeline" => timeline::cmd(rest).unwrap_or_else(|e| usage_error(&e)),
        "push" => push::cmd_push(rest).unwrap_or_else(|e| usage_error(&e)),
        "status" => push::cmd_status(rest).unwrap_or_else(|e| usage_error(&e)),
        "demo" => cmd_demo(rest),
        "repl" => match molt::repl::cmd(rest) {
            Ok(file) => molt::repl::main(file),
            Err(e) => usage_error(&e),
        },
        other => usage_error(&format!("unknown command '{other}'")),
    }
}
