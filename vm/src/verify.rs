//! The bytecode verifier: a program that passes can be linked and run by the interpreter without
//! any table index, register or program counter going out of bounds.
//!
//! What it guarantees, concern by concern (one function each below):
//! - entry points: `init` is an `Init` function of arity 0, `main` a function of arity 0, each
//!   transform a `Transform` of arity 1, `migrate` a `Migrate` of arity 0, one initialiser
//!   entry per global, each an `Init` function of arity 0;
//! - names: function names and type names are unique (the VM links by name);
//! - types: unique fields, one default slot per field (a function of arity 0), methods that are
//!   `Method` functions taking at least their receiver, unique method names;
//! - frames: code is non-empty, has one line entry per instruction and ends in a terminator
//!   (`Return`, `ReturnNil`, `Jump`, `Loop`), so execution cannot run off its end; there are at
//!   least `max(1, arity + ncaptures)` registers; the file index is in range;
//! - operands: each operand is below the limit of its kind (from the opcode table, so a new
//!   instruction needs no verifier code unless it uses a run of registers);
//! - register windows: instructions that use `base .. base + k` keep it within the frame;
//! - control flow: backward edges are `Loop` (a safepoint that checks for interrupts and may
//!   collect), every other jump goes forward, so every loop can be stopped;
//! - closures: the target is a `Lambda` with as many captures as the closure copies;
//! - definite assignment: no instruction reads a register that may not have been written on
//!   some path from the function's entry (`check_definite_assignment`), so a frame never sees
//!   what a dead frame left in its registers;
//! - locals and update points: registers and pcs in range, each update point at its own `Update`
//!   instruction (so execution can resume right after it), or at an update point fused with a
//!   loop back-edge (`UpdateLoop`, `UpdateForLoop`), which must be followed by the same
//!   back-edge unfused (where execution resumes after an update).

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::Instr;
use crate::opcodes::{Effects, OperandKind, Role};
use crate::program::{FnKind, Program, Proto};

/// Why a program failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The whole explanation, naming the function and pc where there is one.
    pub message: String,
    /// The function at fault, if any.
    pub function: Option<String>,
    /// The instruction at fault, if any.
    pub pc: Option<usize>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VerifyError {}

type Res = Result<(), VerifyError>;

fn program_error(message: impl Into<String>) -> VerifyError {
    VerifyError { message: message.into(), function: None, pc: None }
}

fn function_error(f: &Proto, message: impl fmt::Display) -> VerifyError {
    VerifyError { message: format!("function '{}': {message}", f.name), function: Some(f.name.clone()), pc: None }
}

fn instr_error(f: &Proto, pc: usize, ins: &Instr, message: impl fmt::Display) -> VerifyError {
    VerifyError {
        message: format!("function '{}', pc {pc} ({}): {message}", f.name, show(ins)),
        function: Some(f.name.clone()),
        pc: Some(pc),
    }
}

/// An instruction as the disassembler prints it: `Add r0 r1 r2`.
fn show(ins: &Instr) -> String {
    let mut s = ins.name().to_string();
    for (_, kind, v) in ins.operands() {
        s.push_str(&format!(" {}{v}", kind.prefix()));
    }
    s
}

/// Checks everything the interpreter relies on. Returns the first problem found.
pub fn verify(program: &Program) -> Res {
    check_unique_names(program)?;
    check_entry_points(program)?;
    check_types(program)?;
    for f in &program.functions {
        check_frame(program, f)?;
        for (pc, ins) in f.code.iter().enumerate() {
            check_operands(program, f, pc, ins)?;
            check_register_window(program, f, pc, ins)?;
            check_control_flow(f, pc, ins)?;
            check_fused(f, pc, ins)?;
            check_closure(program, f, pc, ins)?;
        }
        check_locals(f)?;
        check_update_points(f)?;
        check_definite_assignment(f)?;
    }
    Ok(())
}

/// Function and type names are unique: the VM links both by name.
fn check_unique_names(p: &Program) -> Res {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, f) in p.functions.iter().enumerate() {
        if let Some(first) = seen.insert(&f.name, i) {
            return Err(program_error(format!("functions f{first} and f{i} are both named '{}'", f.name)));
        }
    }
    seen.clear();
    for (i, t) in p.types.iter().enumerate() {
        if let Some(first) = seen.insert(&t.name, i) {
            return Err(program_error(format!("types t{first} and t{i} are both named '{}'", t.name)));
        }
    }
    Ok(())
}

