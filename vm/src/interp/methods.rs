//! Method resolution: what `recv.name(...)` calls, or why it cannot be called. One place for
//! the interpreter's `CallMethod` (past its inline-cache hit, which stays in the loop) and for
//! compiled code's built-in method calls (`tier_builtin_method`), so both give the same
//! errors.

use std::rc::Rc;

use super::support::Res;
use crate::heap::Obj;
use crate::native::{BuiltinKind, MethodImpl, NativeFn};
use crate::{Function, InlineCache, Value, Vm};

/// What a method call runs.
pub(super) enum MethodTarget {
    /// A function taking the receiver and then the arguments (a record's method, or a
    /// built-in type's method written in the prelude), whose arity fits the call.
    Function(Rc<Function>),
    /// A built-in type's native method, on the receiver and the arguments.
    Native(NativeFn),
    /// A task or channel method, on the receiver and the arguments.
    Task(crate::tasks::TaskOp),
    /// The value of a record's field of that name (the record has no such method), called
    /// with the arguments alone.
    Field(Value),
}

impl Vm {
    /// The target of `recv.name(...)` with `argc` arguments, called from `caller` at an
    /// instruction whose inline cache is `cache` (filled for a record's method). Out of line:
    /// the interpreter handles a warm cache before calling this.
    #[inline(never)]
    pub(super) fn resolve_method(
        &self,
        caller: &Rc<Function>,
        cache: &InlineCache,
        recv: Value,
        name: u32,
        argc: u16,
    ) -> Res<MethodTarget> {
        if let Value::Obj(o) = recv
            && let Obj::Record { ty, fields } = self.heap.get(o)
        {
            let ty = *ty;
            let (ct, slot) = cache.get();
            let slot = if ct == ty + 1 {
                Some(slot)
            } else {
                let s = self.types[ty as usize].methods.get(&name).copied();
                if let Some(s) = s {
                    cache.set((ty + 1, s));
                }
                // Old code calling a method an update removed runs its last version, warm
                // cache or not.
                s.or_else(|| self.removed_method(caller, ty, name))
            };
            let Some(slot) = slot else {
                // No method: a field holding a function is called instead.
                return match self.types[ty as usize].fields.get(&name) {
                    Some(&i) => Ok(MethodTarget::Field(fields[i as usize])),
                    None => Err(self.no_method(recv, name)),
                };
            };
            let Some(callee) = self.callee(slot) else {
                return Err(format!("method '{}' was removed by an update", self.syms[name as usize]));
            };
            if callee.proto.arity as usize != argc as usize + 1 {
                return Err(method_arity(&format!("<fn {}>", callee.proto.name), &callee, argc));
            }
            return Ok(MethodTarget::Function(callee));
        }
        match builtin_kind(self, recv) {
            Some(kind) => self.builtin_method(kind, recv, name, argc),
            None => Err(self.no_method(recv, name)),
        }
    }

    /// The method `name` of a built-in type, for a call with `argc` arguments.
    pub(super) fn builtin_method(&self, kind: BuiltinKind, recv: Value, name: u32, argc: u16) -> Res<MethodTarget> {
        match self.builtin_methods.get(&(kind, name)) {
            Some(MethodImpl::Native(f)) => Ok(MethodTarget::Native(*f)),
            Some(MethodImpl::Task(op)) => Ok(MethodTarget::Task(*op)),
            Some(MethodImpl::Molt(fname)) => {
                let Some(callee) = self.func_slot(fname).and_then(|s| self.funcs[s as usize].clone()) else {
                    return Err(format!("prelude function '{fname}' is missing"));
                };
                if callee.proto.arity as usize != argc as usize + 1 {
                    return Err(method_arity(&format!("{}()", self.syms[name as usize]), &callee, argc));
                }
                Ok(MethodTarget::Function(callee))
            }
            None => Err(self.no_method(recv, name)),
        }
    }

    /// The error of a call of a method `recv`'s type does not have.
    fn no_method(&self, recv: Value, name: u32) -> String {
        format!("{} has no method '{}'", self.type_of(recv), self.syms[name as usize])
    }
}

/// The built-in type whose methods `recv` has (`None`: a record, or a value without methods).
pub(super) fn builtin_kind(vm: &Vm, recv: Value) -> Option<BuiltinKind> {
    match recv {
        Value::Obj(o) => match vm.heap.get(o) {
            Obj::Str(_) => Some(BuiltinKind::Str),
            Obj::List(_) => Some(BuiltinKind::List),
            Obj::Map(_) => Some(BuiltinKind::Map),
            Obj::Range(..) => Some(BuiltinKind::Range),
            Obj::Task(_) => Some(BuiltinKind::Task),
            Obj::Channel(_) => Some(BuiltinKind::Channel),
            Obj::Socket(s) if s.listener => Some(BuiltinKind::Listener),
            Obj::Socket(_) => Some(BuiltinKind::Connection),
            _ => None,
        },
        _ => None,
    }
}

/// The error of a method call whose argument count does not fit `callee` (which takes the
/// receiver too), shown as `shown`.
fn method_arity(shown: &str, callee: &Function, argc: u16) -> String {
    let expected = crate::error::arguments(callee.proto.arity.saturating_sub(1) as usize);
    format!("{shown} expects {expected} but got {argc}")
}
