//! `molt disasm`: a program's bytecode, function by function, with source lines. What each
//! operand shows comes from its role in the opcode table: a register window is shown as the
//! run of registers the instruction uses, and table references get a note saying what they
//! stand for.

use std::fmt::Write;

use crate::Instr;
use crate::opcodes::Role;
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
        let mut notes = Vec::new();
        let mut n = 0;
        ins.for_each_operand(|role, v| {
            let _ = write!(out, "{}{}", if n == 0 { "" } else { " " }, operand(ins, role, v));
            notes.extend(note(program, f, role, v));
            n += 1;
        });
        if !notes.is_empty() {
            let _ = write!(out, "    ; {}", notes.join(", "));
        }
        out.push('\n');
    }
    for l in &f.locals {
        let _ = writeln!(out, "  local r{} {l} [{}, {})", l.reg, l.start, l.end);
    }
}

/// One operand as shown, by its role in the opcode table: a register window as the run of
/// registers the instruction uses (`r3..r5`: r3 and r4, as a range), the rest with the
/// prefix of their kind (`r3`, `k1`, `@12`, `#2`, ...).
fn operand(ins: &Instr, role: Role, v: i64) -> String {
    match role {
        Role::Window => {
            let (base, n) = ins.reg_use().window_extent().unwrap_or((v as usize, 0));
            format!("r{base}..r{}", base + n)
        }
        Role::Dst
        | Role::Src
        | Role::Const
        | Role::Jump
        | Role::Global
        | Role::Func
        | Role::Type
        | Role::Field
        | Role::Method
        | Role::Native
        | Role::Count
        | Role::Imm
        | Role::Point => format!("{}{v}", role.kind().prefix()),
    }
}

/// What a table reference stands for (a constant's value, a global's or a function's name,
/// ...), by the operand's role; None for registers, jumps, counts and immediates.
fn note(program: &Program, f: &Proto, role: Role, v: i64) -> Option<String> {
    let i = v as usize;
    match role {
        Role::Const => f.consts.get(i).map(|c| match c {
            Const::Int(n) => n.to_string(),
            Const::Float(x) => format!("{x:?}"),
            Const::Str(s) => format!("{s:?}"),
        }),
        Role::Global => program.globals.get(i).cloned(),
        Role::Func => program.functions.get(i).map(|p| p.name.clone()),
        Role::Type => program.types.get(i).map(|t| t.name.clone()),
        Role::Field | Role::Method => program.names.get(i).map(|n| format!(".{n}")),
        Role::Native => program.natives.get(i).cloned(),
        Role::Point => f.update_points.get(i).map(|p| match &p.label {
            Some(l) => format!("update {l:?}"),
            None => format!("update #{}", p.ordinal),
        }),
        Role::Dst | Role::Src | Role::Window | Role::Jump | Role::Count | Role::Imm => None,
    }
}
