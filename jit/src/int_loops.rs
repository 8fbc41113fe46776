//! Counting loops over ints, compiled a second time with their registers in machine
//! registers. The first translation keeps every register in the frame (memory): a loop like
//! `for i in 1..n { s += i; }` then carries `s` and the loop counter from one iteration to the
//! next through a store and a load, and that chain (store forwarding, ~5 cycles) bounds the
//! loop. A loop whose body does only int arithmetic and moves gets a second, specialised
//! version: it is entered when the registers the body reads are ints (checked when the loop
//! starts, and at each back-edge of the general version, so a loop entered from the
//! interpreter mid-way gets there too). It keeps their values in Cranelift variables,
//! still writing every result to the frame (so the frame is always exact), and leaves for the
//! general version at the same instruction on anything else: an overflow, a signal, the
//! update point of the back-edge. Since the frame is always up to date, leaving is a jump.

use molt_vm::Instr;

/// One specialisable loop: `ForPrep` at `prep`, body `start..back`, back-edge at `back`
/// (a `ForLoop`, or an `UpdateForLoop` followed by its `ForLoop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntLoop {
    pub prep: usize,
    pub start: usize,
    pub back: usize,
    /// Where the loop continues when it ends (after the back-edge).
    pub done: usize,
    pub base: u16,
    pub var: u16,
    /// Registers the body reads before writing them: must hold ints to enter.
    pub inputs: Vec<u16>,
    /// Every register the loop uses (kept in variables).
    pub regs: Vec<u16>,
}

/// The body instructions the specialised version handles.
fn simple(i: &Instr) -> Option<(Vec<u16>, Option<u16>)> {
    Some(match *i {
        Instr::Move { dst, src } => (vec![src], Some(dst)),
        Instr::LoadInt { dst, .. } => (vec![], Some(dst)),
        Instr::AddImm { dst, a, .. } => (vec![a], Some(dst)),
        Instr::Add { dst, a, b } | Instr::Sub { dst, a, b } | Instr::Mul { dst, a, b } => (vec![a, b], Some(dst)),
        _ => return None,
    })
}

/// When the instruction at `pc` is the back-edge of the counting loop over `base`/`var`
/// whose body starts at `start` (a `ForLoop`, or an `UpdateForLoop` followed by its
/// `ForLoop`): the back-edge and where the loop continues when it ends.
pub fn counting_back_edge(code: &[Instr], pc: usize, base: u16, var: u16, start: usize) -> Option<(usize, usize)> {
    match (code.get(pc)?, code.get(pc + 1)) {
        (Instr::ForLoop { base: b, var: v, target }, _) if (*b, *v, *target as usize) == (base, var, start) => {
            Some((pc, pc + 1))
        }
        (Instr::UpdateForLoop { base: b, var: v, target, .. }, Some(Instr::ForLoop { .. }))
            if (*b, *v, *target as usize) == (base, var, start) =>
        {
            Some((pc, pc + 2))
        }
        _ => None,
    }
}

/// The loops of `code` whose bodies are straight-line int arithmetic.
pub fn find(code: &[Instr]) -> Vec<IntLoop> {
    let mut out = Vec::new();
    for (prep, ins) in code.iter().enumerate() {
        let Instr::ForPrep { base, var, .. } = *ins else { continue };
        let start = prep + 1;
        let mut pc = start;
        let mut inputs: Vec<u16> = Vec::new();
        let mut written: Vec<u16> = vec![var];
        let mut regs: Vec<u16> = vec![base, base + 1, var];
        while let Some((reads, dst)) = code.get(pc).and_then(simple) {
            for r in reads {
                if !written.contains(&r) && !inputs.contains(&r) && r != base && r != base + 1 {
                    inputs.push(r);
                }
                if !regs.contains(&r) {
                    regs.push(r);
                }
            }
            if let Some(d) = dst {
                // The loop's own state is the back-edge's to write.
                if d == base || d == base + 1 || d == var {
                    break;
                }
                written.push(d);
                if !regs.contains(&d) {
                    regs.push(d);
                }
            }
            pc += 1;
        }
        let Some((back, done)) = counting_back_edge(code, pc, base, var, start) else { continue };
        if back == start {
            continue; // an empty body gains nothing
        }
        out.push(IntLoop { prep, start, back, done, base, var, inputs, regs });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_summing_loop_and_its_inputs() {
        // s = 0; for i in 1..n + 1 { s += i; }
        let code = [
            Instr::LoadInt { dst: 1, value: 0 },
            Instr::LoadInt { dst: 3, value: 1 },
            Instr::AddImm { dst: 2, a: 0, value: 1 },
            Instr::ForPrep { base: 2, var: 4, exit: 6 },
            Instr::Add { dst: 1, a: 1, b: 4 },
            Instr::ForLoop { base: 2, var: 4, target: 4 },
            Instr::Return { src: 1 },
        ];
        let loops = find(&code);
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        assert_eq!((l.prep, l.start, l.back, l.done), (3, 4, 5, 6));
        assert_eq!(l.inputs, vec![1]);
        assert_eq!(l.regs, vec![2, 3, 4, 1]);
    }

    #[test]
    fn skips_loops_with_other_instructions() {
        let code = [
            Instr::ForPrep { base: 2, var: 4, exit: 4 },
            Instr::GetIndex { dst: 1, obj: 0, index: 4 },
            Instr::ForLoop { base: 2, var: 4, target: 1 },
            Instr::ReturnNil {},
        ];
        assert!(find(&code).is_empty());
    }
}
