//! The one opcode table. Every instruction is defined once, in `opcodes!` below; the macro
//! generates the `Instr` enum the interpreter matches on, the names and operand kinds the
//! disassembler prints, the byte encoding of `.mbc` files and the operand list the verifier
//! checks. Adding an instruction is one entry here plus its case in `interp.rs`.
//!
//! Registers are frame-relative (`R[a]`). `K[k]` is the function's constant pool, `G[g]` the
//! global table, `F[f]` the function table (calls go through it, so an update swaps code by
//! writing a slot), `T[t]` the type table, `N[n]` the program's name table (fields, methods).

/// What an operand refers to: the verifier checks each kind against its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandKind {
    /// A frame register (u16), `< nregs`.
    Reg,
    /// A constant pool index (u32).
    Const,
    /// An absolute instruction index (u32), `< code.len()`.
    Jump,
    /// A global slot (u32).
    Global,
    /// A function slot (u32).
    Func,
    /// A record type slot (u32).
    Type,
    /// A name-table index (u32): a field or method name.
    Name,
    /// A built-in function index (u32).
    Native,
    /// A count (u16): arguments, list items, map pairs.
    Count,
    /// A small signed immediate (i32).
    Imm,
    /// An update point index (u16) into the function's update-point table.
    Point,
}

macro_rules! operand_type {
    (Reg) => {
        u16
    };
    (Const) => {
        u32
    };
    (Jump) => {
        u32
    };
    (Global) => {
        u32
    };
    (Func) => {
        u32
    };
    (Type) => {
        u32
    };
    (Name) => {
        u32
    };
    (Native) => {
        u32
    };
    (Count) => {
        u16
    };
    (Imm) => {
        i32
    };
    (Point) => {
        u16
    };
}

/// Passes a table-reference operand through the linker's mapping; other operands unchanged.
macro_rules! remap_operand {
    (Global, $v:expr, $f:expr) => {
        $f(OperandKind::Global, $v)
    };
    (Func, $v:expr, $f:expr) => {
        $f(OperandKind::Func, $v)
    };
    (Type, $v:expr, $f:expr) => {
        $f(OperandKind::Type, $v)
    };
    (Name, $v:expr, $f:expr) => {
        $f(OperandKind::Name, $v)
    };
    (Native, $v:expr, $f:expr) => {
        $f(OperandKind::Native, $v)
    };
    ($other:ident, $v:expr, $f:expr) => {
        $v
    };
}

/// Error from decoding an instruction stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadOpcode(u8),
}

macro_rules! opcodes {
    ( $( $(#[doc = $doc:literal])* $name:ident { $($field:ident : $kind:ident),* } ),* $(,)? ) => {
        /// One bytecode instruction. See the table in `opcodes.rs` for each one's semantics.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Instr {
            $( $(#[doc = $doc])* $name { $($field: operand_type!($kind)),* } ),*
        }

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u8)]
        enum Code { $($name),* }

        /// Every opcode's name and operand kinds, in opcode order.
        pub const OPCODES: &[(&str, &[(&str, OperandKind)])] = &[
            $( (stringify!($name), &[$((stringify!($field), OperandKind::$kind)),*]) ),*
        ];

        impl Instr {
            /// The mnemonic, as `molt disasm` prints it.
            pub fn name(&self) -> &'static str {
                match self { $( Instr::$name { .. } => stringify!($name) ),* }
            }

            /// The opcode byte.
            pub fn opcode(&self) -> u8 {
                match self { $( Instr::$name { .. } => Code::$name as u8 ),* }
            }

            /// Operands with their names and kinds, widened to i64.
            pub fn operands(&self) -> Vec<(&'static str, OperandKind, i64)> {
                match *self {
                    $( Instr::$name { $($field),* } => vec![$((stringify!($field), OperandKind::$kind, $field as i64)),*] ),*
                }
            }

            /// This instruction with every table reference (global, function, type, name,
            /// built-in) passed through `f`: how the linker maps a program's indices to slots.
            #[allow(unused_variables, clippy::redundant_closure_call)]
            pub fn map_refs(self, f: &mut impl FnMut(OperandKind, u32) -> u32) -> Instr {
                match self {
                    $( Instr::$name { $($field),* } => Instr::$name { $($field: remap_operand!($kind, $field, f)),* } ),*
                }
            }

            /// Appends the little-endian byte encoding: opcode, then each operand at its width.
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.opcode());
                match *self {
                    $( Instr::$name { $($field),* } => { $( out.extend_from_slice(&$field.to_le_bytes()); )* } ),*
                }
            }

            /// Decodes one instruction at `*pos`, advancing it.
            pub fn decode(bytes: &[u8], pos: &mut usize) -> Result<Instr, DecodeError> {
                let op = *bytes.get(*pos).ok_or(DecodeError::Truncated)?;
                *pos += 1;
                $(
                    if op == Code::$name as u8 {
                        $( let $field = {
                            const N: usize = std::mem::size_of::<operand_type!($kind)>();
                            let end = *pos + N;
                            let slice = bytes.get(*pos..end).ok_or(DecodeError::Truncated)?;
                            *pos = end;
                            <operand_type!($kind)>::from_le_bytes(slice.try_into().map_err(|_| DecodeError::Truncated)?)
                        }; )*
                        return Ok(Instr::$name { $($field),* });
                    }
                )*
                Err(DecodeError::BadOpcode(op))
            }
        }
    };
}

