//! String methods. Lengths and indices count Unicode scalar values. The receiver is `args[0]`.

use molt_vm::heap::string_bytes;
use molt_vm::{Heap, NativeCtx, NativeFn, Value};

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
    // An empty separator splits into characters.
    if sep.is_empty() {
        return chars_of(ctx, &s, "split()");
    }
    let n = s.matches(&*sep).count() + 1;
    // The parts' text is at most the string's.
    ctx.heap.check_list(n, n.saturating_mul(string_bytes(0)).saturating_add(s.len()), "split()")?;
    let mut items = Heap::vec_buffer(n)?;
    for part in s.split(&*sep) {
        items.push(ctx.heap.alloc_str(part));
    }
    Ok(ctx.heap.alloc_list(items))
}

/// The characters of `s` as a list of strings (`chars()`, `split("")`).
fn chars_of(ctx: &mut NativeCtx, s: &str, what: &str) -> Result<Value, String> {
    let n = s.chars().count();
    ctx.heap.check_list(n, n.saturating_mul(string_bytes(4)), what)?;
    let mut items = Heap::vec_buffer(n)?;
    for c in s.chars() {
        items.push(ctx.heap.alloc_str(c.encode_utf8(&mut [0; 4])));
    }
    Ok(ctx.heap.alloc_list(items))
}

fn trim(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("trim", &a[1..], 0, 0)?;
    let s = recv(ctx, a);
    ctx.heap.check_string(Some(s.trim().len()), "trim()")?;
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
    let s = recv(ctx, a);
    // A character's upper case may be longer (`ß` is `SS`): the length first.
    let len = s.chars().try_fold(0usize, |n, c| n.checked_add(c.to_uppercase().map(char::len_utf8).sum()));
    let len = ctx.heap.check_string(len, "upper()")?;
    Heap::string_buffer(len)?; // probed: `to_uppercase` cannot fail softly
    let s = s.to_uppercase();
    ctx.heap.new_string(s)
}

fn lower(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("lower", &a[1..], 0, 0)?;
    let s = recv(ctx, a);
    // `İ` is `i̇` in lower case (longer); a final `Σ` is `ς`, as long as `σ`.
    let len = s.chars().try_fold(0usize, |n, c| n.checked_add(c.to_lowercase().map(char::len_utf8).sum()));
    let len = ctx.heap.check_string(len, "lower()")?;
    Heap::string_buffer(len)?;
    let s = s.to_lowercase();
    ctx.heap.new_string(s)
}

fn replace(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("replace", &a[1..], 2, 2)?;
    let s = recv(ctx, a);
    let (from, to) = (string(ctx, "replace", a[1])?, string(ctx, "replace", a[2])?);
    // An empty pattern matches between every two characters and at both ends, as in Python.
    let matches = if from.is_empty() { s.chars().count() + 1 } else { s.matches(&*from).count() };
    // The result's length before anything is built: a short pattern replaced by a long one
    // multiplies the string.
    let len = matches.checked_mul(to.len()).and_then(|added| (s.len() - matches * from.len()).checked_add(added));
    let len = ctx.heap.check_string(len, "replace()")?;
    let mut out = Heap::string_buffer(len)?;
    let mut last = 0;
    for (at, m) in s.match_indices(&*from) {
        out.push_str(&s[last..at]);
        out.push_str(&to);
        last = at + m.len();
    }
    out.push_str(&s[last..]);
    ctx.heap.new_string(out)
}

fn chars(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("chars", &a[1..], 0, 0)?;
    let s = recv(ctx, a);
    chars_of(ctx, &s, "chars()")
}

fn slice(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("slice", &a[1..], 2, 2)?;
    let s = recv(ctx, a);
    let (x, y) = crate::list::bounds(ctx, a, s.chars().count())?;
    // The part is borrowed, not collected. `prefix(t, n)`: the bytes of `t`'s first `n`
    // characters (`Chars::nth` skips fast).
    let prefix = |t: &str, n: usize| -> usize {
        let mut chars = t.chars();
        if n > 0 {
            chars.nth(n - 1);
        }
        t.len() - chars.as_str().len()
    };
    let start = prefix(&s, x);
    let end = start + prefix(&s[start..], y - x);
    ctx.heap.check_string(Some(end - start), "slice()")?;
    Ok(ctx.heap.alloc_str(&s[start..end]))
}
