//! Frame migration: the frame at the update point continues in the new version of its
//! function, at the matching update point, with its locals carried by name.

use crate::program::{LocalInfo, Proto};

/// Locals in scope at `pc`: for each name the innermost one (the latest start).
fn in_scope(p: &Proto, pc: u32) -> Vec<&LocalInfo> {
    let mut out: Vec<&LocalInfo> = Vec::new();
    for l in p.locals.iter().filter(|l| l.start <= pc && pc < l.end) {
        match out.iter_mut().find(|o| o.name == l.name) {
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
    // `for` loop state carries over only within the same chain of loops.
    let hidden = |s: &[&LocalInfo]| {
        let mut v: Vec<String> = s.iter().filter(|l| l.name.starts_with('<')).map(|l| l.name.clone()).collect();
        v.sort();
        v
    };
    if hidden(&old_scope) != hidden(&new_scope) {
        return Err(format!("the update point in '{}' moved to a different chain of `for` loops", old.name));
    }
    let carry =
        new_scope.iter().filter_map(|n| old_scope.iter().find(|o| o.name == n.name).map(|o| (n.reg, o.reg))).collect();
    Ok(FrameMove { pc: to.pc as usize + 1, carry })
}