opcodes! {
    /// R[dst] := R[src]
    Move { dst: Reg, src: Reg },
    /// R[dst] := nil
    LoadNil { dst: Reg },
    /// R[dst] := true
    LoadTrue { dst: Reg },
    /// R[dst] := false
    LoadFalse { dst: Reg },
    /// R[dst] := value (a small int)
    LoadInt { dst: Reg, value: Imm },
    /// R[dst] := K[k]
    LoadConst { dst: Reg, k: Const },
    /// R[dst] := G[g]
    GetGlobal { dst: Reg, g: Global },
    /// G[g] := R[src]
    SetGlobal { g: Global, src: Reg },
    /// R[dst] := the named function F[f] as a value (late-bound: calls the newest version)
    LoadFunc { dst: Reg, f: Func },
    /// R[dst] := the built-in function B[native] as a value
    LoadNative { dst: Reg, native: Native },
    /// R[dst] := a closure of F[f]'s current code capturing R[base .. base+n]
    Closure { dst: Reg, f: Func, base: Reg, n: Count },
    /// R[dst] := R[a] + R[b]
    Add { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] - R[b]
    Sub { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] * R[b]
    Mul { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] / R[b]
    Div { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] % R[b]
    Mod { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] + value (int immediate)
    AddImm { dst: Reg, a: Reg, value: Imm },
    /// R[dst] := -R[a]
    Neg { dst: Reg, a: Reg },
    /// R[dst] := not R[a]
    Not { dst: Reg, a: Reg },
    /// R[dst] := R[a] == R[b]
    Eq { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] != R[b]
    Ne { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] < R[b]
    Lt { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] <= R[b]
    Le { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] > R[b]
    Gt { dst: Reg, a: Reg, b: Reg },
    /// R[dst] := R[a] >= R[b]
    Ge { dst: Reg, a: Reg, b: Reg },
    /// if not (R[a] < R[b]) goto target  (fused compare-and-branch for loop heads)
    JumpIfNotLt { a: Reg, b: Reg, target: Jump },
    /// if not (R[a] <= R[b]) goto target
    JumpIfNotLe { a: Reg, b: Reg, target: Jump },
    /// if not (R[a] > R[b]) goto target
    JumpIfNotGt { a: Reg, b: Reg, target: Jump },
    /// if not (R[a] >= R[b]) goto target
    JumpIfNotGe { a: Reg, b: Reg, target: Jump },
    /// R[dst] := R[a] .. R[b]
    Range { dst: Reg, a: Reg, b: Reg },
    /// goto target (forward)
    Jump { target: Jump },
    /// goto target (a loop back-edge: a GC safepoint and interrupt check)
    Loop { target: Jump },
    /// if R[cond] is false or nil goto target
    JumpIfFalse { cond: Reg, target: Jump },
    /// if R[cond] is neither false nor nil goto target
    JumpIfTrue { cond: Reg, target: Jump },
    /// R[dst] := [R[base], ..., R[base+n-1]]
    NewList { dst: Reg, base: Reg, n: Count },
    /// R[dst] := {R[base]: R[base+1], ...} with n pairs
    NewMap { dst: Reg, base: Reg, n: Count },
    /// R[dst] := T[ty] { fields R[base .. base+n] in layout order }
    NewRecord { dst: Reg, ty: Type, base: Reg, n: Count },
    /// R[dst] := R[obj].N[name]
    GetField { dst: Reg, obj: Reg, name: Name },
    /// R[obj].N[name] := R[src]
    SetField { obj: Reg, name: Name, src: Reg },
    /// R[dst] := R[obj][R[index]]
    GetIndex { dst: Reg, obj: Reg, index: Reg },
    /// R[obj][R[index]] := R[src]
    SetIndex { obj: Reg, index: Reg, src: Reg },
    /// R[dst] := R[base](R[base+1], ..., R[base+argc])  (call through a value)
    Call { dst: Reg, base: Reg, argc: Count },
    /// R[dst] := F[f](R[base], ..., R[base+argc-1])  (named call through the function table)
    CallFunc { dst: Reg, f: Func, base: Reg, argc: Count },
    /// R[dst] := R[base].N[name](R[base+1], ..., R[base+argc])
    CallMethod { dst: Reg, base: Reg, name: Name, argc: Count },
    /// R[dst] := B[native](R[base], ..., R[base+argc-1])
    CallNative { dst: Reg, native: Native, base: Reg, argc: Count },
    /// return R[src]
    Return { src: Reg },
    /// return nil
    ReturnNil {},
    /// prepare R[base], R[base+1] to iterate over R[src] (list, map keys, range, string chars)
    IterPrep { base: Reg, src: Reg },
    /// R[var] := next item of the iteration in R[base], R[base+1], or goto exit when done
    IterNext { base: Reg, var: Reg, exit: Jump },
    /// for a range loop: R[base] = end, R[base+1] = start (ints); if start >= end goto exit,
    /// else R[var] := start
    ForPrep { base: Reg, var: Reg, exit: Jump },
    /// range loop back-edge (a safepoint): R[base+1] += 1; if R[base+1] < R[base] then
    /// R[var] := R[base+1] and goto target
    ForLoop { base: Reg, var: Reg, target: Jump },
    /// an update point: P[point] in the function's update-point table
    Update { point: Point },
    /// `Update point` fused with the `Loop target` that always follows it (one dispatch for an
    /// update point at the end of a loop body). The plain `Loop` stays for jumps to it and for a
    /// frame resuming after the update point.
    UpdateLoop { point: Point, target: Jump },
    /// `Update point` fused with the `ForLoop base var target` that always follows it; when the
    /// loop ends it continues after that `ForLoop` (pc + 2).
    UpdateForLoop { point: Point, base: Reg, var: Reg, target: Jump },
}

