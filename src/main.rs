//! The `molt` command line: `run`, `check`, `compile`, `disasm`. See ../shared/spec/CLI.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use molt::{LoadError, diagnostics};

const USAGE: &str = "usage:
  molt run FILE [-- ARGS...]       run a program (source .molt or bytecode .mbc)
  molt check FILE                  compile only; report every error
  molt compile FILE -o OUT.mbc     write versioned bytecode
  molt disasm FILE                 print the bytecode with source lines
  molt help                        this text

exit status: 0 success, 1 runtime error, 2 compile error, usage error or invalid bytecode";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Loads FILE or reports why not (exit status 2).
fn load(path: &Path) -> Result<molt::Program, ExitCode> {
    molt::load_program(path).map_err(|e| {
        match e {
            LoadError::Compile(files, diags) => diagnostics::emit_stderr(&files, &diags),
            LoadError::Other(msg) => eprintln!("error: {msg}"),
        }
        ExitCode::from(2)
    })
}

fn cmd_run(args: &[String]) -> ExitCode {
    let mut file = None;
    let mut program_args = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            program_args = args[i + 1..].to_vec();
            break;
        } else if a.starts_with("--") {
            return usage_error(&format!(
                "option '{a}' is not available yet (the update engine and the JIT are being built; see docs/progress.md)"
            ));
        } else if file.is_none() {
            file = Some(PathBuf::from(a));
        } else {
            return usage_error(&format!("unexpected argument '{a}' (program arguments go after `--`)"));
        }
        i += 1;
    }
    let Some(file) = file else { return usage_error("`molt run` needs a FILE") };
    let program = match load(&file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match molt::run_program(&program, program_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(1)
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
        [f] => (f, Path::new(f).with_extension("mbc").to_string_lossy().to_string()),
        _ => return usage_error("`molt compile` takes FILE -o OUT.mbc"),
    };
    let program = match load(Path::new(file)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match std::fs::write(&out, molt_vm::mbc::write(&program)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write '{out}': {e}");
            ExitCode::from(2)
        }
    }
}

fn cmd_disasm(args: &[String]) -> ExitCode {
    let [file] = args else { return usage_error("`molt disasm` takes exactly one FILE") };
    match load(Path::new(file)) {
        Ok(p) => {
            print!("{}", molt_vm::disasm::disassemble(&p));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage_error("no command given") };
    let rest = &args[1..];
    match cmd.as_str() {
        "run" => cmd_run(rest),
        "check" => cmd_check(rest),
        "compile" => cmd_compile(rest),
        "disasm" => cmd_disasm(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        "plan" | "repl" | "demo" => usage_error(&format!("`molt {cmd}` is not available yet (see docs/progress.md)")),
        other => usage_error(&format!("unknown command '{other}'")),
    }
}
