//! Checks made before anything changes: an update that cannot work is rejected whole.

use super::plan::{FnStatus, UpdatePlan};
use super::{Pending, Policy};
use crate::heap::Obj;
use crate::{FnKind, Instr, Program, Vm};

impl Vm {
    /// Checks that need only the two programs.
    pub(crate) fn validate(&self, new: &Program, plan: &UpdatePlan) -> Result<(), String> {
        let old = self.dsu.program.as_ref().ok_or("no program is loaded")?;
        for t in &new.transforms {
            if !new.types.iter().any(|x| x.name == t.type_name) && !old.types.iter().any(|x| x.name == t.type_name) {
                return Err(format!("transform {}: no type of that name in either version", t.type_name));
            }
        }
        let mut missing = Vec::new();
        for change in &plan.types_changed {
            if new.transforms.iter().any(|t| t.type_name == change.name) {
                continue;
            }
            let Some(t) = new.types.iter().find(|t| t.name == change.name) else { continue };
            for f in &change.fields_added {
                let i = t.fields.iter().position(|x| x == f).unwrap_or(0);
                if t.defaults.get(i).copied().flatten().is_none() {
                    missing.push(format!(
                        "type {}: new field '{f}' has no default and no transformer (give it a default or write `transform {}(old) {{ ... }}`)",
                        change.name, change.name
                    ));
                }
            }
        }
        if !missing.is_empty() {
            return Err(missing.join("; "));
        }
        Ok(())
    }

    /// Under `relaxed`, frames left on old code keep running it after the commit: none of them
    /// may call a function whose arity changes. `top_moves`: the frame at the update point
    /// moves to its new code (it is not left on old code). Old code is a frame of a function
    /// this update changes or removes, and also a frame an earlier update left on old code: its
    /// function may since have been removed (the plan no longer names it) or added again (the
    /// plan calls it added), and it still runs the code it started in.
    pub(crate) fn validate_old_frames(&self, pending: &Pending, top_moves: bool) -> Result<(), String> {
        if self.dsu.settings.policy != Policy::Relaxed {
            return Ok(());
        }
        let n = self.frames.len();
        let running = self.frames.iter().enumerate().filter(|(i, _)| !(i + 1 == n && top_moves)).map(|(_, f)| f);
        let others = self.tasks.other_frames().map(|(_, f)| f);
        for f in running.chain(others) {
            if f.func.proto.kind == FnKind::Lambda || !self.left_on_old_code(f, pending) {
                continue;
            }
            if let Some(why) = self.arity_conflict(&f.func, &pending.program, "a frame left on old code") {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Whether frame `f` runs old code after this update commits: its function is changed or
    /// removed by it, or the frame already runs a version that is not its function's current one.
    fn left_on_old_code(&self, f: &crate::Frame, pending: &Pending) -> bool {
        let status = pending.plan.status(&f.func.proto.name);
        if matches!(status, FnStatus::Changed | FnStatus::Removed) {
            return true;
        }
        let current = self.funcs.get(f.func.slot as usize).and_then(|g| g.as_ref());
        !current.is_some_and(|g| std::rc::Rc::ptr_eq(g, &f.func))
    }

    /// Checks that need the live heap (run after a collection, at the update point).
    /// `arity_changes`: `Vm::arity_changes` of this update (the caller needed it already).
    pub(crate) fn validate_live(&self, new: &Program, plan: &UpdatePlan, arity_changes: bool) -> Result<(), String> {
        for name in &plan.types_removed {
            if new.transforms.iter().any(|t| &t.type_name == name) {
                continue;
            }
            let Some(&slot) = self.type_slots.get(name) else { continue };
            let n = self.heap.records_of(slot).len();
            if n > 0 {
                return Err(format!(
                    "type {name} is removed but {n} live instance{} of it exist{} (write `transform {name}(old)` returning a record of a type of the new version)",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                ));
            }
        }
        // Code that keeps running after the commit (live closures) must not call a function
        // whose arity changes. (The heap scan is skipped when no arity changes.)
        if !arity_changes {
            return Ok(());
        }
        for obj in self.heap.objects() {
            let Obj::Closure { func, .. } = obj else { continue };
            if let Some(why) = self.arity_conflict(func, new, "a live closure") {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Whether the update changes a function's arity, which live closures must then be
    /// checked against (a heap scan, after a collection so that only live ones count).
    pub(crate) fn arity_changes(&self, new: &Program, plan: &UpdatePlan) -> bool {
        let arity = |p: &Program| -> std::collections::HashMap<String, u16> {
            p.functions.iter().map(|f| (f.name.clone(), f.arity)).collect()
        };
        let before = self.dsu.program.as_ref().map(arity).unwrap_or_default();
        let after = arity(new);
        // A function an earlier update removed and this one adds again counts too: old code
        // may still call its last version (with that version's arity).
        plan.functions_changed.iter().any(|name| before.get(name) != after.get(name))
            || plan.functions_added.iter().any(|name| self.func_names.contains(name))
    }

    /// A direct call in `func`'s code to a function whose arity the new version changes.
    /// Also checks the lambdas `func` creates: closures they make later run the same old code.
    pub(crate) fn arity_conflict(&self, func: &crate::Function, new: &Program, who: &str) -> Option<String> {
        if let Some(why) = func.lambdas.get().into_iter().flatten().find_map(|(_, l)| self.arity_conflict(l, new, who))
        {
            return Some(why);
        }
        for ins in &func.proto.code {
            if let Instr::CallMethod { name, argc, .. } = *ins
                && let Some(why) = self.method_arity_conflict(func, new, who, name, argc)
            {
                return Some(why);
            }
            let Instr::CallFunc { f, argc, .. } = *ins else { continue };
            let Some(name) = self.func_names.get_index(f as usize) else { continue };
            let Some(nf) = new.functions.iter().find(|p| &p.name == name) else { continue };
            if nf.arity != argc {
                return Some(format!(
                    "{who} ({}) calls '{name}' with {argc} argument{}, but the new version of '{name}' takes {}",
                    func.proto.name,
                    if argc == 1 { "" } else { "s" },
                    nf.arity
                ));
            }
        }
        None
    }

    /// A method call `x.m(...)` with `argc` arguments in `func`'s code, when the new version
    /// changes the arity of a method `m` (of any type: the receiver's type is known only at run
    /// time) so that the call would no longer fit.
    fn method_arity_conflict(
        &self,
        func: &crate::Function,
        new: &Program,
        who: &str,
        name: u32,
        argc: u16,
    ) -> Option<String> {
        let old = self.dsu.program.as_ref()?;
        let method = self.syms.get_index(name as usize)?;
        // A method whose arity changes, or one an earlier update removed and this one adds
        // again (old code may have been calling its last version).
        let nf = new.methods_named(method).find(|nf| {
            let readded = self.func_names.contains(&nf.name) && !old.functions.iter().any(|of| of.name == nf.name);
            nf.arity != argc + 1
                && (readded || old.functions.iter().any(|of| of.name == nf.name && of.arity != nf.arity))
        })?;
        let takes = nf.arity - 1;
        Some(format!(
            "{who} ({}) calls method '{method}' with {argc} argument{}, but the new version of '{}' takes {takes}",
            func.proto.name,
            if argc == 1 { "" } else { "s" },
            nf.name
        ))
    }
}
