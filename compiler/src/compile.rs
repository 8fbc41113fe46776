//! The compiler driver: loads files (following imports), declares every item, compiles every
//! function, and assembles the `Program`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::{IndexMap, IndexSet};
use molt_vm::program::TransformDef;
use molt_vm::{FnKind, Program, Proto, TypeDef};

use crate::ast::{Block, Expr, FnDecl, Ident, Item, Span};
use crate::diag::{Diagnostic, SourceFile};
use crate::func::FnState;
use crate::parse::parse_file;

/// What the compiler needs from outside.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Names of the built-in functions (they may be shadowed by the program's own items).
    pub builtins: Vec<String>,
    /// (file name, source) of the prelude, compiled before the program's own files.
    pub prelude: Option<(String, String)>,
    /// The program version the code is compiled as (1 for a fresh program).
    pub version: u32,
    /// Source texts to use instead of reading the file system (path as given -> text).
    pub overrides: HashMap<String, String>,
}

/// The result of a compilation: the program when there were no errors, and every diagnostic.
pub struct Output {
    pub program: Option<Program>,
    pub files: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

pub(crate) struct TypeInfo {
    pub index: u32,
    pub fields: Vec<String>,
    pub defaults: Vec<Option<Expr>>,
    pub default_fns: Vec<Option<u32>>,
    /// method name -> (function index, arity without self)
    pub methods: HashMap<String, (u32, usize)>,
}

pub(crate) struct Compiler<'o> {
    pub opts: &'o Options,
    pub files: Vec<SourceFile>,
    loaded: HashSet<PathBuf>,
    pub diags: Vec<Diagnostic>,
    /// (file, item) in declaration order.
    items: Vec<(usize, Item)>,
    pub globals: IndexMap<String, u32>,
    /// Named functions: name -> (index, arity).
    pub funcs: HashMap<String, (u32, usize)>,
    pub types: IndexMap<String, TypeInfo>,
    /// Where each item's name is defined (file, span): a duplicate's error points at it.
    item_spans: HashMap<String, (usize, Span)>,
    pub functions: Vec<Option<Proto>>,
    pub names: IndexSet<String>,
    pub natives: IndexSet<String>,
    pub builtins: HashSet<String>,
    pub fns: Vec<FnState>,
    pub file: usize,
}

