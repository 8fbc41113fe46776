//! Printing values exactly as LANGUAGE.md says: `print`/`str` at top level, quoted strings
//! inside containers, Python-style float repr, `[...]` for a container that contains itself.

use crate::heap::{Heap, Obj};
use crate::{ObjRef, TypeRt, Value};

/// Formats a float the way Python's `repr` does.
pub fn format_float(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
    } else if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    } else if x.abs() >= 1e16 || x.abs() < 1e-4 {
        // Rust's `{:e}` gives the shortest round-trip digits: `1e20`, `1.5e-5`.
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        out.push_str(mant);
        out.push('e');
        out.push(sign);
        if digits.len() < 2 {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let s = format!("{x}");
        out.push_str(&s);
        if !s.contains('.') {
            out.push_str(".0");
        }
    }
}

/// Text being printed, at most `limit` bytes: past it (or when the system refuses memory for
/// it) the rest is dropped and `over` is set, so that printing a value whose text would be
/// huge (a list holding itself many times over, a big string in a quoted escape) stops early.
struct Text {
    buf: String,
    limit: usize,
    over: bool,
    /// The system refused to grow the text to this many bytes.
    refused: Option<usize>,
}

impl Text {
    fn new(limit: usize) -> Text {
        Text { buf: String::new(), limit, over: false, refused: None }
    }

    #[inline]
    fn push_str(&mut self, s: &str) {
        if self.over {
            return;
        }
        let fits = s.len() <= self.limit - self.buf.len();
        if fits && self.buf.try_reserve(s.len()).is_err() {
            self.refused = Some(self.buf.len() + s.len());
        }
        if !fits || self.refused.is_some() {
            // Keep what fits (cut at a character boundary), for a truncated message.
            let mut room = (self.limit - self.buf.len()).min(s.len());
            while !s.is_char_boundary(room) {
                room -= 1;
            }
            if self.buf.try_reserve(room).is_ok() {
                self.buf.push_str(&s[..room]);
            }
            self.over = true;
            return;
        }
        self.buf.push_str(s);
    }

    fn float(&mut self, f: f64) {
        let mut s = String::new();
        format_float(f, &mut s);
        self.push_str(&s);
    }

    #[inline]
    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// `s` quoted, escaping `"`, `\` and control characters.
    fn quote(&mut self, s: &str) {
        self.push('"');
        // Runs of characters that need no escape go in one piece.
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let esc: &str = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                '\0' => "\\0",
                c if c.is_control() => "",
                _ => continue,
            };
            self.push_str(&s[start..i]);
            // An escape is kept whole or not at all when the text is cut.
            let long;
            let esc = if esc.is_empty() {
                long = format!("\\u{{{:x}}}", c as u32);
                &long
            } else {
                esc
            };
            if esc.len() > self.limit - self.buf.len() {
                self.over = true;
                return;
            }
            self.push_str(esc);
            start = i + c.len_utf8();
            if self.over {
                return;
            }
        }
        self.push_str(&s[start..]);
        self.push('"');
    }
}

/// What a printer needs to name things: the heap, record type names, function names.
pub struct Printer<'a> {
    pub heap: &'a Heap,
    pub types: &'a [TypeRt],
    pub func_name: &'a dyn Fn(Value) -> String,
}

