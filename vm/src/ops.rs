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

/// Orders two numbers exactly (`Some(None)`: a NaN); `None` when either is not a number.
pub fn numbers_cmp(x: Value, y: Value) -> Option<Option<Ordering>> {
    Some(match (x, y) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(&b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(&b),
        (Value::Int(a), Value::Float(b)) => int_cmp_float(a, b),
        (Value::Float(a), Value::Int(b)) => int_cmp_float(b, a).map(Ordering::reverse),
        _ => return None,
    })
}

/// An int against a float, exactly (converting the int to a float would round above 2^53, and
/// `<=` would then disagree with `==`); `None` for a NaN.
fn int_cmp_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // |whole| < 2^63: exact as an i64.
    Some(i.cmp(&(whole as i64)).then(if f > whole {
        Ordering::Less
    } else if f < whole {
        Ordering::Greater
    } else {
        Ordering::Equal
    }))
}

/// Orders two numbers or two strings; `None` when a NaN makes them unordered (every
/// comparison with NaN is false).
pub fn compare(heap: &Heap, types: &[TypeRt], x: Value, y: Value) -> Result<Option<Ordering>, String> {
    if let Some(order) = numbers_cmp(x, y) {
        return Ok(order);
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
