//! The loop specialisers: loops compiled a second time, besides their general translation,
//! for bodies that do only what a specialised version can keep in machine values. `int`:
//! counting loops over int arithmetic and moves, in machine registers. `typed`: counting
//! loops and loops over lists whose body is arithmetic, field and list access, with each
//! register's type known from one instruction to the next. Both take their bodies from the
//! one classification here (`body`) and their registers from the opcode table.

use cranelift_codegen::ir::Block;
use molt_vm::{Instr, Value};

use super::{Gen, Intrinsics};

pub(super) mod int;
pub(super) mod typed;

pub(super) use int::IntLoop;
pub(super) use typed::TypedLoop;

/// What the loop specialisers make of a body instruction; every instruction is listed, so a
/// new one is classified here before either version meets it.
pub(super) enum Body {
    /// Int arithmetic, moves and globals: both versions (the int one keeps them in machine
    /// registers).
    Int(IntStep),
    /// The typed version only: division, negation, numeric constants, `sqrt`, `len` of a
    /// list, field and list reads, field writes.
    Typed,
    /// Ends a specialised body.
    Other,
}

/// An instruction of an int loop body.
#[derive(Clone, Copy)]
pub(super) enum IntStep {
    Move {
        dst: u16,
        src: u16,
    },
    Load {
        dst: u16,
        value: i64,
    },
    AddImm {
        dst: u16,
        a: u16,
        value: i64,
    },
    Arith {
        op: IntArith,
        dst: u16,
        a: u16,
        b: u16,
    },
    /// Globals change only by stores and by updates (which happen at update points, never
    /// inside a specialised body): long-lived state belongs in them, so loops keep them too.
    GetGlobal {
        dst: u16,
        g: u32,
    },
    SetGlobal {
        g: u32,
        src: u16,
    },
}

#[derive(Clone, Copy)]
pub(super) enum IntArith {
    Add,
    Sub,
    Mul,
}

/// How the specialisers treat `i`, given the function's constants and the built-ins compiled
/// inline (the int version passes none: it handles no constant and no call).
pub(super) fn body(i: &Instr, consts: &[Value], intrinsics: Intrinsics) -> Body {
    use Instr::*;
    let arith = |op, dst, a, b| Body::Int(IntStep::Arith { op, dst, a, b });
    match *i {
        Move { dst, src } => Body::Int(IntStep::Move { dst, src }),
        LoadInt { dst, value } => Body::Int(IntStep::Load { dst, value: value as i64 }),
        AddImm { dst, a, value } => Body::Int(IntStep::AddImm { dst, a, value: value as i64 }),
        Add { dst, a, b } => arith(IntArith::Add, dst, a, b),
        Sub { dst, a, b } => arith(IntArith::Sub, dst, a, b),
        Mul { dst, a, b } => arith(IntArith::Mul, dst, a, b),
        Div { .. } | Mod { .. } | Neg { .. } | GetField { .. } | GetIndex { .. } | SetField { .. } => Body::Typed,
        GetGlobal { dst, g } => Body::Int(IntStep::GetGlobal { dst, g }),
        SetGlobal { g, src } => Body::Int(IntStep::SetGlobal { g, src }),
        LoadConst { k, .. } if matches!(consts.get(k as usize), Some(Value::Int(_) | Value::Float(_))) => Body::Typed,
        CallNative { native, argc: 1, .. } if intrinsics.sqrt == Some(native) => Body::Typed,
        CallNative { native, argc: 1, .. } if intrinsics.len == Some(native) => Body::Typed,
        LoadConst { .. }
        | CallNative { .. }
        | LoadNil { .. }
        | LoadTrue { .. }
        | LoadFalse { .. }
        | LoadFunc { .. }
        | LoadNative { .. }
        | Closure { .. }
        | Not { .. }
        | Eq { .. }
        | Ne { .. }
        | Lt { .. }
        | Le { .. }
        | Gt { .. }
        | Ge { .. }
        | JumpIfNotLt { .. }
        | JumpIfNotLe { .. }
        | JumpIfNotGt { .. }
        | JumpIfNotGe { .. }
        | Range { .. }
        | Jump { .. }
        | Loop { .. }
        | JumpIfFalse { .. }
        | JumpIfTrue { .. }
        | NewList { .. }
        | NewMap { .. }
        | NewRecord { .. }
        | SetIndex { .. }
        | Call { .. }
        | CallFunc { .. }
        | CallMethod { .. }
        | Return { .. }
        | ReturnNil {}
        | IterPrep { .. }
        | IterNext { .. }
        | ForPrep { .. }
        | ForLoop { .. }
        | Update { .. }
        | UpdateLoop { .. }
        | UpdateForLoop { .. } => Body::Other,
    }
}

/// When the instruction at `pc` is the back-edge of the counting loop over `base`/`var`
/// whose body starts at `start` (a `ForLoop`, or an `UpdateForLoop` followed by its
/// `ForLoop`): the back-edge and where the loop continues when it ends.
pub(super) fn counting_back_edge(
    code: &[Instr],
    pc: usize,
    base: u16,
    var: u16,
    start: usize,
) -> Option<(usize, usize)> {
    let ins = code.get(pc)?;
    let (edge, done) = match ins.unfused() {
        // The fused form is followed by its `ForLoop`, which it skips when the loop ends.
        Some(plain) if matches!(code.get(pc + 1), Some(Instr::ForLoop { .. })) => (plain, pc + 2),
        Some(_) => return None,
        None => (*ins, pc + 1),
    };
    (edge == Instr::ForLoop { base, var, target: start as u32 }).then_some((pc, done))
}

impl Gen<'_, '_> {
    /// Where a loop body starting at `start` is entered: the int version's check when it has
    /// one (which goes on to the typed version when its registers are not all ints), else the
    /// typed version, else the body.
    pub(super) fn loop_entry(&self, start: usize) -> Block {
        if let Some((_, check)) = self.int_loops.iter().find(|(l, _)| l.start == start) {
            return *check;
        }
        self.typed_loop_entry(start).unwrap_or(self.blocks[start])
    }

    /// The typed version's entry of the loop whose body starts at `start`, if it has one.
    pub(super) fn typed_loop_entry(&self, start: usize) -> Option<Block> {
        self.typed_loops.iter().find(|(l, _)| l.start == start).map(|(_, entry)| *entry)
    }
}
