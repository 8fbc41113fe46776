//! List methods (`map` and `filter` are in the prelude). The receiver is `args[0]`.

use molt_vm::ops::{compare, values_equal};
use molt_vm::{Heap, NativeCtx, NativeFn, Obj, ObjRef, Reads, Value};

use crate::args::{count, int, list, writable};

/// Each method with what it reads (see `Reads`: lazy updates depend on it being right).
pub const METHODS: &[(&str, NativeFn, Reads)] = &[
    ("push", push, Reads::Values),
    ("pop", pop, Reads::Values),
    ("insert", insert, Reads::Values),
    ("remove", remove, Reads::Values),
    ("contains", contains, Reads::Values),
    ("index_of", index_of, Reads::Values),
    ("join", join, Reads::Contents),
    ("slice", slice, Reads::Values),
    ("reverse", reverse, Reads::Values),
    ("sort", sort, Reads::Contents),
    ("len", len, Reads::Values),
];

fn push(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("push", &a[1..], 1, 1)?;
    ctx.heap.list_insert(receiver(a[0]), None, a[1], "push()")?;
    Ok(Value::Nil)
}

fn receiver(v: Value) -> ObjRef {
    match v {
        Value::Obj(r) => r,
        _ => unreachable!("method table dispatches on the receiver's kind"),
    }
}

/// The items of the receiver, read-only (no copy: the heap stays readable beside them).
fn items<'a>(ctx: &'a NativeCtx, v: Value) -> &'a [Value] {
    match ctx.heap.get(receiver(v)) {
        Obj::List(items) => items,
        _ => unreachable!("method table dispatches on the receiver's kind"),
    }
}

fn pop(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("pop", &a[1..], 0, 0)?;
    list(ctx, a[0]).pop().ok_or_else(|| "pop() on an empty list".to_string())
}

fn insert(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("insert", &a[1..], 2, 2)?;
    let i = int(ctx, "insert", a[1])?;
    let len = items(ctx, a[0]).len();
    if i < 0 || i as usize > len {
        return Err(format!("insert() index {i} out of range (length {len})"));
    }
    ctx.heap.list_insert(receiver(a[0]), Some(i as usize), a[2], "insert()")?;
    Ok(Value::Nil)
}

fn remove(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("remove", &a[1..], 1, 1)?;
    let i = int(ctx, "remove", a[1])?;
    let items = list(ctx, a[0]);
    if i < 0 || i as usize >= items.len() {
        return Err(format!("remove() index {i} out of range (length {})", items.len()));
    }
    Ok(items.remove(i as usize))
}

fn position(ctx: &mut NativeCtx, a: &[Value]) -> Option<usize> {
    items(ctx, a[0]).iter().position(|x| values_equal(ctx.heap, *x, a[1]))
}

fn contains(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("contains", &a[1..], 1, 1)?;
    Ok(Value::Bool(position(ctx, a).is_some()))
}

fn index_of(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("index_of", &a[1..], 1, 1)?;
    Ok(position(ctx, a).map_or(Value::Nil, |i| Value::Int(i as i64)))
}

fn join(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("join", &a[1..], 1, 1)?;
    let sep = crate::args::string(ctx, "join", a[1])?;
    let items = items(ctx, a[0]);
    // The length first (checked arithmetic), so that a result past the limits is refused
    // before anything is allocated.
    let mut len = Some(sep.len().saturating_mul(items.len().saturating_sub(1)));
    for v in items {
        match ctx.heap.str_of(*v) {
            Some(s) => len = len.and_then(|n| n.checked_add(s.len())),
            None => return Err(format!("join() expects a list of strings, found {}", ctx.type_of(*v))),
        }
    }
    if sep.len().checked_mul(items.len().saturating_sub(1)).is_none() {
        len = None;
    }
    let len = ctx.heap.check_string(len, "join()")?;
    let mut out = Heap::string_buffer(len)?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        if let Some(s) = ctx.heap.str_of(*v) {
            out.push_str(s);
        }
    }
    ctx.heap.new_string(out)
}

/// Checks `slice(a, b)` bounds against `len`.
pub fn bounds(ctx: &NativeCtx, a: &[Value], len: usize) -> Result<(usize, usize), String> {
    let (x, y) = (int(ctx, "slice", a[1])?, int(ctx, "slice", a[2])?);
    if x < 0 || y < x || y as usize > len {
        return Err(format!("slice({x}, {y}) out of range (length {len})"));
    }
    Ok((x as usize, y as usize))
}

fn slice(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("slice", &a[1..], 2, 2)?;
    let len = items(ctx, a[0]).len();
    let (x, y) = bounds(ctx, a, len)?;
    ctx.heap.check_list(y - x, 0, "slice()")?;
    let mut part = Heap::vec_buffer(y - x)?;
    part.extend_from_slice(&items(ctx, a[0])[x..y]);
    Ok(ctx.heap.alloc_list(part))
}

fn reverse(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("reverse", &a[1..], 0, 0)?;
    list(ctx, a[0]).reverse();
    Ok(Value::Nil)
}

fn sort(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    writable(ctx, a[0])?;
    count("sort", &a[1..], 0, 0)?;
    // Sorted as a copy (comparing strings reads the heap), put back only when every
    // comparison worked: on an error the list keeps its order.
    let mut items = Heap::vec_buffer(items(ctx, a[0]).len())?;
    items.extend_from_slice(self::items(ctx, a[0]));
    let mut err = None;
    items.sort_by(|x, y| match compare(ctx.heap, ctx.types, *x, *y) {
        Ok(o) => o.unwrap_or(std::cmp::Ordering::Equal),
        Err(e) => {
            err.get_or_insert(e);
            std::cmp::Ordering::Equal
        }
    });
    if let Some(e) = err {
        return Err(format!("sort(): {e}"));
    }
    *list(ctx, a[0]) = items;
    Ok(Value::Nil)
}

fn len(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("len", &a[1..], 0, 0)?;
    Ok(Value::Int(list(ctx, a[0]).len() as i64))
}
