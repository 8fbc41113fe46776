//! The rustyline helper: multi-line input decided by the real parser, Tab completion of names
//! and `:commands`, syntax highlighting, and a hint line.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use molt_compiler::lexer::KEYWORDS;
use rustyline::Context;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};

use super::session::{Parsed, classify};

/// The `:commands`, with a short description (the hint line and `:help`).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (":load", "FILE", "load a program (a fresh session: version 1, globals initialised)"),
    (":run", "", "run the program's main in the background; the prompt stays live"),
    (":stop", "", "stop the running program"),
    (":input", "TEXT", "give the program's read_line() a line (the prompt owns the terminal)"),
    (":reload", "", "re-read the program's files, show the plan, push the update"),
    (":plan", "", "show what :reload would change, without doing it"),
    (":versions", "", "the versions so far, with their plans"),
    (":undo", "", "update back to the previous version's program (a new version number)"),
    (":trace", "on|off", "show every update event (requested, waiting) or only outcomes"),
    (":globals", "", "the globals and their values"),
    (":types", "", "the record types, their fields and methods"),
    (":funcs", "", "the functions"),
    (":tasks", "", "the running program's tasks: state, version, where, what each waits on"),
    (":help", "", "this list"),
    (":quit", "", "leave (Ctrl-D too)"),
];

/// Methods of the built-in types (LANGUAGE.md), offered after a `.`.
const BUILTIN_METHODS: &[&str] = &[
    "push",
    "pop",
    "insert",
    "remove",
    "contains",
    "index_of",
    "join",
    "slice",
    "reverse",
    "sort",
    "map",
    "filter",
    "len",
    "get",
    "set",
    "has",
    "keys",
    "values",
    "split",
    "trim",
    "starts_with",
    "ends_with",
    "upper",
    "lower",
    "replace",
    "chars",
];

/// The live names, refreshed by the session after each definition, load and update.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Globals, functions, types, built-in functions.
    pub top: Vec<String>,
    /// Fields and methods of the program's types, and the built-in methods.
    pub members: Vec<String>,
}

impl Names {
    pub fn of(program: &molt_vm::Program) -> Names {
        let mut top: Vec<String> = program.globals.iter().filter(|g| !g.starts_with("__")).cloned().collect();
        top.extend(
            program
                .functions
                .iter()
                .map(|f| f.name.clone())
                .filter(|n| !n.contains(['<', '.']) && !n.starts_with("__")),
        );
        top.extend(program.types.iter().map(|t| t.name.clone()));
        top.extend(molt_stdlib::builtin_names());
        top.extend(KEYWORDS.iter().map(|k| k.to_string()));
        top.sort();
        top.dedup();
        let mut members: Vec<String> = BUILTIN_METHODS.iter().map(|m| m.to_string()).collect();
        for t in &program.types {
            members.extend(t.fields.iter().cloned());
            members.extend(t.methods.iter().map(|(m, _)| m.clone()));
        }
        members.sort();
        members.dedup();
        Names { top, members }
    }
}

pub struct ReplHelper {
    pub names: Arc<Mutex<Names>>,
    files: FilenameCompleter,
    history: HistoryHinter,
}

impl ReplHelper {
    pub fn new(names: Arc<Mutex<Names>>) -> ReplHelper {
        ReplHelper { names, files: FilenameCompleter::new(), history: HistoryHinter::new() }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if before.starts_with(":load ") {
            return self.files.complete(line, pos, ctx);
        }
        if before.starts_with(':') && !before.contains(' ') {
            let c = COMMANDS
                .iter()
                .filter(|(c, ..)| c.starts_with(before))
                .map(|(c, ..)| Pair { display: c.to_string(), replacement: format!("{c} ") })
                .collect();
            return Ok((0, c));
        }
        if let Some(word) = before.strip_prefix(":trace ") {
            let c = ["on", "off"]
                .iter()
                .filter(|w| w.starts_with(word))
                .map(|w| Pair { display: w.to_string(), replacement: w.to_string() })
                .collect();
            return Ok((7, c));
        }
        let start = before.char_indices().rev().find(|(_, c)| !is_ident(*c)).map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let after_dot = before[..start].ends_with('.');
        let pool = if after_dot { &names.members } else { &names.top };
        let c = pool
            .iter()
            .filter(|n| n.starts_with(word) && (after_dot || !word.is_empty()))
            .map(|n| Pair { display: n.clone(), replacement: n.clone() })
            .collect();
        Ok((start, c))
    }
}

