//! Which conversions may run lazily. DSU.md: eager and lazy "must give the same results". A
//! lazy conversion runs at the instance's first use, so its code must not be able to see
//! anything the program can change after the update: globals, records other than the instance
//! being converted, containers it did not make, output, the clock. This module reads the
//! bytecode of a transformer (or of a field's default) and of the functions it calls, and
//! answers with the first thing that could make the lazy result differ. An update whose
//! conversions are not all safe converts eagerly even in lazy mode, and says why in its
//! `applied` event (docs/dsu.md, "Lazy mode").
//!
//! The analysis is flow-insensitive and conservative: each register gets the weakest class
//! of all the values written to it.

use std::fmt;

use rustc_hash::FxHashSet;

use super::UpdatePlan;
use crate::native::{MethodImpl, Reads};
use crate::{Instr, Program, Vm};

/// What the analysis knows about a register's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Nothing code outside this call can change, all the way down: numbers, strings, ranges,
    /// functions, and lists and maps this call built from such values.
    Sealed,
    /// A list or map this call made: only this call can change it, but it may hold anything.
    Fresh,
    /// A record this call made (as `Fresh`, but its methods are Molt code).
    FreshRecord,
    /// The instance being converted (a transformer's parameter): its fields may be read.
    Old,
    /// Anything (a field of the instance, an argument, a value read from a fresh container).
    Unknown,
}

fn join(a: Class, b: Class) -> Class {
    match (a, b) {
        (x, y) if x == y => x,
        // Not `Fresh` for a sealed list and a fresh one: a write through the joined register
        // would reach a list another register still holds as sealed.
        _ => Class::Unknown,
    }
}

/// What a refused operation is given (or looks into), in the reasons.
const CHANGING: &str = "a value the program can change after the update";

/// How deep the analysis follows calls before it gives up (the answer is then "not safe").
const MAX_DEPTH: usize = 8;

impl Vm {
    /// Why the conversions of `plan` (transformers and field defaults of the new `program`)
    /// could give another result when run lazily than when run during the update, or None.
    /// It reads the program before it is linked, so it can decide before anything changes.
    pub(crate) fn lazy_blocker(&self, program: &Program, plan: &UpdatePlan) -> Option<String> {
        let mut scan = Scan { vm: self, program, active: FxHashSet::default(), safe: FxHashSet::default() };
        // Only the transformers this update runs (a `transform` of an unchanged type is not).
        let runs = |name: &str| {
            plan.types_changed.iter().any(|c| c.name == name) || plan.types_removed.iter().any(|t| t == name)
        };
        for t in program.transforms.iter().filter(|t| runs(&t.type_name)) {
            if let Err(why) = scan.function(t.func, true, 0) {
                return Some(format!("transform {} {why}", t.type_name));
            }
        }
        for change in &plan.types_changed {
            if program.transforms.iter().any(|t| t.type_name == change.name) {
                continue;
            }
            let Some(ty) = program.types.iter().find(|t| t.name == change.name) else { continue };
            for field in &change.fields_added {
                let i = ty.fields.iter().position(|f| f == field);
                if let Some(Some(d)) = i.and_then(|i| ty.defaults.get(i).copied())
                    && let Err(why) = scan.function(d, false, 0)
                {
                    return Some(format!("the default of {}.{field} {why}", ty.name));
                }
            }
        }
        None
    }
}

struct Scan<'a> {
    vm: &'a Vm,
    program: &'a Program,
    /// Functions on the analysis' own call path (recursion is assumed safe there: each
    /// function is checked on its own terms).
    active: FxHashSet<u32>,
    safe: FxHashSet<u32>,
}

/// One instruction's place in the function being checked: the registers' classes before it
/// and its line, for the reasons.
struct Site<'c> {
    classes: &'c [Class],
    line: u32,
}

