//! The REPL session as source: the loaded file plus the items typed at the prompt. Every new
//! version the REPL pushes (a definition typed at the prompt, `:reload`) is compiled from this
//! composition, and an expression is compiled as the body of a hidden function in its context.
//!
//! The composition is an in-memory entry file `<repl>` that imports the loaded file and then one
//! virtual file per prompt item (`<prompt K>`), all supplied through `Options::overrides`.

use std::collections::HashMap;
use std::path::PathBuf;

use molt_compiler::ast::{Item, Stmt};
use molt_compiler::{Diagnostic, Output, SourceFile};
use molt_vm::Program;
use molt_vm::update::UpdatePlan;

/// An item typed at the prompt and kept in the session.
#[derive(Clone, Debug)]
pub struct PromptItem {
    /// The name it defines (`None` for an import).
    pub name: Option<String>,
    pub text: String,
    /// Its virtual file is `<prompt ID>`.
    pub id: u32,
}

/// What one pushed update would change in the session once applied.
#[derive(Clone, Debug)]
pub struct Push {
    pub program: Program,
    /// The prompt items after the update.
    pub items: Vec<PromptItem>,
    /// The loaded file after the update.
    pub file: Option<PathBuf>,
    /// The texts of the files the update was compiled from.
    pub sources: HashMap<String, String>,
    /// For the user: "prompt: f", ":reload", ":undo".
    pub what: String,
    /// An undo: the state it goes back to (taken off `Session::undo`; put back if the update
    /// is not applied).
    pub undoes: Option<Earlier>,
}

/// A version the session can go back to with `:undo`: what the prompt compiled against then.
#[derive(Clone, Debug)]
pub struct Earlier {
    pub program: Program,
    pub items: Vec<PromptItem>,
    pub file: Option<PathBuf>,
    pub sources: HashMap<String, String>,
}

/// An applied version, for `:versions`.
#[derive(Clone, Debug)]
pub struct Version {
    pub version: u32,
    pub what: String,
    pub plan: Option<UpdatePlan>,
    pub pause_us: u64,
}

pub struct Session {
    pub file: Option<PathBuf>,
    /// The texts of the program's files as the running version was compiled from them: what
    /// the prompt compiles against (an edit on disk counts only once `:reload`ed).
    pub sources: HashMap<String, String>,
    pub items: Vec<PromptItem>,
    /// What the VM runs (the same as its `dsu.program`).
    pub current: Program,
    pub version: u32,
    pub versions: Vec<Version>,
    next_id: u32,
    /// The update pushed to the VM and not yet applied or rejected, and when it was pushed.
    pub in_flight: Option<Push>,
    /// The versions before this one, newest last (`:undo` goes back to the last).
    pub undo: Vec<Earlier>,
    pub pushed_at: Option<std::time::Instant>,
}

/// Where the composed source comes from.
pub struct Composition {
    pub entry: String,
    pub overrides: HashMap<String, String>,
}

/// The function an expression typed at the prompt is compiled into (`__` names are hidden
/// from plans and listings).
pub const EVAL_PREFIX: &str = "__repl_";

/// How one entry typed at the prompt reads.
pub enum Parsed {
    Empty,
    /// Items (`fn`, `type`, `let`, `import`, `transform`, `migrate`).
    Items(Vec<Item>),
    /// Statements: the body to put in a hidden function, and where the value of a final
    /// expression statement is (byte range in `body`).
    Code {
        body: String,
        value: Option<(usize, usize)>,
    },
    /// Definitions followed by statements (`fn f() { ... } f();`): the first `split` bytes
    /// are the items; the rest runs as `Code` once they are defined.
    Mixed {
        items: Vec<Item>,
        split: usize,
        body: String,
        value: Option<(usize, usize)>,
    },
    /// The parser wants more: an unexpected end of input.
    Incomplete,
    /// Neither items nor statements; the errors come from compiling the likelier reading.
    Invalid {
        as_items: bool,
    },
}

const WRAP: &str = "fn __repl() {";

fn parse(text: &str) -> (Vec<Item>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let items = molt_compiler::parse::parse_file(text, 0, &mut diags);
    (items, diags)
}

fn only_eof(diags: &[Diagnostic]) -> bool {
    !diags.is_empty() && diags.iter().all(|d| d.message.starts_with("syntax error: unexpected end of file"))
}

/// Whether the entry begins like an item rather than a statement.
fn looks_like_item(text: &str) -> bool {
    let t = text.trim_start();
    let word: String = t.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    match word.as_str() {
        "type" | "import" | "transform" | "migrate" | "let" => true,
        "fn" => t[2..].trim_start().starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'),
        _ => false,
    }
}

