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
    /// (new register, amount): a carried int the new code keeps one step apart (a counting
    /// `for` loop holds the current value, a general one the next index).
    pub adjust: Vec<(u16, i64)>,
    /// Old registers that must hold ints for the move to work (a general `for` loop's state
    /// going into a counting loop: only a range's iteration fits).
    pub need_int: Vec<(u16, String)>,
}

/// The part a hidden local plays in a `for` loop over variable `var`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Counting loop (`for i in a..b`): the end, the current value.
    RangeEnd,
    RangeCur,
    /// General loop: the iterated value (or a range's end), the next index.
    State,
    Next,
}

fn hidden_role(name: &str) -> Option<(&str, Role)> {
    let inner = name.strip_prefix("<for ")?.strip_suffix('>')?;
    Some(if let Some(v) = inner.strip_suffix(" range end") {
        (v, Role::RangeEnd)
    } else if let Some(v) = inner.strip_suffix(" range next") {
        (v, Role::RangeCur)
    } else if let Some(v) = inner.strip_suffix(" index") {
        (v, Role::Next)
    } else {
        (inner, Role::State)
    })
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
            .filter_map(|l| hidden_role(&l.name))
            .filter(|(_, r)| matches!(r, Role::RangeEnd | Role::State))
            .map(|(v, _)| v.to_string())
            .collect();
        v.sort();
        v
    };
    if loops(&old_scope) != loops(&new_scope) {
        return Err(format!("the update point in '{}' moved to a different chain of `for` loops", old.name));
    }
    let mut m = FrameMove { pc: to.pc as usize + 1, carry: Vec::new(), adjust: Vec::new(), need_int: Vec::new() };
    for n in &new_scope {
        let Some((var, role)) = hidden_role(&n.name) else {
            if let Some(o) = old_scope.iter().find(|o| o.name == n.name) {
                m.carry.push((n.reg, o.reg));
            }
            continue;
        };
        let old_reg = |want: Role| old_scope.iter().find(|o| hidden_role(&o.name) == Some((var, want))).map(|o| o.reg);
        // The same kind of loop carries its state as it is; a counting loop and a general
        // one over a range hold the same two ints, one step apart.
        let (source, delta, must_be_int) = match role {
            Role::RangeEnd => match old_reg(Role::RangeEnd) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(Role::State), 0, true),
            },
            Role::RangeCur => match old_reg(Role::RangeCur) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(Role::Next), -1, false),
            },
            Role::State => match old_reg(Role::State) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(Role::RangeEnd), 0, false),
            },
            Role::Next => match old_reg(Role::Next) {
                Some(r) => (Some(r), 0, false),
                None => (old_reg(Role::RangeCur), 1, false),
            },
        };
        let Some(o) = source else { continue };
        m.carry.push((n.reg, o));
        if delta != 0 {
            m.adjust.push((n.reg, delta));
        }
        if must_be_int {
            m.need_int.push((o, var.to_string()));
        }
    }
    Ok(m)
}