/// The function `index` refers to, which must exist, have `kind` and an arity `arity_ok` accepts.
fn check_function_ref(
    p: &Program,
    what: &str,
    index: u32,
    kind: FnKind,
    arity: &str,
    arity_ok: impl Fn(u16) -> bool,
) -> Res {
    let Some(f) = p.functions.get(index as usize) else {
        return Err(program_error(format!(
            "{what} is function f{index}, but the program has {} functions",
            p.functions.len()
        )));
    };
    if f.kind != kind {
        return Err(program_error(format!(
            "{what} is '{}', of kind {:?}, but must be of kind {kind:?}",
            f.name, f.kind
        )));
    }
    if !arity_ok(f.arity) {
        return Err(program_error(format!("{what} is '{}', of arity {}, but must take {arity}", f.name, f.arity)));
    }
    Ok(())
}

/// `init`, `main`, transformers and `migrate`.
fn check_entry_points(p: &Program) -> Res {
    check_function_ref(p, "the globals initialiser", p.init, FnKind::Init, "no arguments", |a| a == 0)?;
    if let Some(main) = p.main {
        check_function_ref(p, "main", main, FnKind::Function, "no arguments", |a| a == 0)?;
    }
    for t in &p.transforms {
        let what = format!("the transformer of '{}'", t.type_name);
        check_function_ref(p, &what, t.func, FnKind::Transform, "one argument", |a| a == 1)?;
    }
    if let Some(m) = p.migrate {
        check_function_ref(p, "the migrate block", m, FnKind::Migrate, "no arguments", |a| a == 0)?;
    }
    p.check_global_inits().map_err(program_error)
}

/// Record layouts, defaults and methods.
fn check_types(p: &Program) -> Res {
    for t in &p.types {
        let mut fields = HashSet::new();
        for f in &t.fields {
            if !fields.insert(f) {
                return Err(program_error(format!("type '{}' has two fields named '{f}'", t.name)));
            }
        }
        if t.defaults.len() != t.fields.len() {
            return Err(program_error(format!(
                "type '{}' has {} fields but {} default entries",
                t.name,
                t.fields.len(),
                t.defaults.len()
            )));
        }
        for (field, d) in t.fields.iter().zip(&t.defaults) {
            if let Some(d) = *d {
                let what = format!("the default of field '{}.{field}'", t.name);
                check_function_ref(p, &what, d, FnKind::Function, "no arguments", |a| a == 0)?;
            }
        }
        let mut methods = HashSet::new();
        for (name, func) in &t.methods {
            if !methods.insert(name) {
                return Err(program_error(format!("type '{}' has two methods named '{name}'", t.name)));
            }
            let what = format!("method '{}.{name}'", t.name);
            check_function_ref(p, &what, *func, FnKind::Method, "at least its receiver", |a| a >= 1)?;
        }
    }
    Ok(())
}

/// The shape of a function: code, line table, registers, file, terminator.
fn check_frame(p: &Program, f: &Proto) -> Res {
    let Some(last) = f.code.last() else {
        return Err(function_error(f, "has no code"));
    };
    if f.lines.len() != f.code.len() {
        return Err(function_error(
            f,
            format_args!("has {} instructions but {} line entries", f.code.len(), f.lines.len()),
        ));
    }
    let needed = (f.arity as usize + f.ncaptures as usize).max(1);
    if (f.nregs as usize) < needed {
        return Err(function_error(
            f,
            format_args!(
                "has {} registers, fewer than the {needed} its {} parameters and {} captures need (at least 1)",
                f.nregs, f.arity, f.ncaptures
            ),
        ));
    }
    if f.kind == FnKind::Method && f.arity == 0 {
        return Err(function_error(f, "is a method without a receiver (arity 0)"));
    }
    if f.file as usize >= p.files.len() {
        return Err(function_error(
            f,
            format_args!("is in file {}, but the program has {} files", f.file, p.files.len()),
        ));
    }
    if !last.effects().contains(Effects::ENDS) {
        return Err(instr_error(
            f,
            f.code.len() - 1,
            last,
            "the last instruction must be Return, ReturnNil, Jump or Loop, or execution runs off the end",
        ));
    }
    Ok(())
}

