//! Frames and an update. Before it: which frames block it, and how the frame at the update
//! point moves (`plan_frames`, `plan_move`). At its commit: that frame continues in the new
//! version of its function, at the matching update point, with its locals carried by name;
//! frames of unchanged functions switch to the identical new code (`migrate_frames`).

use std::rc::Rc;

use super::Pending;
use super::Policy;
use super::plan::{FnStatus, UpdatePlan};
use crate::frame_stack::FrameStack;
use crate::func_table::FuncTable;
use crate::program::{LocalInfo, LocalRole, Proto};
use crate::tasks::{State, Wait};
use crate::{FnKind, Function, Value, Vm};

/// Rebuilds the registers at `base` of a frame moving to `new` as `m` says: locals carried,
/// `for` loop state adjusted, the rest nil.
fn move_registers(stack: &mut Vec<Value>, base: usize, m: &FrameMove, new: &Function) {
    let old: Vec<Value> = m.carry.iter().map(|(_, o)| stack[base + *o as usize]).collect();
    let need = base + new.proto.nregs as usize + 1;
    if stack.len() < need {
        stack.resize(need, Value::Nil);
    }
    for r in 0..new.proto.nregs as usize {
        stack[base + r] = Value::Nil;
    }
    for ((nr, _), v) in m.carry.iter().zip(old) {
        stack[base + *nr as usize] = v;
    }
    for &(nr, delta) in &m.adjust {
        if let Value::Int(i) = stack[base + nr as usize] {
            stack[base + nr as usize] = Value::Int(i.saturating_add(delta));
        }
    }
}

/// Frames (of a task that is not running) of functions `plan` leaves unchanged, running the
/// version in table `from`, run the identical code of table `to` from now on (the frames of
/// changed functions stay: under `relaxed` they finish in their old code).
pub(crate) fn retarget_unchanged(frames: &mut FrameStack, plan: &UpdatePlan, from: &FuncTable, to: &FuncTable) {
    for f in frames.iter_mut() {
        if f.func.proto.kind == FnKind::Lambda || plan.status(&f.func.proto.name) != FnStatus::Unchanged {
            continue;
        }
        let slot = f.func.slot as usize;
        let current = from.get(slot).and_then(|g| g.as_ref()).is_some_and(|g| Rc::ptr_eq(g, &f.func));
        if let (true, Some(Some(new))) = (current, to.get(slot)) {
            f.func = new.clone();
        }
    }
}

/// Locals in scope at `pc`: for each name and role the innermost one (the latest start).
fn in_scope(p: &Proto, pc: u32) -> Vec<&LocalInfo> {
    let mut out: Vec<&LocalInfo> = Vec::new();
    for l in p.locals.iter().filter(|l| l.start <= pc && pc < l.end) {
        match out.iter_mut().find(|o| o.name == l.name && o.role == l.role) {
            Some(o) if o.start < l.start => *o = l,
            Some(_) => {}
            None => out.push(l),
        }
    }
    out
}

/// How to move a frame from `old` at its update point `point` into `new`.
pub(crate) struct FrameMove {
    /// Where execution continues in the new code (just after the matching point).
    pub pc: usize,
    /// (new register, old register whose value it takes); registers not listed start nil.
    pub carry: Vec<(u16, u16)>,
    /// (new register, amount): a carried int the new code keeps one step apart (a counting
    /// `for` loop holds the current value, a general one the next index).
    pub adjust: Vec<(u16, i64)>,
    /// Old registers that must hold ints for the move to work (a general `for` loop's state
    /// going into a counting loop: only a range's iteration fits).
    pub need_int: Vec<(u16, String)>,
}

