//! What the in-process tests (`jit_stress.rs`, `dsu_memory.rs`) share: an output buffer a VM
//! can write to, and compiling a source text into a program of a given version.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use molt_vm::Program;

/// A VM's output, kept for the test to read.
#[derive(Clone, Default)]
pub struct Buffer(pub Rc<RefCell<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `src` compiled as version `version` (file name `name` in traces); it must compile.
pub fn compile(name: &str, src: &str, version: u32) -> Program {
    let out = molt_compiler::compile_source(name, src, &molt::compile_options(version));
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>());
    out.program.expect("a program")
}