impl Site<'_> {
    fn class(&self, r: u16) -> Class {
        class_of(self.classes, r)
    }

    /// A value this call made (or a constant): nothing outside it can change it.
    fn own(&self, r: u16) -> bool {
        matches!(self.class(r), Class::Sealed | Class::Fresh | Class::FreshRecord)
    }

    fn sealed(&self, base: u16, n: u16) -> bool {
        all_sealed(self.classes, base, n)
    }

    /// A refusal, with the line it is at.
    fn refuse<T>(&self, what: impl fmt::Display) -> Result<T, String> {
        Err(format!("{what} (line {})", self.line))
    }
}

impl Scan<'_> {
    /// Checks function `index` of the program. `old_param`: register 0 is the instance being
    /// converted (a transformer), whose fields it may read.
    fn function(&mut self, index: u32, old_param: bool, depth: usize) -> Result<(), String> {
        if self.safe.contains(&index) || self.active.contains(&index) {
            return Ok(());
        }
        let Some(f) = self.program.functions.get(index as usize) else {
            return Err("calls a function the program does not have".into());
        };
        if depth > MAX_DEPTH {
            return Err(format!("goes more than {MAX_DEPTH} calls deep (not followed further)"));
        }
        self.active.insert(index);
        let states = classify(&f.code, f.arity, old_param, self.vm, self.program);
        for (pc, i) in f.code.iter().enumerate() {
            let Some(classes) = &states[pc] else { continue }; // unreachable
            let site = Site { classes, line: f.lines.get(pc).copied().unwrap_or(f.line) };
            self.instruction(i, &site, depth)?;
        }
        self.active.remove(&index);
        self.safe.insert(index);
        Ok(())
    }

    /// Checks one instruction (every one is listed: a new one is classified here).
    fn instruction(&mut self, i: &Instr, site: &Site, depth: usize) -> Result<(), String> {
        let program = self.program;
        match *i {
            Instr::GetGlobal { g, .. } => {
                let g = name(&program.globals, g);
                site.refuse(format!("reads global '{g}', which the program can change after the update"))
            }
            Instr::SetGlobal { g, .. } => site.refuse(format!("writes global '{}'", name(&program.globals, g))),
            Instr::GetField { obj, .. } if site.own(obj) || site.class(obj) == Class::Old => Ok(()),
            Instr::GetField { .. } => site.refuse("reads a field of a record other than the one it converts"),
            Instr::GetIndex { obj, .. } | Instr::IterPrep { src: obj, .. } if site.own(obj) => Ok(()),
            Instr::GetIndex { .. } | Instr::IterPrep { .. } => site.refuse("reads a list or map it did not make"),
            Instr::SetField { obj, src, .. } | Instr::SetIndex { obj, src, .. } => store(site, obj, src),
            Instr::Call { .. } => site.refuse("calls a function value"),
            Instr::CallFunc { f: callee, .. } => {
                let callee_name = program.functions.get(callee as usize).map_or("?", |p| p.name.as_str());
                self.function(callee, false, depth + 1)
                    .map_err(|why| format!("calls '{callee_name}' (line {}), which {why}", site.line))
            }
            Instr::CallNative { native, base, argc, .. } => self.call_native(site, native, base, argc),
            Instr::CallMethod { base, name: m, argc, .. } => self.call_method(site, base, m, argc),
            Instr::Update { .. } | Instr::UpdateLoop { .. } | Instr::UpdateForLoop { .. } => {
                site.refuse("has an update point")
            }
            // Registers, constants and control only; `IterNext` reads the iteration
            // `IterPrep` prepared (checked there); a closure or a fresh object is only
            // made. The test below keeps this list to what the table says is harmless.
            Instr::Move { .. }
            | Instr::LoadNil { .. }
            | Instr::LoadTrue { .. }
            | Instr::LoadFalse { .. }
            | Instr::LoadInt { .. }
            | Instr::LoadConst { .. }
            | Instr::LoadFunc { .. }
            | Instr::LoadNative { .. }
            | Instr::Closure { .. }
            | Instr::Add { .. }
            | Instr::Sub { .. }
            | Instr::Mul { .. }
            | Instr::Div { .. }
            | Instr::Mod { .. }
            | Instr::AddImm { .. }
            | Instr::Neg { .. }
            | Instr::Not { .. }
            | Instr::Eq { .. }
            | Instr::Ne { .. }
            | Instr::Lt { .. }
            | Instr::Le { .. }
            | Instr::Gt { .. }
            | Instr::Ge { .. }
            | Instr::JumpIfNotLt { .. }
            | Instr::JumpIfNotLe { .. }
            | Instr::JumpIfNotGt { .. }
            | Instr::JumpIfNotGe { .. }
            | Instr::Range { .. }
            | Instr::Jump { .. }
            | Instr::Loop { .. }
            | Instr::JumpIfFalse { .. }
            | Instr::JumpIfTrue { .. }
            | Instr::NewList { .. }
            | Instr::NewMap { .. }
            | Instr::NewRecord { .. }
            | Instr::Return { .. }
            | Instr::ReturnNil {}
            | Instr::IterNext { .. }
            | Instr::ForPrep { .. }
            | Instr::ForLoop { .. } => Ok(()),
        }
    }

    /// A call of built-in `native` on `argc` arguments from `base`: only one that reads no
    /// more than values, or the contents of values this call sealed.
    fn call_native(&self, site: &Site, native: u32, base: u16, argc: u16) -> Result<(), String> {
        let n = name(&self.program.natives, native);
        match self.vm.native_reads(&n) {
            Reads::Values => Ok(()),
            Reads::Contents if site.sealed(base, argc) => Ok(()),
            Reads::Contents => site.refuse(format!("calls {n}() on {CHANGING}")),
            Reads::World => site.refuse(format!("calls {n}()")),
        }
    }

    /// A call of method `m` of `R[base]`: a built-in one (not written in Molt), on sealed
    /// values, or one that does not look into the items of a list or map this call made.
    fn call_method(&self, site: &Site, base: u16, m: u32, argc: u16) -> Result<(), String> {
        let m = name(&self.program.names, m);
        if self.vm.molt_method(&m) {
            return site.refuse(format!("calls method '{m}', which is written in Molt"));
        }
        match site.class(base) {
            Class::Sealed if site.sealed(base + 1, argc) => Ok(()),
            Class::Sealed => site.refuse(format!("calls method '{m}' with {CHANGING}")),
            // Its own list or map: any built-in method that does not look into
            // the items (they may be anything).
            Class::Fresh if self.vm.method_reads(&m) == Reads::Values => Ok(()),
            _ => site.refuse(format!("calls method '{m}' of a value it did not make")),
        }
    }
}

