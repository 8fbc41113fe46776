//! The update plan: what changes between the running version and a new one, as plain data.
//! Functions are compared by content: instructions with every slot read as the name it stands
//! for, constants, arity and update points; line numbers are left out, so moving a function in
//! its file changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::OperandKind;
use crate::program::{Const, FnKind, Program, Proto, TypeDef};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeChange {
    pub name: String,
    pub fields_added: Vec<String>,
    pub fields_removed: Vec<String>,
    /// The field list differs only in order.
    pub reordered: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdatePlan {
    pub from: u32,
    pub to: u32,
    pub functions_added: Vec<String>,
    pub functions_removed: Vec<String>,
    pub functions_changed: Vec<String>,
    pub functions_unchanged: Vec<String>,
    pub types_added: Vec<String>,
    pub types_removed: Vec<String>,
    pub types_changed: Vec<TypeChange>,
    pub globals_added: Vec<String>,
    pub globals_removed: Vec<String>,
    pub globals_kept: Vec<String>,
    /// Types with an explicit `transform`.
    pub transforms: Vec<String>,
    pub migrate: bool,
    /// Things a reviewer should look at (a field removed and another added: a rename?).
    pub warnings: Vec<String>,
    /// The functions a person wrote whose lambdas changed (a lambda's code is not part of
    /// its function's), in the order of `functions_changed`.
    pub lambdas_changed_in: Vec<String>,
    /// Under per-task consistency: how this update reaches the tasks (a per-task transition,
    /// or the global model and why), shown by the plan.
    pub consistency: Option<String>,
}

/// How a function changed, as the update engine asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnStatus {
    Unchanged,
    Changed,
    Removed,
    Added,
}

/// A function's content with slots read as names and lines left out.
fn canonical(p: &Program, f: &Proto) -> String {
    // Written in place (no string per operand): every function of both versions is read at
    // each update's request, and a program may have thousands.
    use std::fmt::Write;
    let mut s = String::with_capacity(16 + f.code.len() * 16);
    let _ = write!(s, "{:?} {} {} {}|", f.kind, f.arity, f.ncaptures, f.nregs);
    for ins in &f.code {
        s.push_str(ins.name());
        ins.for_each_operand(|role, v| {
            let i = v as usize;
            let _ = match role.kind() {
                OperandKind::Global => write!(s, " <{}>", p.globals.get(i).map_or("?", |g| g.as_str())),
                OperandKind::Func => write!(s, " <{}>", p.functions.get(i).map_or("?", |f| f.name.as_str())),
                OperandKind::Type => match p.types.get(i) {
                    Some(t) => write!(s, " <{}{{{}}}>", t.name, t.fields.join(",")),
                    None => write!(s, " <?>"),
                },
                OperandKind::Name => write!(s, " <{}>", p.names.get(i).map_or("?", |n| n.as_str())),
                OperandKind::Native => write!(s, " <{}>", p.natives.get(i).map_or("?", |n| n.as_str())),
                OperandKind::Const => match f.consts.get(i) {
                    Some(Const::Int(n)) => write!(s, " <i{n}>"),
                    Some(Const::Float(x)) => write!(s, " <f{:x}>", x.to_bits()),
                    Some(Const::Str(t)) => write!(s, " <s{t:?}>"),
                    None => write!(s, " <?>"),
                },
                // Registers, jumps, counts, immediates and update points are compared as they are.
                OperandKind::Reg | OperandKind::Jump | OperandKind::Count | OperandKind::Imm | OperandKind::Point => {
                    write!(s, " {v}")
                }
            };
        });
        s.push(';');
    }
    for u in &f.update_points {
        let _ = write!(s, "@{:?}/{}/{}", u.label, u.ordinal, u.pc);
    }
    for l in &f.locals {
        let _ = write!(s, "${}/{}/{}/{}/{}", l.name, l.role as u8, l.reg, l.start, l.end);
    }
    s
}

impl UpdatePlan {
    pub fn new(old: &Program, new: &Program, from: u32) -> UpdatePlan {
        let mut plan = UpdatePlan { from, to: from + 1, ..Default::default() };
        plan.compare_functions(old, new);
        plan.lambdas_changed_in = lambda_owners(new, &plan.functions_changed);
        plan.compare_types(old, new);
        plan.compare_globals(old, new);
        plan.find_transforms(old, new);
        plan.migrate = new.migrate.is_some();
        plan
    }

    /// Functions added, removed, changed (by content: `canonical`) and unchanged.
    fn compare_functions(&mut self, old: &Program, new: &Program) {
        // Functions are matched by name through an index: programs have thousands of them.
        let old_by_name: HashMap<&str, &Proto> = old.functions.iter().map(|f| (f.name.as_str(), f)).collect();
        let new_names: HashSet<&str> = new.functions.iter().map(|f| f.name.as_str()).collect();
        for f in &new.functions {
            match old_by_name.get(f.name.as_str()) {
                None => self.functions_added.push(f.name.clone()),
                Some(o) if canonical(old, o) == canonical(new, f) => self.functions_unchanged.push(f.name.clone()),
                Some(_) => self.functions_changed.push(f.name.clone()),
            }
        }
        for o in &old.functions {
            if !new_names.contains(o.name.as_str()) {
                self.functions_removed.push(o.name.clone());
            }
        }
    }

