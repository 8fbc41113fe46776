//! Which names a lambda body mentions: the candidates for capture.

use crate::ast::{Block, Expr, ExprKind, Stmt};

/// Every name read or assigned in `body`, nested lambdas included, in first-use order.
pub fn free_names(body: &Block) -> Vec<String> {
    let mut out = Vec::new();
    block(body, &mut out);
    out
}

fn add(name: &str, out: &mut Vec<String>) {
    if !out.iter().any(|n| n == name) {
        out.push(name.to_string());
    }
}

fn block(b: &Block, out: &mut Vec<String>) {
    for s in &b.stmts {
        stmt(s, out);
    }
}

fn stmt(s: &Stmt, out: &mut Vec<String>) {
    match s {
        Stmt::Let { init, .. } => expr(init, out),
        Stmt::Assign { target, value, .. } => {
            expr(target, out);
            expr(value, out);
        }
        Stmt::If { cond, then, otherwise, .. } => {
            expr(cond, out);
            block(then, out);
            if let Some(o) = otherwise {
                stmt(o, out);
            }
        }
        Stmt::Block(b) | Stmt::Loop { body: b, .. } => block(b, out),
        Stmt::While { cond, body, .. } => {
            expr(cond, out);
            block(body, out);
        }
        Stmt::For { iter, body, .. } => {
            expr(iter, out);
            block(body, out);
        }
        Stmt::Return { value: Some(v), .. } => expr(v, out),
        Stmt::Expr(e) => expr(e, out),
        _ => {}
    }
}

fn expr(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Name(n) => add(n, out),
        // `self` is a keyword, so this name cannot clash with a variable.
        ExprKind::SelfRef => add("self", out),
        ExprKind::List(items) => items.iter().for_each(|i| expr(i, out)),
        ExprKind::Map(entries) => entries.iter().for_each(|(k, v)| {
            expr(k, out);
            expr(v, out);
        }),
        ExprKind::Record { fields, .. } => fields.iter().for_each(|(_, v)| expr(v, out)),
        ExprKind::Lambda { body, .. } => block(body, out),
        ExprKind::Call { callee, args } => {
            expr(callee, out);
            args.iter().for_each(|a| expr(a, out));
        }
        ExprKind::Method { recv, args, .. } => {
            expr(recv, out);
            args.iter().for_each(|a| expr(a, out));
        }
        ExprKind::Field { obj, .. } => expr(obj, out),
        ExprKind::Index { obj, index } => {
            expr(obj, out);
            expr(index, out);
        }
        ExprKind::Neg(a) | ExprKind::Not(a) => expr(a, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            expr(lhs, out);
            expr(rhs, out);
        }
        ExprKind::And(a, b) | ExprKind::Or(a, b) | ExprKind::Range(a, b) => {
            expr(a, out);
            expr(b, out);
        }
        _ => {}
    }
}
