//! Per-function compile state: registers, scopes, loops, and emitting instructions.
//! Registers are allocated like a stack: locals first, temporaries above them, freed in order,
//! so a call's arguments always sit at the top and become the callee's first registers.

use std::collections::HashMap;

use molt_vm::{Const, FnKind, Instr, LocalInfo, LocalRole, Proto};

#[derive(Clone, Debug)]
pub struct Local {
    pub name: String,
    pub role: LocalRole,
    pub reg: u16,
    pub start: u32,
}

#[derive(Default)]
pub struct LoopCtx {
    pub breaks: Vec<usize>,
    pub continues: Vec<usize>,
}

pub struct FnState {
    pub proto: Proto,
    pub scopes: Vec<Vec<Local>>,
    /// Per name, the registers of the locals in scope with it, innermost last: a lookup does
    /// not walk the scopes (thousands of nested blocks made compiling quadratic).
    visible: HashMap<String, Vec<u16>>,
    pub next_reg: u16,
    pub max_reg: u16,
    /// Captured names of a lambda and their registers (read-only).
    pub captures: Vec<(String, u16)>,
    pub loops: Vec<LoopCtx>,
    /// The record type whose method this is.
    pub self_type: Option<String>,
    pub unlabelled_points: u32,
    pub line: u32,
    pub lambdas: u32,
    /// Set once a register limit was hit (reported once).
    pub overflowed: bool,
}

/// Registers a frame may use: operands are u16.
pub const MAX_REGS: u16 = 60_000;

impl FnState {
    pub fn new(name: String, kind: FnKind, version: u32, arity: u16, file: u32, line: u32) -> FnState {
        FnState {
            proto: Proto {
                name,
                kind,
                version,
                arity,
                ncaptures: 0,
                nregs: 0,
                file,
                line,
                code: Vec::new(),
                lines: Vec::new(),
                consts: Vec::new(),
                locals: Vec::new(),
                update_points: Vec::new(),
            },
            scopes: vec![Vec::new()],
            visible: HashMap::new(),
            next_reg: 0,
            max_reg: 0,
            captures: Vec::new(),
            loops: Vec::new(),
            self_type: None,
            unlabelled_points: 0,
            line,
            lambdas: 0,
            overflowed: false,
        }
    }

    pub fn pc(&self) -> usize {
        self.proto.code.len()
    }

    pub fn emit(&mut self, ins: Instr) -> usize {
        self.proto.code.push(ins);
        self.proto.lines.push(self.line);
        self.proto.code.len() - 1
    }

    /// Emits a loop back-edge (`Loop`). An update point right before it is fused
    /// into it (`UpdateLoop`, `UpdateForLoop`: one dispatch per iteration for both); the plain
    /// back-edge still follows, for jumps to it (`continue`) and for a frame that resumes after
    /// the update point.
    pub fn emit_loop(&mut self, target: u32) -> usize {
        if let Some(&Instr::Update { point }) = self.proto.code.last() {
            *self.proto.code.last_mut().unwrap() = Instr::UpdateLoop { point, target };
        }
        self.emit(Instr::Loop { target })
    }

    /// `emit_loop` for a counting loop's back-edge (`ForLoop`, fused as `UpdateForLoop`).
    pub fn emit_for_loop(&mut self, base: u16, var: u16, target: u32) -> usize {
        if let Some(&Instr::Update { point }) = self.proto.code.last() {
            *self.proto.code.last_mut().unwrap() = Instr::UpdateForLoop { point, base, var, target };
        }
        self.emit(Instr::ForLoop { base, var, target })
    }

    /// Points the jump at `at` to `target`.
    pub fn patch(&mut self, at: usize, target: usize) {
        self.proto.code[at] = self.proto.code[at].with_target(target as u32);
    }

    /// Points a `continue` at `target`: a back-edge (`Loop`, a safepoint) when it jumps back.
    pub fn patch_continue(&mut self, at: usize, target: usize) {
        self.proto.code[at] =
            if target <= at { Instr::Loop { target: target as u32 } } else { Instr::Jump { target: target as u32 } };
    }

    pub fn alloc(&mut self) -> u16 {
        self.alloc_n(1)
    }

    /// `n` consecutive fresh registers; returns the first.
    pub fn alloc_n(&mut self, n: usize) -> u16 {
        let first = self.next_reg;
        let end = (first as usize + n).min(MAX_REGS as usize);
        if first as usize + n > MAX_REGS as usize {
            self.overflowed = true;
        }
        self.next_reg = end as u16;
        self.max_reg = self.max_reg.max(self.next_reg);
        first
    }

    /// Frees registers back to `mark` (a value of `next_reg` taken earlier).
    pub fn free_to(&mut self, mark: u16) {
        self.next_reg = mark;
    }

    pub fn constant(&mut self, c: Const) -> u32 {
        if let Some(i) = self.proto.consts.iter().position(|k| match (k, &c) {
            (Const::Float(a), Const::Float(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }) {
            return i as u32;
        }
        self.proto.consts.push(c);
        (self.proto.consts.len() - 1) as u32
    }

    pub fn push_scope(&mut self) {
        self.scopes.push(Vec::new());
    }

    /// Closes the innermost scope: its locals' live ranges end here and their registers free.
    pub fn pop_scope(&mut self) {
        let scope = self.scopes.pop().unwrap_or_default();
        let end = self.pc() as u32;
        if let Some(first) = scope.first() {
            self.next_reg = first.reg;
        }
        for l in scope {
            if l.role == LocalRole::Named
                && let Some(regs) = self.visible.get_mut(&l.name)
            {
                regs.pop();
            }
            self.proto.locals.push(LocalInfo { name: l.name, role: l.role, reg: l.reg, start: l.start, end });
        }
    }

    /// Declares a local living in `reg` from now on.
    pub fn declare(&mut self, name: &str, reg: u16) {
        self.declare_hidden(name, LocalRole::Named, reg);
        self.visible.entry(name.to_string()).or_default().push(reg);
    }

    /// Declares a local that code cannot name (a `for` loop's state, `role`, for loop variable
    /// `name`): it is recorded for frame migration only.
    pub fn declare_hidden(&mut self, name: &str, role: LocalRole, reg: u16) {
        let start = self.pc() as u32;
        self.scopes.last_mut().unwrap().push(Local { name: name.to_string(), role, reg, start });
    }

    pub fn lookup_local(&self, name: &str) -> Option<u16> {
        self.visible.get(name).and_then(|regs| regs.last()).copied()
    }

    pub fn lookup_capture(&self, name: &str) -> Option<u16> {
        self.captures.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
    }

    /// Finishes the function: a final `return nil`, the register count, remaining locals.
    pub fn finish(mut self) -> Proto {
        self.emit(Instr::ReturnNil {});
        while !self.scopes.is_empty() {
            self.pop_scope();
        }
        self.proto.nregs = (self.max_reg.max(self.proto.arity + self.proto.ncaptures)).max(1);
        self.proto
    }
}
