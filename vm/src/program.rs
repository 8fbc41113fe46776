//! A compiled program as plain data: what the compiler emits, what `.mbc` files hold, what an
//! update compares. Operands of kind Global/Func/Type/Name/Native index this program's own
//! tables (`globals`, `functions`, `types`, `names`, `natives`); the VM's linker maps them to its
//! own slots by name, so a new version can be compiled without knowing the running one.

use std::fmt;

/// A constant in a function's pool.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    Int(i64),
    Float(f64),
    Str(String),
}

/// What a function is for: ordinary functions are late-bound by name, lambdas are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnKind {
    Function,
    Method,
    Lambda,
    /// Initialises the globals of one program version.
    Init,
    Transform,
    Migrate,
}

impl FnKind {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
    pub fn from_u8(b: u8) -> Option<FnKind> {
        use FnKind::*;
        [Function, Method, Lambda, Init, Transform, Migrate].get(b as usize).copied()
    }
}

/// What a local holds: a variable of the program, or the hidden state of a `for` loop, which
/// frame migration matches by loop variable and role (a counting loop and a general one over
/// a range carry the same two ints, one step apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalRole {
    /// A variable the program names (parameters included).
    Named,
    /// Counting loop (`for x in a..b`): the end of the range.
    ForRangeEnd,
    /// Counting loop: the current value, which the loop variable is copied from.
    ForRangeNext,
    /// General loop: the iterated value (a range's end for a range).
    ForState,
    /// General loop: the next index.
    ForNext,
}

impl LocalRole {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
    pub fn from_u8(b: u8) -> Option<LocalRole> {
        use LocalRole::*;
        [Named, ForRangeEnd, ForRangeNext, ForState, ForNext].get(b as usize).copied()
    }
}

/// A local and the instructions where it is live: frame migration carries locals by name and
/// role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalInfo {
    /// The variable's name; for a `for` loop's hidden state, the loop variable's.
    pub name: String,
    pub role: LocalRole,
    pub reg: u16,
    /// First instruction where the local holds its value.
    pub start: u32,
    /// One past the last instruction of its scope.
    pub end: u32,
}

/// How the disassembler and messages show a local: hidden loop state says whose it is.
impl fmt::Display for LocalInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.role {
            LocalRole::Named => return f.write_str(&self.name),
            LocalRole::ForRangeEnd => "range end",
            LocalRole::ForRangeNext => "range next",
            LocalRole::ForState => "state",
            LocalRole::ForNext => "index",
        };
        write!(f, "{} (for {what})", self.name)
    }
}

/// An `update;` or `update "label";` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatePoint {
    pub label: Option<String>,
    /// Position among the function's unlabelled points (0-based); labelled points count apart.
    pub ordinal: u32,
    pub pc: u32,
}

/// One function's code. Immutable once loaded: frames and closures hold it behind an `Rc`.
#[derive(Clone, Debug, PartialEq)]
pub struct Proto {
    /// `main`, `Account.deposit`, `main.<lambda 1>`, `<init>`, ...
    pub name: String,
    pub kind: FnKind,
    /// The program version that introduced this code.
    pub version: u32,
    pub arity: u16,
    /// Captured values (lambdas): copied into the registers after the parameters at each call.
    pub ncaptures: u16,
    pub nregs: u16,
    pub file: u32,
    pub line: u32,
    pub code: Vec<crate::Instr>,
    /// Source line of each instruction.
    pub lines: Vec<u32>,
    pub consts: Vec<Const>,
    pub locals: Vec<LocalInfo>,
    pub update_points: Vec<UpdatePoint>,
}

/// A record type's layout and methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDef {
    pub name: String,
    pub version: u32,
    pub fields: Vec<String>,
    /// Per field, the function computing its default (`None`: the field is required).
    pub defaults: Vec<Option<u32>>,
    /// (method name, function index)
    pub methods: Vec<(String, u32)>,
}

/// `transform Name(old) { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformDef {
    pub type_name: String,
    pub func: u32,
}

/// A whole compiled program (all its files).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub version: u32,
    /// Source file paths, indexed by `Proto::file`.
    pub files: Vec<String>,
    pub globals: Vec<String>,
    /// Per global (parallel to `globals`), the `Init` function computing its initial value: an
    /// update runs those of the globals it adds.
    pub global_inits: Vec<Option<u32>>,
    pub functions: Vec<Proto>,
    pub types: Vec<TypeDef>,
    /// Field and method names.
    pub names: Vec<String>,
    /// Built-in functions the program calls, by name.
    pub natives: Vec<String>,
    /// Function that initialises the globals, in declaration order.
    pub init: u32,
    pub main: Option<u32>,
    pub transforms: Vec<TransformDef>,
    pub migrate: Option<u32>,
}

impl Program {
    /// For each function, the function whose code makes its closures (a `Closure`
    /// instruction): for a lambda, the function it is written in. None for the others.
    pub fn closure_makers(&self) -> Vec<Option<u32>> {
        let mut makers = vec![None; self.functions.len()];
        for (i, f) in self.functions.iter().enumerate() {
            for ins in &f.code {
                if let crate::Instr::Closure { f: lambda, .. } = *ins
                    && let Some(m) = makers.get_mut(lambda as usize)
                {
                    m.get_or_insert(i as u32);
                }
            }
        }
        makers
    }

    /// A hash of the record layouts (names, fields in order): stored in `.mbc` headers.
    pub fn layout_hash(&self) -> u64 {
        // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
        let mut h: u64 = 0xcbf29ce484222325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= *b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x100000001b3);
        };
        for t in &self.types {
            eat(t.name.as_bytes());
            for f in &t.fields {
                eat(f.as_bytes());
            }
        }
        h
    }

    /// The function initialising global `name`, if the program declares it.
    pub fn global_init(&self, name: &str) -> Option<u32> {
        let g = self.globals.iter().position(|n| n == name)?;
        self.global_inits.get(g).copied().flatten()
    }

    /// `global_inits` has one entry per global, each an `Init` function of arity 0 (checked
    /// with the other tables when a `.mbc` file is read).
    pub fn check_global_inits(&self) -> Result<(), String> {
        if self.global_inits.len() != self.globals.len() {
            return Err(format!(
                "the program has {} globals but {} initialiser entries",
                self.globals.len(),
                self.global_inits.len()
            ));
        }
        for (g, init) in self.globals.iter().zip(&self.global_inits) {
            let Some(i) = *init else { continue };
            let Some(f) = self.functions.get(i as usize) else {
                return Err(format!(
                    "the initialiser of global '{g}' is function f{i}, but the program has {} functions",
                    self.functions.len()
                ));
            };
            if f.kind != FnKind::Init || f.arity != 0 {
                return Err(format!(
                    "the initialiser of global '{g}' is '{}', of kind {:?} and arity {}, but must be an Init function of no arguments",
                    f.name, f.kind, f.arity
                ));
            }
        }
        Ok(())
    }

    /// The functions of the methods called `name` of every type, in function-table order.
    pub fn methods_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Proto> + use<'a> {
        let mut fs: Vec<u32> =
            self.types.iter().flat_map(|t| &t.methods).filter(|(m, _)| m == name).map(|(_, f)| *f).collect();
        fs.sort_unstable();
        fs.into_iter().filter_map(|f| self.functions.get(f as usize))
    }

    pub fn function_index(&self, name: &str) -> Option<u32> {
        self.functions.iter().position(|f| f.name == name).map(|i| i as u32)
    }
}