impl OperandKind {
    /// A short prefix for the disassembler (`r3`, `k1`, `@12`, `g0`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            OperandKind::Reg => "r",
            OperandKind::Const => "k",
            OperandKind::Jump => "@",
            OperandKind::Global => "g",
            OperandKind::Func => "f",
            OperandKind::Type => "t",
            OperandKind::Name => "n",
            OperandKind::Native => "b",
            OperandKind::Count => "#",
            OperandKind::Imm => "",
            OperandKind::Point => "p",
        }
    }
}

/// Appends one operand of `kind` with value `v` at its encoded width.
pub fn encode_operand(kind: OperandKind, v: i64, out: &mut Vec<u8>) {
    match kind {
        OperandKind::Reg | OperandKind::Count | OperandKind::Point => out.extend_from_slice(&(v as u16).to_le_bytes()),
        OperandKind::Imm => out.extend_from_slice(&(v as i32).to_le_bytes()),
        _ => out.extend_from_slice(&(v as u32).to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let code = [
            Instr::Move { dst: 1, src: 2 },
            Instr::LoadInt { dst: 0, value: -7 },
            Instr::CallFunc { dst: 3, f: 70000, base: 4, argc: 2 },
            Instr::ReturnNil {},
        ];
        let mut bytes = Vec::new();
        for i in &code {
            i.encode(&mut bytes);
        }
        let mut pos = 0;
        for i in &code {
            assert_eq!(Instr::decode(&bytes, &mut pos).unwrap(), *i);
        }
        assert_eq!(pos, bytes.len());
        assert_eq!(Instr::decode(&bytes[..3], &mut 0), Err(DecodeError::Truncated));
        assert_eq!(Instr::decode(&[250], &mut 0), Err(DecodeError::BadOpcode(250)));
    }

    #[test]
    fn map_refs_touches_only_table_references() {
        let ins = Instr::CallFunc { dst: 1, f: 3, base: 2, argc: 1 };
        let mapped = ins.map_refs(&mut |kind, v| if kind == OperandKind::Func { v + 100 } else { 999 });
        assert_eq!(mapped, Instr::CallFunc { dst: 1, f: 103, base: 2, argc: 1 });
        let g = Instr::GetGlobal { dst: 4, g: 1 }.map_refs(&mut |_, v| v * 10);
        assert_eq!(g, Instr::GetGlobal { dst: 4, g: 10 });
    }

    #[test]
    fn table_matches_enum() {
        assert_eq!(OPCODES[Instr::Move { dst: 0, src: 0 }.opcode() as usize].0, "Move");
        let last = Instr::UpdateForLoop { point: 0, base: 0, var: 0, target: 0 };
        assert_eq!(OPCODES.len(), last.opcode() as usize + 1);
    }
}
