//! The interface between the interpreter and built-in functions and methods. The built-ins
//! themselves live in the `molt-stdlib` crate, which registers them with `Vm::register_*`.

use std::io::Write;
use std::rc::Rc;

use crate::heap::Heap;
use crate::print::Printer;
use crate::{Function, TypeRt, Value};

/// What a built-in may touch: the heap, output, the program's arguments and version.
pub struct NativeCtx<'a> {
    pub heap: &'a mut Heap,
    pub types: &'a [TypeRt],
    pub funcs: &'a [Option<Rc<Function>>],
    pub natives: &'a [NativeDef],
    pub out: &'a mut dyn Write,
    pub version: u32,
    pub args: &'a [String],
}

/// A built-in: gets its arguments (a method gets its receiver first) and returns a value or a
/// runtime error message.
pub type NativeFn = fn(&mut NativeCtx, &[Value]) -> Result<Value, String>;

#[derive(Clone, Copy)]
pub struct NativeDef {
    pub name: &'static str,
    pub f: NativeFn,
    pub reads: Reads,
    /// A task or channel built-in (`spawn`, ...), run by the VM itself (`f` is not called).
    pub task: Option<crate::tasks::TaskOp>,
}

/// What a built-in function or method looks at. A lazy update needs it: a conversion that
/// runs after the update must not see anything the program changed since
/// (`update/lazy_safe.rs`). A method's receiver counts as an argument: `Values` for a method
/// means it handles its receiver's items as values (moves them, compares them by identity
/// or as strings) without looking into them; `Contents` that it looks into them (`join`
/// prints each, `sort` orders them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Only its arguments' plain values (numbers, strings), failing on anything else; it
    /// returns a number, a string, a bool or nil (`int`, `sqrt`, `min`).
    Values,
    /// The contents of its arguments, lists and maps included; it returns a number, a
    /// string, a bool or nil (`str`, `len`).
    Contents,
    /// Something besides its arguments, or it has an effect (`print`, `clock`, `read_line`).
    World,
}

/// The kinds of built-in values that have methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinKind {
    Str,
    List,
    Map,
    Range,
    Task,
    Channel,
    Listener,
    Connection,
}

impl BuiltinKind {
    pub fn name(self) -> &'static str {
        match self {
            BuiltinKind::Str => "string",
            BuiltinKind::List => "list",
            BuiltinKind::Map => "map",
            BuiltinKind::Range => "range",
            BuiltinKind::Task => "task",
            BuiltinKind::Channel => "channel",
            BuiltinKind::Listener => "listener",
            BuiltinKind::Connection => "connection",
        }
    }
}

/// A built-in method: native code, or a function of the prelude (written in Molt), by name.
#[derive(Clone)]
pub enum MethodImpl {
    Native(NativeFn),
    Molt(String),
    /// A task or channel method, run by the VM itself.
    Task(crate::tasks::TaskOp),
}

pub fn function_name(funcs: &[Option<Rc<Function>>], natives: &[NativeDef], heap: &Heap, v: Value) -> String {
    match v {
        Value::Func(slot) => match funcs.get(slot as usize) {
            Some(Some(f)) => format!("<fn {}>", f.proto.name),
            _ => "<fn removed>".to_string(),
        },
        Value::Native(i) => format!("<fn {}>", natives.get(i as usize).map_or("?", |n| n.name)),
        Value::Obj(_) => {
            let _ = heap;
            "<fn lambda>".to_string()
        }
        _ => String::new(),
    }
}

impl NativeCtx<'_> {
    /// `str(v)` for `what` (`"str()"`): fails past the string or heap limit.
    pub fn try_to_string(&self, v: Value, what: &str) -> Result<String, String> {
        let f = |v| function_name(self.funcs, self.natives, self.heap, v);
        Printer { heap: self.heap, types: self.types, func_name: &f }.try_to_string(v, what)
    }

    /// `str(v)` for a message: cut at the string limit (see `Printer::to_string`).
    pub fn to_string(&self, v: Value) -> String {
        let f = |v| function_name(self.funcs, self.natives, self.heap, v);
        Printer { heap: self.heap, types: self.types, func_name: &f }.to_string(v)
    }

    /// How `v` prints inside a container, for a message: cut at the string limit.
    pub fn repr(&self, v: Value) -> String {
        let f = |v| function_name(self.funcs, self.natives, self.heap, v);
        Printer { heap: self.heap, types: self.types, func_name: &f }.repr(v)
    }

    /// `type_of(v)`: record values give their type's name.
    pub fn type_of(&self, v: Value) -> &str {
        type_of(self.heap, self.types, v)
    }
}

pub fn type_of<'a>(heap: &Heap, types: &'a [TypeRt], v: Value) -> &'a str {
    if let Value::Obj(r) = v
        && let crate::heap::Obj::Record { ty, .. } = heap.get(r)
    {
        return &types[*ty as usize].name;
    }
    heap.type_name(v)
}
