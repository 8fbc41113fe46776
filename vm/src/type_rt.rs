//! A record type as the VM runs it, by slot (`Vm::types`).
//!
//! A type whose layout changes gets a new slot; the old slot stays, so that instances not yet
//! converted and old code still find their layout. Slot numbers are never reused (compiled
//! code and inline caches may have specialised on one), so a long-running program that
//! changes its types thousands of times keeps thousands of slots. What makes that cheap is
//! that a slot is a pointer: once no instance, no code and no conversion can use an outdated
//! layout, `release` points its slot at one shared empty layout (`update/old_code.rs` decides
//! when), and the layout's names, maps and transformer are freed.

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::Function;

/// One slot of the type table: a shared, copy-on-write layout. Reading goes through `Deref`;
/// writing through `DerefMut` copies a layout another holder (a transaction's snapshot) still
/// shares, so a snapshot never sees later writes.
#[derive(Clone)]
pub struct TypeRt(Rc<TypeLayout>);

/// What a type slot holds.
#[derive(Clone)]
pub struct TypeLayout {
    pub name: String,
    pub version: u32,
    pub field_names: Vec<String>,
    /// Field name symbol -> index.
    pub fields: FxHashMap<u32, u32>,
    /// Method name symbol -> function slot.
    pub methods: FxHashMap<u32, u32>,
    /// Per field, the function slot computing its default.
    pub defaults: Vec<Option<u32>>,
    /// Set on the old slot of a type changed by a lazy update: how to convert an instance
    /// at its first use.
    pub forward: Option<Forward>,
    /// An outdated layout nothing can use any more (`TypeRt::release`).
    pub released: bool,
}

/// How an instance of an outdated layout becomes an instance of the new one (lazy mode).
#[derive(Clone)]
pub struct Forward {
    pub type_name: String,
    /// The new slot (None: a removed type renamed by its transformer).
    pub new_slot: Option<u32>,
    /// The explicit transformer (None: the default transformer): this version's function,
    /// kept even if a later update removes or replaces the transformer, since records that
    /// old code builds later are converted through it.
    pub transform: Option<Rc<Function>>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("type_name", &self.type_name)
            .field("new_slot", &self.new_slot)
            .field("transform", &self.transform.as_ref().map(|t| &t.proto.name))
            .finish()
    }
}

thread_local! {
    /// The layout every released slot of this thread's VMs points at.
    static RELEASED: TypeRt = TypeRt::new(TypeLayout { released: true, ..TypeLayout::empty("<released type slot>".into()) });
}

impl TypeLayout {
    fn empty(name: String) -> TypeLayout {
        TypeLayout {
            name,
            version: 0,
            field_names: Vec::new(),
            fields: Default::default(),
            methods: Default::default(),
            defaults: Vec::new(),
            forward: None,
            released: false,
        }
    }
}

impl TypeRt {
    pub fn new(layout: TypeLayout) -> TypeRt {
        TypeRt(Rc::new(layout))
    }

    /// An unused slot of the type table.
    pub fn placeholder(name: String) -> TypeRt {
        TypeRt::new(TypeLayout::empty(name))
    }

    /// The slot of an outdated layout nothing can use any more: its contents are freed.
    pub fn release(&mut self) {
        *self = RELEASED.with(TypeRt::clone);
    }
}

impl Deref for TypeRt {
    type Target = TypeLayout;
    fn deref(&self) -> &TypeLayout {
        &self.0
    }
}

impl DerefMut for TypeRt {
    fn deref_mut(&mut self) -> &mut TypeLayout {
        Rc::make_mut(&mut self.0)
    }
}
