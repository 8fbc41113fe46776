//! Frame migration: the frame at the update point continues in the new version of its
//! function, at the matching update point, with its locals carried by name.

use crate::program::{LocalInfo, LocalRole, Proto};

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
