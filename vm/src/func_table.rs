//! The function table: one slot per named function (by name, across versions), holding the
//! newest version's code. Calls late-bind through it, which is what makes a code update a
//! table swap. Writes go through `set` and `push` so that a second, plain array stays in step:
//! `TierSlot`s, what compiled code reads to call a compiled function without entering the VM
//! (its entry, register count and arity), at `tier_slots()`.

use std::ops::Deref;
use std::rc::Rc;

use crate::Function;

/// What compiled code needs to call the function in a slot directly. `entry` is the compiled
/// code's `direct_entry`, 0 while the function has none (then calls go through the VM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct TierSlot {
    pub entry: usize,
    pub nregs: u32,
    pub arity: u32,
    /// The function's inline caches (`Function::caches`).
    pub caches: *const crate::InlineCache,
    /// The function's constants (`Function::consts`).
    pub consts: *const crate::Value,
    /// The function itself (`Rc::as_ptr`): what code that inlined it checks it still calls.
    pub func: *const Function,
}

impl Default for TierSlot {
    fn default() -> TierSlot {
        TierSlot {
            entry: 0,
            nregs: 0,
            arity: 0,
            caches: std::ptr::null(),
            consts: std::ptr::null(),
            func: std::ptr::null(),
        }
    }
}

#[derive(Clone, Default)]
pub struct FuncTable {
    funcs: Vec<Option<Rc<Function>>>,
    tier: Vec<TierSlot>,
}

fn tier_slot(f: &Option<Rc<Function>>) -> TierSlot {
    match f {
        Some(f) => TierSlot {
            entry: f.tier_entry.get(),
            nregs: f.proto.nregs as u32,
            arity: f.proto.arity as u32,
            caches: f.caches.as_ptr(),
            consts: f.consts.as_ptr(),
            func: Rc::as_ptr(f),
        },
        None => TierSlot::default(),
    }
}

impl FuncTable {
    pub fn set(&mut self, slot: usize, f: Option<Rc<Function>>) {
        self.tier[slot] = tier_slot(&f);
        self.funcs[slot] = f;
    }

    pub fn push(&mut self, f: Option<Rc<Function>>) {
        self.tier.push(tier_slot(&f));
        self.funcs.push(f);
    }

    /// `f` was just compiled: its slot's entry, when `f` is the function in its slot.
    pub(crate) fn compiled(&mut self, f: &Function) {
        let slot = f.slot as usize;
        if let Some(Some(g)) = self.funcs.get(slot)
            && std::ptr::eq(&**g, f)
        {
            self.tier[slot].entry = f.tier_entry.get();
        }
    }

    /// One `TierSlot` per function slot, in slot order. Valid until the table changes, which
    /// it does only inside the VM (an update, a link), never while compiled code runs.
    pub fn tier_slots(&self) -> *const TierSlot {
        self.tier.as_ptr()
    }
}

impl Deref for FuncTable {
    type Target = [Option<Rc<Function>>];

    fn deref(&self) -> &Self::Target {
        &self.funcs
    }
}
