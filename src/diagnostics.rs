//! Rendering compile errors rustc-style with codespan-reporting: colours only on a terminal.
//!
//! The output stays proportional to what a person can read, whatever the input: at most
//! `MAX_SHOWN` errors are rendered (then a note says how many more there are), and a quoted
//! source line longer than `MAX_LINE` characters is shown as a window around the error's column,
//! with `…` where it was cut. (A 16 KB line with thousands of errors on it used to print the
//! whole line for each of them: hundreds of megabytes.)

use std::io::IsTerminal;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::{Error, Files};
use codespan_reporting::term::{self, Config};

use molt_compiler::{Diagnostic, SourceFile};

/// At most this many errors are rendered.
pub const MAX_SHOWN: usize = 50;
/// A quoted source line longer than this (in characters) is shown as a window of this width.
pub const MAX_LINE: usize = 120;
/// How much of the line before the error's column the window shows.
const BEFORE: usize = 40;
const CUT: &str = "…";

/// The part of a file one diagnostic quotes: the lines its span covers (one line, windowed,
/// when the first is long), with the real line and column numbers.
struct Quoted<'a> {
    name: &'a str,
    text: String,
    /// 1-based line number of `text`'s first line.
    first_line: usize,
    /// When windowed: the real 0-based column of the first character after `prefix` bytes.
    window: Option<(usize, usize)>,
}

impl<'a> Files<'a> for Quoted<'a> {
    type FileId = ();
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, (): ()) -> Result<&'a str, Error> {
        Ok(self.name)
    }

    fn source(&'a self, (): ()) -> Result<&'a str, Error> {
        Ok(&self.text)
    }

    fn line_index(&'a self, (): (), byte_index: usize) -> Result<usize, Error> {
        let end = byte_index.min(self.text.len());
        Ok(self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count())
    }

    fn line_number(&'a self, (): (), line_index: usize) -> Result<usize, Error> {
        Ok(self.first_line + line_index)
    }

    fn column_number(&'a self, (): (), line_index: usize, byte_index: usize) -> Result<usize, Error> {
        let range = self.line_range((), line_index)?;
        match self.window {
            Some((col, prefix)) => {
                let at = byte_index.clamp(prefix, self.text.len());
                let at = (0..=at).rev().find(|&i| self.text.is_char_boundary(i)).unwrap_or(prefix);
                Ok(col + self.text[prefix.min(at)..at].chars().count() + 1)
            }
            None => Ok(codespan_reporting::files::column_index(&self.text, range, byte_index) + 1),
        }
    }

    fn line_range(&'a self, (): (), line_index: usize) -> Result<Range<usize>, Error> {
        let mut starts = std::iter::once(0).chain(self.text.match_indices('\n').map(|(i, _)| i + 1));
        let start = starts.nth(line_index).ok_or(Error::LineTooLarge { given: line_index, max: 0 })?;
        let end = starts.next().unwrap_or(self.text.len());
        Ok(start..end)
    }
}

/// The largest char boundary of `s` at or before `i` (and within it).
fn floor(s: &str, i: usize) -> usize {
    let i = i.min(s.len());
    (0..=i).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0)
}

/// What diagnostic `d` quotes from `files`, and the label's span in that quote.
fn quote<'a>(files: &'a [SourceFile], d: &Diagnostic) -> (Quoted<'a>, Range<usize>) {
    let Some(f) = files.get(d.file) else {
        return (Quoted { name: "?", text: String::new(), first_line: 1, window: None }, 0..0);
    };
    let text = f.text.as_str();
    let start = floor(text, d.span.0);
    let end = floor(text, d.span.1.max(d.span.0));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let first_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let last_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let (first_line, _) = f.line_col(line_start);
    let long = |a: usize, b: usize| text[a..b].lines().any(|l| l.chars().nth(MAX_LINE).is_some());
    if !long(line_start, last_end) {
        // The whole lines the span covers, as they are.
        let quoted = Quoted {
            name: &f.path,
            text: text[line_start..last_end].to_string(),
            first_line: first_line as usize,
            window: None,
        };
        return (quoted, start - line_start..end - line_start);
    }
    // One long line: a window around the span's start (the span is cut at the window's end).
    let line = &text[line_start..first_end];
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let col = text[line_start..start].chars().count();
    let from = col.saturating_sub(BEFORE).min(chars.len().saturating_sub(MAX_LINE));
    let to = (from + MAX_LINE).min(chars.len());
    let byte = |c: usize| chars.get(c).map_or(line.len(), |&(b, _)| b);
    let (a, b) = (byte(from), byte(to));
    let prefix = if from > 0 { CUT } else { "" };
    let suffix = if to < chars.len() { CUT } else { "" };
    let shown = format!("{prefix}{}{suffix}", &line[a..b]);
    let span_start = prefix.len() + (start - line_start) - a;
    let span_end = prefix.len() + (end.min(line_start + b).max(start) - line_start) - a;
    let quoted =
        Quoted { name: &f.path, text: shown, first_line: first_line as usize, window: Some((from, prefix.len())) };
    (quoted, span_start..span_end)
}

fn convert(d: &Diagnostic, span: Range<usize>) -> CsDiagnostic<()> {
    let mut label = Label::primary((), span);
    if !d.label.is_empty() {
        label = label.with_message(d.label.clone());
    }
    CsDiagnostic::error()
        .with_code(d.code)
        .with_message(d.message.clone())
        .with_labels(vec![label])
        .with_notes(d.notes.clone())
}

/// The lines after the rendered errors: how many were left out, how many there are.
fn summary(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    if diags.len() > MAX_SHOWN {
        out.push_str(&format!(
            "note: {} more errors are not shown (the first {MAX_SHOWN} are above; fixing them often fixes the rest)\n",
            diags.len() - MAX_SHOWN
        ));
    }
    if diags.len() > 1 {
        out.push_str(&format!("error: {} errors found\n", diags.len()));
    }
    out
}

/// Every diagnostic (up to `MAX_SHOWN`) as plain text (no colours), as tests and pipes see it.
pub fn render_plain(files: &[SourceFile], diags: &[Diagnostic]) -> String {
    let cfg = Config::default();
    let mut out = String::new();
    for d in diags.iter().take(MAX_SHOWN) {
        let (quoted, span) = quote(files, d);
        match term::emit_into_string(&cfg, &quoted, &convert(d, span)) {
            Ok(s) => out.push_str(&s),
            Err(_) => out.push_str(&format!("error[{}]: {}\n", d.code, d.message)),
        }
    }
    out.push_str(&summary(diags));
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
    let cfg = Config::default();
    let stream = StandardStream::stderr(ColorChoice::Always);
    let mut lock = stream.lock();
    for d in diags.iter().take(MAX_SHOWN) {
        let (quoted, span) = quote(files, d);
        let _ = term::emit_to_write_style(&mut lock, &cfg, &quoted, &convert(d, span));
    }
    drop(lock);
    crate::report_raw!("{}", summary(diags));
}
