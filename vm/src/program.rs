//! A compiled program as plain data: what the compiler emits, what `.mbc` files hold, what an
//! update compares. Operands of kind Global/Func/Type/Name/Native index this program's own
//! tables (`globals`, `functions`, `types`, `names`, `natives`); the VM's linker maps them to its
//! own slots by name, so a new version can be compiled without knowing the running one.

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

/// A named local and the instructions where it is live: frame migration carries locals by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalInfo {
    pub name: String,
    pub reg: u16,
    /// First instruction where the local holds its value.
    pub start: u32,
    /// One past the last instruction of its scope.
    pub end: u32,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub version: u32,
    /// Source file paths, indexed by `Proto::file`.
    pub files: Vec<String>,
    pub globals: Vec<String>,
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

    pub fn function_index(&self, name: &str) -> Option<u32> {
        self.functions.iter().position(|f| f.name == name).map(|i| i as u32)
    }
}
