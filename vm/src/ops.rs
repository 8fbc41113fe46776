//! Equality and ordering of values, shared by the interpreter and the built-ins.

use std::cmp::Ordering;

use crate::heap::Heap;
use crate::{TypeRt, Value};

/// `==`: by value for nil, bools, numbers (`1 == 1.0`) and strings; by identity otherwise.
pub fn values_equal(heap: &Heap, x: Value, y: Value) -> bool {
    match (x, y) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
            b.fract() == 0.0 && (-9.223372036854776e18..9.223372036854776e18).contains(&b) && b as i64 == a
        }
        (Value::Func(a), Value::Func(b)) => a == b,
        (Value::Native(a), Value::Native(b)) => a == b,
        (Value::Obj(a), Value::Obj(b)) => {
            a == b
                || match (heap.str_of(x), heap.str_of(y)) {
                    (Some(s), Some(t)) => s == t,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Orders two numbers or two strings; `None` when a NaN makes them unordered (every
/// comparison with NaN is false).
pub fn compare(heap: &Heap, types: &[TypeRt], x: Value, y: Value) -> Result<Option<Ordering>, String> {
    let num = |v: Value| match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    };
    if let (Value::Int(a), Value::Int(b)) = (x, y) {
        return Ok(Some(a.cmp(&b)));
    }
    if let (Some(a), Some(b)) = (num(x), num(y)) {
        return Ok(a.partial_cmp(&b));
    }
    if let (Some(a), Some(b)) = (heap.str_of(x), heap.str_of(y)) {
        return Ok(Some(a.as_ref().cmp(b.as_ref())));
    }
    Err(format!(
        "cannot compare {} and {}",
        crate::native::type_of(heap, types, x),
        crate::native::type_of(heap, types, y)
    ))
}
