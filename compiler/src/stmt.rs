//! Statements and blocks.

use molt_vm::{Instr, LocalRole, UpdatePoint};

use crate::ast::{BinOp, Block, Expr, ExprKind, Stmt};
use crate::compile::Compiler;
use crate::expr::Resolved;
use crate::func::LoopCtx;

impl Compiler<'_> {
    /// A function's body: statements in the function's outermost scope.
    pub(crate) fn block_body(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    /// A nested block with its own scope.
    fn block(&mut self, b: &Block) {
        let mark = self.f().next_reg;
        self.f().push_scope();
        for s in &b.stmts {
            self.stmt(s);
        }
        self.f().pop_scope();
        self.f().free_to(mark);
    }

    fn stmt(&mut self, s: &Stmt) {
        let mark = self.f().next_reg;
        match s {
            Stmt::Let { name, init } => {
                let r = self.f().alloc();
                self.expr(init, r);
                self.f().declare(&name.name, r);
                return; // the register stays allocated for the local
            }
            Stmt::Assign { target, op, value, span } => {
                let line = self.line_of(*span);
                self.f().line = line;
                self.assign(target, *op, value);
            }
            Stmt::If { cond, then, otherwise, .. } => {
                let line = self.line_of(cond.span);
                self.f().line = line;
                let jumps = self.jump_if_false(cond);
                self.block(then);
                match otherwise {
                    Some(o) => {
                        let skip = self.f().emit(Instr::Jump { target: 0 });
                        let here = self.f().pc();
                        jumps.into_iter().for_each(|j| self.f().patch(j, here));
                        self.stmt(o);
                        let end = self.f().pc();
                        self.f().patch(skip, end);
                    }
                    None => {
                        let here = self.f().pc();
                        jumps.into_iter().for_each(|j| self.f().patch(j, here));
                    }
                }
            }
            Stmt::Block(b) => self.block(b),
            Stmt::While { cond, body, .. } => {
                let top = self.f().pc();
                let line = self.line_of(cond.span);
                self.f().line = line;
                let exits = self.jump_if_false(cond);
                self.loop_body(body, top, exits);
            }
            Stmt::Loop { body, .. } => {
                let top = self.f().pc();
                self.loop_body(body, top, Vec::new());
            }
            Stmt::For { var, iter, body, span } => {
                let line = self.line_of(*span);
                self.f().line = line;
                self.f().push_scope();
                let state = self.f().alloc_n(2);
                if let ExprKind::Range(a, b) = &iter.kind {
                    // `for x in a..b`: a counting loop, one instruction per iteration.
                    self.expr(a, state + 1);
                    self.expr(b, state);
                    self.f().line = line;
                    self.f().declare_hidden(&var.name, LocalRole::ForRangeEnd, state);
                    self.f().declare_hidden(&var.name, LocalRole::ForRangeNext, state + 1);
                    let v = self.f().alloc();
                    let prep = self.f().emit(Instr::ForPrep { base: state, var: v, exit: 0 });
                    let body_start = self.f().pc();
                    self.f().push_scope();
                    self.f().declare(&var.name, v);
                    self.f().loops.push(LoopCtx::default());
                    self.block(body);
                    let back = self.f().pc();
                    self.f().emit_for_loop(state, v, body_start as u32);
                    let end = self.f().pc();
                    let ctx = self.f().loops.pop().unwrap();
                    self.f().patch(prep, end);
                    ctx.breaks.into_iter().for_each(|j| self.f().patch(j, end));
                    ctx.continues.into_iter().for_each(|j| self.f().patch_continue(j, back));
                    self.f().pop_scope();
                    self.f().pop_scope();
                } else {
                    let src = self.expr_any(iter);
                    self.f().line = line;
                    self.f().emit(Instr::IterPrep { base: state, src });
                    self.f().free_to(state + 2);
                    // Hidden loop state: recorded so that frame migration can match `for` chains.
                    self.f().declare_hidden(&var.name, LocalRole::ForState, state);
                    self.f().declare_hidden(&var.name, LocalRole::ForNext, state + 1);
                    let v = self.f().alloc();
                    let top = self.f().pc();
                    let next = self.f().emit(Instr::IterNext { base: state, var: v, exit: 0 });
                    self.f().push_scope();
                    self.f().declare(&var.name, v);
                    self.loop_body(body, top, vec![next]);
                    self.f().pop_scope();
                    self.f().pop_scope();
                }
            }
            Stmt::Break(span) => {
                if self.f().loops.is_empty() {
                    self.error("E0012", "'break' outside of a loop", *span);
                } else {
                    let j = self.f().emit(Instr::Jump { target: 0 });
                    self.f().loops.last_mut().unwrap().breaks.push(j);
                }
            }
            Stmt::Continue(span) => {
                if self.f().loops.is_empty() {
                    self.error("E0012", "'continue' outside of a loop", *span);
                } else {
                    let j = self.f().emit(Instr::Jump { target: 0 });
                    self.f().loops.last_mut().unwrap().continues.push(j);
                }
            }
            Stmt::Return { value, span } => {
                let line = self.line_of(*span);
                self.f().line = line;
                match value {
                    Some(v) => {
                        let r = self.expr_any(v);
                        self.f().emit(Instr::Return { src: r });
                    }
                    None => {
                        self.f().emit(Instr::ReturnNil {});
                    }
                }
            }
            Stmt::Update { label, span } => {
                let line = self.line_of(*span);
                let f = self.f();
                f.line = line;
                let ordinal = if label.is_some() {
                    0
                } else {
                    f.unlabelled_points += 1;
                    f.unlabelled_points - 1
                };
                let pc = f.pc() as u32;
                f.proto.update_points.push(UpdatePoint { label: label.clone(), ordinal, pc });
                let point = (f.proto.update_points.len() - 1) as u16;
                f.emit(Instr::Update { point });
            }
            Stmt::Expr(e) => {
                let r = self.f().alloc();
                self.expr(e, r);
            }
            Stmt::Error => {}
        }
        self.f().free_to(mark);
    }

    /// Body of a loop whose condition starts at `top`; `exits` jump past the loop.
    fn loop_body(&mut self, body: &Block, top: usize, exits: Vec<usize>) {
        self.f().loops.push(LoopCtx::default());
        self.block(body);
        self.f().emit_loop(top as u32);
        let end = self.f().pc();
        let ctx = self.f().loops.pop().unwrap();
        for j in exits.into_iter().chain(ctx.breaks) {
            self.f().patch(j, end);
        }
        for j in ctx.continues {
            self.f().patch_continue(j, top);
        }
    }

    fn assign(&mut self, target: &Expr, op: Option<BinOp>, value: &Expr) {
        match &target.kind {
            ExprKind::Name(n) => match self.resolve(n) {
                Resolved::Local(r) => match op {
                    None => {
                        // Plain values go straight into the local; anything that might read
                        // the local while writing it goes through a temporary.
                        if matches!(value.kind, ExprKind::Binary { .. } | ExprKind::Call { .. } | ExprKind::Int(_)) {
                            self.expr(value, r);
                        } else {
                            let t = self.f().alloc();
                            self.expr(value, t);
                            self.f().emit(Instr::Move { dst: r, src: t });
                        }
                    }
                    Some(op) => self.compound_into(r, r, op, value),
                },
                Resolved::Capture(_) => {
                    self.error("E0011", format!("cannot assign to captured variable '{n}'"), target.span);
                }
                Resolved::Global(g) => {
                    let t = self.f().alloc();
                    match op {
                        None => self.expr(value, t),
                        Some(op) => {
                            self.f().emit(Instr::GetGlobal { dst: t, g });
                            self.compound_into(t, t, op, value);
                        }
                    }
                    self.f().emit(Instr::SetGlobal { g, src: t });
                }
                Resolved::Func(..) | Resolved::Native => {
                    self.error("E0015", format!("cannot assign to function '{n}'"), target.span);
                }
                Resolved::Type => {
                    self.error("E0015", format!("cannot assign to type '{n}'"), target.span);
                }
                Resolved::Undefined => {
                    self.error("E0010", format!("assignment to undeclared name '{n}'"), target.span).label =
                        "declare it first with `let`".into();
                }
            },
            ExprKind::Field { obj, name } => {
                let o = self.expr_any(obj);
                let n = self.name_index(&name.name);
                let v = match op {
                    None => self.expr_any(value),
                    Some(op) => {
                        let t = self.f().alloc();
                        self.f().emit(Instr::GetField { dst: t, obj: o, name: n });
                        self.compound_into(t, t, op, value);
                        t
                    }
                };
                self.f().emit(Instr::SetField { obj: o, name: n, src: v });
            }
            ExprKind::Index { obj, index } => {
                let o = self.expr_any(obj);
                let i = self.expr_any(index);
                let v = match op {
                    None => self.expr_any(value),
                    Some(op) => {
                        let t = self.f().alloc();
                        self.f().emit(Instr::GetIndex { dst: t, obj: o, index: i });
                        self.compound_into(t, t, op, value);
                        t
                    }
                };
                self.f().emit(Instr::SetIndex { obj: o, index: i, src: v });
            }
            ExprKind::Error => {}
            _ => {
                self.error("E0001", "syntax error: cannot assign to this expression", target.span);
            }
        }
    }

    /// `dst := cur op value`.
    fn compound_into(&mut self, dst: u16, cur: u16, op: BinOp, value: &Expr) {
        let mark = self.f().next_reg;
        if let (BinOp::Add | BinOp::Sub, ExprKind::Int(n)) = (op, &value.kind) {
            if *n <= i32::MAX as u64 {
                let v = if op == BinOp::Add { *n as i32 } else { -(*n as i32) };
                self.f().emit(Instr::AddImm { dst, a: cur, value: v });
                return;
            }
        }
        let b = self.expr_any(value);
        let ins = match op {
            BinOp::Add => Instr::Add { dst, a: cur, b },
            BinOp::Sub => Instr::Sub { dst, a: cur, b },
            BinOp::Mul => Instr::Mul { dst, a: cur, b },
            BinOp::Div => Instr::Div { dst, a: cur, b },
            _ => Instr::Mod { dst, a: cur, b },
        };
        self.f().emit(ins);
        self.f().free_to(mark);
    }
}
