//! Map methods. The receiver is `args[0]`.

use molt_vm::map::Map;
use molt_vm::{Heap, NativeCtx, NativeFn, Obj, Reads, Value};

use crate::args::count;

/// Each method with what it reads (see `Reads`): keys are plain values.
pub const METHODS: &[(&str, NativeFn, Reads)] = &[
    ("get", get, Reads::Values),
    ("set", set, Reads::Values),
    ("has", has, Reads::Values),
    ("remove", remove, Reads::Values),
    ("keys", keys, Reads::Values),
    ("values", values, Reads::Values),
    ("len", len, Reads::Values),
];

fn map_mut<'a>(ctx: &'a mut NativeCtx, v: Value) -> &'a mut Map {
    match v {
        Value::Obj(r) => match ctx.heap.get_mut(r) {
            Obj::Map(m) => m,
            _ => unreachable!("method table dispatches on the receiver's kind"),
        },
        _ => unreachable!("method table dispatches on the receiver's kind"),
    }
}

fn key(ctx: &NativeCtx, v: Value) -> Result<molt_vm::map::Key, String> {
    ctx.heap.key_of(v).map_err(|t| format!("map key must be nil, bool, int or string, not {t}"))
}

fn get(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("get", &a[1..], 1, 2)?;
    let k = key(ctx, a[1])?;
    let found = map_mut(ctx, a[0]).get(&k);
    Ok(found.unwrap_or(a.get(2).copied().unwrap_or(Value::Nil)))
}

fn set(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    crate::args::writable(ctx, a[0])?;
    count("set", &a[1..], 2, 2)?;
    let k = key(ctx, a[1])?;
    let Value::Obj(r) = a[0] else { unreachable!("method table dispatches on the receiver's kind") };
    ctx.heap.map_insert(r, k, a[2])?;
    Ok(Value::Nil)
}

fn has(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("has", &a[1..], 1, 1)?;
    let k = key(ctx, a[1])?;
    Ok(Value::Bool(map_mut(ctx, a[0]).contains(&k)))
}

fn remove(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    crate::args::writable(ctx, a[0])?;
    count("remove", &a[1..], 1, 1)?;
    let k = key(ctx, a[1])?;
    Ok(map_mut(ctx, a[0]).remove(&k).unwrap_or(Value::Nil))
}

fn keys(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("keys", &a[1..], 0, 0)?;
    let n = map_mut(ctx, a[0]).len();
    ctx.heap.check_list(n, 0, "keys()")?;
    let mut ks = Heap::vec_buffer(n)?;
    ks.extend(map_mut(ctx, a[0]).iter().map(|(k, _)| k));
    Ok(ctx.heap.alloc_list(ks))
}

fn values(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("values", &a[1..], 0, 0)?;
    let n = map_mut(ctx, a[0]).len();
    ctx.heap.check_list(n, 0, "values()")?;
    let mut vs = Heap::vec_buffer(n)?;
    vs.extend(map_mut(ctx, a[0]).iter().map(|(_, v)| v));
    Ok(ctx.heap.alloc_list(vs))
}

fn len(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("len", &a[1..], 0, 0)?;
    Ok(Value::Int(map_mut(ctx, a[0]).len() as i64))
}