/// The move, or why the frame cannot be migrated.
pub(crate) fn plan_move(old: &Proto, new: &Proto, point: u16) -> Result<FrameMove, String> {
    let from = old.update_points.get(point as usize).ok_or("bad update point")?;
    let to = new
        .update_points
        .iter()
        .find(|u| match &from.label {
            Some(l) => u.label.as_ref() == Some(l),
            None => u.label.is_none() && u.ordinal == from.ordinal,
        })
        .ok_or_else(|| match &from.label {
            Some(l) => format!("the new version of '{}' has no update point labelled \"{l}\"", old.name),
            None => format!("the new version of '{}' has no unlabelled update point #{}", old.name, from.ordinal + 1),
        })?;
    let old_scope = in_scope(old, from.pc);
    let new_scope = in_scope(new, to.pc);
    // `for` loop state carries over only within the same chain of loops (over the same
    // variable names), whether each loop counts a range or iterates a value.
    let loops = |s: &[&LocalInfo]| {
        let mut v: Vec<String> = s
            .iter()
            .filter(|l| matches!(l.role, LocalRole::ForRangeEnd | LocalRole::ForState))
            .map(|l| l.name.clone())
            .collect();
        v.sort();
        v
    };
    if loops(&old_scope) != loops(&new_scope) {
        return Err(format!("the update point in '{}' moved to a different chain of `for` loops", old.name));
    }
    let mut m = FrameMove { pc: to.pc as usize + 1, carry: Vec::new(), adjust: Vec::new(), need_int: Vec::new() };
    for n in &new_scope {
        // The old local of the same name (the loop variable's, for loop state) and `role`.
        let old_reg = |role: LocalRole| old_scope.iter().find(|o| o.role == role && o.name == n.name).map(|o| o.reg);
        // A variable, and the same kind of loop's state, carries over as it is; a counting
        // loop and a general one over a range hold the same two ints, one step apart.
        let (source, delta, must_be_int) = match n.role {
            LocalRole::Named => (old_reg(LocalRole::Named), 0, false),
            LocalRole::ForRangeEnd => match old_reg(LocalRole::ForRangeEnd) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(LocalRole::ForState), 0, true),
            },
            LocalRole::ForRangeNext => match old_reg(LocalRole::ForRangeNext) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(LocalRole::ForNext), -1, false),
            },
            LocalRole::ForState => match old_reg(LocalRole::ForState) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(LocalRole::ForRangeEnd), 0, false),
            },
            LocalRole::ForNext => match old_reg(LocalRole::ForNext) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(LocalRole::ForRangeNext), 1, false),
            },
        };
        let Some(o) = source else { continue };
        m.carry.push((n.reg, o));
        if delta != 0 {
            m.adjust.push((n.reg, delta));
        }
        if must_be_int {
            m.need_int.push((o, n.name.clone()));
        }
    }
    Ok(m)
}

impl Vm {
    /// Decides, for every frame of the running task, whether it blocks the update; returns
    /// how the top frame moves.
    pub(crate) fn plan_frames(&self, pending: &Pending, point: Option<u16>) -> Result<Option<FrameMove>, String> {
        self.plan_stack(&self.frames, &self.stack, pending, point)
    }

    /// `plan_frames` for one task's frames and registers (`point`: the update point its top
    /// frame stands at, if any).
    pub(crate) fn plan_stack(
        &self,
        frames: &crate::frame_stack::FrameStack,
        stack: &[Value],
        pending: &Pending,
        point: Option<u16>,
    ) -> Result<Option<FrameMove>, String> {
        let n = frames.len();
        let mut top_move = None;
        for (i, f) in frames.iter().enumerate() {
            if f.func.proto.kind == FnKind::Lambda {
                continue; // a lambda runs the code it was created from
            }
            let name = &f.func.proto.name;
            let status = pending.plan.status(name);
            if status == FnStatus::Unchanged || status == FnStatus::Added {
                continue;
            }
            if let (true, Some(p)) = (i + 1 == n, point) {
                match self.plan_top_move(f, stack, pending, p) {
                    Ok(m) => {
                        top_move = Some(m);
                        continue;
                    }
                    Err(why) if self.dsu.settings.policy == Policy::Strict => {
                        return Err(format!("'{name}' is running and cannot move to its new version: {why}"));
                    }
                    Err(_) => continue,
                }
            }
            if self.dsu.settings.policy == Policy::Strict {
                let what = if status == FnStatus::Removed { "removed" } else { "changed" };
                return Err(format!("'{name}' ({what} by the update) is active on the stack"));
            }
        }
        Ok(top_move)
    }

    /// Whether every task that is not running is quiescent (TASKS.md): waiting at an update
    /// point where its frame can move, blocked with no changed function on its stack (under
    /// `relaxed`, blocked is enough), or not started. Returns how the frames of the tasks
    /// waiting at update points move; else why the first task that is not quiescent is not.
    pub(crate) fn plan_tasks(&self, pending: &Pending) -> Result<Vec<(u32, FrameMove)>, String> {
        let mut moves = Vec::new();
        let mut ids: Vec<u32> = self.tasks.tasks.keys().copied().filter(|&id| id != self.tasks.current).collect();
        ids.sort_unstable();
        for id in ids {
            let t = &self.tasks.tasks[&id];
            if t.start.is_some() {
                continue; // not started: it will run the new code
            }
            // Who and where, for the reason (made only when there is one).
            let who = || {
                let at = crate::tasks::where_waits(&t.frames).map_or(String::new(), |w| format!(" (in {w})"));
                (format!("task {id} ({})", t.name), at)
            };
            match t.state {
                State::Done(_) | State::Failed(_) | State::Running => {}
                State::Ready => {
                    let (who, at) = who();
                    return Err(format!("{who} is running, not at an update point{at}"));
                }
                State::Blocked(Wait::UpdatePoint(p)) => match self.plan_stack(&t.frames, &t.stack, pending, Some(p)) {
                    Ok(Some(m)) => moves.push((id, m)),
                    Ok(None) => {}
                    Err(why) => return Err(format!("{}: {why}", who().0)),
                },
                State::Blocked(_) => {
                    if let Err(why) = self.plan_stack(&t.frames, &t.stack, pending, None) {
                        let (who, at) = who();
                        return Err(format!("{who} is blocked{at} and {why}"));
                    }
                }
            }
        }
        Ok(moves)
    }

