//! Rendering compile errors rustc-style with codespan-reporting: colours only on a terminal.

use std::io::IsTerminal;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Config};

use molt_compiler::{Diagnostic, SourceFile};

fn convert(d: &Diagnostic) -> CsDiagnostic<usize> {
    let mut label = Label::primary(d.file, d.span.0..d.span.1);
    if !d.label.is_empty() {
        label = label.with_message(d.label.clone());
    }
    CsDiagnostic::error()
        .with_code(d.code)
        .with_message(d.message.clone())
        .with_labels(vec![label])
        .with_notes(d.notes.clone())
}

fn files_of(files: &[SourceFile]) -> SimpleFiles<String, String> {
    let mut out = SimpleFiles::new();
    for f in files {
        out.add(f.path.clone(), f.text.clone());
    }
    out
}

/// Every diagnostic as plain text (no colours), as tests and pipes see it.
pub fn render_plain(files: &[SourceFile], diags: &[Diagnostic]) -> String {
    let db = files_of(files);
    let cfg = Config::default();
    let mut out = String::new();
    for d in diags {
        match term::emit_into_string(&cfg, &db, &convert(d)) {
            Ok(s) => out.push_str(&s),
            Err(_) => out.push_str(&format!("error[{}]: {}\n", d.code, d.message)),
        }
    }
    if diags.len() > 1 {
        out.push_str(&format!("error: {} errors found\n", diags.len()));
    }
    out
}

/// Writes diagnostics to stderr, in colour when stderr is a terminal and NO_COLOR is unset.
pub fn emit_stderr(files: &[SourceFile], diags: &[Diagnostic]) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if !colour {
        crate::report_raw!("{}", render_plain(files, diags));
        return;
    }
    use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};
    let db = files_of(files);
    let cfg = Config::default();
    let stream = StandardStream::stderr(ColorChoice::Always);
    let mut lock = stream.lock();
    for d in diags {
        let _ = term::emit_to_write_style(&mut lock, &cfg, &db, &convert(d));
    }
    if diags.len() > 1 {
        crate::report!("error: {} errors found", diags.len());
    }
}