/// A write of `R[src]` into the object in `R[obj]` (a field or an item): only into an object
/// this call made, and into a sealed one only a sealed value (it stays sealed).
fn store(site: &Site, obj: u16, src: u16) -> Result<(), String> {
    match site.class(obj) {
        Class::Fresh | Class::FreshRecord => Ok(()),
        Class::Sealed if site.sealed(src, 1) => Ok(()),
        Class::Sealed => site.refuse(format!("puts {CHANGING} into a list or map of constants")),
        _ => site.refuse("writes to an object it did not make"),
    }
}

/// Entry `i` of one of the program's name tables, for the reasons.
fn name(table: &[String], i: u32) -> String {
    table.get(i as usize).cloned().unwrap_or_else(|| "?".into())
}

impl Vm {
    /// What built-in `name` reads (an unknown one: everything).
    fn native_reads(&self, name: &str) -> Reads {
        self.native_index(name).map_or(Reads::World, |i| self.natives[i as usize].reads)
    }

    /// What the built-in methods named `name` read, the most of any kind that has one (the
    /// receiver's kind is not known here). None registered: `Values` (the call fails alike
    /// whenever it runs).
    fn method_reads(&self, name: &str) -> Reads {
        let Some(sym) = self.syms.get_index_of(name) else { return Reads::Values };
        let rank = |r: Reads| match r {
            Reads::Values => 0,
            Reads::Contents => 1,
            Reads::World => 2,
        };
        self.method_reads
            .iter()
            .filter(|((_, s), _)| *s as usize == sym)
            .map(|(_, r)| *r)
            .max_by_key(|r| rank(*r))
            .unwrap_or(Reads::Values)
    }

