//! Parsing one file: the lexer and the lalrpop parser, with every error collected.

use std::cell::RefCell;
use std::rc::Rc;

use lalrpop_util::ParseError;

use crate::ast::Item;
use crate::diag::Diagnostic;
use crate::grammar::ProgramParser;
use crate::lexer::{LexError, Lexer, Tok};

/// Parses `src` (file number `file`); syntax errors are appended to `diags`.
pub fn parse_file(src: &str, file: usize, diags: &mut Vec<Diagnostic>) -> Vec<Item> {
    let lex_errors = Rc::new(RefCell::new(Vec::new()));
    let mut recovered = Vec::new();
    let result = ProgramParser::new().parse(&mut recovered, Lexer::new(src, lex_errors.clone()));
    for (e, span) in lex_errors.borrow().iter() {
        diags.push(Diagnostic::new(e.code(), e.message(), file, *span));
    }
    for r in recovered {
        if let Some(d) = convert(r.error, file, src.len()) {
            diags.push(d);
        }
    }
    match result {
        Ok(items) => items,
        Err(e) => {
            if let Some(d) = convert(e, file, src.len()) {
                diags.push(d);
            }
            Vec::new()
        }
    }
}

fn friendly(expected: &[String]) -> String {
    let names: Vec<String> = expected
        .iter()
        .map(|e| match e.trim_matches('"') {
            "ident" => "a name".to_string(),
            "int" => "an integer".to_string(),
            "float" => "a float".to_string(),
            "string" => "a string".to_string(),
            t => format!("'{}'", t.replace("\\\"", "\"")),
        })
        .filter(|n| n != "'error'")
        .collect();
    match names.len() {
        0 => String::new(),
        1 => format!(", expected {}", names[0]),
        n if n <= 6 => format!(", expected one of {}", names.join(", ")),
        _ => format!(", expected one of {}, ...", names[..6].join(", ")),
    }
}

/// A parse error as a diagnostic (`None` for errors already reported by the lexer).
fn convert(e: ParseError<usize, Tok, LexError>, file: usize, len: usize) -> Option<Diagnostic> {
    Some(match e {
        ParseError::InvalidToken { location } => {
            Diagnostic::new("E0002", "invalid token", file, (location, location + 1))
        }
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::new(
            "E0001",
            format!("syntax error: unexpected end of file{}", friendly(&expected)),
            file,
            (location.min(len), location.min(len)),
        ),
        ParseError::UnrecognizedToken { token: (_, Tok::Error, _), .. } => return None,
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => Diagnostic::new(
            "E0001",
            format!("syntax error: unexpected {}{}", tok.describe(), friendly(&expected)),
            file,
            (l, r),
        ),
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::new("E0001", format!("syntax error: unexpected {}", tok.describe()), file, (l, r))
        }
        ParseError::User { error } => Diagnostic::new(error.code(), error.message(), file, (0, 0)),
    })
}
