//! The facts the opcode table gives about each instruction besides its encoding: what each
//! operand is for (`Role`), what the instruction may do (`Effects`) and which registers it
//! reads and writes (`RegUse`). Analyses (the verifier, lazy-update safety, the JIT's loop
//! specialisers) derive what they need from these rather than keep their own lists.

use std::fmt;

use super::{Instr, OperandKind};

/// What an operand is for (as Lua's `lopcodes.h` opmodes). Each role has one operand kind,
/// which fixes its encoding and the limit the verifier checks it against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A register the instruction writes.
    Dst,
    /// A register the instruction reads.
    Src,
    /// The first register of a run the instruction reads and/or writes (call arguments, list
    /// items, captures, a loop's state); the run's length comes from another operand or is
    /// fixed (see `Instr::reg_use`). With a run of 0 it may equal the frame's size.
    Window,
    /// A constant pool index.
    Const,
    /// An absolute instruction index.
    Jump,
    /// A global slot.
    Global,
    /// A function slot.
    Func,
    /// A record type slot.
    Type,
    /// A name-table index naming a record field.
    Field,
    /// A name-table index naming a method (found on the receiver at run time).
    Method,
    /// A built-in function index.
    Native,
    /// The length of a window (arguments, items, pairs, captures).
    Count,
    /// A small signed immediate.
    Imm,
    /// An update point index into the function's update-point table.
    Point,
}

impl Role {
    /// The operand kind of this role: its encoding and what the verifier checks it against.
    pub const fn kind(self) -> OperandKind {
        match self {
            Role::Dst | Role::Src | Role::Window => OperandKind::Reg,
            Role::Const => OperandKind::Const,
            Role::Jump => OperandKind::Jump,
            Role::Global => OperandKind::Global,
            Role::Func => OperandKind::Func,
            Role::Type => OperandKind::Type,
            Role::Field | Role::Method => OperandKind::Name,
            Role::Native => OperandKind::Native,
            Role::Count => OperandKind::Count,
            Role::Imm => OperandKind::Imm,
            Role::Point => OperandKind::Point,
        }
    }
}

/// What an instruction may do besides writing its destination registers: a set of flags.
/// Each entry of the opcode table must name its effects (`NONE` for none).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Effects(u16);

