//! Molt's built-in functions and methods, and its prelude (written in Molt).
//! `install` registers them with a VM; `builtin_names` is what the compiler resolves against.

mod args;
mod functions;
mod list;
mod map;
mod string;

use molt_vm::{BuiltinKind, MethodImpl, NativeDef, Reads, Vm};

/// Built-in methods written in Molt (see `prelude.molt`).
pub const PRELUDE: &str = include_str!("prelude.molt");
/// The file name the prelude's functions report in stack traces.
pub const PRELUDE_NAME: &str = molt_vm::PRELUDE_FILE;

/// Registers every built-in function and method with `vm`.
pub fn install(vm: &mut Vm) {
    for (name, f, reads) in functions::FUNCTIONS {
        vm.register_native(NativeDef { name, f: *f, reads: *reads, task: waits(name) });
    }
    for (kind, methods) in [(BuiltinKind::List, list::METHODS), (BuiltinKind::Map, map::METHODS)] {
        for (name, f, reads) in methods {
            vm.register_method(kind, name, MethodImpl::Native(*f), *reads);
        }
    }
    // Strings are immutable: their methods read only plain values.
    for (name, f) in string::METHODS {
        vm.register_method(BuiltinKind::Str, name, MethodImpl::Native(*f), Reads::Values);
    }
    for (name, molt) in [("map", "__list_map"), ("filter", "__list_filter")] {
        vm.register_method(BuiltinKind::List, name, MethodImpl::Molt(molt.into()), Reads::World);
    }
}

/// The built-ins that wait (for time, for input): once tasks exist the VM runs them, so that
/// they block only the calling task.
fn waits(name: &str) -> Option<molt_vm::tasks::TaskOp> {
    match name {
        "sleep" => Some(molt_vm::tasks::TaskOp::Sleep),
        "read_line" => Some(molt_vm::tasks::TaskOp::ReadLine),
        _ => None,
    }
}

/// The names of the built-in functions.
pub fn builtin_names() -> Vec<String> {
    let stdlib = functions::FUNCTIONS.iter().map(|(n, ..)| n.to_string());
    // The task built-ins (`spawn`, `channel`, ...) are the VM's own.
    stdlib.chain(molt_vm::tasks::FUNCTIONS.iter().map(|(n, _)| n.to_string())).collect()
}
