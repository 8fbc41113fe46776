//! Built-in functions: `print`, `str`, `len`, the numeric functions, I/O.

use std::sync::OnceLock;
use std::time::Instant;

use molt_vm::{NativeCtx, NativeFn, Obj, Reads, Value};

use crate::args::{count, number};

/// Each built-in with what it reads (see `Reads`: lazy updates depend on it being right).
pub const FUNCTIONS: &[(&str, NativeFn, Reads)] = &[
    ("print", print, Reads::World),
    ("str", str_, Reads::Contents),
    ("int", int, Reads::Values),
    ("float", float, Reads::Values),
    ("len", len, Reads::Contents),
    ("type_of", type_of, Reads::Contents),
    ("assert", assert, Reads::Contents),
    ("error", error, Reads::Contents),
    ("clock", clock, Reads::World),
    ("sleep", sleep, Reads::World),
    ("read_line", read_line, Reads::World),
    ("args", args, Reads::World),
    ("version", version, Reads::Values),
    ("sqrt", sqrt, Reads::Values),
    ("abs", abs, Reads::Values),
    ("floor", floor, Reads::Values),
    ("ceil", ceil, Reads::Values),
    ("min", min, Reads::Values),
    ("max", max, Reads::Values),
    ("pow", pow, Reads::Values),
];

/// Writes each argument's text in turn (a string as it is, without a copy): the line is never
/// built whole, so only one value's text must fit under the string limit.
fn print(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    let write_error = |e: std::io::Error| format!("print(): cannot write output: {e}");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            ctx.out.write_all(b" ").map_err(write_error)?;
        }
        if let Some(s) = ctx.heap.str_of(*a) {
            ctx.out.write_all(s.as_bytes()).map_err(write_error)?;
            continue;
        }
        let text = ctx.try_to_string(*a, "print()")?;
        ctx.out.write_all(text.as_bytes()).map_err(write_error)?;
    }
    ctx.out.write_all(b"\n").map_err(write_error)?;
    Ok(Value::Nil)
}

fn str_(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("str", args, 1, 1)?;
    if ctx.heap.str_of(args[0]).is_some() {
        return Ok(args[0]);
    }
    if let Value::Int(i) = args[0] {
        // Formatted on the stack: one allocation for the string itself.
        let mut buf = StackBuf::default();
        let _ = std::fmt::Write::write_fmt(&mut buf, format_args!("{i}"));
        return Ok(ctx.heap.alloc_str(buf.as_str()));
    }
    // A container's text is bounded by the string limit as it is printed (a list holding
    // another many times over prints exponentially long).
    let s = ctx.try_to_string(args[0], "str()")?;
    ctx.heap.check_string(Some(s.len()), "str()")?;
    ctx.heap.new_string(s)
}

fn int(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("int", args, 1, 1)?;
    match args[0] {
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(f) => float_to_int("int", f.trunc()),
        v => {
            let Some(s) = ctx.heap.str_of(v) else {
                return Err(format!("int() cannot convert {}", ctx.type_of(v)));
            };
            let raw = s.trim();
            // `_` only between digits, as in literals (`1_000`).
            let digits = raw.trim_start_matches(['-', '+']);
            if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
                return Err(format!("int() cannot convert {}", ctx.repr(v)));
            }
            let t = raw.replace('_', "");
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Value::Int(i));
            }
            if t.parse::<i128>().is_ok() {
                return Err(format!("int() cannot convert {}: out of the int range", ctx.repr(v)));
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && !t.is_empty() => float_to_int("int", f.trunc()),
                _ => Err(format!("int() cannot convert {}", ctx.repr(v))),
            }
        }
    }
}

fn float_to_int(name: &str, f: f64) -> Result<Value, String> {
    if !(-9.223372036854776e18..9.223372036854776e18).contains(&f) {
        return Err(format!("{name}() cannot convert {} to int", molt_float(f)));
    }
    Ok(Value::Int(f as i64))
}

