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

/// Why a source file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not UTF-8: where the first bad byte is (1-based line and column, in characters).
    Utf8 {
        path: String,
        line: usize,
        col: usize,
        byte: u8,
    },
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Utf8 { path, line, col, byte } => {
                write!(f, "{path}:{line}:{col}: invalid UTF-8 (byte 0x{byte:02x}): source files must be UTF-8 text")
            }
        }
    }
}

/// Reads a source file: a file that is not UTF-8 is an error that says where the first bad
/// byte is (`std::fs::read_to_string` says only "stream did not contain valid UTF-8").
pub fn read_source(path: &std::path::Path) -> Result<String, ReadError> {
    String::from_utf8(std::fs::read(path)?).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line_start = bytes[..bad].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        ReadError::Utf8 {
            path: path.display().to_string(),
            line: 1 + bytes[..bad].iter().filter(|&&b| b == b'\n').count(),
            col: 1 + std::str::from_utf8(&bytes[line_start..bad]).map_or(0, |s| s.chars().count()),
            byte: bytes[bad],
        }
    })
}
