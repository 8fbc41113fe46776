//! The one opcode table. Every instruction is defined once, in `opcodes!` below, with what
//! each operand is for (`Role`: destination, source, register window, jump target, table
//! reference...) and what the instruction may do (`Effects`), as Lua 5.4's `lopcodes.h`
//! opmodes. The macro (`opcodes/table_macro.rs`) generates the `Instr` enum the interpreter
//! matches on, the names and operand kinds the disassembler prints, the byte encoding of
//! `.mbc` files, and the facts analyses derive what they need from (`Instr::reg_use`,
//! `effects`, `target`, `update_point`, `unfused`). Adding an instruction is one entry here,
//! which must classify it, plus its case in `interp.rs` and in every exhaustive match.
//!
//! Registers are frame-relative (`R[a]`). `K[k]` is the function's constant pool, `G[g]` the
//! global table, `F[f]` the function table (calls go through it, so an update swaps code by
//! writing a slot), `T[t]` the type table, `N[n]` the program's name table (fields, methods).

mod facts;
#[macro_use]
mod table_macro;

pub use facts::{ArithOp, CmpOp, Effects, RegUse, Role};

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

/// Error from decoding an instruction stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadOpcode(u8),
}

/// One opcode's entry in the table: its name, its operands' names and roles, its effects.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub name: &'static str,
    pub operands: &'static [(&'static str, Role)],
    pub effects: Effects,
}

