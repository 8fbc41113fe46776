//! Argument checking shared by the built-ins.

use molt_vm::{NativeCtx, Obj, Value};

/// Checks the argument count of built-in `name` (methods: not counting the receiver).
pub fn count(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), String> {
    let n = args.len();
    if n < min || n > max {
        let want = if min == max { min.to_string() } else { format!("{min} to {max}") };
        let plural = if min == max && min == 1 { "argument" } else { "arguments" };
        return Err(format!("{name}() expects {want} {plural} but got {n}"));
    }
    Ok(())
}

pub fn int(ctx: &NativeCtx, name: &str, v: Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(i),
        _ => Err(format!("{name}() expects an int, not {}", ctx.type_of(v))),
    }
}

pub fn number(ctx: &NativeCtx, name: &str, v: Value) -> Result<f64, String> {
    match v {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        _ => Err(format!("{name}() expects a number, not {}", ctx.type_of(v))),
    }
}

pub fn string(ctx: &NativeCtx, name: &str, v: Value) -> Result<std::rc::Rc<str>, String> {
    match ctx.heap.str_of(v) {
        Some(s) => Ok(s.clone()),
        None => Err(format!("{name}() expects a string, not {}", ctx.type_of(v))),
    }
}

/// The list behind a receiver.
pub fn list<'a>(ctx: &'a mut NativeCtx, v: Value) -> &'a mut Vec<Value> {
    match v {
        Value::Obj(r) => match ctx.heap.get_mut(r) {
            Obj::List(items) => items,
            _ => unreachable!("method table dispatches on the receiver's kind"),
        },
        _ => unreachable!("method table dispatches on the receiver's kind"),
    }
}

/// Checks that the receiver may be modified now (see `Heap::before_write`).
pub fn writable(ctx: &mut NativeCtx, v: Value) -> Result<(), String> {
    match v {
        Value::Obj(r) => ctx.heap.before_write(r),
        _ => Ok(()),
    }
}
