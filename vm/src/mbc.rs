//! The `.mbc` bytecode file format: a fixed header, then the program body.
//!
//! Header (38 bytes, little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `MOLTBC\r\n` |
//! | 2 | format version ([`FORMAT_VERSION`]) |
//! | 4 | program version |
//! | 8 | layout hash ([`Program::layout_hash`]) |
//! | 8 | body length |
//! | 8 | FNV-1a 64 checksum of the body |
//!
//! Body: every field of [`Program`] in declaration order (the program version again, so the header
//! copy is checked too). Integers are little-endian at their Rust width, strings a u32 byte length
//! then UTF-8, vectors a u32 count then the items, `Option` a 0/1 byte then the value, `f64` its
//! bits, [`FnKind`] and [`LocalRole`] their `as_u8` byte, a constant a tag byte (0 int, 1 float, 2 string) then the
//! value, and a function's code a u32 byte length then the instructions as `Instr::encode`
//! writes them.
//!
//! [`read`] never panics and never allocates more than a small multiple of the input's size: every
//! count and length is checked against the bytes that remain before anything is allocated. A file
//! that decodes is then checked by [`crate::verify::verify`], so what `read` returns is safe to run.

use std::fmt;

use crate::opcodes::{DecodeError, Instr};
use crate::program::{Const, FnKind, LocalInfo, LocalRole, Program, Proto, TransformDef, TypeDef, UpdatePoint};

/// The first eight bytes of every `.mbc` file.
pub const MAGIC: &[u8; 8] = b"MOLTBC\r\n";

/// The version of the file format this VM reads and writes.
/// 2: locals carry a role byte (`LocalRole`), the program a table of global initialisers.
pub const FORMAT_VERSION: u16 = 2;

/// Magic, format version, program version, layout hash, body length, checksum.
pub const HEADER_LEN: usize = 8 + 2 + 4 + 8 + 8 + 8;

/// Why a byte string is not a valid bytecode file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MbcError {
    pub message: String,
    /// Where in the file the problem was found, when that is not already part of the message.
    pub offset: Option<usize>,
}

impl MbcError {
    fn new(message: impl Into<String>) -> MbcError {
        MbcError { message: message.into(), offset: None }
    }

    fn at(offset: usize, message: impl Into<String>) -> MbcError {
        MbcError { message: message.into(), offset: Some(offset) }
    }
}

impl fmt::Display for MbcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid bytecode file: {}", self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at byte {offset})")?;
        }
        Ok(())
    }
}

impl std::error::Error for MbcError {}

/// FNV-1a, 64 bits: the body checksum. Any single changed byte changes it.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Writing