impl Printer<'_> {
    /// `str(v)` / `print(v)` (`what`, for the error): fails when the text would be longer than
    /// the string limit, or than the room left under the heap limit (the text is checked as
    /// it grows: a list holding another many times over prints exponentially long).
    pub fn try_to_string(&self, v: Value, what: &str) -> Result<String, String> {
        let limits = &self.heap.limits;
        let room = limits.heap_bytes.saturating_sub(self.heap.bytes());
        let mut out = Text::new(limits.string_bytes.min(room));
        self.write(v, false, &mut Ancestors::default(), &mut out);
        match (out.over, out.refused) {
            (false, _) => Ok(out.buf),
            (true, Some(n)) => Err(crate::limits::refused(n)),
            (true, None) if room < limits.string_bytes => Err(limits.heap_error()),
            (true, None) => Err(limits.text_error(what)),
        }
    }

    /// `str(v)` for messages and displays: a text longer than the string limit is cut there,
    /// with `...` after it.
    pub fn to_string(&self, v: Value) -> String {
        self.text(v, false).unwrap_or_else(|cut| cut + "...")
    }

    /// How `v` prints inside a container (strings quoted), cut as `to_string` does.
    pub fn repr(&self, v: Value) -> String {
        self.text(v, true).unwrap_or_else(|cut| cut + "...")
    }

    /// The text of `v`, or `Err` with its first `limit` bytes when it is longer.
    fn text(&self, v: Value, nested: bool) -> Result<String, String> {
        let mut out = Text::new(self.heap.limits.string_bytes);
        self.write(v, nested, &mut Ancestors::default(), &mut out);
        if out.over { Err(out.buf) } else { Ok(out.buf) }
    }

    fn write(&self, v: Value, nested: bool, seen: &mut Ancestors, out: &mut Text) {
        if out.over {
            return;
        }
        match v {
            Value::Nil => out.push_str("nil"),
            Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.float(f),
            Value::Func(_) | Value::Native(_) => out.push_str(&(self.func_name)(v)),
            Value::Obj(r) => match self.heap.get(r) {
                Obj::Str(s) if nested => out.quote(s),
                Obj::Str(s) => out.push_str(s),
                Obj::Range(a, b) => out.push_str(&format!("{a}..{b}")),
                Obj::Closure { .. } => out.push_str(&(self.func_name)(v)),
                Obj::Free(_) => out.push_str("<freed>"),
                Obj::Task(id) => out.push_str(&format!("<task {id}>")),
                Obj::Channel(c) => out.push_str(&format!("<channel {}>", c.id)),
                Obj::Socket(s) => {
                    out.push_str(&format!("<{} {}>", if s.listener { "listener" } else { "connection" }, s.addr))
                }
                Obj::List(items) => {
                    if seen.contains(r) {
                        return out.push_str("[...]");
                    }
                    seen.push(r);
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if out.over {
                            break;
                        }
                        if i > 0 {
                            out.push_str(", ");
                        }
                        self.write(*item, true, seen, out);
                    }
                    out.push(']');
                    seen.pop();
                }
                Obj::Map(m) => {
                    if seen.contains(r) {
                        return out.push_str("{...}");
                    }
                    seen.push(r);
                    out.push('{');
                    for (i, (k, val)) in m.iter().enumerate() {
                        if out.over {
                            break;
                        }
                        if i > 0 {
                            out.push_str(", ");
                        }
                        self.write(k, true, seen, out);
                        out.push_str(": ");
                        self.write(val, true, seen, out);
                    }
                    out.push('}');
                    seen.pop();
                }
                Obj::Record { ty, fields } => {
                    let t = &self.types[*ty as usize];
                    if seen.contains(r) {
                        out.push_str(&t.name);
                        return out.push_str(" {...}");
                    }
                    seen.push(r);
                    out.push_str(&t.name);
                    if fields.is_empty() {
                        out.push_str(" {}");
                    } else {
                        out.push_str(" { ");
                        for (i, val) in fields.iter().enumerate() {
                            if out.over {
                                break;
                            }
                            if i > 0 {
                                out.push_str(", ");
                            }
                            out.push_str(&t.field_names[i]);
                            out.push_str(": ");
                            self.write(*val, true, seen, out);
                        }
                        out.push_str(" }");
                    }
                    seen.pop();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_float;

    fn f(x: f64) -> String {
        let mut s = String::new();
        format_float(x, &mut s);
        s
    }

    #[test]
    fn floats_print_like_python() {
        assert_eq!(f(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(f(2.0), "2.0");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(1.5e-7), "1.5e-07");
        assert_eq!(f(1e16), "1e+16");
        assert_eq!(f(9999999999999998.0), "9999999999999998.0");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(-f64::INFINITY), "-inf");
        assert_eq!(f(123456789012345.0), "123456789012345.0");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
    }
}

/// The containers being printed around the current value (to print a cycle as `[...]`): a
/// plain stack, with a set beside it once it is deep, so deeply nested data prints in linear
/// time.
#[derive(Default)]
struct Ancestors {
    stack: Vec<ObjRef>,
    set: Option<rustc_hash::FxHashSet<u32>>,
}

impl Ancestors {
    const DEEP: usize = 32;

    fn contains(&self, r: ObjRef) -> bool {
        match &self.set {
            Some(set) => set.contains(&r.0),
            None => self.stack.contains(&r),
        }
    }

    fn push(&mut self, r: ObjRef) {
        self.stack.push(r);
        if let Some(set) = &mut self.set {
            set.insert(r.0);
        } else if self.stack.len() > Self::DEEP {
            self.set = Some(self.stack.iter().map(|o| o.0).collect());
        }
    }

    fn pop(&mut self) {
        if let (Some(r), Some(set)) = (self.stack.pop(), &mut self.set) {
            set.remove(&r.0);
        }
    }
}
