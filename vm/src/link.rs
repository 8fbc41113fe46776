//! Linking: a `Program`'s own indices (globals, functions, types, names, natives) mapped to the
//! VM's slots by name. Slots are forever: a name keeps its slot across versions, new names are
//! appended, removed ones become tombstones. This is what lets running code survive an update.

use std::cell::Cell;
use std::rc::Rc;

use crate::heap::Obj;
use crate::program::Const;
use crate::{Function, Instr, OperandKind, Program, TypeLayout, TypeRt, Value, Vm};

/// How one program's indices map to the VM's slots.
#[derive(Clone, Debug, Default)]
pub struct SlotMap {
    pub globals: Vec<u32>,
    pub funcs: Vec<u32>,
    pub types: Vec<u32>,
    pub names: Vec<u32>,
    pub natives: Vec<u32>,
}

impl SlotMap {
    pub fn map(&self, kind: OperandKind, i: u32) -> u32 {
        let table = match kind {
            OperandKind::Global => &self.globals,
            OperandKind::Func => &self.funcs,
            OperandKind::Type => &self.types,
            OperandKind::Name => &self.names,
            OperandKind::Native => &self.natives,
            // Not a table reference: the value is the program's own.
            OperandKind::Reg
            | OperandKind::Const
            | OperandKind::Jump
            | OperandKind::Count
            | OperandKind::Imm
            | OperandKind::Point => return i,
        };
        table[i as usize]
    }
}

impl Vm {
    /// Assigns (or finds) the VM slot of every name `program` uses. Fails on an unknown
    /// built-in. Grows the global and function tables; installs nothing.
    pub fn slot_map(&mut self, program: &Program) -> Result<SlotMap, String> {
        let mut m = SlotMap::default();
        for g in &program.globals {
            let (slot, new) = self.global_names.insert_full(g.clone());
            if new {
                self.globals.push(Value::Nil);
            }
            m.globals.push(slot as u32);
        }
        for f in &program.functions {
            let (slot, new) = self.func_names.insert_full(f.name.clone());
            if new {
                self.funcs.push(None);
            }
            m.funcs.push(slot as u32);
        }
        for t in &program.types {
            // The current slot; the update engine assigns new slots to changed layouts.
            let next = self.types.len() as u32 + m.types.len() as u32;
            m.types.push(self.type_slots.get(&t.name).copied().unwrap_or(next));
        }
        for n in &program.names {
            m.names.push(self.intern(n));
        }
        for n in &program.natives {
            match self.native_index(n) {
                Some(i) => m.natives.push(i),
                None => return Err(format!("unknown built-in function '{n}'")),
            }
        }
        Ok(m)
    }

    /// Builds the runnable form of function `i` of `program`.
    pub fn link_function(&mut self, program: &Program, i: usize, map: &SlotMap) -> Function {
        let proto = &program.functions[i];
        let mut linked = proto.clone();
        for ins in &mut linked.code {
            *ins = ins.map_refs(&mut |kind, v| map.map(kind, v));
        }
        let consts = proto
            .consts
            .iter()
            .map(|c| match c {
                Const::Int(i) => Value::Int(*i),
                Const::Float(f) => Value::Float(*f),
                Const::Str(s) => Value::Obj(self.heap.alloc(Obj::Str(Rc::from(s.as_str())))),
            })
            .collect();
        let file = program.files.get(proto.file as usize).map_or("?", |s| s.as_str());
        Function {
            caches: (0..linked.code.len()).map(|_| crate::InlineCache::default()).collect(),
            floats: (0..linked.code.len()).map(|_| Cell::new(false)).collect(),
            proto: linked,
            consts,
            slot: map.funcs[i],
            file: Rc::from(file),
            jit: Default::default(),
            calls: Cell::new(0),
            tier_entry: Cell::new(0),
            lambdas: Default::default(),
        }
    }

    /// Gives each function in `slots` (a version just linked) the lambdas its code creates.
    pub(crate) fn link_lambdas(&self, slots: impl Iterator<Item = u32>) {
        for slot in slots {
            let Some(Some(f)) = self.funcs.get(slot as usize) else { continue };
            let lambdas = f
                .proto
                .code
                .iter()
                .filter_map(|ins| {
                    let Instr::Closure { f: t, .. } = *ins else { return None };
                    self.funcs.get(t as usize)?.clone().map(|l| (t, l))
                })
                .collect();
            let _ = f.lambdas.set(lambdas);
        }
    }

    /// The runtime form of type `i` of `program`.
    pub fn link_type(&mut self, program: &Program, i: usize, map: &SlotMap) -> TypeRt {
        let t = &program.types[i];
        let fields = t.fields.iter().enumerate().map(|(j, f)| (self.intern(f), j as u32)).collect();
        let methods: rustc_hash::FxHashMap<u32, u32> =
            t.methods.iter().map(|(n, f)| (self.intern(n), map.funcs[*f as usize])).collect();
        for (&name, &slot) in &methods {
            self.method_slots.insert((t.name.clone(), name), slot);
        }
        TypeRt::new(TypeLayout {
            name: t.name.clone(),
            version: t.version,
            field_names: t.fields.clone(),
            fields,
            methods,
            defaults: t.defaults.iter().map(|d| d.map(|f| map.funcs[f as usize])).collect(),
            forward: None,
            released: false,
        })
    }

    /// Loads a whole program into an empty VM (version 1): every function and type installed.
    /// Returns the slot of its globals initialiser and of `main`.
    pub fn load(&mut self, program: &Program) -> Result<(u32, Option<u32>), String> {
        let map = self.slot_map(program)?;
        for i in 0..program.functions.len() {
            let f = self.link_function(program, i, &map);
            let slot = f.slot as usize;
            self.funcs.set(slot, Some(Rc::new(f)));
        }
        self.link_lambdas(map.funcs.clone().into_iter());
        for i in 0..program.types.len() {
            let t = self.link_type(program, i, &map);
            let slot = map.types[i] as usize;
            self.type_slots.insert(t.name.clone(), slot as u32);
            if slot < self.types.len() {
                self.types[slot] = t;
            } else {
                self.types.push(t);
            }
        }
        self.dsu.program = Some(program.clone());
        self.dsu.lineage = vec![program.clone()];
        Ok((map.funcs[program.init as usize], program.main.map(|m| map.funcs[m as usize])))
    }

    /// Loads `program`, initialises its globals and runs `main` if it has one.
    pub fn run_program(&mut self, program: &Program) -> Result<(), crate::RuntimeError> {
        let (init, main) = self.load(program).map_err(crate::RuntimeError::new)?;
        let result = self.run_tasks(init, main);
        // Whether the program ended normally or with an error, updates still waiting were
        // never applied, and the user is told.
        self.finish_updates();
        result
    }
}
