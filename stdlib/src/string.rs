//! String methods. Lengths and indices count Unicode scalar values. The receiver is `args[0]`.

use molt_vm::{NativeCtx, NativeFn, Value};

use crate::args::{count, string};

pub const METHODS: &[(&str, NativeFn)] = &[
    ("len", len),
    ("split", split),
    ("trim", trim),
    ("contains", contains),
    ("starts_with", starts_with),
    ("ends_with", ends_with),
    ("upper", upper),
    ("lower", lower),
    ("replace", replace),
    ("chars", chars),
    ("slice", slice),
];

fn recv(ctx: &NativeCtx, a: &[Value]) -> std::rc::Rc<str> {
    ctx.heap.str_of(a[0]).cloned().unwrap_or_else(|| std::rc::Rc::from(""))
}

fn len(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("len", &a[1..], 0, 0)?;
    Ok(Value::Int(recv(ctx, a).chars().count() as i64))
}

fn split(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("split", &a[1..], 1, 1)?;
    let s = recv(ctx, a);
    let sep = string(ctx, "split", a[1])?;
    let parts: Vec<String> =
        if sep.is_empty() { s.chars().map(String::from).collect() } else { s.split(&*sep).map(String::from).collect() };
    let items = parts.into_iter().map(|p| ctx.heap.alloc_string(p)).collect();
    Ok(ctx.heap.alloc_list(items))
}

fn trim(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("trim", &a[1..], 0, 0)?;
    let s = recv(ctx, a);
    Ok(ctx.heap.alloc_str(s.trim()))
}

fn contains(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("contains", &a[1..], 1, 1)?;
    let (s, t) = (recv(ctx, a), string(ctx, "contains", a[1])?);
    Ok(Value::Bool(s.contains(&*t)))
}

fn starts_with(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("starts_with", &a[1..], 1, 1)?;
    let (s, t) = (recv(ctx, a), string(ctx, "starts_with", a[1])?);
    Ok(Value::Bool(s.starts_with(&*t)))
}

fn ends_with(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("ends_with", &a[1..], 1, 1)?;
    let (s, t) = (recv(ctx, a), string(ctx, "ends_with", a[1])?);
    Ok(Value::Bool(s.ends_with(&*t)))
}

fn upper(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("upper", &a[1..], 0, 0)?;
    let s = recv(ctx, a).to_uppercase();
    Ok(ctx.heap.alloc_string(s))
}

fn lower(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("lower", &a[1..], 0, 0)?;
    let s = recv(ctx, a).to_lowercase();
    Ok(ctx.heap.alloc_string(s))
}

fn replace(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("replace", &a[1..], 2, 2)?;
    let s = recv(ctx, a);
    let (from, to) = (string(ctx, "replace", a[1])?, string(ctx, "replace", a[2])?);
    // An empty pattern matches between every two characters and at both ends, as in Python.
    let out = s.replace(&*from, &to);
    Ok(ctx.heap.alloc_string(out))
}

fn chars(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("chars", &a[1..], 0, 0)?;
    let s = recv(ctx, a);
    let items = s.chars().map(|c| ctx.heap.alloc_string(c.to_string())).collect();
    Ok(ctx.heap.alloc_list(items))
}

fn slice(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("slice", &a[1..], 2, 2)?;
    let s = recv(ctx, a);
    let (x, y) = crate::list::bounds(ctx, a, s.chars().count())?;
    let part: String = s.chars().skip(x).take(y - x).collect();
    Ok(ctx.heap.alloc_string(part))
}