/// Every operand below the limit of its kind.
fn check_operands(p: &Program, f: &Proto, pc: usize, ins: &Instr) -> Res {
    for ((name, kind, value), (_, role)) in ins.operands().into_iter().zip(ins.roles()) {
        let (limit, what, table) = match kind {
            // With a run of 0 a window's base may equal `nregs`: `check_register_window`.
            OperandKind::Reg if *role == Role::Window => continue,
            OperandKind::Reg => (f.nregs as usize, "register", "registers in the function"),
            OperandKind::Const => (f.consts.len(), "constant", "constants in the pool"),
            OperandKind::Jump => (f.code.len(), "jump target", "instructions in the function"),
            OperandKind::Global => (p.globals.len(), "global", "globals in the program"),
            OperandKind::Func => (p.functions.len(), "function", "functions in the program"),
            OperandKind::Type => (p.types.len(), "type", "types in the program"),
            OperandKind::Name => (p.names.len(), "name", "entries in the name table"),
            OperandKind::Native => (p.natives.len(), "built-in", "built-ins in the program"),
            OperandKind::Point => (f.update_points.len(), "update point", "update points in the function"),
            OperandKind::Count | OperandKind::Imm => continue,
        };
        if usize::try_from(value).map_or(true, |v| v >= limit) {
            return Err(instr_error(
                f,
                pc,
                ins,
                format_args!(
                    "operand '{name}': {what} {}{value} out of range (there are {limit} {table})",
                    kind.prefix()
                ),
            ));
        }
    }
    Ok(())
}

/// Runs of registers (call arguments, list items, captures, loop state) stay within the frame.
fn check_register_window(p: &Program, f: &Proto, pc: usize, ins: &Instr) -> Res {
    if let Instr::NewRecord { ty, n, .. } = *ins {
        let fields = p.types.get(ty as usize).map_or(0, |t| t.fields.len());
        if fields != n as usize {
            return Err(instr_error(f, pc, ins, format!("record of {fields} fields built from {n} registers")));
        }
    }
    let Some((base, count)) = ins.reg_use().window_extent() else {
        return Ok(());
    };
    let nregs = f.nregs as usize;
    if base + count > nregs {
        let message = if count == 0 {
            format!("base register r{base} is past the function's {nregs} registers")
        } else {
            format!("uses registers r{base}..r{} but the function has {nregs} registers", base + count - 1)
        };
        return Err(instr_error(f, pc, ins, message));
    }
    Ok(())
}

/// `Loop` jumps backward (or to itself); every other jump goes forward.
fn check_control_flow(f: &Proto, pc: usize, ins: &Instr) -> Res {
    let is_loop = ins.effects().contains(Effects::SAFEPOINT);
    for (_, kind, target) in ins.operands() {
        if kind != OperandKind::Jump {
            continue;
        }
        let backward = target <= pc as i64;
        if is_loop && !backward {
            return Err(instr_error(f, pc, ins, "a loop back-edge whose target is ahead of it"));
        }
        if !is_loop && backward {
            return Err(instr_error(
                f,
                pc,
                ins,
                "jumps backward: only Loop and ForLoop may (they are the safepoints that let loops be interrupted)",
            ));
        }
    }
    Ok(())
}

/// A closure's function is a lambda that expects exactly the captures the closure copies.
fn check_closure(p: &Program, f: &Proto, pc: usize, ins: &Instr) -> Res {
    let Instr::Closure { f: target, n, .. } = *ins else {
        return Ok(());
    };
    let Some(lambda) = p.functions.get(target as usize) else {
        return Ok(()); // already reported by `check_operands`
    };
    if lambda.kind != FnKind::Lambda {
        return Err(instr_error(
            f,
            pc,
            ins,
            format_args!("closure of '{}', which is of kind {:?}, not Lambda", lambda.name, lambda.kind),
        ));
    }
    if lambda.ncaptures != n {
        return Err(instr_error(
            f,
            pc,
            ins,
            format_args!("captures {n} values but lambda '{}' expects {}", lambda.name, lambda.ncaptures),
        ));
    }
    Ok(())
}

