//! Expressions: name resolution and code generation in one walk.

use molt_vm::{Const, FnKind, Instr};

use crate::ast::{BinOp, Expr, ExprKind, Ident, Span};
use crate::captures::free_names;
use crate::compile::Compiler;
use crate::func::FnState;

/// What a name refers to at a given point.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resolved {
    Local(u16),
    Capture(u16),
    Global(u32),
    Func(u32, usize),
    Type,
    Native,
    Undefined,
}

impl Compiler<'_> {
    pub(crate) fn resolve(&self, name: &str) -> Resolved {
        let f = self.fns.last().unwrap();
        if let Some(r) = f.lookup_local(name) {
            return Resolved::Local(r);
        }
        if let Some(r) = f.lookup_capture(name) {
            return Resolved::Capture(r);
        }
        self.resolve_item(name)
    }

    fn resolve_item(&self, name: &str) -> Resolved {
        if let Some(&g) = self.globals.get(name) {
            return Resolved::Global(g);
        }
        if let Some(&(i, arity)) = self.funcs.get(name) {
            return Resolved::Func(i, arity);
        }
        if self.types.contains_key(name) {
            return Resolved::Type;
        }
        if self.builtins.contains(name) {
            return Resolved::Native;
        }
        Resolved::Undefined
    }

    fn native(&mut self, name: &str) -> u32 {
        self.natives.insert_full(name.to_string()).0 as u32
    }

    pub(crate) fn name_index(&mut self, name: &str) -> u32 {
        self.names.insert_full(name.to_string()).0 as u32
    }

    fn set_line(&mut self, span: Span) {
        let line = self.line_of(span);
        self.f().line = line;
    }

    /// Compiles `e` into some register and returns it: a local's own register when `e` is a
    /// local, else a fresh temporary.
    pub(crate) fn expr_any(&mut self, e: &Expr) -> u16 {
        if let ExprKind::Name(n) = &e.kind {
            match self.resolve(n) {
                Resolved::Local(r) | Resolved::Capture(r) => return r,
                _ => {}
            }
        }
        if let ExprKind::SelfRef = e.kind {
            if let Some(r) = self.self_reg() {
                return r;
            }
        }
        let r = self.f().alloc();
        self.expr(e, r);
        r
    }

    /// Compiles `e` into register `dst`.
    pub(crate) fn expr(&mut self, e: &Expr, dst: u16) {
        self.set_line(e.span);
        match &e.kind {
            ExprKind::Nil => {
                self.f().emit(Instr::LoadNil { dst });
            }
            ExprKind::Bool(true) => {
                self.f().emit(Instr::LoadTrue { dst });
            }
            ExprKind::Bool(false) => {
                self.f().emit(Instr::LoadFalse { dst });
            }
            ExprKind::Int(n) => {
                if *n > i64::MAX as u64 {
                    self.error("E0014", "integer literal too large", e.span);
                }
                self.load_int(*n as i64, dst);
            }
            ExprKind::Float(x) => {
                let k = self.f().constant(Const::Float(*x));
                self.f().emit(Instr::LoadConst { dst, k });
            }
            ExprKind::Str(s) => {
                let k = self.f().constant(Const::Str(s.clone()));
                self.f().emit(Instr::LoadConst { dst, k });
            }
            ExprKind::Name(n) => self.load_name(n, e.span, dst),
            ExprKind::SelfRef => match self.self_reg() {
                Some(r) => {
                    if dst != r {
                        self.f().emit(Instr::Move { dst, src: r });
                    }
                }
                None => {
                    self.error("E0013", "'self' outside of a method", e.span);
                }
            },
            ExprKind::List(items) => {
                let mark = self.f().next_reg;
                let base = self.f().alloc_n(items.len());
                for (i, item) in items.iter().enumerate() {
                    self.expr(item, base + i as u16);
                }
                self.set_line(e.span);
                self.f().emit(Instr::NewList { dst, base, n: items.len() as u16 });
                self.f().free_to(mark);
            }
            ExprKind::Map(entries) => {
                let mark = self.f().next_reg;
                let base = self.f().alloc_n(entries.len() * 2);
                for (i, (k, v)) in entries.iter().enumerate() {
                    self.expr(k, base + 2 * i as u16);
                    self.expr(v, base + 2 * i as u16 + 1);
                }
                self.set_line(e.span);
                self.f().emit(Instr::NewMap { dst, base, n: entries.len() as u16 });
                self.f().free_to(mark);
            }
            ExprKind::Record { ty, fields } => self.record(ty, fields, e.span, dst),
            ExprKind::Lambda { params, body } => self.lambda(params, body, e.span, dst),
            ExprKind::Call { callee, args } => self.call(callee, args, e.span, dst),
            ExprKind::Method { recv, name, args } => self.method_call(recv, name, args, e.span, dst),
            ExprKind::Field { obj, name } => {
                let mark = self.f().next_reg;
                let o = self.expr_any(obj);
                let n = self.name_index(&name.name);
                // The line of `.name`: in a chain over several lines, where it fails.
                self.set_line(name.span);
                self.f().emit(Instr::GetField { dst, obj: o, name: n });
                self.f().free_to(mark);
            }
            ExprKind::Index { obj, index } => {
                let mark = self.f().next_reg;
                let o = self.expr_any(obj);
                let i = self.expr_any(index);
                self.set_line(e.span);
                self.f().emit(Instr::GetIndex { dst, obj: o, index: i });
                self.f().free_to(mark);
            }
            ExprKind::Neg(inner) => match &inner.kind {
                ExprKind::Int(n) if *n <= i64::MAX as u64 + 1 => self.load_int((*n as i64).wrapping_neg(), dst),
                ExprKind::Float(x) => {
                    let k = self.f().constant(Const::Float(-x));
                    self.f().emit(Instr::LoadConst { dst, k });
                }
                _ => {
                    let mark = self.f().next_reg;
                    let a = self.expr_any(inner);
                    self.set_line(e.span);
                    self.f().emit(Instr::Neg { dst, a });
                    self.f().free_to(mark);
                }
            },
            ExprKind::Not(inner) => {
                let mark = self.f().next_reg;
                let a = self.expr_any(inner);
                self.f().emit(Instr::Not { dst, a });
                self.f().free_to(mark);
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, e.span, dst),
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                let is_and = matches!(e.kind, ExprKind::And(..));
                // Evaluate into a temporary: `dst` may be a local that `b` reads.
                let mark = self.f().next_reg;
                let t = self.f().alloc();
                self.expr(a, t);
                let j = if is_and {
                    self.f().emit(Instr::JumpIfFalse { cond: t, target: 0 })
                } else {
                    self.f().emit(Instr::JumpIfTrue { cond: t, target: 0 })
                };
                self.expr(b, t);
                let end = self.f().pc();
                self.f().patch(j, end);
                self.f().emit(Instr::Move { dst, src: t });
                self.f().free_to(mark);
            }
            ExprKind::Range(a, b) => {
                let mark = self.f().next_reg;
                let x = self.expr_any(a);
                let y = self.expr_any(b);
                self.set_line(e.span);
                self.f().emit(Instr::Range { dst, a: x, b: y });
                self.f().free_to(mark);
            }
            ExprKind::Error => {}
        }
    }

    fn load_int(&mut self, n: i64, dst: u16) {
        if let Ok(v) = i32::try_from(n) {
            self.f().emit(Instr::LoadInt { dst, value: v });
        } else {
            let k = self.f().constant(Const::Int(n));
            self.f().emit(Instr::LoadConst { dst, k });
        }
    }

    fn load_name(&mut self, n: &str, span: Span, dst: u16) {
        match self.resolve(n) {
            Resolved::Local(r) | Resolved::Capture(r) => {
                if r != dst {
                    self.f().emit(Instr::Move { dst, src: r });
                }
            }
            Resolved::Global(g) => {
                self.f().emit(Instr::GetGlobal { dst, g });
            }
            Resolved::Func(f, _) => {
                self.f().emit(Instr::LoadFunc { dst, f });
            }
            Resolved::Native => {
                let native = self.native(n);
                self.f().emit(Instr::LoadNative { dst, native });
            }
            Resolved::Type => {
                self.error("E0003", format!("'{n}' is a type, not a value"), span)
                    .notes
                    .push(format!("to make a record, write {n} {{ ... }}"));
            }
            Resolved::Undefined => {
                self.error("E0003", format!("undefined name '{n}'"), span).label = "not declared anywhere".into();
            }
        }
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr, span: Span, dst: u16) {
        let mark = self.f().next_reg;
        let a = self.expr_any(lhs);
        // `x + 1` and `x - 1` with a small literal: one instruction, no constant load.
        if let (BinOp::Add | BinOp::Sub, ExprKind::Int(n)) = (op, &rhs.kind) {
            if *n <= i32::MAX as u64 {
                let v = if op == BinOp::Add { *n as i32 } else { -(*n as i32) };
                self.set_line(span);
                self.f().emit(Instr::AddImm { dst, a, value: v });
                self.f().free_to(mark);
                return;
            }
        }
        let b = self.expr_any(rhs);
        self.set_line(span);
        let ins = match op {
            BinOp::Add => Instr::Add { dst, a, b },
            BinOp::Sub => Instr::Sub { dst, a, b },
            BinOp::Mul => Instr::Mul { dst, a, b },
            BinOp::Div => Instr::Div { dst, a, b },
            BinOp::Mod => Instr::Mod { dst, a, b },
            BinOp::Eq => Instr::Eq { dst, a, b },
            BinOp::Ne => Instr::Ne { dst, a, b },
            BinOp::Lt => Instr::Lt { dst, a, b },
            BinOp::Le => Instr::Le { dst, a, b },
            BinOp::Gt => Instr::Gt { dst, a, b },
            BinOp::Ge => Instr::Ge { dst, a, b },
        };
        self.f().emit(ins);
        self.f().free_to(mark);
    }

    /// Compiles `cond` and a jump taken when it is false; returns the jump to patch.
    pub(crate) fn jump_if_false(&mut self, cond: &Expr) -> Vec<usize> {
        let mark = self.f().next_reg;
        match &cond.kind {
            ExprKind::Binary { op: op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), lhs, rhs } => {
                let a = self.expr_any(lhs);
                let b = self.expr_any(rhs);
                self.set_line(cond.span);
                let ins = match op {
                    BinOp::Lt => Instr::JumpIfNotLt { a, b, target: 0 },
                    BinOp::Le => Instr::JumpIfNotLe { a, b, target: 0 },
                    BinOp::Gt => Instr::JumpIfNotGt { a, b, target: 0 },
                    _ => Instr::JumpIfNotGe { a, b, target: 0 },
                };
                let j = self.f().emit(ins);
                self.f().free_to(mark);
                vec![j]
            }
            ExprKind::And(a, b) => {
                let mut js = self.jump_if_false(a);
                js.extend(self.jump_if_false(b));
                js
            }
            _ => {
                let r = self.expr_any(cond);
                let j = self.f().emit(Instr::JumpIfFalse { cond: r, target: 0 });
                self.f().free_to(mark);
                vec![j]
            }
        }
    }

    fn record(&mut self, ty: &Ident, fields: &[(Ident, Expr)], span: Span, dst: u16) {
        let Some(info) = self.types.get(&ty.name) else {
            self.error("E0005", format!("unknown type '{}'", ty.name), ty.span);
            for (_, e) in fields {
                let mark = self.f().next_reg;
                self.expr_any(e);
                self.f().free_to(mark);
            }
            return;
        };
        let layout = info.fields.clone();
        let defaults = info.defaults.clone();
        let default_fns = info.default_fns.clone();
        let index = info.index;
        let mark = self.f().next_reg;
        let base = self.f().alloc_n(layout.len());
        let mut given = vec![false; layout.len()];
        for (name, e) in fields {
            match layout.iter().position(|f| *f == name.name) {
                Some(i) if given[i] => {
                    self.error("E0008", format!("duplicate field '{}'", name.name), name.span);
                }
                Some(i) => {
                    given[i] = true;
                    self.expr(e, base + i as u16);
                }
                None => {
                    self.error("E0007", format!("type {} has no field '{}'", ty.name, name.name), name.span);
                    let m = self.f().next_reg;
                    self.expr_any(e);
                    self.f().free_to(m);
                }
            }
        }
        for i in 0..layout.len() {
            if given[i] {
                continue;
            }
            let reg = base + i as u16;
            match (&defaults[i], default_fns[i]) {
                (Some(d), _) if is_constant(d) => self.expr(d, reg),
                (Some(_), Some(f)) => {
                    let top = self.f().next_reg;
                    self.f().emit(Instr::CallFunc { dst: reg, f, base: top, argc: 0 });
                }
                _ => {
                    self.error("E0006", format!("missing field '{}' in {} literal", layout[i], ty.name), span);
                }
            }
        }
        self.set_line(span);
        self.f().emit(Instr::NewRecord { dst, ty: index, base, n: layout.len() as u16 });
        self.f().free_to(mark);
    }

    /// Where `self` is: register 0 of a method, or the capture of a lambda inside one.
    fn self_reg(&mut self) -> Option<u16> {
        let f = self.f();
        f.lookup_capture("self").or(if f.self_type.is_some() { Some(0) } else { None })
    }

    fn lambda(&mut self, params: &[Ident], body: &crate::ast::Block, span: Span, dst: u16) {
        // Capture every enclosing local the body names (over-capturing is harmless: a
        // lambda's own locals are found first). A lambda in a method captures `self` by value
        // like any local.
        let mut captures: Vec<(String, u16)> = Vec::new();
        for name in free_names(body) {
            if params.iter().any(|p| p.name == name) || captures.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if name == "self" {
                if let Some(r) = self.self_reg() {
                    captures.push((name, r));
                }
                continue;
            }
            match self.resolve(&name) {
                Resolved::Local(r) | Resolved::Capture(r) => captures.push((name, r)),
                _ => {}
            }
        }
        let parent = self.fns.last_mut().unwrap();
        parent.lambdas += 1;
        let name = format!("{}.<lambda {}>", parent.proto.name, parent.lambdas);
        let line = self.line_of(span);
        let mut st = FnState::new(name, FnKind::Lambda, self.opts.version, params.len() as u16, self.file as u32, line);
        let mut seen = std::collections::HashSet::new();
        for p in params {
            if !seen.insert(p.name.clone()) {
                self.error("E0017", format!("duplicate parameter '{}'", p.name), p.span);
            }
            let r = st.alloc();
            st.declare(&p.name, r);
        }
        for (n, _) in &captures {
            let r = st.alloc();
            st.captures.push((n.clone(), r));
        }
        st.proto.ncaptures = captures.len() as u16;
        self.fns.push(st);
        self.block_body(body);
        let st = self.fns.pop().unwrap();
        let proto = st.finish();
        let f = self.add_function(proto);
        self.set_line(span);
        let mark = self.f().next_reg;
        let base = self.f().alloc_n(captures.len());
        for (i, (_, r)) in captures.iter().enumerate() {
            self.f().emit(Instr::Move { dst: base + i as u16, src: *r });
        }
        self.f().emit(Instr::Closure { dst, f, base, n: captures.len() as u16 });
        self.f().free_to(mark);
    }

    fn args_at(&mut self, base: u16, args: &[Expr]) {
        for (i, a) in args.iter().enumerate() {
            self.expr(a, base + i as u16);
        }
    }

    fn call(&mut self, callee: &Expr, args: &[Expr], span: Span, dst: u16) {
        let mark = self.f().next_reg;
        let argc = args.len() as u16;
        if let ExprKind::Name(n) = &callee.kind {
            match self.resolve(n) {
                Resolved::Func(f, arity) => {
                    if arity != args.len() {
                        self.error(
                            "E0009",
                            format!("'{n}' expects {} but got {}", molt_vm::error::arguments(arity), args.len()),
                            span,
                        );
                    }
                    let base = self.f().alloc_n(args.len());
                    self.args_at(base, args);
                    self.set_line(span);
                    self.f().emit(Instr::CallFunc { dst, f, base, argc });
                    self.f().free_to(mark);
                    return;
                }
                Resolved::Native => {
                    let native = self.native(n);
                    let base = self.f().alloc_n(args.len());
                    self.args_at(base, args);
                    self.set_line(span);
                    self.f().emit(Instr::CallNative { dst, native, base, argc });
                    self.f().free_to(mark);
                    return;
                }
                _ => {}
            }
        }
        let base = self.f().alloc_n(args.len() + 1);
        self.expr(callee, base);
        self.args_at(base + 1, args);
        self.set_line(span);
        self.f().emit(Instr::Call { dst, base, argc });
        self.f().free_to(mark);
    }

    fn method_call(&mut self, recv: &Expr, name: &Ident, args: &[Expr], span: Span, dst: u16) {
        if let (ExprKind::SelfRef, Some(ty)) = (&recv.kind, self.f().self_type.clone()) {
            if let Some(&(_, arity)) = self.types.get(&ty).and_then(|t| t.methods.get(&name.name)) {
                if arity != args.len() {
                    self.error(
                        "E0009",
                        format!("'{}' expects {} but got {}", name.name, molt_vm::error::arguments(arity), args.len()),
                        span,
                    );
                }
            }
        }
        let mark = self.f().next_reg;
        let base = self.f().alloc_n(args.len() + 1);
        self.expr(recv, base);
        self.args_at(base + 1, args);
        let n = self.name_index(&name.name);
        // The line of `.name(`: in a chain over several lines, where it fails.
        self.set_line(name.span);
        self.f().emit(Instr::CallMethod { dst, base, name: n, argc: args.len() as u16 });
        self.f().free_to(mark);
    }
}

/// A default that can be evaluated at the literal site without a call.
fn is_constant(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Nil | ExprKind::Bool(_) | ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) => true,
        ExprKind::Neg(inner) => matches!(inner.kind, ExprKind::Int(_) | ExprKind::Float(_)),
        _ => false,
    }
}