/// The `.mbc` file for `program`.
///
/// Panics only if a table or string has more than `u32::MAX` entries or bytes, which the format
/// cannot express.
pub fn write(program: &Program) -> Vec<u8> {
    let mut body = Writer(Vec::new());
    body.program(program);
    let body = body.0;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&program.version.to_le_bytes());
    out.extend_from_slice(&program.layout_hash().to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("table or string too large for the .mbc format (over 4 GiB)"));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                self.u32(x);
            }
        }
    }

    fn vec<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.len(items.len());
        for x in items {
            item(self, x);
        }
    }

    fn program(&mut self, p: &Program) {
        self.u32(p.version);
        self.vec(&p.files, |w, s| w.str(s));
        self.vec(&p.globals, |w, s| w.str(s));
        self.vec(&p.global_inits, |w, f| w.opt_u32(*f));
        self.vec(&p.functions, Writer::proto);
        self.vec(&p.types, Writer::type_def);
        self.vec(&p.names, |w, s| w.str(s));
        self.vec(&p.natives, |w, s| w.str(s));
        self.u32(p.init);
        self.opt_u32(p.main);
        self.vec(&p.transforms, |w, t| {
            w.str(&t.type_name);
            w.u32(t.func);
        });
        self.opt_u32(p.migrate);
    }

    fn proto(&mut self, f: &Proto) {
        self.str(&f.name);
        self.u8(f.kind.as_u8());
        self.u32(f.version);
        self.u16(f.arity);
        self.u16(f.ncaptures);
        self.u16(f.nregs);
        self.u32(f.file);
        self.u32(f.line);
        let mut code = Vec::new();
        for ins in &f.code {
            ins.encode(&mut code);
        }
        self.len(code.len());
        self.0.extend_from_slice(&code);
        self.vec(&f.lines, |w, l| w.u32(*l));
        self.vec(&f.consts, Writer::constant);
        self.vec(&f.locals, |w, l| {
            w.str(&l.name);
            w.u8(l.role.as_u8());
            w.u16(l.reg);
            w.u32(l.start);
            w.u32(l.end);
        });
        self.vec(&f.update_points, |w, p| {
            match &p.label {
                None => w.u8(0),
                Some(l) => {
                    w.u8(1);
                    w.str(l);
                }
            }
            w.u32(p.ordinal);
            w.u32(p.pc);
        });
    }

    fn constant(&mut self, c: &Const) {
        match c {
            Const::Int(i) => {
                self.u8(0);
                self.u64(*i as u64);
            }
            Const::Float(x) => {
                self.u8(1);
                self.u64(x.to_bits());
            }
            Const::Str(s) => {
                self.u8(2);
                self.str(s);
            }
        }
    }

    fn type_def(&mut self, t: &TypeDef) {
        self.str(&t.name);
        self.u32(t.version);
        self.vec(&t.fields, |w, s| w.str(s));
        self.vec(&t.defaults, |w, d| w.opt_u32(*d));
        self.vec(&t.methods, |w, (name, func)| {
            w.str(name);
            w.u32(*func);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The smallest encoding of each kind of vector item, in bytes: a count is rejected when even
/// items this small would not fit in what remains, so no allocation exceeds the input's size by
/// more than the ratio of an item's memory size to its minimal encoding.
mod min_size {
    /// u32 length.
    pub const STRING: usize = 4;
    pub const U32: usize = 4;
    /// The 0 tag of `None`.
    pub const OPTION: usize = 1;
    /// name + function index.
    pub const METHOD: usize = STRING + 4;
    /// tag + the length of an empty string.
    pub const CONST: usize = 1 + STRING;
    /// name, role, reg, start, end.
    pub const LOCAL: usize = STRING + 1 + 2 + 4 + 4;
    /// label tag, ordinal, pc.
    pub const UPDATE_POINT: usize = 1 + 4 + 4;
    /// name, kind, version, arity, ncaptures, nregs, file, line, then the lengths of code, lines,
    /// consts, locals and update points.
    pub const PROTO: usize = STRING + 1 + 4 + 2 + 2 + 2 + 4 + 4 + 5 * 4;
    /// name, version, then the counts of fields, defaults and methods.
    pub const TYPE: usize = STRING + 4 + 3 * 4;
    /// type name, function index.
    pub const TRANSFORM: usize = STRING + 4;
}

/// Decodes and verifies a `.mbc` file.
pub fn read(bytes: &[u8]) -> Result<Program, MbcError> {
    let header = Header::parse(bytes)?;
    let mut r = Reader { bytes, pos: HEADER_LEN, context: String::new() };
    let program = r.program()?;
    if r.pos != bytes.len() {
        return Err(MbcError::at(r.pos, format!("{} unused bytes after the program", bytes.len() - r.pos)));
    }
    if program.version != header.program_version {
        return Err(MbcError::new(format!(
            "program version mismatch: the header says {} but the body says {}",
            header.program_version, program.version
        )));
    }
    let hash = program.layout_hash();
    if hash != header.layout_hash {
        return Err(MbcError::new(format!(
            "layout hash mismatch: the header says {:016x} but the record types hash to {hash:016x}",
            header.layout_hash
        )));
    }
    crate::verify::verify(&program).map_err(|e| MbcError::new(format!("verification failed: {e}")))?;
    Ok(program)
}

struct Header {
    program_version: u32,
    layout_hash: u64,
}

impl Header {
    /// Checks magic, format version, body length and checksum.
    fn parse(bytes: &[u8]) -> Result<Header, MbcError> {
        let truncated =
            || MbcError::new(format!("truncated at byte {} (in the {HEADER_LEN}-byte header)", bytes.len()));
        if bytes.is_empty() {
            return Err(MbcError::new("not a Molt bytecode file (it is empty)"));
        }
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(MbcError::new("not a Molt bytecode file"));
        }
        let field = |at: usize, len: usize| bytes.get(at..at + len).ok_or_else(truncated);
        let format = u16::from_le_bytes(field(8, 2)?.try_into().map_err(|_| truncated())?);
        if format != FORMAT_VERSION {
            return Err(MbcError::at(
                8,
                format!("unsupported format version {format} (this VM reads format version {FORMAT_VERSION})"),
            ));
        }
        let u32_at = |at| field(at, 4).map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()));
        let u64_at = |at| field(at, 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()));
        let program_version = u32_at(10)?;
        let layout_hash = u64_at(14)?;
        let body_len = u64_at(22)?;
        let sum = u64_at(30)?;
        let present = (bytes.len() - HEADER_LEN) as u64;
        if body_len > present {
            return Err(MbcError::new(format!(
                "truncated at byte {} (the header announces a {body_len}-byte body, {present} bytes are present)",
                bytes.len()
            )));
        }
        if body_len < present {
            return Err(MbcError::at(
                HEADER_LEN + body_len as usize,
                format!("{} trailing bytes after the {body_len}-byte body", present - body_len),
            ));
        }
        if checksum(&bytes[HEADER_LEN..]) != sum {
            return Err(MbcError::new("corrupted: checksum mismatch"));
        }
        Ok(Header { program_version, layout_hash })
    }
}

