//! Values: 16 bytes, `Copy`, so registers are a flat array the interpreter (and later the JIT)
//! reads and writes directly. Heap objects are addressed by a stable handle (`ObjRef`), which is
//! what lets an update replace an object's contents in place with its identity kept.

/// A handle to a heap object: an index into the heap's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjRef(pub u32);

#[derive(Clone, Copy, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A named function by function-table slot: calls the newest version.
    Func(u32),
    /// A built-in function by index.
    Native(u32),
    Obj(ObjRef),
}

impl Value {
    #[inline]
    pub fn truthy(self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }
}