opcodes! {
    /// R[dst] := R[src]
    Move { dst: Dst, src: Src } => NONE,
    /// R[dst] := nil
    LoadNil { dst: Dst } => NONE,
    /// R[dst] := true
    LoadTrue { dst: Dst } => NONE,
    /// R[dst] := false
    LoadFalse { dst: Dst } => NONE,
    /// R[dst] := value (a small int)
    LoadInt { dst: Dst, value: Imm } => NONE,
    /// R[dst] := K[k]
    LoadConst { dst: Dst, k: Const } => NONE,
    /// R[dst] := G[g]
    GetGlobal { dst: Dst, g: Global } => READS_GLOBAL,
    /// G[g] := R[src]
    SetGlobal { g: Global, src: Src } => WRITES_GLOBAL,
    /// R[dst] := the named function F[f] as a value (late-bound: calls the newest version)
    LoadFunc { dst: Dst, f: Func } => NONE,
    /// R[dst] := the built-in function B[native] as a value
    LoadNative { dst: Dst, native: Native } => NONE,
    /// R[dst] := a closure of F[f]'s current code capturing R[base .. base+n]
    Closure { dst: Dst, f: Func, base: Window(reads 0..n), n: Count } => ALLOCATES | MAY_RAISE,
    /// R[dst] := R[a] + R[b]  (strings: a new string)
    Add { dst: Dst, a: Src, b: Src } => ALLOCATES | MAY_RAISE,
    /// R[dst] := R[a] - R[b]
    Sub { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] * R[b]
    Mul { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] / R[b]
    Div { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] % R[b]
    Mod { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] + value (int immediate)
    AddImm { dst: Dst, a: Src, value: Imm } => MAY_RAISE,
    /// R[dst] := -R[a]
    Neg { dst: Dst, a: Src } => MAY_RAISE,
    /// R[dst] := not R[a]
    Not { dst: Dst, a: Src } => NONE,
    /// R[dst] := R[a] == R[b]  (by value for strings, by identity for objects)
    Eq { dst: Dst, a: Src, b: Src } => NONE,
    /// R[dst] := R[a] != R[b]
    Ne { dst: Dst, a: Src, b: Src } => NONE,
    /// R[dst] := R[a] < R[b]
    Lt { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] <= R[b]
    Le { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] > R[b]
    Gt { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// R[dst] := R[a] >= R[b]
    Ge { dst: Dst, a: Src, b: Src } => MAY_RAISE,
    /// if not (R[a] < R[b]) goto target  (fused compare-and-branch for loop heads)
    JumpIfNotLt { a: Src, b: Src, target: Jump } => BRANCHES | MAY_RAISE,
    /// if not (R[a] <= R[b]) goto target
    JumpIfNotLe { a: Src, b: Src, target: Jump } => BRANCHES | MAY_RAISE,
    /// if not (R[a] > R[b]) goto target
    JumpIfNotGt { a: Src, b: Src, target: Jump } => BRANCHES | MAY_RAISE,
    /// if not (R[a] >= R[b]) goto target
    JumpIfNotGe { a: Src, b: Src, target: Jump } => BRANCHES | MAY_RAISE,
    /// R[dst] := R[a] .. R[b]
    Range { dst: Dst, a: Src, b: Src } => ALLOCATES | MAY_RAISE,
    /// goto target (forward)
    Jump { target: Jump } => BRANCHES | ENDS,
    /// goto target (a loop back-edge: a GC safepoint and interrupt check)
    Loop { target: Jump } => BRANCHES | ENDS | SAFEPOINT | MAY_RAISE,
    /// if R[cond] is false or nil goto target
    JumpIfFalse { cond: Src, target: Jump } => BRANCHES,
    /// if R[cond] is neither false nor nil goto target
    JumpIfTrue { cond: Src, target: Jump } => BRANCHES,
    /// R[dst] := [R[base], ..., R[base+n-1]]
    NewList { dst: Dst, base: Window(reads 0..n), n: Count } => ALLOCATES | MAY_RAISE,
    /// R[dst] := {R[base]: R[base+1], ...} with n pairs
    NewMap { dst: Dst, base: Window(reads 0..2 * n), n: Count } => ALLOCATES | MAY_RAISE,
    /// R[dst] := T[ty] { fields R[base .. base+n] in layout order }
    NewRecord { dst: Dst, ty: Type, base: Window(reads 0..n), n: Count } => ALLOCATES | MAY_RAISE,
    /// R[dst] := R[obj].N[name]
    GetField { dst: Dst, obj: Src, name: Field } => READS_HEAP | MAY_RAISE,
    /// R[obj].N[name] := R[src]
    SetField { obj: Src, name: Field, src: Src } => WRITES_HEAP | MAY_RAISE,
    /// R[dst] := R[obj][R[index]]  (a string's character is a new string)
    GetIndex { dst: Dst, obj: Src, index: Src } => READS_HEAP | ALLOCATES | MAY_RAISE,
    /// R[obj][R[index]] := R[src]
    SetIndex { obj: Src, index: Src, src: Src } => WRITES_HEAP | MAY_RAISE,
    /// R[dst] := R[base](R[base+1], ..., R[base+argc])  (call through a value)
    Call { dst: Dst, base: Window(reads 0..argc + 1), argc: Count } => CALLS | MAY_RAISE,
    /// R[dst] := F[f](R[base], ..., R[base+argc-1])  (named call through the function table)
    CallFunc { dst: Dst, f: Func, base: Window(reads 0..argc), argc: Count } => CALLS | MAY_RAISE,
    /// R[dst] := R[base].N[name](R[base+1], ..., R[base+argc])
    CallMethod { dst: Dst, base: Window(reads 0..argc + 1), name: Method, argc: Count } => CALLS | MAY_RAISE,
    /// R[dst] := B[native](R[base], ..., R[base+argc-1])
    CallNative { dst: Dst, native: Native, base: Window(reads 0..argc), argc: Count } => CALLS | MAY_RAISE,
    /// return R[src]
    Return { src: Src } => RETURNS | ENDS,
    /// return nil
    ReturnNil {} => RETURNS | ENDS,
    /// prepare R[base], R[base+1] to iterate over R[src] (list, map keys, range, string chars)
    IterPrep { base: Window(writes 0..2), src: Src } => READS_HEAP | ALLOCATES | MAY_RAISE,
    /// R[var] := next item of the iteration in R[base], R[base+1], or goto exit when done
    IterNext { base: Window(reads 0..2, writes 1..2), var: Dst, exit: Jump }
        => READS_HEAP | ALLOCATES | BRANCHES | MAY_RAISE,
    /// for a range loop: R[base] = end, R[base+1] = start (ints); if start >= end goto exit,
    /// else R[var] := start
    ForPrep { base: Window(reads 0..2), var: Dst, exit: Jump } => BRANCHES | MAY_RAISE,
    /// range loop back-edge (a safepoint): R[base+1] += 1; if R[base+1] < R[base] then
    /// R[var] := R[base+1] and goto target
    ForLoop { base: Window(reads 0..2, writes 1..2), var: Dst, target: Jump } => BRANCHES | SAFEPOINT | MAY_RAISE,
    /// an update point: P[point] in the function's update-point table
    Update { point: Point } => UPDATE_POINT,
    /// `Update point` fused with the `Loop target` that always follows it (one dispatch for an
    /// update point at the end of a loop body). The plain `Loop` stays for jumps to it and for a
    /// frame resuming after the update point.
    UpdateLoop { point: Point, target: Jump } => UPDATE_POINT | BRANCHES | SAFEPOINT | MAY_RAISE;
        unfused Loop { target },
    /// `Update point` fused with the `ForLoop base var target` that always follows it; when the
    /// loop ends it continues after that `ForLoop` (pc + 2).
    UpdateForLoop { point: Point, base: Window(reads 0..2, writes 1..2), var: Dst, target: Jump }
        => UPDATE_POINT | BRANCHES | SAFEPOINT | SKIPS | MAY_RAISE;
        unfused ForLoop { base, var, target },
}

impl Instr {
    /// Where control can go after this instruction at `pc`: the next instruction unless it
    /// `ENDS` (an update point's next is where a migrated frame resumes), pc + 2 when it
    /// `SKIPS`, and its jump target.
    pub fn successors(&self, pc: usize) -> impl Iterator<Item = usize> {
        let e = self.effects();
        let next = (!e.contains(Effects::ENDS)).then_some(pc + 1);
        let skip = e.contains(Effects::SKIPS).then_some(pc + 2);
        next.into_iter().chain(skip).chain(self.target())
    }

    /// Calls `f` with each register the instruction reads (windows included).
    pub fn for_each_read(&self, f: impl FnMut(u16)) {
        self.reg_use().reads().for_each(f)
    }

    /// Calls `f` with each register the instruction writes (windows included).
    pub fn for_each_write(&self, f: impl FnMut(u16)) {
        self.reg_use().writes().for_each(f)
    }
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
        OperandKind::Const
        | OperandKind::Jump
        | OperandKind::Global
        | OperandKind::Func
        | OperandKind::Type
        | OperandKind::Name
        | OperandKind::Native => out.extend_from_slice(&(v as u32).to_le_bytes()),
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
        assert_eq!(OPCODES[Instr::Move { dst: 0, src: 0 }.opcode() as usize].name, "Move");
        let last = Instr::UpdateForLoop { point: 0, base: 0, var: 0, target: 0 };
        assert_eq!(OPCODES.len(), last.opcode() as usize + 1);
    }

    /// Every opcode, its operands all zero but window lengths `n`.
    fn every_opcode(n: i64) -> Vec<Instr> {
        (0..OPCODES.len())
            .map(|op| {
                let mut bytes = vec![op as u8];
                for (_, role) in OPCODES[op].operands {
                    let v = if *role == Role::Count { n } else { 0 };
                    encode_operand(role.kind(), v, &mut bytes);
                }
                Instr::decode(&bytes, &mut 0).unwrap()
            })
            .collect()
    }

    #[test]
    fn registers_read_and_written() {
        let regs = |i: Instr| (i.reg_use().reads().collect::<Vec<_>>(), i.reg_use().writes().collect::<Vec<_>>());
        assert_eq!(regs(Instr::Add { dst: 1, a: 2, b: 3 }), (vec![2, 3], vec![1]));
        assert_eq!(regs(Instr::CallMethod { dst: 0, base: 4, name: 0, argc: 2 }), (vec![4, 5, 6], vec![0]));
        assert_eq!(regs(Instr::NewMap { dst: 0, base: 1, n: 2 }), (vec![1, 2, 3, 4], vec![0]));
        assert_eq!(regs(Instr::IterPrep { base: 3, src: 1 }), (vec![1], vec![3, 4]));
        assert_eq!(regs(Instr::IterNext { base: 3, var: 5, exit: 0 }), (vec![3, 4], vec![4, 5]));
        assert_eq!(regs(Instr::ForPrep { base: 3, var: 5, exit: 0 }), (vec![3, 4], vec![5]));
        assert_eq!(Instr::NewList { dst: 0, base: 7, n: 0 }.reg_use().window_extent(), Some((7, 0)));
        assert_eq!(Instr::ForLoop { base: 7, var: 9, target: 0 }.reg_use().window_extent(), Some((7, 2)));
        assert_eq!(Instr::Move { dst: 0, src: 1 }.reg_use().window_extent(), None);
    }

    #[test]
    fn operand_facts_follow_the_roles() {
        for (ins, info) in every_opcode(1).iter().zip(OPCODES) {
            let has = |r: Role| info.operands.iter().any(|(_, role)| *role == r);
            assert_eq!(ins.target().is_some(), has(Role::Jump), "{}", info.name);
            assert_eq!(ins.update_point().is_some(), has(Role::Point), "{}", info.name);
            assert_eq!(ins.reg_use().window_extent().is_some(), has(Role::Window), "{}", info.name);
            assert_eq!(ins.effects(), info.effects, "{}", info.name);
            // A branch has a target; an update point with a back-edge names its unfused form.
            assert_eq!(info.effects.contains(Effects::BRANCHES), has(Role::Jump), "{}", info.name);
            let fused = info.effects.contains(Effects::UPDATE_POINT | Effects::SAFEPOINT);
            assert_eq!(ins.unfused().is_some(), fused, "{}", info.name);
        }
    }

    #[test]
    fn successors_from_effects() {
        let succ = |i: Instr| i.successors(10).collect::<Vec<_>>();
        assert_eq!(succ(Instr::Add { dst: 0, a: 0, b: 0 }), vec![11]);
        assert_eq!(succ(Instr::Jump { target: 20 }), vec![20]);
        assert_eq!(succ(Instr::Loop { target: 2 }), vec![2]);
        assert_eq!(succ(Instr::ReturnNil {}), Vec::<usize>::new());
        assert_eq!(succ(Instr::JumpIfFalse { cond: 0, target: 20 }), vec![11, 20]);
        assert_eq!(succ(Instr::UpdateForLoop { point: 0, base: 0, var: 2, target: 3 }), vec![11, 12, 3]);
    }

    #[test]
    fn operators_follow_the_names() {
        // The operator facts agree with the mnemonics: `Add` .. `Mod` are arithmetic, `Eq` ..
        // `Ge` comparisons, `JumpIfNot<op>` their fused forms, and nothing else is any.
        for ins in every_opcode(1) {
            let name = ins.name();
            let arith = ins.arith().map(|(op, ..)| format!("{op:?}"));
            assert_eq!(arith.as_deref(), ["Add", "Sub", "Mul", "Div", "Mod"].contains(&name).then_some(name), "{name}");
            let compare = ins.compare().map(|(op, ..)| format!("{op:?}"));
            assert_eq!(
                compare.as_deref(),
                ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"].contains(&name).then_some(name),
                "{name}"
            );
            let fused = ins.fused_compare().map(|(op, ..)| format!("JumpIfNot{op:?}"));
            assert_eq!(fused.as_deref(), name.starts_with("JumpIfNot").then_some(name), "{name}");
        }
        assert_eq!(Instr::Sub { dst: 1, a: 2, b: 3 }.arith(), Some((ArithOp::Sub, 1, 2, 3)));
        assert_eq!(Instr::Ge { dst: 1, a: 2, b: 3 }.compare(), Some((CmpOp::Ge, 1, 2, 3)));
        assert_eq!(Instr::JumpIfNotLe { a: 2, b: 3, target: 9 }.fused_compare(), Some((CmpOp::Le, 2, 3, 9)));
    }
}
