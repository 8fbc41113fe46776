//! The `molt` facade: wires the compiler, the VM and the standard library together. The CLI,
//! the tests and the benches all go through these few functions.

pub mod diagnostics;

use std::path::Path;

pub use molt_compiler::{Diagnostic, Options, Output, SourceFile};
pub use molt_vm::{Program, RuntimeError, Vm};

/// Compiler options for a fresh program: the built-in names and the prelude.
pub fn compile_options(version: u32) -> Options {
    Options {
        builtins: molt_stdlib::builtin_names(),
        prelude: Some((molt_stdlib::PRELUDE_NAME.to_string(), molt_stdlib::PRELUDE.to_string())),
        version,
        overrides: Default::default(),
    }
}

/// A VM with the standard library installed.
pub fn new_vm() -> Vm {
    let mut vm = Vm::new();
    molt_stdlib::install(&mut vm);
    vm
}

/// Compiles a source file.
pub fn compile_path(path: &Path) -> Output {
    molt_compiler::compile_file(path, &compile_options(1))
}

/// Compiles source text held in memory (tests, the REPL).
pub fn compile_str(name: &str, text: &str) -> Output {
    molt_compiler::compile_source(name, text, &compile_options(1))
}

/// Why a program could not be loaded.
pub enum LoadError {
    /// Compile errors, to be rendered with their files.
    Compile(Vec<SourceFile>, Vec<Diagnostic>),
    /// An unreadable or invalid bytecode file, or an unreadable source file.
    Other(String),
}

/// Loads a program from a `.mbc` bytecode file or compiles a source file.
pub fn load_program(path: &Path) -> Result<Program, LoadError> {
    if path.extension().is_some_and(|e| e == "mbc") {
        let bytes =
            std::fs::read(path).map_err(|e| LoadError::Other(format!("cannot read '{}': {e}", path.display())))?;
        return molt_vm::mbc::read(&bytes).map_err(|e| LoadError::Other(format!("{}: {e}", path.display())));
    }
    let out = compile_path(path);
    match out.program {
        Some(p) if out.diagnostics.is_empty() => Ok(p),
        _ => Err(LoadError::Compile(out.files, out.diagnostics)),
    }
}

/// Runs a whole program on a fresh VM, with `args` as its arguments.
pub fn run_program(program: &Program, args: Vec<String>) -> Result<(), RuntimeError> {
    let mut vm = new_vm();
    vm.args = args;
    let result = vm.run_program(program);
    vm.flush();
    result
}