/// Named locals (for frame migration): registers in range, `start <= end <= code length`.
fn check_locals(f: &Proto) -> Res {
    for l in &f.locals {
        if l.reg >= f.nregs {
            return Err(function_error(
                f,
                format_args!(
                    "local '{}' is in register r{}, but the function has {} registers",
                    l.name, l.reg, f.nregs
                ),
            ));
        }
        if l.start > l.end || l.end as usize > f.code.len() {
            return Err(function_error(
                f,
                format_args!(
                    "local '{}' lives over [{}, {}), not a range within the function's {} instructions",
                    l.name,
                    l.start,
                    l.end,
                    f.code.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A fused update point and back-edge is followed by the same back-edge unfused: execution
/// resumes there after an update, and `UpdateForLoop` falls through past it.
fn check_fused(f: &Proto, pc: usize, ins: &Instr) -> Res {
    let Some(plain) = ins.unfused() else { return Ok(()) };
    if f.code.get(pc + 1) != Some(&plain) {
        return Err(instr_error(
            f,
            pc,
            ins,
            format_args!("must be followed by `{}`, the same back-edge unfused", show(&plain)),
        ));
    }
    Ok(())
}

/// Each update point is the pc of the `Update` (or fused update) instruction naming it, so a
/// migrated frame can resume right after it (an update point is never last: the last
/// instruction is a terminator).
fn check_update_points(f: &Proto) -> Res {
    for (i, point) in f.update_points.iter().enumerate() {
        let at = f.code.get(point.pc as usize);
        if !u16::try_from(i).is_ok_and(|i| at.and_then(Instr::update_point) == Some(i)) {
            let found = at.map_or_else(|| "past the end of the code".to_string(), |ins| format!("at {}", show(ins)));
            return Err(function_error(
                f,
                format_args!("update point p{i} is at pc {}, which is not `Update p{i}` but {found}", point.pc),
            ));
        }
    }
    Ok(())
}

/// Which way out of a branching instruction its conditional destination is written on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Falling through to the next instruction.
    Next,
    /// Skipping the next instruction (`SKIPS`).
    Skip,
    /// Going to its `Jump` operand.
    Target,
}

/// For the branching instructions that write their `Dst` operand on one way out only, that
/// register and that way, and the registers they write whichever way they go (the interpreter
/// leaves `var` alone when a loop ends). Every other instruction writes all its registers on
/// every way out. A test checks that every branching instruction with a `Dst` is listed here.
fn conditional_write(ins: &Instr) -> Option<(u16, Edge, Option<u16>)> {
    match *ins {
        // Writes `var` (and steps the state) only when there is a next item.
        Instr::IterNext { base, var, .. } => Some((var, Edge::Next, base.checked_add(1))),
        // Writes `var` only when the range is not empty.
        Instr::ForPrep { var, .. } => Some((var, Edge::Next, None)),
        // Writes `var` only when the loop goes round again.
        Instr::ForLoop { base, var, .. } | Instr::UpdateForLoop { base, var, .. } => {
            Some((var, Edge::Target, base.checked_add(1)))
        }
        _ => None,
    }
}

/// The most bits (registers tracked times join points) the definite-assignment check keeps,
/// so that a corrupt file cannot make it allocate without bound: 32 MiB. The compiler's
/// functions need a few hundred bytes.
const MAX_ASSIGNMENT_WORDS: usize = 1 << 22;

/// No instruction reads a register that may not have been written on some path from the
/// function's entry (a forward dataflow over the control-flow graph, as the JVM verifier and
/// wasm validation do). A frame's registers beyond its parameters and captures hold whatever
/// an earlier, dead frame left there, so such a read would see a freed object or another
/// frame's value. Parameters and captures (`r0 .. arity + ncaptures`) are written at entry.
/// A frame migrated by an update resumes after an update point with every register written
/// (those not carried are nil: `move_top_frame`), so the paths from the entry are the only
/// ones to check. Runtime errors leave the function, so they add no edges. Unreachable code
/// is not checked (it never runs).
fn check_definite_assignment(f: &Proto) -> Res {
    let n = f.code.len();
    let first = f.arity as usize + f.ncaptures as usize;
    let nregs = f.nregs as usize;
    // Only registers some instruction reads need tracking, densely numbered.
    let mut slot = vec![u32::MAX; nregs];
    let mut tracked = 0u32;
    for ins in &f.code {
        ins.for_each_read(|r| {
            let r = r as usize;
            if r >= first && r < nregs && slot[r] == u32::MAX {
                slot[r] = tracked;
                tracked += 1;
            }
        });
    }
    if tracked == 0 {
        return Ok(());
    }
    let words = (tracked as usize).div_ceil(64);
    // Join points: the entry, every jump target, and every instruction after one that may not
    // fall through to it alone. Between them execution runs straight on.
    let mut leader: Vec<u32> = vec![u32::MAX; n];
    let mut nleaders = 0u32;
    let mut mark = |pc: usize, leader: &mut Vec<u32>| {
        if pc < n && leader[pc] == u32::MAX {
            leader[pc] = nleaders;
            nleaders += 1;
        }
    };
    mark(0, &mut leader);
    for (pc, ins) in f.code.iter().enumerate() {
        let e = ins.effects();
        if let Some(t) = ins.target() {
            mark(t, &mut leader);
        }
        if e.intersects(Effects::BRANCHES | Effects::ENDS | Effects::SKIPS) {
            mark(pc + 1, &mut leader);
        }
        if e.contains(Effects::SKIPS) {
            mark(pc + 2, &mut leader);
        }
    }
    let nleaders = nleaders as usize;
    if nleaders.saturating_mul(words) > MAX_ASSIGNMENT_WORDS {
        return Err(function_error(
            f,
            format_args!(
                "is too large to verify ({tracked} registers read across {nleaders} join points); split it into smaller functions"
            ),
        ));
    }
    let mut leader_pc = vec![0usize; nleaders];
    for (pc, &l) in leader.iter().enumerate() {
        if l != u32::MAX {
            leader_pc[l as usize] = pc;
        }
    }
    // The registers known written at each join point (`None` until a path reaches it).
    let mut state: Vec<Option<Vec<u64>>> = vec![None; nleaders];
    state[0] = Some(vec![0; words]);
    let mut queued = vec![false; nleaders];
    queued[0] = true;
    let mut work = vec![0usize];
    let set = |bits: &mut [u64], r: u16| {
        if let Some(&s) = slot.get(r as usize)
            && s != u32::MAX
        {
            bits[s as usize / 64] |= 1 << (s % 64);
        }
    };
    while let Some(l) = work.pop() {
        queued[l] = false;
        let mut cur = state[l].clone().expect("a queued join point has a state");
        let mut pc = leader_pc[l];
        loop {
            let ins = &f.code[pc];
            let mut unwritten = None;
            ins.for_each_read(|r| {
                if let Some(&s) = slot.get(r as usize)
                    && s != u32::MAX
                    && cur[s as usize / 64] & (1 << (s % 64)) == 0
                    && unwritten.is_none()
                {
                    unwritten = Some(r);
                }
            });
            if let Some(r) = unwritten {
                let entry = match first {
                    0 => "it has no parameters or captures, which are the registers set on entry".to_string(),
                    1 => "only r0, its parameter or capture, is set on entry".to_string(),
                    _ => format!("only r0..r{}, its parameters and captures, are set on entry", first - 1),
                };
                return Err(instr_error(
                    f,
                    pc,
                    ins,
                    format_args!(
                        "reads register r{r}, which is not written on every path from the function's entry to here ({entry})"
                    ),
                ));
            }
            let e = ins.effects();
            let cond = conditional_write(ins);
            let mut out = cur.clone();
            match cond {
                Some((_, _, always)) => {
                    if let Some(r) = always {
                        set(&mut out, r);
                    }
                }
                None => ins.for_each_write(|r| set(&mut out, r)),
            }
            let mut edges: Vec<(Edge, usize)> = Vec::with_capacity(3);
            if !e.contains(Effects::ENDS) {
                edges.push((Edge::Next, pc + 1));
            }
            if e.contains(Effects::SKIPS) {
                edges.push((Edge::Skip, pc + 2));
            }
            if let Some(t) = ins.target() {
                edges.push((Edge::Target, t));
            }
            let mut straight_on = None;
            for (edge, to) in edges {
                if to >= n {
                    continue; // past the end: ruled out by `check_frame` and `check_fused`
                }
                let mut bits = out.clone();
                if let Some((var, on, _)) = cond
                    && on == edge
                {
                    set(&mut bits, var);
                }
                let l = leader[to];
                if l == u32::MAX {
                    straight_on = Some(bits); // only `Next` of a plain instruction
                    continue;
                }
                let l = l as usize;
                let changed = match &mut state[l] {
                    Some(old) => {
                        let mut changed = false;
                        for (o, b) in old.iter_mut().zip(&bits) {
                            let meet = *o & b;
                            changed |= meet != *o;
                            *o = meet;
                        }
                        changed
                    }
                    slot @ None => {
                        *slot = Some(bits);
                        true
                    }
                };
                if changed && !queued[l] {
                    queued[l] = true;
                    work.push(l);
                }
            }
            match straight_on {
                Some(bits) => {
                    cur = bits;
                    pc += 1;
                }
                None => break,
            }
        }
    }
    Ok(())
}