/// What the hint line shows: the rest of a `:command` and what it does, or a history match.
pub struct Hint {
    display: String,
    completion: Option<String>,
}

impl rustyline::hint::Hint for Hint {
    fn display(&self) -> &str {
        &self.display
    }
    fn completion(&self) -> Option<&str> {
        self.completion.as_deref()
    }
}

impl Hinter for ReplHelper {
    type Hint = Hint;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<Hint> {
        if pos < line.len() {
            return None;
        }
        if line.starts_with(':') && !line.contains(' ') {
            let matches: Vec<_> = COMMANDS.iter().filter(|(c, ..)| c.starts_with(line)).collect();
            if let [(c, arg, what)] = matches.as_slice() {
                let rest = &c[line.len()..];
                let arg = if arg.is_empty() { String::new() } else { format!(" {arg}") };
                return Some(Hint { display: format!("{rest}{arg}  — {what}"), completion: Some(rest.to_string()) });
            }
            return None;
        }
        let h = self.history.hint(line, pos, ctx)?;
        Some(Hint { display: h.clone(), completion: Some(h) })
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.trim_start().starts_with(':') {
            return Ok(ValidationResult::Valid(None));
        }
        Ok(match classify(input) {
            Parsed::Incomplete => ValidationResult::Incomplete,
            _ => ValidationResult::Valid(None),
        })
    }
}

const KEYWORD: &str = "\x1b[35m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[36m";
const COMMENT: &str = "\x1b[90m";
const COMMAND: &str = "\x1b[1;34m";
const RESET: &str = "\x1b[0m";

/// Colours keywords, strings, numbers, comments and `:commands`; the text itself is unchanged.
pub fn highlight(line: &str) -> String {
    if line.starts_with(':') {
        let end = line.find(' ').unwrap_or(line.len());
        return format!("{COMMAND}{}{RESET}{}", &line[..end], &line[end..]);
    }
    let mut out = String::with_capacity(line.len() + 32);
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let span_end = |j: usize| chars.get(j).map_or(line.len(), |(p, _)| *p);
        if c == '/' && chars.get(i + 1).is_some_and(|(_, d)| *d == '/') {
            let mut j = i;
            while j < chars.len() && chars[j].1 != '\n' {
                j += 1;
            }
            out.push_str(&format!("{COMMENT}{}{RESET}", &line[at..span_end(j)]));
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1 != '"' && chars[j].1 != '\n' {
                if chars[j].1 == '\\' {
                    j += 1;
                }
                j += 1;
            }
            let j = (j + 1).min(chars.len());
            out.push_str(&format!("{STRING}{}{RESET}", &line[at..span_end(j)]));
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len()
                && (is_ident(chars[j].1)
                    || chars[j].1 == '.' && chars.get(j + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
            {
                j += 1;
            }
            out.push_str(&format!("{NUMBER}{}{RESET}", &line[at..span_end(j)]));
            i = j;
        } else if is_ident(c) {
            let mut j = i;
            while j < chars.len() && is_ident(chars[j].1) {
                j += 1;
            }
            let word = &line[at..span_end(j)];
            if KEYWORDS.contains(&word) {
                out.push_str(&format!("{KEYWORD}{word}{RESET}"));
            } else {
                out.push_str(word);
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Owned(highlight(line))
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("{COMMENT}{hint}{RESET}"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        true
    }
}

impl rustyline::Helper for ReplHelper {}