macro_rules! effects {
    ( $( $(#[doc = $doc:literal])* $name:ident = $bit:expr ),* $(,)? ) => {
        impl Effects {
            /// Only computes its destinations from its registers and operands.
            pub const NONE: Effects = Effects(0);
            $( $(#[doc = $doc])* pub const $name: Effects = Effects(1 << $bit); )*
            const NAMES: &[(Effects, &str)] = &[$( (Effects::$name, stringify!($name)) ),*];
        }
    };
}

effects! {
    /// Reads a mutable object in the heap (a record's fields, a container's items, an
    /// iteration's source). Strings are immutable and do not count.
    READS_HEAP = 0,
    /// Changes an object in the heap.
    WRITES_HEAP = 1,
    /// Reads a global.
    READS_GLOBAL = 2,
    /// Writes a global.
    WRITES_GLOBAL = 3,
    /// May allocate a heap object.
    ALLOCATES = 4,
    /// Runs other code (Molt or built-in), which may have any effect.
    CALLS = 5,
    /// May raise a runtime error.
    MAY_RAISE = 6,
    /// A loop back-edge: the only instructions that jump backward, and the GC safepoints and
    /// interrupt checks that let every loop be interrupted.
    SAFEPOINT = 7,
    /// An update point: an update may be applied here, and a migrated frame resumes at the
    /// next instruction.
    UPDATE_POINT = 8,
    /// May continue at its `Jump` operand.
    BRANCHES = 9,
    /// Never continues at the next instruction by itself (an unconditional jump, a return).
    ENDS = 10,
    /// Leaves the function.
    RETURNS = 11,
    /// Fused with the instruction after it, which it may skip (continuing at pc + 2).
    SKIPS = 12,
}

impl Effects {
    /// Both sets together (`|` in a `const`).
    pub const fn union(self, other: Effects) -> Effects {
        Effects(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Effects) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Effects) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Effects {
    type Output = Effects;
    fn bitor(self, other: Effects) -> Effects {
        self.union(other)
    }
}

impl fmt::Debug for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Effects::NAMES.iter().filter(|(e, _)| self.contains(*e)).map(|(_, n)| *n).collect();
        if names.is_empty() { write!(f, "NONE") } else { write!(f, "{}", names.join(" | ")) }
    }
}

/// The registers an instruction reads and writes, as runs `[start, end)` (a plain register
/// is a run of one). Wider than `u16` so a corrupt window cannot overflow before the
/// verifier rejects it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegUse {
    reads: [(u32, u32); 3],
    nreads: u8,
    writes: [(u32, u32); 2],
    nwrites: u8,
    window: Option<(u32, u32)>,
}

impl RegUse {
    /// Adds a run read (used by the table's generated code).
    pub(super) fn read(&mut self, start: u32, end: u32) {
        if start < end {
            self.reads[self.nreads as usize] = (start, end);
            self.nreads += 1;
        }
    }

    /// Adds a run written.
    pub(super) fn write(&mut self, start: u32, end: u32) {
        if start < end {
            self.writes[self.nwrites as usize] = (start, end);
            self.nwrites += 1;
        }
    }

    /// Records the extent of the instruction's window: its base and how far past it the
    /// runs read or written reach.
    pub(super) fn window(&mut self, base: u32, len: u32) {
        let (_, l) = self.window.unwrap_or((base, 0));
        self.window = Some((base, l.max(len)));
    }

    /// Every register read, in operand order (a register may repeat).
    pub fn reads(self) -> impl Iterator<Item = u16> {
        (0..self.nreads as usize).flat_map(move |i| (self.reads[i].0..self.reads[i].1).map(|r| r as u16))
    }

    /// Every register written, in operand order.
    pub fn writes(self) -> impl Iterator<Item = u16> {
        (0..self.nwrites as usize).flat_map(move |i| (self.writes[i].0..self.writes[i].1).map(|r| r as u16))
    }

    /// The register window: its base and the number of registers from there the instruction
    /// uses, when it has a `Window` operand.
    pub fn window_extent(self) -> Option<(usize, usize)> {
        self.window.map(|(b, n)| (b as usize, n as usize))
    }
}

/// A binary arithmetic operator: what `Add`, `Sub`, `Mul`, `Div` and `Mod` compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A comparison: what `Eq` .. `Ge` compute, and what the fused `JumpIfNot*` test (only the
/// orderings have a fused form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The operator an instruction applies to two registers, when it is one of the arithmetic or
/// comparison instructions. Code that emits an operator (the JIT) selects it from `ArithOp` or
/// `CmpOp` by an exhaustive match, so a new operator is met everywhere one is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    /// `R[dst] := R[a] op R[b]`
    Arith(ArithOp, u16, u16, u16),
    /// `R[dst] := R[a] op R[b]`, a bool
    Compare(CmpOp, u16, u16, u16),
    /// `if not (R[a] op R[b]) goto target`
    FusedCompare(CmpOp, u16, u16, u32),
    /// Anything else.
    Other,
}

impl Instr {
    /// Every instruction classified once (no fallback arm: a new instruction is classified
    /// here before `arith`, `compare` or `fused_compare` can answer for it).
    fn operation(&self) -> Operation {
        use Operation::{Arith, Compare, FusedCompare, Other};
        match *self {
            Instr::Add { dst, a, b } => Arith(ArithOp::Add, dst, a, b),
            Instr::Sub { dst, a, b } => Arith(ArithOp::Sub, dst, a, b),
            Instr::Mul { dst, a, b } => Arith(ArithOp::Mul, dst, a, b),
            Instr::Div { dst, a, b } => Arith(ArithOp::Div, dst, a, b),
            Instr::Mod { dst, a, b } => Arith(ArithOp::Mod, dst, a, b),
            Instr::Eq { dst, a, b } => Compare(CmpOp::Eq, dst, a, b),
            Instr::Ne { dst, a, b } => Compare(CmpOp::Ne, dst, a, b),
            Instr::Lt { dst, a, b } => Compare(CmpOp::Lt, dst, a, b),
            Instr::Le { dst, a, b } => Compare(CmpOp::Le, dst, a, b),
            Instr::Gt { dst, a, b } => Compare(CmpOp::Gt, dst, a, b),
            Instr::Ge { dst, a, b } => Compare(CmpOp::Ge, dst, a, b),
            Instr::JumpIfNotLt { a, b, target } => FusedCompare(CmpOp::Lt, a, b, target),
            Instr::JumpIfNotLe { a, b, target } => FusedCompare(CmpOp::Le, a, b, target),
            Instr::JumpIfNotGt { a, b, target } => FusedCompare(CmpOp::Gt, a, b, target),
            Instr::JumpIfNotGe { a, b, target } => FusedCompare(CmpOp::Ge, a, b, target),
            // `AddImm` and `Neg` have one register operand: not a binary operator.
            Instr::Move { .. }
            | Instr::LoadNil { .. }
            | Instr::LoadTrue { .. }
            | Instr::LoadFalse { .. }
            | Instr::LoadInt { .. }
            | Instr::LoadConst { .. }
            | Instr::GetGlobal { .. }
            | Instr::SetGlobal { .. }
            | Instr::LoadFunc { .. }
            | Instr::LoadNative { .. }
            | Instr::Closure { .. }
            | Instr::AddImm { .. }
            | Instr::Neg { .. }
            | Instr::Not { .. }
            | Instr::Range { .. }
            | Instr::Jump { .. }
            | Instr::Loop { .. }
            | Instr::JumpIfFalse { .. }
            | Instr::JumpIfTrue { .. }
            | Instr::NewList { .. }
            | Instr::NewMap { .. }
            | Instr::NewRecord { .. }
            | Instr::GetField { .. }
            | Instr::SetField { .. }
            | Instr::GetIndex { .. }
            | Instr::SetIndex { .. }
            | Instr::Call { .. }
            | Instr::CallFunc { .. }
            | Instr::CallMethod { .. }
            | Instr::CallNative { .. }
            | Instr::Return { .. }
            | Instr::ReturnNil {}
            | Instr::IterPrep { .. }
            | Instr::IterNext { .. }
            | Instr::ForPrep { .. }
            | Instr::ForLoop { .. }
            | Instr::Update { .. }
            | Instr::UpdateLoop { .. }
            | Instr::UpdateForLoop { .. } => Other,
        }
    }

    /// `(op, dst, a, b)` for `R[dst] := R[a] op R[b]` (`Add` .. `Mod`).
    pub fn arith(&self) -> Option<(ArithOp, u16, u16, u16)> {
        let Operation::Arith(op, dst, a, b) = self.operation() else { return None };
        Some((op, dst, a, b))
    }

    /// `(op, dst, a, b)` for `R[dst] := R[a] op R[b]` (`Eq` .. `Ge`).
    pub fn compare(&self) -> Option<(CmpOp, u16, u16, u16)> {
        let Operation::Compare(op, dst, a, b) = self.operation() else { return None };
        Some((op, dst, a, b))
    }

    /// `(op, a, b, target)` for `if not (R[a] op R[b]) goto target` (`JumpIfNotLt` ..
    /// `JumpIfNotGe`).
    pub fn fused_compare(&self) -> Option<(CmpOp, u16, u16, u32)> {
        let Operation::FusedCompare(op, a, b, target) = self.operation() else { return None };
        Some((op, a, b, target))
    }
}