/// Every `_` in `t` has a digit on each side.
fn underscores_between_digits(t: &str) -> bool {
    let b = t.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'_' || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

fn molt_float(f: f64) -> String {
    let mut s = String::new();
    molt_vm::print::format_float(f, &mut s);
    s
}

fn float(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("float", args, 1, 1)?;
    match args[0] {
        Value::Int(i) => Ok(Value::Float(i as f64)),
        Value::Float(f) => Ok(Value::Float(f)),
        v => {
            let Some(s) = ctx.heap.str_of(v) else {
                return Err(format!("float() cannot convert {}", ctx.type_of(v)));
            };
            let t = s.trim();
            let parsed = match t {
                "inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                "NaN" | "nan" => Some(f64::NAN),
                // `_` only between digits, as in literals and in `int()` (`1_000.5`).
                _ if !underscores_between_digits(t) => None,
                _ => t.replace('_', "").parse::<f64>().ok().filter(|_| !t.is_empty()),
            };
            parsed.map(Value::Float).ok_or_else(|| format!("float() cannot convert {}", ctx.repr(v)))
        }
    }
}

fn len(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("len", args, 1, 1)?;
    if let Value::Obj(r) = args[0] {
        match ctx.heap.get(r) {
            Obj::Str(s) => return Ok(Value::Int(s.chars().count() as i64)),
            Obj::List(items) => return Ok(Value::Int(items.len() as i64)),
            Obj::Map(m) => return Ok(Value::Int(m.len() as i64)),
            Obj::Range(a, b) => {
                // The length of a range wider than the largest int does not fit one.
                return b.checked_sub(*a).map(|n| Value::Int(n.max(0))).ok_or_else(|| "integer overflow".to_string());
            }
            _ => {}
        }
    }
    Err(format!("len() expects a string, list, map or range, not {}", ctx.type_of(args[0])))
}

fn type_of(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("type_of", args, 1, 1)?;
    let name = ctx.type_of(args[0]).to_string();
    Ok(ctx.heap.alloc_string(name))
}

fn assert(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("assert", args, 1, 2)?;
    if args[0].truthy() {
        return Ok(Value::Nil);
    }
    match args.get(1) {
        Some(m) => Err(format!("assertion failed: {}", ctx.to_string(*m))),
        None => Err("assertion failed".into()),
    }
}

fn error(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("error", args, 1, 1)?;
    Err(ctx.to_string(args[0]))
}

fn clock(_: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("clock", args, 0, 0)?;
    static START: OnceLock<Instant> = OnceLock::new();
    Ok(Value::Float(START.get_or_init(Instant::now).elapsed().as_secs_f64()))
}

fn sleep(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("sleep", args, 1, 1)?;
    let s = number(ctx, "sleep", args[0])?;
    let _ = ctx.out.flush();
    if s.is_finite() && s > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(s.min(1e6)));
    }
    Ok(Value::Nil)
}

/// A line of standard input: at most the string limit (and its line end) is read, so an
/// endless line is an error, not an endless allocation.
fn read_line(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("read_line", args, 0, 0)?;
    let _ = ctx.out.flush();
    // The same reading as a task's `read_line` (the VM's stdin thread), line ends and limit.
    let limit = ctx.heap.limits.string_bytes;
    match molt_vm::tasks::wait::read_one(&mut std::io::stdin().lock(), limit)? {
        None => Ok(Value::Nil),
        Some(bytes) => {
            let line = String::from_utf8(bytes).map_err(|_| {
                "read_line(): cannot read standard input: stream did not contain valid UTF-8".to_string()
            })?;
            ctx.heap.check_string(Some(line.len()), "read_line()")?;
            ctx.heap.new_string(line)
        }
    }
}

fn args(ctx: &mut NativeCtx, a: &[Value]) -> Result<Value, String> {
    count("args", a, 0, 0)?;
    let items = ctx.args.iter().map(|s| ctx.heap.alloc_str(s)).collect();
    Ok(ctx.heap.alloc_list(items))
}

fn version(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("version", args, 0, 0)?;
    Ok(Value::Int(ctx.version as i64))
}

fn sqrt(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("sqrt", args, 1, 1)?;
    Ok(Value::Float(number(ctx, "sqrt", args[0])?.sqrt()))
}

fn abs(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("abs", args, 1, 1)?;
    match args[0] {
        Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(|| "integer overflow".to_string()),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        v => Err(format!("abs() expects a number, not {}", ctx.type_of(v))),
    }
}

fn floor(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("floor", args, 1, 1)?;
    match args[0] {
        Value::Int(i) => Ok(Value::Int(i)),
        v => float_to_int("floor", number(ctx, "floor", v)?.floor()),
    }
}

fn ceil(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("ceil", args, 1, 1)?;
    match args[0] {
        Value::Int(i) => Ok(Value::Int(i)),
        v => float_to_int("ceil", number(ctx, "ceil", v)?.ceil()),
    }
}

fn min(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("min", args, 2, 2)?;
    number(ctx, "min", args[0])?;
    number(ctx, "min", args[1])?;
    // Exact for an int against a float (as `<` is); a NaN picks the first.
    let pick_b = molt_vm::ops::numbers_cmp(args[1], args[0]) == Some(Some(std::cmp::Ordering::Less));
    Ok(if pick_b { args[1] } else { args[0] })
}

fn max(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("max", args, 2, 2)?;
    number(ctx, "max", args[0])?;
    number(ctx, "max", args[1])?;
    let pick_b = molt_vm::ops::numbers_cmp(args[1], args[0]) == Some(Some(std::cmp::Ordering::Greater));
    Ok(if pick_b { args[1] } else { args[0] })
}

fn pow(ctx: &mut NativeCtx, args: &[Value]) -> Result<Value, String> {
    count("pow", args, 2, 2)?;
    let (a, b) = (number(ctx, "pow", args[0])?, number(ctx, "pow", args[1])?);
    Ok(Value::Float(a.powf(b)))
}

/// A small formatting buffer on the stack (an int needs at most 20 bytes).
#[derive(Default)]
struct StackBuf {
    buf: [u8; 24],
    len: usize,
}

impl StackBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