/// Reads an entry with the real parser: items, statements, or incomplete (the parser ran out of
/// input) — never by counting brackets.
pub fn classify(text: &str) -> Parsed {
    if text.trim().is_empty() {
        return Parsed::Empty;
    }
    let (items, diags) = parse(text);
    if diags.is_empty() && !items.is_empty() {
        return Parsed::Items(items);
    }
    let items_eof = only_eof(&diags);
    for suffix in ["", ";"] {
        let wrapped = format!("{WRAP}{text}{suffix}\n}}");
        let (items, diags) = parse(&wrapped);
        if !diags.is_empty() {
            continue;
        }
        let mut value = None;
        if let Some(Item::Func(f)) = items.first() {
            if let Some(Stmt::Expr(e)) = f.body.stmts.last() {
                value = Some((e.span.0 - WRAP.len(), e.span.1 - WRAP.len()));
            }
        }
        return Parsed::Code { body: format!("{text}{suffix}"), value };
    }
    if let Some(mixed) = split_mixed(text) {
        return mixed;
    }
    if items_eof && looks_like_item(text) {
        return Parsed::Incomplete;
    }
    let (_, diags) = parse(&format!("{WRAP}{text}"));
    if only_eof(&diags) {
        return Parsed::Incomplete;
    }
    Parsed::Invalid { as_items: looks_like_item(text) }
}

/// Definitions then statements: the longest run of items (ending at a `}` or `;`) followed by
/// code that reads as statements.
fn split_mixed(text: &str) -> Option<Parsed> {
    if !looks_like_item(text) {
        return None;
    }
    let ends = text.char_indices().filter(|(_, c)| *c == '}' || *c == ';').map(|(i, _)| i + 1);
    let mut ends: Vec<usize> = ends.collect();
    ends.reverse();
    for split in ends {
        let (head, tail) = text.split_at(split);
        if tail.trim().is_empty() {
            continue;
        }
        let (items, diags) = parse(head);
        if !diags.is_empty() || items.is_empty() {
            continue;
        }
        if let Parsed::Code { body, value } = classify(tail) {
            return Some(Parsed::Mixed { items, split, body, value });
        }
    }
    None
}

