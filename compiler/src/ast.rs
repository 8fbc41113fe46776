//! The syntax tree. Every node that can be the subject of an error carries its byte span.

/// Byte offsets into one file.
pub type Span = (usize, usize);

#[derive(Clone, Debug)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Item {
    Import {
        path: String,
        span: Span,
    },
    Global {
        name: Ident,
        init: Expr,
    },
    Func(FnDecl),
    Type(TypeDecl),
    Transform {
        ty: Ident,
        param: Ident,
        body: Block,
        span: Span,
    },
    Migrate {
        body: Block,
        span: Span,
    },
    /// A syntax error the parser recovered from (already reported).
    Error,
}

#[derive(Clone, Debug)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct FieldDecl {
    pub name: Ident,
    pub default: Option<Expr>,
}

/// A member of a type's body, as parsed.
pub enum TypeMember {
    Field(FieldDecl),
    Method(FnDecl),
}

#[derive(Clone, Debug)]
pub struct TypeDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
    pub methods: Vec<FnDecl>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Let {
        name: Ident,
        init: Expr,
    },
    /// `target = value` or `target op= value`.
    Assign {
        target: Expr,
        op: Option<BinOp>,
        value: Expr,
        span: Span,
    },
    If {
        cond: Expr,
        then: Block,
        otherwise: Option<Box<Stmt>>,
        span: Span,
    },
    /// An `else { ... }` block (only as the tail of an `if`).
    Block(Block),
    While {
        cond: Expr,
        body: Block,
        span: Span,
    },
    Loop {
        body: Block,
        span: Span,
    },
    For {
        var: Ident,
        iter: Expr,
        body: Block,
        span: Span,
    },
    Break(Span),
    Continue(Span),
    Return {
        value: Option<Expr>,
        span: Span,
    },
    Update {
        label: Option<String>,
        span: Span,
    },
    Expr(Expr),
    Error,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Nil,
    Bool(bool),
    /// Unsigned so that `-9223372036854775808` can be one literal; range-checked in codegen.
    Int(u64),
    Float(f64),
    Str(String),
    Name(String),
    SelfRef,
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Record {
        ty: Ident,
        fields: Vec<(Ident, Expr)>,
    },
    Lambda {
        params: Vec<Ident>,
        body: Block,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Expr>,
    },
    Method {
        recv: Box<Expr>,
        name: Ident,
        args: Vec<Expr>,
    },
    Field {
        obj: Box<Expr>,
        name: Ident,
    },
    Index {
        obj: Box<Expr>,
        index: Box<Expr>,
    },
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Range(Box<Expr>, Box<Expr>),
    Error,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
