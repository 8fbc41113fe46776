//! Molt's built-in functions and methods, and its prelude (written in Molt).
//! `install` registers them with a VM; `builtin_names` is what the compiler resolves against.

mod args;
mod functions;
mod list;
mod map;
mod string;

use molt_vm::{BuiltinKind, MethodImpl, NativeDef, Vm};

/// Built-in methods written in Molt (see `prelude.molt`).
pub const PRELUDE: &str = include_str!("prelude.molt");
/// The file name the prelude's functions report in stack traces.
pub const PRELUDE_NAME: &str = molt_vm::PRELUDE_FILE;

/// Registers every built-in function and method with `vm`.
pub fn install(vm: &mut Vm) {
    for (name, f, reads) in functions::FUNCTIONS {
        vm.register_native(NativeDef { name, f: *f, reads: *reads });
    }
    for (name, f) in list::METHODS {
        vm.register_method(BuiltinKind::List, name, MethodImpl::Native(*f));
    }
    vm.register_method(BuiltinKind::List, "map", MethodImpl::Molt("__list_map".into()));
    vm.register_method(BuiltinKind::List, "filter", MethodImpl::Molt("__list_filter".into()));
    for (name, f) in map::METHODS {
        vm.register_method(BuiltinKind::Map, name, MethodImpl::Native(*f));
    }
    for (name, f) in string::METHODS {
        vm.register_method(BuiltinKind::Str, name, MethodImpl::Native(*f));
    }
}

/// The names of the built-in functions.
pub fn builtin_names() -> Vec<String> {
    functions::FUNCTIONS.iter().map(|(n, ..)| n.to_string()).collect()
}
