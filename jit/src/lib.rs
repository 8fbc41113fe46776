//! The Cranelift tier. Not started: the interpreter is the only tier for now.