/// Replaces the bytes of `ranges` with spaces (newlines kept, so line numbers stay).
fn blank(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(a, b) in ranges {
        for byte in &mut bytes[a.min(text.len())..b.min(text.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The name an item defines.
pub fn item_name(item: &Item) -> Option<&str> {
    match item {
        Item::Global { name, .. } => Some(&name.name),
        Item::Func(f) => Some(&f.name.name),
        Item::Type(t) => Some(&t.name.name),
        _ => None,
    }
}

/// A syntax-error-free file's items with their full byte ranges.
fn file_items(text: &str) -> Option<Vec<(Item, (usize, usize))>> {
    let (items, diags) = parse(text);
    if !diags.is_empty() {
        return None;
    }
    Some(
        items
            .into_iter()
            .map(|i| {
                let span = match &i {
                    Item::Func(f) => f.span,
                    Item::Type(t) => t.span,
                    Item::Transform { span, .. } | Item::Migrate { span, .. } | Item::Import { span, .. } => *span,
                    Item::Global { name, init } => {
                        let start = text[..name.span.0].rfind("let").unwrap_or(name.span.0);
                        let end = text[init.span.1..].find(';').map_or(init.span.1, |i| init.span.1 + i + 1);
                        (start, end)
                    }
                    Item::Error => (0, 0),
                };
                (i, span)
            })
            .collect(),
    )
}

/// The text of an item typed at the prompt, as kept in the session.
pub fn item_text(input: &str, item: &Item) -> Option<String> {
    Some(match item {
        Item::Func(f) => input[f.span.0..f.span.1].to_string(),
        Item::Type(t) => input[t.span.0..t.span.1].to_string(),
        Item::Import { span, .. } => input[span.0..span.1].to_string(),
        Item::Global { name, init } => format!("let {} = {};", name.name, &input[init.span.0..init.span.1]),
        _ => return None,
    })
}

/// Options to compile with for a program of version `version`.
fn options(version: u32, overrides: HashMap<String, String>) -> molt_compiler::Options {
    let mut o = crate::compile_options(version);
    o.overrides = overrides;
    o
}

impl Session {
    pub fn new(program: Program, file: Option<PathBuf>, sources: HashMap<String, String>) -> Session {
        Session {
            file,
            sources,
            items: Vec::new(),
            current: program,
            version: 1,
            versions: vec![Version { version: 1, what: "start".into(), plan: None, pause_us: 0 }],
            next_id: 1,
            in_flight: None,
            undo: Vec::new(),
            pushed_at: None,
        }
    }

    pub fn fresh_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The entry source for the session's file and `items`, plus an extra virtual file.
    /// `disk`: read the files anew (`:reload`) instead of using the texts the running version
    /// was compiled from. `file_dsu`: keep the file's own `transform`s and `migrate` (only
    /// `:load`/`:reload` run them; a definition typed at the prompt must not run them again).
    pub fn compose(
        &self,
        disk: bool,
        items: &[PromptItem],
        extra: Option<(&str, &str)>,
        file_dsu: bool,
    ) -> Composition {
        let mut entry = String::new();
        let mut overrides = HashMap::new();
        if !disk {
            overrides.extend(self.sources.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(f) = &self.file {
            let shown = f.to_string_lossy().to_string();
            entry.push_str(&format!("import {};\n", quote(&shown)));
            let text = match overrides.get(&shown) {
                Some(t) => Ok(t.clone()),
                None => std::fs::read_to_string(f),
            };
            if let Ok(text) = text {
                let names: Vec<&str> = items.iter().filter_map(|i| i.name.as_deref()).collect();
                if let Some(fitems) = file_items(&text) {
                    let ranges: Vec<(usize, usize)> = fitems
                        .iter()
                        .filter(|(i, _)| match i {
                            Item::Func(_) | Item::Type(_) => item_name(i).is_some_and(|n| names.contains(&n)),
                            Item::Transform { .. } | Item::Migrate { .. } => !file_dsu,
                            _ => false,
                        })
                        .map(|(_, s)| *s)
                        .collect();
                    if !ranges.is_empty() {
                        overrides.insert(shown, blank(&text, &ranges));
                    }
                }
            }
        }
        for it in items {
            let name = format!("<prompt {}>", it.id);
            entry.push_str(&format!("import {};\n", quote(&name)));
            overrides.insert(name, it.text.clone());
        }
        if let Some((name, text)) = extra {
            entry.push_str(&format!("import {};\n", quote(name)));
            overrides.insert(name.to_string(), text.to_string());
        }
        Composition { entry, overrides }
    }

    /// Compiles a composition as version `version`.
    pub fn compile(c: Composition, version: u32) -> Output {
        molt_compiler::compile_source("<repl>", &c.entry, &options(version, c.overrides))
    }

    /// The names the loaded file defines, as it is on disk now (items typed at the prompt
    /// with these names give way to the file's at `:reload`).
    pub fn file_names(&self) -> Vec<String> {
        let Some(f) = &self.file else { return Vec::new() };
        let Ok(text) = std::fs::read_to_string(f) else { return Vec::new() };
        let (items, _) = parse(&text);
        items.iter().filter_map(item_name).map(str::to_string).collect()
    }

    /// Whether `name` is a global of the running program.
    pub fn is_global(&self, name: &str) -> bool {
        self.current.globals.iter().any(|g| g == name)
    }
}

/// What was typed, as it was compiled: the virtual file `file` holds `prefix` bytes, then
/// `text` with `inserts` made in it.
pub struct Typed<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub prefix: usize,
    pub inserts: &'a [(usize, usize)],
}

/// Diagnostics of a compilation as text. The virtual file `input` was compiled with `prefix`
/// (bytes) in front of the user's text and `inserts` ((position, length), in the order they
/// were made) added inside it: spans are mapped back so that messages point into what was typed.
pub fn render(out: &Output, input: Option<Typed<'_>>) -> String {
    let input = input.map(|t| (t.file, t.text, t.prefix, t.inserts));
    let mut files: Vec<SourceFile> = out.files.clone();
    let mut diags = out.diagnostics.clone();
    if let Some((name, text, prefix, inserts)) = input {
        if let Some(i) = files.iter().position(|f| f.path == name) {
            files[i] = SourceFile::new("<input>".into(), text.to_string());
            let map = |p: usize| {
                let mut p = p.saturating_sub(prefix);
                for &(at, len) in inserts.iter().rev() {
                    if p >= at + len {
                        p -= len;
                    } else if p > at {
                        p = at;
                    }
                }
                p.min(text.len())
            };
            for d in diags.iter_mut().filter(|d| d.file == i) {
                d.span = (map(d.span.0), map(d.span.1));
            }
        }
    }
    crate::diagnostics::render_plain(&files, &diags)
}

/// The texts of the real files a compilation read (not the prelude or the virtual files).
pub fn snapshot(out: &Output) -> HashMap<String, String> {
    out.files.iter().filter(|f| !f.path.starts_with('<')).map(|f| (f.path.clone(), f.text.clone())).collect()
}