    /// How frame `f`, at update point `point`, moves to the new version of its function.
    fn plan_top_move(
        &self,
        f: &crate::Frame,
        stack: &[Value],
        pending: &Pending,
        point: u16,
    ) -> Result<FrameMove, String> {
        let name = &f.func.proto.name;
        let Some(new) = pending.program.functions.iter().find(|q| &q.name == name) else {
            return Err(format!("'{name}' is removed by the update"));
        };
        let m = plan_move(&f.func.proto, new, point)?;
        // A general `for` loop's state goes into a counting loop only when it is iterating a
        // range.
        match m.need_int.iter().find(|(r, _)| !matches!(stack.get(f.base + *r as usize), Some(Value::Int(_)))) {
            Some((_, var)) => Err(format!(
                "the `for` loop over {var} iterates a list, map or string here and counts a range in the new code: its position cannot carry over"
            )),
            None => Ok(m),
        }
    }

    /// Moves frames to the new code: the top frame to its matching update point, frames of
    /// unchanged functions to the identical new code; the rest (relaxed policy) stay old.
    /// `before`: the function table before this update. "Unchanged" compares that version
    /// with the new one: a frame still running an older version (left there by an earlier
    /// update under the relaxed policy) runs other code, and stays in it.
    pub(crate) fn migrate_frames(
        &mut self,
        plan: &UpdatePlan,
        top_move: Option<FrameMove>,
        task_moves: &[(u32, FrameMove)],
        before: &FuncTable,
    ) {
        self.migrate_running(plan, top_move, before);
        // The tasks waiting at update points move at their own points.
        for (id, m) in task_moves {
            let Some(t) = self.tasks.tasks.get_mut(id) else { continue };
            let Some(top) = t.frames.last() else { continue };
            let Some(Some(new)) = self.funcs.get(top.func.slot as usize) else { continue };
            let i = t.frames.len() - 1;
            let new = new.clone();
            move_registers(&mut t.stack, t.frames[i].base, m, &new);
            t.frames[i].func = new;
            t.frames[i].pc = m.pc;
        }
        // Other tasks' frames of unchanged functions run the identical new code too.
        for t in self.tasks.tasks.values_mut() {
            retarget_unchanged(&mut t.frames, plan, before, &self.funcs);
        }
    }

    /// `migrate_frames` for the running task's frames: `self.funcs` is the new table.
    pub(crate) fn migrate_running(&mut self, plan: &UpdatePlan, top_move: Option<FrameMove>, before: &FuncTable) {
        let n = self.frames.len();
        for i in 0..n {
            let f = &self.frames[i];
            if f.func.proto.kind == FnKind::Lambda {
                continue;
            }
            let name = f.func.proto.name.clone();
            let Some(slot) = self.func_slot(&name) else { continue };
            let Some(new) = self.funcs[slot as usize].clone() else { continue };
            let current = before.get(slot as usize).and_then(|g| g.as_ref()).is_some_and(|g| Rc::ptr_eq(g, &f.func));
            match plan.status(&name) {
                FnStatus::Unchanged if current => self.replace_frame_func(i, new),
                FnStatus::Changed if i + 1 == n => {
                    if let Some(m) = &top_move {
                        self.move_top_frame(m, new);
                    }
                }
                _ => {}
            }
        }
    }

    /// The frame at the update point continues in `new` as `m` says: its registers rebuilt
    /// (locals carried, `for` loop state adjusted, the rest nil), just after the matching point.
    fn move_top_frame(&mut self, m: &FrameMove, new: Rc<Function>) {
        let i = self.frames.len() - 1;
        move_registers(&mut self.stack, self.frames[i].base, m, &new);
        self.replace_frame_func(i, new);
        self.frames[i].pc = m.pc;
    }

    /// Frame `i` runs `new` from now on. Compiled code suspended in that frame may still run
    /// its old function's code and read its inline caches: kept (see `Vm::retired`). Per frame
    /// the first is the one a suspended activation can use: a compiled activation starts
    /// only with a new frame (a direct call) or through `run_compiled` (which drops the
    /// frame's earlier one), so later ones were never run compiled in this frame.
    fn replace_frame_func(&mut self, i: usize, new: Rc<Function>) {
        let serial = self.frames[i].serial;
        let old = std::mem::replace(&mut self.frames[i].func, new);
        if self.tier_depth == 0 || self.retired.iter().any(|&(d, s, _)| d == i && s == serial) {
            return;
        }
        self.retired.retain(|&(d, _, _)| d != i); // an earlier frame's, at this depth
        self.retired.push((i, serial, old));
    }
}
