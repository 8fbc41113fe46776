//! The Molt compiler: source files in, a `molt_vm::Program` (versioned bytecode) out.
//! `compile_file` / `compile_source` are the whole interface; diagnostics are plain data.

pub mod ast;
mod captures;
mod compile;
pub mod diag;
mod expr;
mod func;
pub mod lexer;
pub mod parse;
mod stmt;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused)]
    grammar
);

pub use compile::{Options, Output, compile_file, compile_source};
pub use diag::{Diagnostic, ReadError, SourceFile, read_source};
