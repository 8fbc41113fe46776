//! The `.mbc` format and the verifier: round trips of hand-built programs, mutation testing of
//! `mbc::read` (which must never panic on any input), and targeted verifier rejections.

use molt_vm::mbc::{self, HEADER_LEN};
use molt_vm::opcodes::{Effects, OPCODES, encode_operand};
use molt_vm::program::TransformDef;
use molt_vm::verify::verify;
use molt_vm::{Const, FnKind, Instr, LocalInfo, LocalRole, OperandKind, Program, Proto, TypeDef, UpdatePoint};

/// Multiplies the number of random cases: `MOLT_FUZZ_SCALE=50 cargo test -p molt-vm --test mbc`
/// for a longer search. The default keeps the whole file well under a second or two.
fn scale() -> usize {
    std::env::var("MOLT_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// A tiny deterministic PRNG (xorshift64*).

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545f4914f6cdd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built programs.

fn func(name: &str, kind: FnKind, arity: u16, nregs: u16, code: Vec<Instr>) -> Proto {
    let lines = (0..code.len() as u32).map(|i| 10 + i).collect();
    Proto {
        name: name.to_string(),
        kind,
        version: 1,
        arity,
        ncaptures: 0,
        nregs,
        file: 0,
        line: 10,
        code,
        lines,
        consts: vec![],
        locals: vec![],
        update_points: vec![],
    }
}

fn local(name: &str, reg: u16, start: u32, end: u32) -> LocalInfo {
    hidden(name, LocalRole::Named, reg, start, end)
}

/// A local of `role` (a `for` loop's state, for loop variable `name`).
fn hidden(name: &str, role: LocalRole, reg: u16, start: u32, end: u32) -> LocalInfo {
    LocalInfo { name: name.to_string(), role, reg, start, end }
}

fn empty_program() -> Program {
    Program {
        version: 1,
        files: vec!["main.molt".into()],
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
    }
}

/// Globals, arithmetic, a named call, a built-in call, a counting loop with an update point,
/// float, string and int constants, locals.
fn calc() -> Program {
    use Instr::*;
    let init = func(
        "<globals>",
        FnKind::Init,
        0,
        1,
        vec![LoadInt { dst: 0, value: 0 }, SetGlobal { g: 0, src: 0 }, ReturnNil {}],
    );
    let mut add = func("add", FnKind::Function, 2, 3, vec![Add { dst: 2, a: 0, b: 1 }, Return { src: 2 }]);
    add.locals = vec![local("a", 0, 0, 2), local("b", 1, 0, 2)];
    let mut main = func(
        "main",
        FnKind::Function,
        0,
        6,
        vec![
            LoadConst { dst: 0, k: 0 },
            LoadConst { dst: 1, k: 1 },
            LoadInt { dst: 2, value: 40 },
            LoadInt { dst: 3, value: -2 },
            CallFunc { dst: 4, f: 1, base: 2, argc: 2 },
            CallNative { dst: 5, native: 0, base: 4, argc: 1 },
            LoadInt { dst: 2, value: 0 },
            LoadInt { dst: 3, value: 10 },
            JumpIfNotLt { a: 2, b: 3, target: 14 },
            Update { point: 0 },
            AddImm { dst: 2, a: 2, value: 1 },
            Mul { dst: 4, a: 2, b: 2 },
            SetGlobal { g: 0, src: 4 },
            Loop { target: 8 },
            LoadConst { dst: 4, k: 2 },
            Return { src: 4 },
        ],
    );
    main.consts = vec![Const::Float(2.5), Const::Str("héllo ✓ \"quoted\"\n".into()), Const::Int(i64::MIN)];
    main.locals = vec![local("x", 0, 1, 16), local("s", 1, 2, 16), local("i", 2, 7, 14)];
    main.update_points = vec![UpdatePoint { label: None, ordinal: 0, pc: 9 }];
    Program {
        version: 3,
        files: vec!["calc.molt".into()],
        globals: vec!["total".into()],
        global_inits: vec![None],
        functions: vec![init, add, main],
        types: vec![],
        names: vec![],
        natives: vec!["print".into()],
        init: 0,
        main: Some(2),
        transforms: vec![],
        migrate: None,
    }
}

/// A record type with a default and a method, a lambda, lists, maps, a `for` loop with a
/// labelled update point, a transformer and a migrate block, two files.
fn shapes() -> Program {
    use Instr::*;
    let init = func(
        "<globals>",
        FnKind::Init,
        0,
        3,
        vec![
            LoadInt { dst: 1, value: 0 },
            LoadInt { dst: 2, value: 0 },
            NewRecord { dst: 0, ty: 0, base: 1, n: 2 },
            SetGlobal { g: 0, src: 0 },
            LoadInt { dst: 0, value: 0 },
            SetGlobal { g: 1, src: 0 },
            ReturnNil {},
        ],
    );
    let mut norm2 = func(
        "Point.norm2",
        FnKind::Method,
        1,
        3,
        vec![
            GetField { dst: 1, obj: 0, name: 0 },
            GetField { dst: 2, obj: 0, name: 1 },
            Mul { dst: 1, a: 1, b: 1 },
            Mul { dst: 2, a: 2, b: 2 },
            Add { dst: 1, a: 1, b: 2 },
            Return { src: 1 },
        ],
    );
    norm2.locals = vec![local("self", 0, 0, 6)];
    norm2.file = 1;
    let mut default_y =
        func("Point.<default y>", FnKind::Function, 0, 1, vec![LoadConst { dst: 0, k: 0 }, Return { src: 0 }]);
    default_y.consts = vec![Const::Float(-0.0)];
    let mut lambda = func("main.<lambda 1>", FnKind::Lambda, 1, 3, vec![Add { dst: 2, a: 0, b: 1 }, Return { src: 2 }]);
    lambda.ncaptures = 1;
    let mut main = func(
        "main",
        FnKind::Function,
        0,
        10,
        vec![
            LoadInt { dst: 1, value: 3 },
            // No arguments: the base may sit right at the end of the frame.
            CallFunc { dst: 2, f: 2, base: 10, argc: 0 },
            NewRecord { dst: 0, ty: 0, base: 1, n: 2 },
            Move { dst: 3, src: 0 },
            CallMethod { dst: 4, base: 3, name: 2, argc: 0 },
            LoadInt { dst: 5, value: 100 },
            Closure { dst: 6, f: 3, base: 5, n: 1 },
            Move { dst: 7, src: 6 },
            LoadInt { dst: 8, value: 5 },
            Call { dst: 7, base: 7, argc: 1 },
            NewList { dst: 1, base: 4, n: 4 },
            LoadConst { dst: 2, k: 0 },
            NewMap { dst: 3, base: 2, n: 1 },
            IterPrep { base: 8, src: 1 },
            IterNext { base: 8, var: 4, exit: 19 },
            Update { point: 0 },
            CallNative { dst: 5, native: 1, base: 4, argc: 1 },
            JumpIfFalse { cond: 5, target: 18 },
            Loop { target: 14 },
            GetGlobal { dst: 0, g: 1 },
            JumpIfTrue { cond: 0, target: 22 },
            LoadNil { dst: 0 },
            Return { src: 0 },
        ],
    );
    main.consts = vec![Const::Str("key".into())];
    main.locals = vec![
        local("p", 0, 3, 23),
        local("f", 6, 7, 23),
        hidden("item", LocalRole::ForState, 8, 14, 19),
        hidden("item", LocalRole::ForNext, 9, 14, 19),
        local("item", 4, 15, 19),
    ];
    main.update_points = vec![UpdatePoint { label: Some("tick ✓".into()), ordinal: 0, pc: 15 }];
    let transform = func(
        "<transform Point>",
        FnKind::Transform,
        1,
        2,
        vec![GetField { dst: 1, obj: 0, name: 0 }, SetField { obj: 0, name: 1, src: 1 }, Return { src: 0 }],
    );
    let migrate = func("<migrate>", FnKind::Migrate, 0, 1, vec![ReturnNil {}]);
    Program {
        version: 2,
        files: vec!["shapes.molt".into(), "lib/geometry.molt".into()],
        globals: vec!["origin".into(), "count".into()],
        global_inits: vec![None, None],
        functions: vec![init, norm2, default_y, lambda, main, transform, migrate],
        types: vec![TypeDef {
            name: "Point".into(),
            version: 2,
            fields: vec!["x".into(), "y".into()],
            defaults: vec![None, Some(2)],
            methods: vec![("norm2".into(), 1)],
        }],
        names: vec!["x".into(), "y".into(), "norm2".into()],
        natives: vec!["print".into(), "len".into()],
        init: 0,
        main: Some(4),
        transforms: vec![TransformDef { type_name: "Point".into(), func: 5 }],
        migrate: Some(6),
    }
}

/// One function using every opcode of the table once (built from `OPCODES`, so new opcodes are
/// covered automatically): registers 0, the next pc as jump target, the first entry of each table.
fn every_opcode() -> Program {
    // Every register written first, so that the instructions may read any of them.
    let mut main = func("main", FnKind::Function, 0, 8, (0..8).map(|dst| Instr::LoadNil { dst }).collect());
    main.consts = vec![Const::Int(42), Const::Float(f64::NAN), Const::Str(String::new())];
    for (op, info) in OPCODES.iter().enumerate() {
        let pc = main.code.len();
        let mut bytes = vec![op as u8];
        let back_edge = info.effects.contains(Effects::SAFEPOINT);
        for (_, role) in info.operands {
            let kind = role.kind();
            let v: i64 = match kind {
                OperandKind::Jump if back_edge => 0,
                OperandKind::Jump => pc as i64 + 1,
                OperandKind::Func => 1, // a lambda without captures, for `Closure`
                OperandKind::Point => main.update_points.len() as i64,
                OperandKind::Imm => -5,
                OperandKind::Count if info.name == "NewRecord" => 1, // type T has one field
                _ => 0,
            };
            if kind == OperandKind::Point {
                main.update_points.push(UpdatePoint { label: None, ordinal: pc as u32, pc: pc as u32 });
            }
            encode_operand(kind, v, &mut bytes);
        }
        let ins = Instr::decode(&bytes, &mut 0).expect("an instruction built from the table");
        main.code.push(ins);
        // A fused update point is followed by its back-edge unfused.
        main.code.extend(ins.unfused());
    }
    main.code.push(Instr::ReturnNil {});
    main.lines = vec![7; main.code.len()];
    let lambda = func("main.<lambda 1>", FnKind::Lambda, 0, 1, vec![Instr::ReturnNil {}]);
    let init = func("<globals>", FnKind::Init, 0, 1, vec![Instr::ReturnNil {}]);
    let mut p = empty_program();
    p.functions = vec![main, lambda, init];
    p.init = 2;
    p.main = Some(0);
    p.globals = vec!["g".into()];
    p.global_inits = vec![None];
    p.types =
        vec![TypeDef { name: "T".into(), version: 1, fields: vec!["a".into()], defaults: vec![None], methods: vec![] }];
    p.names = vec!["a".into()];
    p.natives = vec!["print".into()];
    p
}

fn programs() -> Vec<(&'static str, Program)> {
    vec![("calc", calc()), ("shapes", shapes()), ("every_opcode", every_opcode()), ("empty", minimal())]
}

/// The smallest valid program: an initialiser that returns.
fn minimal() -> Program {
    let mut p = empty_program();
    p.functions = vec![func("<globals>", FnKind::Init, 0, 1, vec![Instr::ReturnNil {}])];
    p
}

/// Rewrites the header's body length and checksum to match the body, as a careful forger would.
fn reseal(bytes: &mut [u8]) {
    let body_len = (bytes.len() - HEADER_LEN) as u64;
    bytes[22..30].copy_from_slice(&body_len.to_le_bytes());
    let sum = mbc::checksum(&bytes[HEADER_LEN..]);
    bytes[30..38].copy_from_slice(&sum.to_le_bytes());
}

fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    reseal(&mut bytes);
    bytes
}

fn error_of(bytes: &[u8]) -> String {
    match mbc::read(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn verify_error(p: &Program) -> String {
    let e = verify(p).expect_err("expected a verification error");
    // The same error, through a file.
    let via_file = error_of(&mbc::write(p));
    assert_eq!(via_file, format!("invalid bytecode file: verification failed: {e}"));
    e.to_string()
}

/// Equality that also holds for NaN constants: the re-encoded bytes.
fn same(a: &Program, b: &Program) -> bool {
    mbc::write(a) == mbc::write(b)
}

// ---------------------------------------------------------------------------------------------
// Round trips.

#[test]
fn hand_built_programs_verify() {
    for (name, p) in programs() {
        if let Err(e) = verify(&p) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn round_trip() {
    for (name, p) in programs() {
        let bytes = mbc::write(&p);
        let back = mbc::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name != "every_opcode" {
            assert_eq!(back, p, "{name}"); // (every_opcode has a NaN constant)
        }
        assert!(same(&back, &p), "{name}");
        assert_eq!(mbc::write(&back), bytes, "{name}: writing is deterministic");
    }
}

#[test]
fn round_trip_keeps_float_bits() {
    let p = every_opcode();
    let back = mbc::read(&mbc::write(&p)).unwrap();
    let Const::Float(x) = back.functions[0].consts[1] else { panic!() };
    assert_eq!(x.to_bits(), f64::NAN.to_bits());
    let back = mbc::read(&mbc::write(&shapes())).unwrap();
    let Const::Float(z) = back.functions[2].consts[0] else { panic!() };
    assert_eq!(z.to_bits(), (-0.0f64).to_bits());
}

#[test]
fn every_opcode_is_covered() {
    let p = every_opcode();
    let mut seen = vec![false; OPCODES.len()];
    for ins in &p.functions[0].code {
        seen[ins.opcode() as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

// ---------------------------------------------------------------------------------------------
// Header errors and their messages.

#[test]
fn header_errors() {
    let good = mbc::write(&calc());
    assert_eq!(error_of(b""), "invalid bytecode file: not a Molt bytecode file (it is empty)");
    assert_eq!(error_of(b"#!/usr/bin/env molt\nfn main() {}"), "invalid bytecode file: not a Molt bytecode file");
    assert_eq!(error_of(b"\x7fELF\x02\x01\x01"), "invalid bytecode file: not a Molt bytecode file");
    assert_eq!(error_of(&good[..5]), "invalid bytecode file: truncated at byte 5 (in the 38-byte header)");
    assert_eq!(error_of(&good[..20]), "invalid bytecode file: truncated at byte 20 (in the 38-byte header)");

    // Files of the previous format (before local roles and global initialisers) are refused.
    let mut v1 = good.clone();
    v1[8] = 1;
    assert_eq!(
        error_of(&v1),
        "invalid bytecode file: unsupported format version 1 (this VM reads format version 2) (at byte 8)"
    );

    let cut = &good[..good.len() - 3];
    let e = error_of(cut);
    assert!(e.starts_with(&format!("invalid bytecode file: truncated at byte {}", cut.len())), "{e}");

    let mut long = good.clone();
    long.extend_from_slice(b"xyz");
    assert_eq!(
        error_of(&long),
        format!(
            "invalid bytecode file: 3 trailing bytes after the {}-byte body (at byte {})",
            good.len() - HEADER_LEN,
            good.len()
        )
    );

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    assert_eq!(error_of(&flipped), "invalid bytecode file: corrupted: checksum mismatch");

    let mut hash = good.clone();
    hash[14] ^= 1;
    let e = error_of(&hash);
    assert!(e.starts_with("invalid bytecode file: layout hash mismatch: the header says"), "{e}");

    let mut version = good.clone();
    version[10] = 9;
    assert_eq!(
        error_of(&version),
        "invalid bytecode file: program version mismatch: the header says 9 but the body says 3"
    );
}

#[test]
fn error_type() {
    let e = mbc::read(b"MOLTBC\r\n\x05\x00").unwrap_err();
    assert_eq!(e.offset, Some(8));
    assert!(e.message.starts_with("unsupported format version 5"));
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().ends_with("(at byte 8)"));
    let v = verify(&empty_program()).unwrap_err();
    let _: &dyn std::error::Error = &v;
}

// ---------------------------------------------------------------------------------------------
// Body decoding errors (checksum fixed up so decoding is reached).

/// Where `needle` starts in `hay` (once).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    let at = hay.windows(needle.len()).position(|w| w == needle).expect("needle present");
    assert!(hay[at + 1..].windows(needle.len()).all(|w| w != needle), "needle unique");
    at
}

#[test]
fn unknown_opcode_byte() {
    let mut bytes = mbc::write(&calc());
    let mut code = Vec::new();
    Instr::Add { dst: 2, a: 0, b: 1 }.encode(&mut code);
    Instr::Return { src: 2 }.encode(&mut code);
    let at = find(&bytes, &code);
    bytes[at] = 250;
    let e = error_of(&resealed(bytes));
    assert_eq!(
        e,
        format!("invalid bytecode file: unknown opcode 250 (0xfa) at pc 0 in function 1 'add' (at byte {at})")
    );
}

#[test]
fn truncated_instruction() {
    let mut bytes = mbc::write(&calc());
    let mut code = Vec::new();
    Instr::Add { dst: 2, a: 0, b: 1 }.encode(&mut code);
    Instr::Return { src: 2 }.encode(&mut code);
    let at = find(&bytes, &code);
    // The code length (u32 just before the code) one short: `Return` loses its last byte.
    let len = u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap());
    bytes[at - 4..at].copy_from_slice(&(len - 1).to_le_bytes());
    let e = error_of(&resealed(bytes));
    assert!(e.contains("the last instruction of function 1 'add' runs past the end of its code"), "{e}");
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let mut p = minimal();
    p.files = vec![];
    p.globals = vec![];
    let bytes = mbc::write(&p);
    // Body: version (4), file count (4) ... set the file count to u32::MAX.
    let mut b = bytes.clone();
    b[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = error_of(&resealed(b));
    assert!(e.contains("the file list claims 4294967295 entries, more than the"), "{e}");
    assert!(e.ends_with(&format!("(at byte {})", HEADER_LEN + 4)), "{e}");
    // A string length of 4 GiB.
    let mut p = minimal();
    p.files = vec!["abc".into()];
    let mut b = mbc::write(&p);
    let at = find(&b, b"\x03\x00\x00\x00abc");
    b[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let e = error_of(&resealed(b));
    assert!(e.contains("truncated at byte"), "{e}");
    assert!(e.contains("reading the file path"), "{e}");
}

#[test]
fn invalid_utf8_and_bad_tags() {
    let mut p = minimal();
    p.files = vec!["abc".into()];
    let good = mbc::write(&p);

    let mut b = good.clone();
    let at = find(&b, b"abc");
    b[at + 1] = 0xff;
    let e = error_of(&resealed(b));
    assert_eq!(e, format!("invalid bytecode file: invalid UTF-8 in the file path (at byte {})", at + 1));

    // The function kind byte follows the name "<globals>".
    let mut b = good.clone();
    let at = find(&b, b"<globals>") + "<globals>".len();
    b[at] = 9;
    let e = error_of(&resealed(b));
    assert_eq!(e, format!("invalid bytecode file: bad function kind 9 for function 0 '<globals>' (at byte {at})"));

    // `main` is the last-but-two field: None (0) then the transform count then migrate.
    let mut b = good.clone();
    let n = b.len();
    b[n - 6] = 2;
    let e = error_of(&resealed(b));
    assert!(e.contains("bad option tag 2 for the main function index"), "{e}");

    let mut p = calc();
    p.functions[2].consts = vec![Const::Int(0x0102_0304_0506_0708)];
    p.functions[2].code[14] = Instr::LoadConst { dst: 4, k: 0 };
    p.functions[2].code[0] = Instr::LoadConst { dst: 0, k: 0 };
    p.functions[2].code[1] = Instr::LoadConst { dst: 1, k: 0 };
    let mut b = mbc::write(&p);
    let at = find(&b, &0x0102_0304_0506_0708u64.to_le_bytes()) - 1;
    b[at] = 3;
    let e = error_of(&resealed(b));
    assert!(e.contains("bad constant tag 3 in function 2 'main' (expected 0, 1 or 2)"), "{e}");

    // A local's role byte follows its name.
    let mut p = calc();
    p.functions[2].locals[2].name = "counter".into();
    let mut b = mbc::write(&p);
    let at = find(&b, b"counter") + "counter".len();
    b[at] = 7;
    let e = error_of(&resealed(b));
    assert_eq!(
        e,
        format!("invalid bytecode file: bad local role 7 for local 'counter' of function 2 'main' (at byte {at})")
    );

    // Bytes left over after a complete program.
    let mut b = good.clone();
    b.push(0);
    let e = error_of(&resealed(b));
    assert_eq!(e, format!("invalid bytecode file: 1 unused bytes after the program (at byte {})", good.len()));
}

// ---------------------------------------------------------------------------------------------
// Mutation testing: `read` returns Ok or Err, never panics.

/// Every prefix of a valid file is an error.
#[test]
fn every_truncation_is_an_error() {
    for (name, p) in programs() {
        let bytes = mbc::write(&p);
        for len in 0..bytes.len() {
            let e = mbc::read(&bytes[..len]);
            assert!(e.is_err(), "{name}: prefix of {len} bytes accepted");
        }
    }
}

/// Every single-bit flip anywhere is detected: the header fields are cross-checked and FNV-1a
/// detects any one changed byte of the body.
#[test]
fn every_bit_flip_is_an_error() {
    for (name, p) in programs() {
        let bytes = mbc::write(&p);
        let mut b = bytes.clone();
        for i in 0..b.len() {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                assert!(mbc::read(&b).is_err(), "{name}: flip of bit {bit} of byte {i} accepted");
                b[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn random_overwrites_never_panic() {
    let mut rng = Rng::new(1);
    for (_, p) in programs() {
        let bytes = mbc::write(&p);
        for _ in 0..1500 * scale() {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
            let _ = mbc::read(&b);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(2);
    for i in 0..3000 * scale() {
        let len = if i % 10 == 0 { rng.below(4000) } else { rng.below(120) };
        let mut b = rng.bytes(len);
        match i % 3 {
            // Plain noise.
            0 => {}
            // A valid magic and format version, then noise.
            1 => {
                let n = b.len().min(10);
                b[..n].copy_from_slice(&b"MOLTBC\r\n\x01\x00"[..n]);
            }
            // A consistent header around a random body: decoding runs on noise.
            _ => {
                let mut f = mbc::write(&minimal())[..HEADER_LEN].to_vec();
                f.extend_from_slice(&b);
                reseal(&mut f);
                b = f;
            }
        }
        let _ = mbc::read(&b);
    }
}

/// "Interesting" u32 values: lengths, counts and indices at and around the limits.
fn interesting_u32(rng: &mut Rng) -> u32 {
    const VALUES: [u32; 12] = [0, 1, 2, 3, 7, 8, 255, 256, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];
    VALUES[rng.below(VALUES.len())]
}

/// Mutates the body of `bytes` (a valid file) in one of several ways and reseals it.
fn mutate_body(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut body = bytes[HEADER_LEN..].to_vec();
    let n = body.len();
    match rng.below(8) {
        0 => body[rng.below(n)] ^= 1 << rng.below(8),
        1 => body[rng.below(n)] = rng.byte(),
        2 => {
            // A small change to one byte (an operand, count or tag off by a little).
            let i = rng.below(n);
            body[i] = body[i].wrapping_add([1, 2, 255, 254][rng.below(4)]);
        }
        3 => {
            let i = rng.below(n.saturating_sub(3).max(1));
            let v = interesting_u32(rng).to_le_bytes();
            for (k, x) in v.iter().enumerate() {
                if i + k < n {
                    body[i + k] = *x;
                }
            }
        }
        4 => {
            let i = rng.below(n);
            let len = 1 + rng.below(8.min(n - i));
            body.drain(i..i + len);
        }
        5 => {
            let i = rng.below(n + 1);
            let len = 1 + rng.below(8);
            let extra = rng.bytes(len);
            body.splice(i..i, extra);
        }
        6 => {
            // Duplicate a chunk somewhere else.
            let i = rng.below(n);
            let len = 1 + rng.below(32.min(n - i));
            let chunk = body[i..i + len].to_vec();
            let j = rng.below(n + 1);
            body.splice(j..j, chunk);
        }
        _ => {
            for _ in 0..2 + rng.below(4) {
                body[rng.below(n)] ^= 1 << rng.below(8);
            }
        }
    }
    let mut out = bytes[..HEADER_LEN].to_vec();
    out.extend_from_slice(&body);
    reseal(&mut out);
    out
}

/// Mutations of the body with the checksum recomputed reach the structural decoder and the
/// verifier. Whatever `read` accepts must verify and round-trip.
#[test]
fn resealed_body_mutations_never_panic() {
    let mut rng = Rng::new(3);
    let (mut ok, mut verify_errors, mut decode_errors) = (0, 0, 0);
    for (_, p) in programs() {
        let bytes = mbc::write(&p);
        for _ in 0..2500 * scale() {
            let b = mutate_body(&mut rng, &bytes);
            match mbc::read(&b) {
                Ok(q) => {
                    ok += 1;
                    verify(&q).expect("read returned an unverified program");
                    let again = mbc::read(&mbc::write(&q)).expect("an accepted program round-trips");
                    assert!(same(&q, &again));
                }
                Err(e) if e.message.starts_with("verification failed") => verify_errors += 1,
                Err(_) => decode_errors += 1,
            }
        }
    }
    // The mutations must exercise every stage, or this test tests less than it claims.
    assert!(ok > 50 * scale(), "ok {ok}");
    assert!(verify_errors > 500 * scale(), "verify errors {verify_errors}");
    assert!(decode_errors > 500 * scale(), "decode errors {decode_errors}");
}

/// Program-level mutations (an operand, a count, a table length changed) go straight to the
/// verifier, which must never panic either.
#[test]
fn verifier_never_panics_on_mutated_programs() {
    let mut rng = Rng::new(4);
    let mut rejected = 0;
    for (_, p) in programs() {
        for _ in 0..3000 * scale() {
            let mut q = p.clone();
            mutate_program(&mut rng, &mut q);
            if verify(&q).is_err() {
                rejected += 1;
            }
        }
    }
    assert!(rejected > 1000 * scale(), "rejected {rejected}");
}

fn mutate_program(rng: &mut Rng, q: &mut Program) {
    let fi = rng.below(q.functions.len());
    let f = &mut q.functions[fi];
    match rng.below(10) {
        0..=5 if !f.code.is_empty() => {
            // One operand of one instruction set to a small or boundary value.
            let pc = rng.below(f.code.len());
            let ins = f.code[pc];
            let mut ops = ins.operands();
            if ops.is_empty() {
                return;
            }
            let k = rng.below(ops.len());
            ops[k].2 = match rng.below(3) {
                0 => rng.below(16) as i64,
                1 => ops[k].2 + [1, -1][rng.below(2)],
                _ => [0xffff, 0xfffe, -1, 0x7fff_ffff][rng.below(4)],
            };
            let mut bytes = vec![ins.opcode()];
            for (_, kind, v) in ops {
                encode_operand(kind, v, &mut bytes);
            }
            f.code[pc] = Instr::decode(&bytes, &mut 0).unwrap();
        }
        6 => f.nregs = rng.below(12) as u16,
        7 => {
            f.code.pop();
        }
        8 => f.arity = rng.below(4) as u16,
        _ => {
            f.kind = FnKind::from_u8(rng.below(6) as u8).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targeted verifier rejections and their messages.

#[test]
fn rejects_register_out_of_range() {
    let mut p = calc();
    p.functions[1].code[0] = Instr::Add { dst: 2, a: 0, b: 3 };
    assert_eq!(
        verify_error(&p),
        "function 'add', pc 0 (Add r2 r0 r3): operand 'b': register r3 out of range (there are 3 registers in the function)"
    );
}

#[test]
fn rejects_jump_out_of_range() {
    let mut p = calc();
    p.functions[2].code[8] = Instr::JumpIfNotLt { a: 2, b: 3, target: 99 };
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 8 (JumpIfNotLt r2 r3 @99): operand 'target': jump target @99 out of range (there are 16 instructions in the function)"
    );
}

#[test]
fn rejects_const_out_of_range() {
    let mut p = calc();
    p.functions[2].code[1] = Instr::LoadConst { dst: 1, k: 3 };
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 1 (LoadConst r1 k3): operand 'k': constant k3 out of range (there are 3 constants in the pool)"
    );
}

#[test]
fn rejects_other_table_indices() {
    let cases: [(usize, Instr, &str); 6] = [
        (0, Instr::GetGlobal { dst: 0, g: 1 }, "global g1 out of range (there are 1 globals in the program)"),
        (1, Instr::LoadFunc { dst: 0, f: 3 }, "function f3 out of range (there are 3 functions in the program)"),
        (
            2,
            Instr::NewRecord { dst: 0, ty: 0, base: 0, n: 0 },
            "type t0 out of range (there are 0 types in the program)",
        ),
        (
            3,
            Instr::GetField { dst: 0, obj: 0, name: 0 },
            "name n0 out of range (there are 0 entries in the name table)",
        ),
        (4, Instr::LoadNative { dst: 0, native: 1 }, "built-in b1 out of range (there are 1 built-ins in the program)"),
        (5, Instr::Update { point: 1 }, "update point p1 out of range (there are 1 update points in the function)"),
    ];
    for (pc, ins, msg) in cases {
        let mut p = calc();
        p.functions[2].code[pc] = ins;
        let e = verify_error(&p);
        assert!(e.starts_with(&format!("function 'main', pc {pc} (")), "{e}");
        assert!(e.ends_with(msg), "{e}");
    }
}

#[test]
fn rejects_missing_terminator() {
    let mut p = calc();
    p.functions[1].code.pop();
    p.functions[1].lines.pop();
    assert_eq!(
        verify_error(&p),
        "function 'add', pc 0 (Add r2 r0 r1): the last instruction must be Return, ReturnNil, Jump or Loop, or execution runs off the end"
    );
    // A conditional jump is not a terminator either.
    let mut p = calc();
    let f = &mut p.functions[1];
    f.code = vec![Instr::JumpIfTrue { cond: 0, target: 1 }, Instr::Add { dst: 2, a: 0, b: 1 }];
    f.locals.clear();
    let e = verify_error(&p);
    assert!(e.starts_with("function 'add', pc 1 (Add r2 r0 r1): the last instruction must be"), "{e}");
}

#[test]
fn rejects_bad_closure_target() {
    let mut p = shapes();
    p.functions[4].code[6] = Instr::Closure { dst: 6, f: 2, base: 5, n: 1 };
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 6 (Closure r6 f2 r5 #1): closure of 'Point.<default y>', which is of kind Function, not Lambda"
    );
    let mut p = shapes();
    p.functions[4].code[6] = Instr::Closure { dst: 6, f: 3, base: 5, n: 2 };
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 6 (Closure r6 f3 r5 #2): captures 2 values but lambda 'main.<lambda 1>' expects 1"
    );
    let mut p = shapes();
    p.functions[4].code[6] = Instr::Closure { dst: 6, f: 30, base: 5, n: 1 };
    let e = verify_error(&p);
    assert!(e.ends_with("function f30 out of range (there are 7 functions in the program)"), "{e}");
}

#[test]
fn rejects_register_windows_past_the_frame() {
    let cases: [(Instr, &str); 6] = [
        (
            Instr::CallFunc { dst: 0, f: 1, base: 9, argc: 2 },
            "uses registers r9..r10 but the function has 10 registers",
        ),
        (Instr::CallFunc { dst: 0, f: 2, base: 11, argc: 0 }, "base register r11 is past the function's 10 registers"),
        (Instr::Call { dst: 0, base: 8, argc: 2 }, "uses registers r8..r10 but the function has 10 registers"),
        (Instr::NewMap { dst: 0, base: 6, n: 3 }, "uses registers r6..r11 but the function has 10 registers"),
        (Instr::NewRecord { dst: 0, ty: 0, base: 9, n: 2 }, "uses registers r9..r10 but the function has 10 registers"),
        (Instr::IterPrep { base: 9, src: 0 }, "uses registers r9..r10 but the function has 10 registers"),
    ];
    for (ins, msg) in cases {
        let mut p = shapes();
        p.functions[4].code[0] = ins;
        let e = verify_error(&p);
        assert!(e.starts_with("function 'main', pc 0 ("), "{e}");
        assert!(e.ends_with(msg), "{e}");
    }
    // A `u16` base near the top does not overflow the check.
    let mut p = shapes();
    p.functions[4].code[0] = Instr::IterNext { base: u16::MAX, var: 0, exit: 1 };
    assert!(verify_error(&p).ends_with("uses registers r65535..r65536 but the function has 10 registers"));
}

#[test]
fn rejects_backward_jumps_other_than_loop() {
    let mut p = calc();
    p.functions[2].code[13] = Instr::Jump { target: 8 };
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 13 (Jump @8): jumps backward: only Loop and ForLoop may (they are the safepoints that let loops be interrupted)"
    );
    let mut p = calc();
    p.functions[2].code[13] = Instr::Loop { target: 14 };
    assert_eq!(verify_error(&p), "function 'main', pc 13 (Loop @14): a loop back-edge whose target is ahead of it");
}

#[test]
fn rejects_bad_frames() {
    let mut p = calc();
    p.functions[1].code.clear();
    p.functions[1].lines.clear();
    assert_eq!(verify_error(&p), "function 'add': has no code");

    let mut p = calc();
    p.functions[1].lines.push(3);
    assert_eq!(verify_error(&p), "function 'add': has 2 instructions but 3 line entries");

    let mut p = calc();
    p.functions[1].nregs = 1;
    assert_eq!(
        verify_error(&p),
        "function 'add': has 1 registers, fewer than the 2 its 2 parameters and 0 captures need (at least 1)"
    );

    let mut p = minimal();
    p.functions[0].nregs = 0;
    assert!(verify_error(&p).starts_with("function '<globals>': has 0 registers"));

    let mut p = calc();
    p.functions[1].file = 1;
    assert_eq!(verify_error(&p), "function 'add': is in file 1, but the program has 1 files");
}

/// A global's initialiser must be an `Init` function of no arguments, one entry per global.
#[test]
fn checks_global_initialisers() {
    let global_init_error = |inits: Vec<Option<u32>>| {
        let mut p = calc();
        p.global_inits = inits;
        let e = p.check_global_inits().expect_err("expected an error");
        // The verifier checks them (not only `mbc::read`).
        assert_eq!(verify_error(&p), e);
        e
    };
    let mut p = calc();
    p.global_inits = vec![Some(0)];
    assert_eq!(mbc::read(&mbc::write(&p)).unwrap(), p);
    assert_eq!(p.global_init("total"), Some(0));
    assert_eq!(p.global_init("other"), None);
    assert_eq!(global_init_error(vec![]), "the program has 1 globals but 0 initialiser entries");
    assert_eq!(
        global_init_error(vec![Some(3)]),
        "the initialiser of global 'total' is function f3, but the program has 3 functions"
    );
    assert_eq!(
        global_init_error(vec![Some(1)]),
        "the initialiser of global 'total' is 'add', of kind Function and arity 2, but must be an Init function of no arguments"
    );
}

#[test]
fn rejects_bad_locals_and_update_points() {
    let mut p = calc();
    p.functions[2].locals[0].reg = 6;
    assert_eq!(verify_error(&p), "function 'main': local 'x' is in register r6, but the function has 6 registers");

    let mut p = calc();
    p.functions[2].locals[2].end = 17;
    assert_eq!(
        verify_error(&p),
        "function 'main': local 'i' lives over [7, 17), not a range within the function's 16 instructions"
    );

    let mut p = calc();
    p.functions[2].locals[2].start = 15;
    assert!(verify_error(&p).contains("local 'i' lives over [15, 14)"));

    let mut p = calc();
    p.functions[2].update_points[0].pc = 10;
    assert_eq!(
        verify_error(&p),
        "function 'main': update point p0 is at pc 10, which is not `Update p0` but at AddImm r2 r2 1"
    );

    let mut p = calc();
    p.functions[2].update_points[0].pc = 16;
    assert_eq!(
        verify_error(&p),
        "function 'main': update point p0 is at pc 16, which is not `Update p0` but past the end of the code"
    );
}

#[test]
fn fused_update_points_need_their_plain_back_edge() {
    // The update point moved onto the loop's back-edge, fused: valid.
    let mut p = calc();
    let main = &mut p.functions[2];
    main.code[9] = Instr::AddImm { dst: 2, a: 2, value: 0 };
    main.code[12] = Instr::UpdateLoop { point: 0, target: 8 };
    main.update_points[0].pc = 12;
    verify(&p).expect("a fused update point followed by its back-edge verifies");

    // Followed by a back-edge to somewhere else: rejected.
    let mut bad = p.clone();
    bad.functions[2].code[12] = Instr::UpdateLoop { point: 0, target: 7 };
    assert_eq!(
        verify_error(&bad),
        "function 'main', pc 12 (UpdateLoop p0 @7): must be followed by `Loop @7`, the same back-edge unfused"
    );

    // Not followed by a back-edge at all.
    let mut bad = p.clone();
    bad.functions[2].code[11] = Instr::UpdateForLoop { point: 0, base: 2, var: 4, target: 8 };
    bad.functions[2].update_points[0].pc = 11;
    assert_eq!(
        verify_error(&bad),
        "function 'main', pc 11 (UpdateForLoop p0 r2 r4 @8): must be followed by `ForLoop r2 r4 @8`, the same back-edge unfused"
    );
}

/// The smallest program with a `main`: `code`, with no parameters and `nregs` registers.
fn with_main(nregs: u16, code: Vec<Instr>) -> Program {
    let mut p = minimal();
    p.functions.push(func("main", FnKind::Function, 0, nregs, code));
    p.main = Some(1);
    p
}

/// Issue 17, finding 2: a register read before anything in the function wrote it holds what
/// a dead frame left there (it printed `<freed>`, then an unrelated string that reused the
/// slot). The verifier rejects it, naming the function, the pc and the register.
#[test]
fn rejects_reading_an_unwritten_register() {
    use Instr::*;
    // The smallest case: `main` returns a register nothing wrote.
    let p = with_main(2, vec![LoadInt { dst: 0, value: 1 }, Return { src: 1 }]);
    let e = verify(&p).expect_err("expected a verification error");
    assert_eq!((e.function.as_deref(), e.pc), (Some("main"), Some(1)));
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 1 (Return r1): reads register r1, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );
    // Through a file: `mbc::read` refuses it.
    assert_eq!(
        error_of(&mbc::write(&p)),
        "invalid bytecode file: verification failed: function 'main', pc 1 (Return r1): reads register r1, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );

    // Parameters and captures are written on entry; the registers after them are not.
    let mut p = calc();
    p.functions[1].code = vec![Add { dst: 2, a: 0, b: 2 }, Return { src: 2 }];
    assert_eq!(
        verify_error(&p),
        "function 'add', pc 0 (Add r2 r0 r2): reads register r2, which is not written on every path from the function's entry to here (only r0..r1, its parameters and captures, are set on entry)"
    );

    // Written on one branch only.
    let one_branch = |write_both: bool| {
        let code = vec![
            LoadTrue { dst: 0 },
            JumpIfFalse { cond: 0, target: 4 },
            LoadInt { dst: 1, value: 1 },
            Jump { target: 5 },
            if write_both { LoadInt { dst: 1, value: 2 } } else { LoadNil { dst: 2 } },
            Return { src: 1 },
        ];
        with_main(3, code)
    };
    verify(&one_branch(true)).expect("written on both branches");
    assert_eq!(
        verify_error(&one_branch(false)),
        "function 'main', pc 5 (Return r1): reads register r1, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );

    // Written in a loop's body, read at its head (the first time round it is not written).
    let p = with_main(
        3,
        vec![
            LoadInt { dst: 0, value: 0 },
            LoadInt { dst: 1, value: 3 },
            JumpIfNotLt { a: 0, b: 1, target: 6 },
            Move { dst: 2, src: 2 },
            AddImm { dst: 0, a: 0, value: 1 },
            Loop { target: 2 },
            ReturnNil {},
        ],
    );
    assert_eq!(
        verify_error(&p),
        "function 'main', pc 3 (Move r2 r2): reads register r2, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );

    // A `for` loop's variable is written only while the loop goes on: not after it ends.
    let range_loop = |read_after: u16| {
        with_main(
            4,
            vec![
                LoadInt { dst: 0, value: 3 },
                LoadInt { dst: 1, value: 0 },
                ForPrep { base: 0, var: 2, exit: 5 },
                Move { dst: 3, src: 2 },
                ForLoop { base: 0, var: 2, target: 3 },
                Return { src: read_after },
            ],
        )
    };
    verify(&range_loop(1)).expect("the loop state is written");
    assert_eq!(
        verify_error(&range_loop(2)),
        "function 'main', pc 5 (Return r2): reads register r2, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );
    let iter_loop = |read_after: u16| {
        with_main(
            5,
            vec![
                NewList { dst: 0, base: 0, n: 0 },
                IterPrep { base: 1, src: 0 },
                IterNext { base: 1, var: 3, exit: 5 },
                Move { dst: 4, src: 3 },
                Loop { target: 2 },
                Return { src: read_after },
            ],
        )
    };
    verify(&iter_loop(2)).expect("the iteration state is written");
    assert_eq!(
        verify_error(&iter_loop(3)),
        "function 'main', pc 5 (Return r3): reads register r3, which is not written on every path from the function's entry to here (it has no parameters or captures, which are the registers set on entry)"
    );
    // Code nothing reaches is not checked (it never runs).
    let p = with_main(2, vec![ReturnNil {}, Return { src: 1 }]);
    verify(&p).expect("unreachable code");
}

/// The definite-assignment check keeps a bit per register read per join point: a corrupt file
/// with a huge frame and many branches is refused instead of exhausting memory.
#[test]
fn definite_assignment_is_bounded() {
    use Instr::*;
    let mut code = vec![NewList { dst: 0, base: 0, n: 0xffff }];
    for pc in 1..4100u32 {
        code.push(JumpIfFalse { cond: 0, target: pc + 1 });
    }
    code.push(ReturnNil {});
    assert_eq!(
        verify_error(&with_main(0xffff, code)),
        "function 'main': is too large to verify (65535 registers read across 4100 join points); split it into smaller functions"
    );
}

/// Every branching instruction that writes a register names which way out writes it
/// (`verify::conditional_write`): one added to the table without that fails here first.
#[test]
fn branching_writes_are_classified() {
    let branching_with_dst: Vec<&str> = OPCODES
        .iter()
        .filter(|i| i.effects.contains(Effects::BRANCHES))
        .filter(|i| i.operands.iter().any(|(_, r)| *r == molt_vm::opcodes::Role::Dst))
        .map(|i| i.name)
        .collect();
    assert_eq!(branching_with_dst, ["IterNext", "ForPrep", "ForLoop", "UpdateForLoop"]);
}

#[test]
fn rejects_bad_entry_points() {
    let mut p = calc();
    p.init = 3;
    assert_eq!(verify_error(&p), "the globals initialiser is function f3, but the program has 3 functions");

    let mut p = calc();
    p.init = 2;
    assert_eq!(verify_error(&p), "the globals initialiser is 'main', of kind Function, but must be of kind Init");

    let mut p = calc();
    p.main = Some(1);
    assert_eq!(verify_error(&p), "main is 'add', of arity 2, but must take no arguments");

    let mut p = shapes();
    p.transforms[0].func = 6;
    assert_eq!(
        verify_error(&p),
        "the transformer of 'Point' is '<migrate>', of kind Migrate, but must be of kind Transform"
    );

    let mut p = shapes();
    p.migrate = Some(70);
    assert_eq!(verify_error(&p), "the migrate block is function f70, but the program has 7 functions");
}

#[test]
fn rejects_bad_types_and_duplicate_names() {
    let mut p = shapes();
    p.types[0].fields[1] = "x".into();
    assert_eq!(verify_error(&p), "type 'Point' has two fields named 'x'");

    let mut p = shapes();
    p.types[0].defaults.pop();
    assert_eq!(verify_error(&p), "type 'Point' has 2 fields but 1 default entries");

    let mut p = shapes();
    p.types[0].defaults[0] = Some(9);
    assert_eq!(verify_error(&p), "the default of field 'Point.x' is function f9, but the program has 7 functions");

    let mut p = shapes();
    p.types[0].defaults[0] = Some(1);
    assert_eq!(
        verify_error(&p),
        "the default of field 'Point.x' is 'Point.norm2', of kind Method, but must be of kind Function"
    );

    let mut p = shapes();
    p.types[0].methods[0].1 = 2;
    assert_eq!(
        verify_error(&p),
        "method 'Point.norm2' is 'Point.<default y>', of kind Function, but must be of kind Method"
    );

    let mut p = shapes();
    p.types[0].methods.push(("norm2".into(), 1));
    assert_eq!(verify_error(&p), "type 'Point' has two methods named 'norm2'");

    let mut p = shapes();
    p.functions[1].arity = 0;
    p.functions[1].locals.clear();
    assert_eq!(
        verify_error(&p),
        "method 'Point.norm2' is 'Point.norm2', of arity 0, but must take at least its receiver"
    );

    let mut p = calc();
    p.functions[1].name = "main".into();
    assert_eq!(verify_error(&p), "functions f1 and f2 are both named 'main'");

    let mut p = shapes();
    p.types.push(p.types[0].clone());
    assert_eq!(verify_error(&p), "types t0 and t1 are both named 'Point'");
}

// ---------------------------------------------------------------------------------------------
// The verifier's promise: what passes runs in the interpreter without panicking.

/// Loads `q` into a fresh VM and calls every one of its functions (with int arguments). The
/// interrupt flag is raised before each call, so the first loop back-edge ends it; recursion
/// ends in `stack overflow`. Runtime errors are expected; a panic fails the test.
fn run_everything(q: &Program) {
    use molt_vm::{NativeDef, Reads, Value, Vm};
    let mut vm = Vm::new();
    vm.out = Box::new(std::io::sink());
    vm.register_native(NativeDef { name: "print", f: |_, _| Ok(Value::Nil), reads: Reads::World, task: None });
    vm.register_native(NativeDef { name: "len", f: |_, _| Ok(Value::Int(1)), reads: Reads::Contents, task: None });
    if vm.load(q).is_err() {
        return; // an unknown built-in
    }
    for f in &q.functions {
        let Some(slot) = vm.func_slot(&f.name) else { continue };
        vm.signals.interrupt();
        let args = vec![Value::Int(3); f.arity as usize];
        let _ = vm.call_slot(slot, &args);
    }
}

#[test]
fn verified_mutants_run_without_panicking() {
    let mut rng = Rng::new(5);
    let mut ran = 0;
    for (_, p) in programs() {
        run_everything(&p);
        let bytes = mbc::write(&p);
        for _ in 0..400 * scale() {
            if let Ok(q) = mbc::read(&mutate_body(&mut rng, &bytes)) {
                ran += 1;
                run_everything(&q);
            }
            let mut q = p.clone();
            for _ in 0..1 + rng.below(4) {
                mutate_program(&mut rng, &mut q);
            }
            // Sometimes a record layout grows or shrinks under the code using it.
            if let Some(t) = q.types.first_mut().filter(|_| rng.below(4) == 0) {
                if rng.below(2) == 0 {
                    t.fields.push(format!("f{}", rng.below(100)));
                    t.defaults.push(None);
                } else {
                    t.fields.pop();
                    t.defaults.pop();
                }
            }
            if verify(&q).is_ok() {
                ran += 1;
                run_everything(&q);
            }
        }
    }
    assert!(ran > 500 * scale(), "ran {ran}");
}