    /// Whether a built-in type's method `name` is written in Molt (it may call anything).
    fn molt_method(&self, name: &str) -> bool {
        let Some(sym) = self.syms.get_index_of(name) else { return false };
        self.builtin_methods.iter().any(|((_, s), m)| *s as usize == sym && matches!(m, MethodImpl::Molt(_)))
    }
}

/// The class of every register before each instruction (None: unreachable), by a forward
/// data-flow pass to a fixpoint: registers are reused by unrelated temporaries, so a
/// register's class is known only at a given point.
fn classify(code: &[Instr], arity: u16, old_param: bool, vm: &Vm, program: &Program) -> Vec<Option<Vec<Class>>> {
    let n = code.iter().fold(arity as usize, |n, i| {
        let mut m = n;
        i.for_each_write(|r| m = m.max(r as usize + 1));
        m
    });
    let mut entry = vec![Class::Unknown; n];
    if old_param && arity >= 1 {
        entry[0] = Class::Old;
    }
    let mut states: Vec<Option<Vec<Class>>> = vec![None; code.len()];
    let mut work = vec![0usize];
    if !code.is_empty() {
        states[0] = Some(entry);
    }
    while let Some(pc) = work.pop() {
        let Some(before) = states[pc].clone() else { continue };
        let after = transfer(&code[pc], before, vm, program);
        for next in code[pc].successors(pc) {
            if next >= code.len() {
                continue;
            }
            let merged = match &states[next] {
                None => after.clone(),
                Some(s) => s.iter().zip(&after).map(|(a, b)| join(*a, *b)).collect(),
            };
            if states[next].as_ref() != Some(&merged) {
                states[next] = Some(merged);
                work.push(next);
            }
        }
    }
    states
}

/// The registers' classes after `i` runs.
fn transfer(i: &Instr, mut c: Vec<Class>, vm: &Vm, program: &Program) -> Vec<Class> {
    for (r, k) in written(i, &c, vm, program).into_iter().flatten() {
        if let Some(slot) = c.get_mut(r as usize) {
            *slot = k;
        }
    }
    c
}

