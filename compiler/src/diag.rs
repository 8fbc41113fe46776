//! Compile errors as plain data. Rendering (colours, source snippets) is the CLI's job.

use crate::ast::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `E0003` (see docs/messages.md).
    pub code: &'static str,
    pub message: String,
    /// Index into the compiler's `files`.
    pub file: usize,
    pub span: Span,
    /// Short text under the marker.
    pub label: String,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>, file: usize, span: Span) -> Diagnostic {
        Diagnostic { code, message: message.into(), file, span, label: String::new(), notes: Vec::new() }
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
}

/// A source file the compiler read.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as given (relative paths stay relative), used in messages.
    pub path: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: String, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { path, text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    /// The 1-based line of `offset` (a binary search: the compiler asks for every node).
    pub fn line(&self, offset: usize) -> u32 {
        self.line_starts.partition_point(|&s| s <= offset).max(1) as u32
    }

    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let line = self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.line_starts[line];
        let end = offset.min(self.text.len());
        let col = self.text.get(start..end).map_or(0, |s| s.chars().count());
        (line as u32 + 1, col as u32 + 1)
    }
}