    /// Types added, removed, and changed (their fields), with warnings for what may lose data.
    fn compare_types(&mut self, old: &Program, new: &Program) {
        for t in &new.types {
            match old.types.iter().find(|o| o.name == t.name) {
                None => self.types_added.push(t.name.clone()),
                Some(o) if o.fields == t.fields => {}
                Some(o) => {
                    let change = self.type_change(o, t, new);
                    self.types_changed.push(change);
                }
            }
        }
        for o in &old.types {
            if !new.types.iter().any(|t| t.name == o.name) {
                self.types_removed.push(o.name.clone());
            }
        }
    }

    /// How type `t` of the new program changed from `o`: fields added, removed, reordered.
    /// Warns of a new field nothing can fill (the update will be rejected) and of a field
    /// removed while another is added with no transformer (a rename would lose the data).
    fn type_change(&mut self, o: &TypeDef, t: &TypeDef, new: &Program) -> TypeChange {
        let added: Vec<String> = t.fields.iter().filter(|f| !o.fields.contains(f)).cloned().collect();
        let removed: Vec<String> = o.fields.iter().filter(|f| !t.fields.contains(f)).cloned().collect();
        // The fields both versions have, in a different order (with or without
        // others added or removed).
        let kept_old: Vec<&String> = o.fields.iter().filter(|f| t.fields.contains(f)).collect();
        let kept_new: Vec<&String> = t.fields.iter().filter(|f| o.fields.contains(f)).collect();
        let reordered = kept_old != kept_new;
        let transformed = new.transforms.iter().any(|x| x.type_name == t.name);
        for f in &added {
            let i = t.fields.iter().position(|x| x == f).unwrap_or(0);
            if !transformed && t.defaults.get(i).copied().flatten().is_none() {
                self.warnings.push(format!(
                    "type {}: new field '{f}' has no default and no transformer: the update will be rejected",
                    t.name
                ));
            }
        }
        if !added.is_empty() && !removed.is_empty() && !transformed {
            self.warnings.push(format!(
                "type {}: field{} {} removed and {} added; if this is a rename, write a `transform {}(old)` to keep the data",
                t.name,
                if removed.len() > 1 { "s" } else { "" },
                removed.join(", "),
                added.join(", "),
                t.name
            ));
        }
        TypeChange { name: t.name.clone(), fields_added: added, fields_removed: removed, reordered }
    }

    /// Globals added, kept and removed.
    fn compare_globals(&mut self, old: &Program, new: &Program) {
        let old_globals: BTreeSet<&String> = old.globals.iter().collect();
        for g in &new.globals {
            if old_globals.contains(g) {
                self.globals_kept.push(g.clone());
            } else {
                self.globals_added.push(g.clone());
            }
        }
        for g in &old.globals {
            if !new.globals.contains(g) {
                self.globals_removed.push(g.clone());
            }
        }
    }

    /// The transformers that run. A transformer runs when its type's fields change (or the
    /// type is removed): one kept in the file for a type this update leaves alone does not
    /// run again (a warning says so). Needs the types compared.
    fn find_transforms(&mut self, old: &Program, new: &Program) {
        for t in &new.transforms {
            let runs =
                self.types_changed.iter().any(|c| c.name == t.type_name) || self.types_removed.contains(&t.type_name);
            if runs {
                self.transforms.push(t.type_name.clone());
            } else if old.types.iter().any(|o| o.name == t.type_name) {
                self.warnings.push(format!(
                    "transform {0} does not run: the fields of type {0} are the same in both versions (a transformer runs when its type's fields change; to retype a field, give it a new name)",
                    t.type_name
                ));
            }
        }
    }

    pub fn status(&self, name: &str) -> FnStatus {
        if self.functions_changed.iter().any(|n| n == name) {
            FnStatus::Changed
        } else if self.functions_removed.iter().any(|n| n == name) {
            FnStatus::Removed
        } else if self.functions_added.iter().any(|n| n == name) {
            FnStatus::Added
        } else {
            FnStatus::Unchanged
        }
    }

    /// Why this update cannot be a per-task transition (TASKS.md: only code changes: no
    /// layout changes, transformers, `migrate`, or added or removed globals), or `None`.
    /// Tasks in two versions share one heap and one set of globals, so only an update that
    /// changes neither can have them side by side.
    pub fn per_task_blocker(&self) -> Option<String> {
        let names = |v: &[String]| v.join(", ");
        if !self.types_changed.is_empty() {
            let t: Vec<String> = self.types_changed.iter().map(|t| t.name.clone()).collect();
            return Some(format!("it changes the layout of {}", names(&t)));
        }
        if !self.types_removed.is_empty() {
            return Some(format!("it removes the type {}", names(&self.types_removed)));
        }
        if !self.transforms.is_empty() {
            return Some(format!("it has a transformer for {}", names(&self.transforms)));
        }
        if self.migrate {
            return Some("it has a migrate block".into());
        }
        if !self.globals_added.is_empty() || !self.globals_removed.is_empty() {
            let g: Vec<String> = self.globals_added.iter().chain(&self.globals_removed).cloned().collect();
            return Some(format!("it adds or removes the global {}", names(&g)));
        }
        None
    }

