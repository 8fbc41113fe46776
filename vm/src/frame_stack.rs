//! The call stack: frames in a vector that never shrinks, so a call writes the frame's fields
//! into a slot in place. (`Vec::push` builds the 32-byte frame in a temporary and copies it with
//! 16-byte loads of 8-byte stores: a store-forwarding stall on every call, measured at half the
//! cost of a compiled call and a tenth of an interpreted one.) A popped slot keeps its
//! function alive until a later call reuses the slot; nothing reads it before then.

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use crate::{Frame, Function};

#[derive(Default)]
pub struct FrameStack {
    slots: Vec<Frame>,
    len: usize,
    /// Frames pushed so far (each frame's `serial`).
    pushed: u64,
}

/// Where a popped frame's registers were and its result goes.
#[derive(Clone, Copy, Debug)]
pub struct Popped {
    pub base: usize,
    pub ret: usize,
}

impl FrameStack {
    /// A frame for `func` at its start, registers at `base`, returning into `ret`.
    #[inline(always)]
    pub fn push(&mut self, func: Rc<Function>, base: usize, ret: usize) {
        if let Some(f) = self.slots.get_mut(self.len) {
            f.func = func;
            f.pc = 0;
            f.base = base;
            f.ret = ret;
            f.serial = self.pushed;
        } else {
            self.slots.push(Frame { func, pc: 0, base, ret, serial: self.pushed });
        }
        self.pushed += 1;
        self.len += 1;
    }

    /// `push` of a function held elsewhere: no reference count changes when the slot held
    /// the same function before (a recursion, a loop calling one function).
    #[inline(always)]
    pub fn push_ref(&mut self, func: &Rc<Function>, base: usize, ret: usize) {
        if let Some(f) = self.slots.get_mut(self.len) {
            if !Rc::ptr_eq(&f.func, func) {
                f.func = func.clone();
            }
            f.pc = 0;
            f.base = base;
            f.ret = ret;
            f.serial = self.pushed;
        } else {
            self.slots.push(Frame { func: func.clone(), pc: 0, base, ret, serial: self.pushed });
        }
        self.pushed += 1;
        self.len += 1;
    }

    #[inline(always)]
    pub fn pop(&mut self) -> Option<Popped> {
        self.len = self.len.checked_sub(1)?;
        let f = &self.slots[self.len];
        Some(Popped { base: f.base, ret: f.ret })
    }

    /// Drops the frames above `depth` (an error unwinds them).
    pub fn truncate(&mut self, depth: usize) {
        self.len = self.len.min(depth);
    }
}

impl Deref for FrameStack {
    type Target = [Frame];

    #[inline(always)]
    fn deref(&self) -> &[Frame] {
        &self.slots[..self.len]
    }
}

impl DerefMut for FrameStack {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [Frame] {
        &mut self.slots[..self.len]
    }
}
