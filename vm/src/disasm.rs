//! `molt disasm`: a program's bytecode, function by function, with source lines.

use std::fmt::Write;

use crate::OperandKind;
use crate::program::{Const, Program, Proto};

/// The whole program as text.
pub fn disassemble(program: &Program) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "program version {} ({} functions, {} types, {} globals, layout hash {:016x})",
        program.version,
        program.functions.len(),
        program.types.len(),
        program.globals.len(),
        program.layout_hash()
    );
    for (i, g) in program.globals.iter().enumerate() {
        let _ = writeln!(out, "global g{i} {g}");
    }
    for (i, t) in program.types.iter().enumerate() {
        let _ = writeln!(out, "type t{i} {} (v{}) {{ {} }}", t.name, t.version, t.fields.join(", "));
    }
    for (i, f) in program.functions.iter().enumerate() {
        out.push('\n');
        function(program, i, f, &mut out);
    }
    out
}

fn function(program: &Program, index: usize, f: &Proto, out: &mut String) {
    let file = program.files.get(f.file as usize).map_or("?", |s| s.as_str());
    let _ = writeln!(
        out,
        "fn f{index} {} ({:?}, v{}) arity {} captures {} registers {}  [{}:{}]",
        f.name, f.kind, f.version, f.arity, f.ncaptures, f.nregs, file, f.line
    );
    let mut last_line = 0;
    for (pc, ins) in f.code.iter().enumerate() {
        let line = f.lines.get(pc).copied().unwrap_or(0);
        let shown = if line != last_line { format!("{line:>5}") } else { "    |".to_string() };
        last_line = line;
        let _ = write!(out, "  {pc:>5} {shown}  {:<13} ", ins.name());
        let ops = ins.operands();
        for (n, (_, kind, v)) in ops.iter().enumerate() {
            let _ = write!(out, "{}{}{}", if n == 0 { "" } else { " " }, kind.prefix(), v);
        }
        // Say what table references stand for.
        let notes: Vec<String> = ops
            .iter()
            .filter_map(|(_, kind, v)| {
                let i = *v as usize;
                match kind {
                    OperandKind::Const => f.consts.get(i).map(|c| match c {
                        Const::Int(n) => n.to_string(),
                        Const::Float(x) => format!("{x:?}"),
                        Const::Str(s) => format!("{s:?}"),
                    }),
                    OperandKind::Global => program.globals.get(i).cloned(),
                    OperandKind::Func => program.functions.get(i).map(|p| p.name.clone()),
                    OperandKind::Type => program.types.get(i).map(|t| t.name.clone()),
                    OperandKind::Name => program.names.get(i).map(|n| format!(".{n}")),
                    OperandKind::Native => program.natives.get(i).cloned(),
                    OperandKind::Point => f.update_points.get(i).map(|p| match &p.label {
                        Some(l) => format!("update {l:?}"),
                        None => format!("update #{}", p.ordinal),
                    }),
                    _ => None,
                }
            })
            .collect();
        if !notes.is_empty() {
            let _ = write!(out, "    ; {}", notes.join(", "));
        }
        out.push('\n');
    }
    for l in &f.locals {
        let _ = writeln!(out, "  local r{} {l} [{}, {})", l.reg, l.start, l.end);
    }
}