impl<'o> Compiler<'o> {
    fn new(opts: &'o Options) -> Compiler<'o> {
        Compiler {
            opts,
            files: Vec::new(),
            loaded: HashSet::new(),
            diags: Vec::new(),
            items: Vec::new(),
            globals: IndexMap::new(),
            funcs: HashMap::new(),
            types: IndexMap::new(),
            item_spans: HashMap::new(),
            functions: Vec::new(),
            names: IndexSet::new(),
            natives: IndexSet::new(),
            builtins: opts.builtins.iter().cloned().collect(),
            fns: Vec::new(),
            file: 0,
        }
    }

    pub fn error(&mut self, code: &'static str, msg: impl Into<String>, span: Span) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(code, msg, self.file, span));
        self.diags.last_mut().unwrap()
    }

    pub fn line_of(&self, span: Span) -> u32 {
        self.files[self.file].line(span.0)
    }

    /// Reads a file (or its override) and parses it, following its imports first.
    fn load(&mut self, shown: String, key: PathBuf, text: String) {
        if !self.loaded.insert(key.clone()) {
            return;
        }
        let file = self.files.len();
        self.files.push(SourceFile::new(shown.clone(), text));
        let text = self.files[file].text.clone();
        let items = parse_file(&text, file, &mut self.diags);
        let dir = Path::new(&shown).parent().map(Path::to_path_buf).unwrap_or_default();
        // Imports first, wherever they are in the file: an imported file's globals initialise
        // before this file's (LANGUAGE.md).
        let (imports, own): (Vec<Item>, Vec<Item>) = items.into_iter().partition(|i| matches!(i, Item::Import { .. }));
        for item in imports.into_iter().chain(own) {
            if let Item::Import { path, span } = &item {
                let joined = dir.join(path);
                let shown_import = joined.to_string_lossy().to_string();
                if let Some(t) = self.opts.overrides.get(&shown_import) {
                    self.load(shown_import.clone(), PathBuf::from(&shown_import), t.clone());
                    continue;
                }
                match (
                    std::fs::canonicalize(&joined).map_err(crate::diag::ReadError::from),
                    crate::diag::read_source(&joined),
                ) {
                    (Ok(canon), Ok(t)) => self.load(shown_import, canon, t),
                    (_, Err(e)) | (Err(e), _) => {
                        self.diags.push(Diagnostic::new(
                            "E0016",
                            format!("cannot read import '{path}': {e}"),
                            file,
                            *span,
                        ));
                    }
                }
                continue;
            }
            self.items.push((file, item));
        }
    }

    fn claim_name(&mut self, file: usize, name: &Ident) -> bool {
        if let Some(&(first_file, first)) = self.item_spans.get(&name.name) {
            let note = self.first_defined(&name.name, first_file, first);
            self.diags.push(
                Diagnostic::new("E0004", format!("duplicate definition of '{}'", name.name), file, name.span)
                    .note(note),
            );
            return false;
        }
        self.item_spans.insert(name.name.clone(), (file, name.span));
        true
    }

    /// The note of a duplicate definition's error: where the name was first defined.
    fn first_defined(&self, name: &str, file: usize, span: Span) -> String {
        let f = &self.files[file];
        let (line, col) = f.line_col(span.0);
        format!("'{name}' is first defined at {}:{line}:{col}", f.path)
    }

    fn reserve_function(&mut self) -> u32 {
        self.functions.push(None);
        (self.functions.len() - 1) as u32
    }

    /// First pass: every global, function, type and method gets its index.
    fn declare(&mut self) {
        let items = std::mem::take(&mut self.items);
        for (file, item) in &items {
            match item {
                Item::Global { name, .. } => {
                    if self.claim_name(*file, name) {
                        let i = self.globals.len() as u32;
                        self.globals.insert(name.name.clone(), i);
                    }
                }
                Item::Func(f) => {
                    if f.name.name == "main" && !f.params.is_empty() {
                        self.diags.push(
                            Diagnostic::new("E0019", "'main' takes no parameters", *file, f.name.span)
                                .note("the program's arguments are in args()"),
                        );
                    }
                    if self.claim_name(*file, &f.name) {
                        let i = self.reserve_function();
                        self.funcs.insert(f.name.name.clone(), (i, f.params.len()));
                    }
                }
                Item::Type(t) => {
                    if !self.claim_name(*file, &t.name) {
                        continue;
                    }
                    let mut fields = Vec::new();
                    let mut defaults = Vec::new();
                    for fd in &t.fields {
                        if fields.contains(&fd.name.name) {
                            self.diags.push(Diagnostic::new(
                                "E0008",
                                format!("duplicate field '{}'", fd.name.name),
                                *file,
                                fd.name.span,
                            ));
                            continue;
                        }
                        fields.push(fd.name.name.clone());
                        defaults.push(fd.default.clone());
                    }
                    let mut methods = HashMap::new();
                    for m in &t.methods {
                        if methods.contains_key(&m.name.name) || fields.contains(&m.name.name) {
                            let qualified = format!("{}.{}", t.name.name, m.name.name);
                            let mut first = t.fields.iter().map(|f| &f.name).chain(t.methods.iter().map(|m| &m.name));
                            let first = first.find(|n| n.name == m.name.name).map_or(m.name.span, |n| n.span);
                            let note = self.first_defined(&qualified, *file, first);
                            self.diags.push(
                                Diagnostic::new(
                                    "E0004",
                                    format!("duplicate definition of '{qualified}'"),
                                    *file,
                                    m.name.span,
                                )
                                .note(note),
                            );
                            continue;
                        }
                        let i = self.reserve_function();
                        methods.insert(m.name.name.clone(), (i, m.params.len()));
                    }
                    let index = self.types.len() as u32;
                    let n = fields.len();
                    self.types.insert(
                        t.name.name.clone(),
                        TypeInfo { index, fields, defaults, default_fns: vec![None; n], methods },
                    );
                }
                _ => {}
            }
        }
        self.items = items;
    }

    /// Compiles a function body into a new `Proto`.
    pub(crate) fn compile_fn(
        &mut self,
        name: String,
        kind: FnKind,
        params: &[Ident],
        self_type: Option<String>,
        body: &Block,
        span: Span,
    ) -> Proto {
        let line = self.line_of(span);
        let has_self = self_type.is_some();
        let arity = params.len() + has_self as usize;
        let mut st = FnState::new(name, kind, self.opts.version, arity as u16, self.file as u32, line);
        st.self_type = self_type;
        if has_self {
            let r = st.alloc();
            st.declare("self", r);
        }
        let mut seen = HashSet::new();
        for p in params {
            if !seen.insert(p.name.clone()) {
                self.error("E0017", format!("duplicate parameter '{}'", p.name), p.span);
            }
            let r = st.alloc();
            st.declare(&p.name, r);
        }
        self.fns.push(st);
        self.block_body(body);
        let st = self.fns.pop().unwrap();
        if st.overflowed {
            self.error("E0018", "function too large: more than 60000 registers", span);
        }
        st.finish()
    }

    /// Compiles a function whose body is one expression (`<init>`, field defaults).
    /// `span` is the expression's, for the "too large" error.
    fn compile_thunk(&mut self, name: String, kind: FnKind, span: Option<Span>, body: impl FnOnce(&mut Self)) -> Proto {
        let line = span.map_or(1, |s| self.line_of(s));
        let st = FnState::new(name, kind, self.opts.version, 0, self.file as u32, line);
        self.fns.push(st);
        body(self);
        let st = self.fns.pop().unwrap();
        if st.overflowed {
            let span = span.unwrap_or((0, 0));
            self.error("E0018", "expression too large: more than 60000 registers", span);
        }
        st.finish()
    }

    fn define(&mut self, index: u32, proto: Proto) {
        self.functions[index as usize] = Some(proto);
    }

    pub(crate) fn add_function(&mut self, proto: Proto) -> u32 {
        self.functions.push(Some(proto));
        (self.functions.len() - 1) as u32
    }

    fn compile_items(&mut self) -> EntryPoints {
        let items = std::mem::take(&mut self.items);
        // Field defaults: one function per defaulted field (used by updates and by literals).
        let type_names: Vec<String> = self.types.keys().cloned().collect();
        for (file, item) in &items {
            if let Item::Type(t) = item {
                self.file = *file;
                if !type_names.contains(&t.name.name) {
                    continue;
                }
                let n = self.types[&t.name.name].fields.len();
                for i in 0..n {
                    let Some(expr) = self.types[&t.name.name].defaults[i].clone() else { continue };
                    let fname = format!("{}.<default {}>", t.name.name, self.types[&t.name.name].fields[i]);
                    // The slot is known before the body compiles: a default may build a record
                    // of its own type (`make = fn() { return Node {}; }`), which calls it.
                    self.functions.push(None);
                    let idx = (self.functions.len() - 1) as u32;
                    if let Some(ti) = self.types.get_mut(&t.name.name) {
                        ti.default_fns[i] = Some(idx);
                    }
                    let proto = self.compile_thunk(fname, FnKind::Function, Some(expr.span), |c| {
                        let r = c.expr_any(&expr);
                        c.f().emit(molt_vm::Instr::Return { src: r });
                    });
                    self.define(idx, proto);
                }
            }
        }
        let mut transforms = Vec::new();
        let mut migrate = None;
        for (file, item) in &items {
            self.file = *file;
            match item {
                Item::Func(f) => {
                    let Some(&(index, _)) = self.funcs.get(&f.name.name) else { continue };
                    if self.functions[index as usize].is_some() {
                        continue; // a duplicate, already reported
                    }
                    let proto =
                        self.compile_fn(f.name.name.clone(), FnKind::Function, &f.params, None, &f.body, f.span);
                    self.define(index, proto);
                }
                Item::Type(t) => {
                    for m in &t.methods {
                        let Some(ti) = self.types.get(&t.name.name) else { continue };
                        let Some(&(index, _)) = ti.methods.get(&m.name.name) else { continue };
                        if self.functions[index as usize].is_some() {
                            continue;
                        }
                        let FnDecl { name, params, body, span } = m;
                        let proto = self.compile_fn(
                            format!("{}.{}", t.name.name, name.name),
                            FnKind::Method,
                            params,
                            Some(t.name.name.clone()),
                            body,
                            *span,
                        );
                        self.define(index, proto);
                    }
                }
                Item::Transform { ty, param, body, span } => {
                    let proto = self.compile_fn(
                        made_name("transform", &ty.name),
                        FnKind::Transform,
                        std::slice::from_ref(param),
                        None,
                        body,
                        *span,
                    );
                    let func = self.add_function(proto);
                    if transforms.iter().any(|t: &TransformDef| t.type_name == ty.name) {
                        self.error("E0004", format!("duplicate transform for '{}'", ty.name), ty.span);
                    }
                    transforms.push(TransformDef { type_name: ty.name.clone(), func });
                }
                Item::Migrate { body, span } => {
                    if migrate.is_some() {
                        self.error("E0004", "duplicate migrate block", *span);
                    }
                    let proto = self.compile_fn("<migrate>".into(), FnKind::Migrate, &[], None, body, *span);
                    migrate = Some(self.add_function(proto));
                }
                _ => {}
            }
        }
        // The globals initialiser, in declaration order.
        let globals: Vec<(usize, Ident, Expr)> = items
            .iter()
            .filter_map(|(f, i)| match i {
                Item::Global { name, init } => Some((*f, name.clone(), init.clone())),
                _ => None,
            })
            .collect();
        // One initialiser per global (`<init NAME>`), so that an update can initialise exactly
        // the globals it adds; `<globals>` calls them in declaration order.
        let mut inits = Vec::new();
        for (file, name, init) in &globals {
            self.file = *file;
            let Some(&slot) = self.globals.get(&name.name) else { continue };
            if inits.iter().any(|(s, _)| *s == slot) {
                continue; // a duplicate, already reported
            }
            let proto = self.compile_thunk(made_name("init", &name.name), FnKind::Init, Some(init.span), |c| {
                let r = c.expr_any(init);
                c.f().emit(molt_vm::Instr::Return { src: r });
            });
            inits.push((slot, self.add_function(proto)));
        }
        let first_file = globals.first().map_or(self.files.len().saturating_sub(1), |g| g.0);
        self.file = first_file;
        let init = self.compile_thunk("<globals>".into(), FnKind::Init, None, |c| {
            for (slot, f) in &inits {
                let r = c.f().alloc();
                c.f().emit(molt_vm::Instr::CallFunc { dst: r, f: *f, base: r + 1, argc: 0 });
                c.f().emit(molt_vm::Instr::SetGlobal { g: *slot, src: r });
                c.f().free_to(r);
            }
        });
        let init = self.add_function(init);
        let main = self.funcs.get("main").map(|(i, _)| *i);
        let mut global_inits = vec![None; self.globals.len()];
        for (slot, f) in inits {
            global_inits[slot as usize] = Some(f);
        }
        self.items = items;
        EntryPoints { init, main, transforms, migrate, global_inits }
    }

    pub(crate) fn f(&mut self) -> &mut FnState {
        self.fns.last_mut().unwrap()
    }
}

/// The functions a program starts from, as `Program` holds them.
struct EntryPoints {
    init: u32,
    main: Option<u32>,
    transforms: Vec<TransformDef>,
    migrate: Option<u32>,
    /// Per global slot, its initialiser.
    global_inits: Vec<Option<u32>>,
}

/// The name of a compiler-made function about `subject` (`<transform T>`, `<init g>`): shown
/// in stack traces, and the function's identity across versions like any function name. What
/// the function is for is in its `FnKind` and the program's tables (`transforms`,
/// `global_inits`); nothing parses it back from the name.
fn made_name(what: &str, subject: &str) -> String {
    format!("<{what} {subject}>")
}

fn run(opts: &Options, entry: Option<(String, PathBuf, String)>) -> Output {
    let mut c = Compiler::new(opts);
    if let Some((name, text)) = &opts.prelude {
        c.load(name.clone(), PathBuf::from(format!("<{name}>")), text.clone());
    }
    if let Some((shown, key, text)) = entry {
        c.load(shown, key, text);
    }
    c.declare();
    let EntryPoints { init, main, transforms, migrate, global_inits } = c.compile_items();
    let mut diagnostics = std::mem::take(&mut c.diags);
    // Files with syntax errors first (each in source order): a file that does not parse
    // loses declarations, and the errors that follow in the files importing it (an imported
    // function "undefined") are not the cause.
    let broken: std::collections::HashSet<usize> =
        diagnostics.iter().filter(|d| matches!(d.code, "E0001" | "E0002")).map(|d| d.file).collect();
    diagnostics.sort_by_key(|d| (!broken.contains(&d.file), d.file, d.span.0));
    diagnostics.dedup();
    let program = if diagnostics.is_empty() {
        let types = c
            .types
            .iter()
            .map(|(name, t)| {
                let mut methods: Vec<(String, u32)> = t.methods.iter().map(|(n, (i, _))| (n.clone(), *i)).collect();
                methods.sort();
                TypeDef {
                    name: name.clone(),
                    version: opts.version,
                    fields: t.fields.clone(),
                    defaults: t.default_fns.clone(),
                    methods,
                }
            })
            .collect();
        let functions: Vec<Proto> = c.functions.iter().flatten().cloned().collect();
        if functions.len() != c.functions.len() {
            None
        } else {
            Some(Program {
                version: opts.version,
                files: c.files.iter().map(|f| f.path.clone()).collect(),
                globals: c.globals.keys().cloned().collect(),
                global_inits,
                functions,
                types,
                names: c.names.iter().cloned().collect(),
                natives: c.natives.iter().cloned().collect(),
                init,
                main,
                transforms,
                migrate,
            })
        }
    } else {
        None
    };
    Output { program, files: c.files, diagnostics }
}

/// Compiles the program whose entry file is `path` (imports are read relative to each file).
pub fn compile_file(path: &Path, opts: &Options) -> Output {
    let shown = path.to_string_lossy().to_string();
    let text = match opts.overrides.get(&shown) {
        Some(t) => Ok(t.clone()),
        None => crate::diag::read_source(path),
    };
    match text {
        Ok(text) => {
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            run(opts, Some((shown, key, text)))
        }
        Err(e) => {
            let mut out = run(opts, None);
            out.program = None;
            out.files.push(SourceFile::new(shown.clone(), String::new()));
            let file = out.files.len() - 1;
            out.diagnostics.push(Diagnostic::new("E0016", format!("cannot read '{shown}': {e}"), file, (0, 0)));
            out
        }
    }
}

/// Compiles one in-memory source text (its imports are resolved from the current directory).
pub fn compile_source(name: &str, text: &str, opts: &Options) -> Output {
    run(opts, Some((name.to_string(), PathBuf::from(format!("<{name}>")), text.to_string())))
}