    /// Counts as DSU.md's events report them (user-visible functions: compiler-made ones such
    /// as `<init x>` and lambdas are counted with the function they belong to).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "+{} ~{} -{} functions, +{} ~{} -{} types",
            visible(&self.functions_added),
            visible(&self.functions_changed),
            visible(&self.functions_removed),
            self.types_added.len(),
            self.types_changed.len(),
            self.types_removed.len()
        );
        if !self.globals_added.is_empty() || !self.globals_removed.is_empty() {
            s.push_str(&format!(", +{} -{} globals", self.globals_added.len(), self.globals_removed.len()));
        }
        if !self.transforms.is_empty() {
            s.push_str(&format!(", transform {}", self.transforms.join(", ")));
        }
        if self.migrate {
            s.push_str(", migrate");
        }
        s
    }
}

/// The function each changed lambda of `new` belongs to (the outermost: a lambda's lambda
/// belongs to its function too), those a person wrote, with repeats next to each other
/// removed. A lambda belongs to the function whose code makes its closures (`Closure`).
fn lambda_owners(new: &Program, changed: &[String]) -> Vec<String> {
    // The changed lambdas, in the order of `changed`; the code is scanned for the functions
    // that make them only when there are some (planning is part of every update's stall).
    let order: HashMap<&str, usize> = changed.iter().enumerate().map(|(k, n)| (n.as_str(), k)).collect();
    let mut lambdas: Vec<(usize, usize)> = new
        .functions
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == FnKind::Lambda)
        .filter_map(|(i, f)| Some((*order.get(f.name.as_str())?, i)))
        .collect();
    if lambdas.is_empty() {
        return Vec::new();
    }
    lambdas.sort();
    let makers = new.closure_makers();
    let mut owners: Vec<String> = Vec::new();
    for &(_, i) in &lambdas {
        let mut owner = i;
        // Bounded: a corrupt program's lambdas could make each other.
        for _ in 0..new.functions.len() {
            match (new.functions[owner].kind, makers[owner]) {
                (FnKind::Lambda, Some(m)) => owner = m as usize,
                _ => break,
            }
        }
        let name = &new.functions[owner].name;
        if owner != i && is_visible(name) && owners.last() != Some(name) {
            owners.push(name.clone());
        }
    }
    owners
}

/// Functions a person wrote (not `<init x>`, `<globals>`, lambdas, field defaults).
pub fn is_visible(name: &str) -> bool {
    !name.contains('<') && !name.starts_with("__")
}

pub fn visible(names: &[String]) -> usize {
    names.iter().filter(|n| is_visible(n)).count()
}

impl fmt::Display for UpdatePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "update plan: version {} -> {}", self.from, self.to)?;
        let list = |f: &mut fmt::Formatter<'_>, title: &str, names: &[String]| -> fmt::Result {
            let shown: Vec<&String> = names.iter().filter(|n| is_visible(n)).collect();
            if !shown.is_empty() {
                writeln!(f, "  {title}: {}", shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))?;
            }
            Ok(())
        };
        list(f, "functions added", &self.functions_added)?;
        list(f, "functions changed", &self.functions_changed)?;
        list(f, "functions removed", &self.functions_removed)?;
        writeln!(f, "  functions unchanged: {}", visible(&self.functions_unchanged))?;
        // A lambda's code is not part of its function's: show whose lambdas changed.
        if !self.lambdas_changed_in.is_empty() {
            writeln!(f, "  lambdas changed in: {}", self.lambdas_changed_in.join(", "))?;
        }
        list(f, "types added", &self.types_added)?;
        for t in &self.types_changed {
            let mut parts = Vec::new();
            if !t.fields_added.is_empty() {
                parts.push(format!("+{}", t.fields_added.join(" +")));
            }
            if !t.fields_removed.is_empty() {
                parts.push(format!("-{}", t.fields_removed.join(" -")));
            }
            if t.reordered {
                parts.push("fields reordered".into());
            }
            writeln!(f, "  type changed: {} ({})", t.name, parts.join(", "))?;
        }
        list(f, "types removed", &self.types_removed)?;
        list(f, "globals added", &self.globals_added)?;
        list(f, "globals removed", &self.globals_removed)?;
        list(f, "transformers", &self.transforms)?;
        if self.migrate {
            writeln!(f, "  migrate block: yes")?;
        }
        if let Some(c) = &self.consistency {
            writeln!(f, "  consistency: {c}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}
