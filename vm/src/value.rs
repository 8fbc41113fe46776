//! Values: 16 bytes, `Copy`, so registers are a flat array the interpreter (and later the JIT)
//! reads and writes directly. Heap objects are addressed by a stable handle (`ObjRef`), which is
//! what lets an update replace an object's contents in place with its identity kept.

/// A handle to a heap object: an index into the heap's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjRef(pub u32);

/// `repr(C, u8)` fixes the layout compiled code relies on: a one-byte tag at offset 0 (the
/// variant's index, see `tag`), the payload at offset 8; 16 bytes in all.
#[derive(Clone, Copy, Debug)]
#[repr(C, u8)]
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

/// Tags of `Value` as compiled code sees them (offset 0), payload at offset 8. The JIT crate
/// tests this layout against real values.
pub mod tag {
    pub const NIL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    /// `Value::Obj`: the payload is the 32-bit heap handle.
    pub const OBJ: u8 = 6;
    pub const PAYLOAD_OFFSET: i32 = 8;
    pub const SIZE: i32 = 16;
}
