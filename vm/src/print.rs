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

/// Writes `s` quoted, escaping `"`, `\` and control characters.
pub fn quote_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What a printer needs to name things: the heap, record type names, function names.
pub struct Printer<'a> {
    pub heap: &'a Heap,
    pub types: &'a [TypeRt],
    pub func_name: &'a dyn Fn(Value) -> String,
}

impl Printer<'_> {
    /// `str(v)` / `print(v)`.
    pub fn to_string(&self, v: Value) -> String {
        let mut out = String::new();
        self.write(v, false, &mut Ancestors::default(), &mut out);
        out
    }

    /// How `v` prints inside a container (strings quoted).
    pub fn repr(&self, v: Value) -> String {
        let mut out = String::new();
        self.write(v, true, &mut Ancestors::default(), &mut out);
        out
    }

    fn write(&self, v: Value, nested: bool, seen: &mut Ancestors, out: &mut String) {
        match v {
            Value::Nil => out.push_str("nil"),
            Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => format_float(f, out),
            Value::Func(_) | Value::Native(_) => out.push_str(&(self.func_name)(v)),
            Value::Obj(r) => match self.heap.get(r) {
                Obj::Str(s) if nested => quote_str(s, out),
                Obj::Str(s) => out.push_str(s),
                Obj::Range(a, b) => out.push_str(&format!("{a}..{b}")),
                Obj::Closure { .. } => out.push_str(&(self.func_name)(v)),
                Obj::Free(_) => out.push_str("<freed>"),
                Obj::List(items) => {
                    if seen.contains(r) {
                        return out.push_str("[...]");
                    }
                    seen.push(r);
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
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