/// A cursor over the whole file; offsets in errors are file offsets.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The item being decoded (`function 3 'main'`), for messages.
    context: String,
}

type Res<T> = Result<T, MbcError>;

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// "`what` of `context`".
    fn describe(&self, what: &str) -> String {
        if self.context.is_empty() { what.to_string() } else { format!("{what} of {}", self.context) }
    }

    fn take(&mut self, n: usize, what: &str) -> Res<&'a [u8]> {
        if n > self.remaining() {
            return Err(MbcError::new(format!(
                "truncated at byte {} (reading the {} at byte {}: {n} bytes needed, {} left)",
                self.bytes.len(),
                self.describe(what),
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Res<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Res<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Res<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Res<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A 0/1 tag.
    fn flag(&mut self, what: &str) -> Res<bool> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(MbcError::at(at, format!("bad option tag {t} for the {} (expected 0 or 1)", self.describe(what)))),
        }
    }

    fn opt_u32(&mut self, what: &str) -> Res<Option<u32>> {
        Ok(if self.flag(what)? { Some(self.u32(what)?) } else { None })
    }

    fn string(&mut self, what: &str) -> Res<String> {
        let len = self.u32(what)? as usize;
        let start = self.pos;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => {
                Err(MbcError::at(start + e.valid_up_to(), format!("invalid UTF-8 in the {}", self.describe(what))))
            }
        }
    }

    /// A u32 count followed by that many items, each at least `min` bytes long.
    fn vec<T>(&mut self, what: &str, min: usize, mut item: impl FnMut(&mut Self, usize) -> Res<T>) -> Res<Vec<T>> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min) > self.remaining() {
            return Err(MbcError::at(
                at,
                format!(
                    "the {} claims {n} entries, more than the {} bytes that remain can hold",
                    self.describe(what),
                    self.remaining()
                ),
            ));
        }
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            items.push(item(self, i)?);
        }
        Ok(items)
    }

    fn program(&mut self) -> Res<Program> {
        let version = self.u32("program version")?;
        let files = self.vec("file list", min_size::STRING, |r, _| r.string("file path"))?;
        let globals = self.vec("global list", min_size::STRING, |r, _| r.string("global name"))?;
        let global_inits =
            self.vec("global initialiser list", min_size::OPTION, |r, _| r.opt_u32("global initialiser"))?;
        let functions = self.vec("function list", min_size::PROTO, |r, i| r.proto(i))?;
        let types = self.vec("type list", min_size::TYPE, |r, i| r.type_def(i))?;
        self.context.clear();
        let names = self.vec("name table", min_size::STRING, |r, _| r.string("name"))?;
        let natives = self.vec("built-in list", min_size::STRING, |r, _| r.string("built-in name"))?;
        let init = self.u32("init function index")?;
        let main = self.opt_u32("main function index")?;
        let transforms = self.vec("transform list", min_size::TRANSFORM, |r, _| {
            Ok(TransformDef { type_name: r.string("transform type name")?, func: r.u32("transform function")? })
        })?;
        let migrate = self.opt_u32("migrate function index")?;
        Ok(Program {
            version,
            files,
            globals,
            global_inits,
            functions,
            types,
            names,
            natives,
            init,
            main,
            transforms,
            migrate,
        })
    }

    fn proto(&mut self, index: usize) -> Res<Proto> {
        self.context = format!("function {index}");
        let name = self.string("name")?;
        self.context = format!("function {index} '{name}'");
        let at = self.pos;
        let tag = self.u8("kind")?;
        let kind = FnKind::from_u8(tag)
            .ok_or_else(|| MbcError::at(at, format!("bad function kind {tag} for {}", self.context)))?;
        let version = self.u32("version")?;
        let arity = self.u16("arity")?;
        let ncaptures = self.u16("capture count")?;
        let nregs = self.u16("register count")?;
        let file = self.u32("file index")?;
        let line = self.u32("line")?;
        let code = self.code()?;
        let lines = self.vec("line table", min_size::U32, |r, _| r.u32("line"))?;
        let consts = self.vec("constant pool", min_size::CONST, |r, _| r.constant())?;
        let locals = self.vec("local table", min_size::LOCAL, |r, _| {
            let name = r.string("local name")?;
            let at = r.pos;
            let tag = r.u8("local role")?;
            let role = LocalRole::from_u8(tag)
                .ok_or_else(|| MbcError::at(at, format!("bad local role {tag} for local '{name}' of {}", r.context)))?;
            Ok(LocalInfo {
                name,
                role,
                reg: r.u16("local register")?,
                start: r.u32("local start")?,
                end: r.u32("local end")?,
            })
        })?;
        let update_points = self.vec("update point table", min_size::UPDATE_POINT, |r, _| {
            let label = if r.flag("update point label")? { Some(r.string("update point label")?) } else { None };
            Ok(UpdatePoint { label, ordinal: r.u32("update point ordinal")?, pc: r.u32("update point pc")? })
        })?;
        Ok(Proto {
            name,
            kind,
            version,
            arity,
            ncaptures,
            nregs,
            file,
            line,
            code,
            lines,
            consts,
            locals,
            update_points,
        })
    }

    fn code(&mut self) -> Res<Vec<Instr>> {
        let len = self.u32("code length")? as usize;
        let start = self.pos;
        let bytes = self.take(len, "code")?;
        // Every instruction takes at least 3 bytes except `ReturnNil`, so this is rarely short.
        let mut code = Vec::with_capacity(len / 3);
        let mut pos = 0;
        while pos < bytes.len() {
            let at = pos;
            match Instr::decode(bytes, &mut pos) {
                Ok(ins) => code.push(ins),
                Err(DecodeError::Truncated) => {
                    return Err(MbcError::at(
                        start + at,
                        format!("the last instruction of {} runs past the end of its code", self.context),
                    ));
                }
                Err(DecodeError::BadOpcode(op)) => {
                    return Err(MbcError::at(
                        start + at,
                        format!("unknown opcode {op} (0x{op:02x}) at pc {} in {}", code.len(), self.context),
                    ));
                }
            }
        }
        Ok(code)
    }

    fn constant(&mut self) -> Res<Const> {
        let at = self.pos;
        match self.u8("constant tag")? {
            0 => Ok(Const::Int(self.u64("int constant")? as i64)),
            1 => Ok(Const::Float(f64::from_bits(self.u64("float constant")?))),
            2 => Ok(Const::Str(self.string("string constant")?)),
            t => Err(MbcError::at(at, format!("bad constant tag {t} in {} (expected 0, 1 or 2)", self.context))),
        }
    }

    fn type_def(&mut self, index: usize) -> Res<TypeDef> {
        self.context = format!("type {index}");
        let name = self.string("name")?;
        self.context = format!("type {index} '{name}'");
        Ok(TypeDef {
            name,
            version: self.u32("version")?,
            fields: self.vec("field list", min_size::STRING, |r, _| r.string("field name"))?,
            defaults: self.vec("default list", min_size::OPTION, |r, _| r.opt_u32("field default"))?,
            methods: self.vec("method list", min_size::METHOD, |r, _| {
                Ok((r.string("method name")?, r.u32("method function")?))
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Writer)) -> usize {
        let mut w = Writer(Vec::new());
        f(&mut w);
        w.0.len()
    }

    /// The minimal sizes the reader assumes are exactly those of the smallest items written:
    /// larger would reject valid files, smaller would only weaken the allocation bound.
    #[test]
    fn min_sizes_match_the_writer() {
        let proto = Proto {
            name: String::new(),
            kind: FnKind::Function,
            version: 0,
            arity: 0,
            ncaptures: 0,
            nregs: 0,
            file: 0,
            line: 0,
            code: vec![],
            lines: vec![],
            consts: vec![],
            locals: vec![],
            update_points: vec![],
        };
        assert_eq!(encoded(|w| w.proto(&proto)), min_size::PROTO);
        let ty = TypeDef { name: String::new(), version: 0, fields: vec![], defaults: vec![], methods: vec![] };
        assert_eq!(encoded(|w| w.type_def(&ty)), min_size::TYPE);
        assert_eq!(encoded(|w| w.constant(&Const::Str(String::new()))), min_size::CONST);
        assert_eq!(encoded(|w| w.str("")), min_size::STRING);
        assert_eq!(encoded(|w| w.opt_u32(None)), min_size::OPTION);
        let p = UpdatePoint { label: None, ordinal: 0, pc: 0 };
        let mut with_point = proto.clone();
        with_point.update_points.push(p);
        assert_eq!(encoded(|w| w.proto(&with_point)) - min_size::PROTO, min_size::UPDATE_POINT);
        let mut with_local = proto.clone();
        with_local.locals.push(LocalInfo { name: String::new(), role: LocalRole::Named, reg: 0, start: 0, end: 0 });
        assert_eq!(encoded(|w| w.proto(&with_local)) - min_size::PROTO, min_size::LOCAL);
        let mut with_method = ty.clone();
        with_method.methods.push((String::new(), 0));
        assert_eq!(encoded(|w| w.type_def(&with_method)) - min_size::TYPE, min_size::METHOD);
    }

    #[test]
    fn header_layout() {
        let p = Program {
            version: 7,
            files: vec![],
            globals: vec![],
            global_inits: vec![],
            functions: vec![],
            types: vec![],
            names: vec![],
            natives: vec![],
            init: 0,
            main: None,
            transforms: vec![],
            migrate: None,
        };
        let bytes = write(&p);
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes[8..10], FORMAT_VERSION.to_le_bytes());
        assert_eq!(bytes[10..14], 7u32.to_le_bytes());
        assert_eq!(bytes[14..22], p.layout_hash().to_le_bytes());
        assert_eq!(bytes[22..30], ((bytes.len() - HEADER_LEN) as u64).to_le_bytes());
        assert_eq!(bytes[30..38], checksum(&bytes[HEADER_LEN..]).to_le_bytes());
        assert_eq!(HEADER_LEN, 38);
    }
}
