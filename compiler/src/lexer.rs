//! The lexer (logos). Lexical errors become an `Error` token so the parser can recover and go
//! on; the error itself is kept in `Lexer::errors` with its span.

use logos::Logos;

#[derive(Clone, Debug, Default, PartialEq)]
pub enum LexError {
    #[default]
    Invalid,
    /// Every unknown escape of one string literal, in order.
    BadEscape(Vec<String>),
    BadUnicode,
    Unterminated,
    IntTooLarge,
    BadNumber,
}

impl LexError {
    /// The diagnostic code (docs/messages.md): a literal too large for an int is E0014
    /// however large it is; the rest are E0002.
    pub fn code(&self) -> &'static str {
        match self {
            LexError::IntTooLarge => "E0014",
            _ => "E0002",
        }
    }

    pub fn message(&self) -> String {
        match self {
            LexError::Invalid => "invalid token".into(),
            LexError::BadEscape(es) => {
                let shown: Vec<String> = es.iter().map(|e| format!("'\\{e}'")).collect();
                let s = if es.len() == 1 { "" } else { "s" };
                format!("unknown escape{s} {}", shown.join(", "))
            }
            LexError::BadUnicode => "invalid unicode escape".into(),
            LexError::Unterminated => "unterminated string".into(),
            LexError::IntTooLarge => "integer literal too large".into(),
            LexError::BadNumber => "invalid number literal".into(),
        }
    }
}

fn int(lex: &mut logos::Lexer<'_, Tok>) -> Result<u64, LexError> {
    let s: String = lex.slice().chars().filter(|c| *c != '_').collect();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some("") => return Err(LexError::BadNumber),
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    parsed.map_err(|_| LexError::IntTooLarge)
}

fn float(lex: &mut logos::Lexer<'_, Tok>) -> Result<f64, LexError> {
    let s: String = lex.slice().chars().filter(|c| *c != '_').collect();
    s.parse::<f64>().map_err(|_| LexError::BadNumber)
}

fn unterminated(_: &mut logos::Lexer<'_, Tok>) -> Result<(), LexError> {
    Err(LexError::Unterminated)
}

/// Decodes the escapes of a string literal (the slice includes both quotes).
fn string(lex: &mut logos::Lexer<'_, Tok>) -> Result<String, LexError> {
    let raw = lex.slice();
    unescape(&raw[1..raw.len() - 1])
}

pub fn unescape(body: &str) -> Result<String, LexError> {
    let mut out = String::with_capacity(body.len());
    // Unknown escapes are all collected, so that one error names every one of them.
    let mut bad = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('0') => out.push('\0'),
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(LexError::BadUnicode);
                }
                let mut hex = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(h) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                        _ => return Err(LexError::BadUnicode),
                    }
                }
                let code = u32::from_str_radix(&hex, 16).map_err(|_| LexError::BadUnicode)?;
                out.push(char::from_u32(code).ok_or(LexError::BadUnicode)?);
            }
            Some(other) => bad.push(other.to_string()),
            None => bad.push(String::new()),
        }
    }
    if bad.is_empty() { Ok(out) } else { Err(LexError::BadEscape(bad)) }
}

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\f\u{FEFF}]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
#[logos(error = LexError)]
pub enum Tok {
    #[token("fn")]
    Fn,
    #[token("type")]
    Type,
    #[token("let")]
    Let,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("while")]
    While,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("loop")]
    Loop,
    #[token("break")]
    Break,
    #[token("continue")]
    Continue,
    #[token("return")]
    Return,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("nil")]
    Nil,
    #[token("update")]
    Update,
    #[token("transform")]
    Transform,
    #[token("migrate")]
    Migrate,
    #[token("import")]
    Import,
    #[token("self")]
    SelfKw,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("=")]
    Assign,
    #[token("+=")]
    PlusAssign,
    #[token("-=")]
    MinusAssign,
    #[token("*=")]
    StarAssign,
    #[token("/=")]
    SlashAssign,
    #[token("%=")]
    PercentAssign,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[regex(r"[0-9][0-9_]*", int)]
    #[regex(r"0[xX][0-9a-fA-F_]*", int)]
    Int(u64),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?", float)]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+", float)]
    Float(f64),
    #[regex(r#""([^"\\]|\\.)*""#, string)]
    Str(String),
    #[regex(r#""([^"\\]|\\.)*\\?"#, unterminated)]
    Unterminated,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// Made by the adapter from a lexical error.
    Error,
}

/// The keywords of LANGUAGE.md (for completion and highlighting in tools).
pub const KEYWORDS: &[&str] = &[
    "fn",
    "type",
    "let",
    "if",
    "else",
    "while",
    "for",
    "in",
    "loop",
    "break",
    "continue",
    "return",
    "true",
    "false",
    "nil",
    "update",
    "transform",
    "migrate",
    "import",
    "self",
    "and",
    "or",
    "not",
];

impl Tok {
    /// How a token is named in "unexpected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Int(n) => format!("integer {n}"),
            Tok::Float(f) => format!("float {f}"),
            Tok::Str(_) => "string".into(),
            Tok::Ident(n) => format!("identifier '{n}'"),
            Tok::Error => "invalid token".into(),
            other => format!("'{}'", other.text()),
        }
    }

    fn text(&self) -> &'static str {
        use Tok::*;
        match self {
            Fn => "fn",
            Type => "type",
            Let => "let",
            If => "if",
            Else => "else",
            While => "while",
            For => "for",
            In => "in",
            Loop => "loop",
            Break => "break",
            Continue => "continue",
            Return => "return",
            True => "true",
            False => "false",
            Nil => "nil",
            Update => "update",
            Transform => "transform",
            Migrate => "migrate",
            Import => "import",
            SelfKw => "self",
            And => "and",
            Or => "or",
            Not => "not",
            LParen => "(",
            RParen => ")",
            LBrace => "{",
            RBrace => "}",
            LBracket => "[",
            RBracket => "]",
            Comma => ",",
            Semi => ";",
            Colon => ":",
            Dot => ".",
            DotDot => "..",
            Assign => "=",
            PlusAssign => "+=",
            MinusAssign => "-=",
            StarAssign => "*=",
            SlashAssign => "/=",
            PercentAssign => "%=",
            EqEq => "==",
            NotEq => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            Plus => "+",
            Minus => "-",
            Star => "*",
            Slash => "/",
            Percent => "%",
            _ => "?",
        }
    }
}

/// Token stream for the parser: lexical errors are recorded and turned into `Tok::Error`.
pub struct Lexer<'s> {
    inner: logos::SpannedIter<'s, Tok>,
    errors: LexErrors,
}

/// Lexical errors with their spans, shared with whoever drives the parser.
pub type LexErrors = std::rc::Rc<std::cell::RefCell<Vec<(LexError, (usize, usize))>>>;

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str, errors: LexErrors) -> Lexer<'s> {
        Lexer { inner: Tok::lexer(src).spanned(), errors }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<(usize, Tok, usize), LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (tok, span) = self.inner.next()?;
        let tok = match tok {
            Ok(t) => t,
            Err(e) => {
                self.errors.borrow_mut().push((e, (span.start, span.end)));
                Tok::Error
            }
        };
        Some(Ok((span.start, tok, span.end)))
    }
}