/// The registers `i` writes and their classes after it (one register may be given twice),
/// or None when it writes none.
fn written(i: &Instr, c: &[Class], vm: &Vm, program: &Program) -> Option<[(u16, Class); 2]> {
    let sealed_if = |all: bool| if all { Class::Sealed } else { Class::Unknown };
    let one = |dst: u16, class: Class| Some([(dst, class); 2]);
    match *i {
        Instr::Move { dst, src } => one(dst, class_of(c, src)),
        // An empty list or map is to be filled: fresh, not sealed.
        Instr::NewList { dst, base, n } | Instr::NewMap { dst, base, n } => {
            one(dst, if n > 0 && all_sealed(c, base, n) { Class::Sealed } else { Class::Fresh })
        }
        Instr::NewRecord { dst, .. } => one(dst, Class::FreshRecord),
        Instr::GetField { dst, obj, .. } | Instr::GetIndex { dst, obj, .. } => {
            one(dst, sealed_if(class_of(c, obj) == Class::Sealed))
        }
        Instr::CallNative { dst, native, .. } => {
            let n = program.natives.get(native as usize).map_or("", String::as_str);
            one(dst, sealed_if(vm.native_reads(n) != Reads::World))
        }
        // A native method of a sealed value, given sealed values, makes sealed values (the
        // other calls are refused).
        Instr::CallMethod { dst, base, argc, .. } => one(dst, sealed_if(all_sealed(c, base, argc + 1))),
        Instr::GetGlobal { dst, .. } | Instr::Call { dst, .. } | Instr::CallFunc { dst, .. } => {
            one(dst, Class::Unknown)
        }
        // A loop's state: the iterated value (or an end) and an index.
        Instr::IterPrep { base, src } => Some([(base, class_of(c, src)), (base + 1, Class::Sealed)]),
        Instr::IterNext { base, var, .. } => {
            Some([(base + 1, Class::Sealed), (var, sealed_if(class_of(c, base) == Class::Sealed))])
        }
        Instr::ForPrep { base, var, .. }
        | Instr::ForLoop { base, var, .. }
        | Instr::UpdateForLoop { base, var, .. } => Some([(base + 1, Class::Sealed), (var, Class::Sealed)]),
        // Constants, arithmetic, comparisons, ranges, functions: sealed. Control, stores and
        // update points write no register.
        Instr::LoadNil { .. }
        | Instr::LoadTrue { .. }
        | Instr::LoadFalse { .. }
        | Instr::LoadInt { .. }
        | Instr::LoadConst { .. }
        | Instr::LoadFunc { .. }
        | Instr::LoadNative { .. }
        | Instr::Closure { .. }
        | Instr::Add { .. }
        | Instr::Sub { .. }
        | Instr::Mul { .. }
        | Instr::Div { .. }
        | Instr::Mod { .. }
        | Instr::AddImm { .. }
        | Instr::Neg { .. }
        | Instr::Not { .. }
        | Instr::Eq { .. }
        | Instr::Ne { .. }
        | Instr::Lt { .. }
        | Instr::Le { .. }
        | Instr::Gt { .. }
        | Instr::Ge { .. }
        | Instr::Range { .. }
        | Instr::SetGlobal { .. }
        | Instr::JumpIfNotLt { .. }
        | Instr::JumpIfNotLe { .. }
        | Instr::JumpIfNotGt { .. }
        | Instr::JumpIfNotGe { .. }
        | Instr::Jump { .. }
        | Instr::Loop { .. }
        | Instr::JumpIfFalse { .. }
        | Instr::JumpIfTrue { .. }
        | Instr::SetField { .. }
        | Instr::SetIndex { .. }
        | Instr::Return { .. }
        | Instr::ReturnNil {}
        | Instr::Update { .. }
        | Instr::UpdateLoop { .. } => {
            let mut dst = None;
            i.for_each_write(|r| dst = Some(r));
            one(dst?, Class::Sealed)
        }
    }
}

/// The class of register `r` (one past the registers seen: anything).
fn class_of(c: &[Class], r: u16) -> Class {
    c.get(r as usize).copied().unwrap_or(Class::Unknown)
}

/// Whether the `n` registers from `base` all hold sealed values.
fn all_sealed(c: &[Class], base: u16, n: u16) -> bool {
    (base..base + n).all(|r| class_of(c, r) == Class::Sealed)
}

#[cfg(test)]
mod tests {
    use crate::opcodes::{Effects, OPCODES};

    /// The instructions `Scan::function` lets through unchecked are those the table says
    /// touch no global, heap object or other code, and are no update point (but `IterNext`,
    /// which reads the iteration its checked `IterPrep` prepared).
    #[test]
    fn unchecked_instructions_are_harmless() {
        let checked = [
            "GetGlobal",
            "SetGlobal",
            "GetField",
            "GetIndex",
            "IterPrep",
            "SetField",
            "SetIndex",
            "Call",
            "CallFunc",
            "CallNative",
            "CallMethod",
            "Update",
            "UpdateLoop",
            "UpdateForLoop",
            "IterNext",
        ];
        let sensitive = Effects::READS_HEAP
            | Effects::WRITES_HEAP
            | Effects::READS_GLOBAL
            | Effects::WRITES_GLOBAL
            | Effects::CALLS
            | Effects::UPDATE_POINT;
        for op in OPCODES.iter().filter(|op| !checked.contains(&op.name)) {
            assert!(!op.effects.intersects(sensitive), "{} has {:?}", op.name, op.effects);
        }
    }
}
