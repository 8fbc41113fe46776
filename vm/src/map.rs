//! Molt's map: insertion-ordered, with O(1) removal that keeps the order of the rest
//! (entries are tombstoned and compacted when half are dead, as CPython's dict does).

use std::collections::HashMap;

/// foldhash: fast and well mixed (FxHash clustered badly on multiplicative int keys).
type KeyMap<V> = HashMap<Key, V, foldhash::fast::FixedState>;
use std::rc::Rc;

use crate::Value;

/// A map key: nil, bool, int or string, compared by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Nil,
    Bool(bool),
    Int(i64),
    Str(Rc<str>),
}

#[derive(Clone, Debug, Default)]
pub struct Map {
    index: KeyMap<u32>,
    /// (key as a value, value); `None` once removed.
    entries: Vec<Option<(Value, Value)>>,
}

impl Map {
    pub fn with_capacity(n: usize) -> Map {
        Map { index: KeyMap::with_capacity_and_hasher(n, Default::default()), entries: Vec::with_capacity(n) }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        let i = *self.index.get(key)?;
        self.entries[i as usize].map(|(_, v)| v)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.index.contains_key(key)
    }

    /// Sets `key` to `value`; a new key goes last.
    pub fn insert(&mut self, key: Key, key_value: Value, value: Value) {
        match self.index.get(&key) {
            Some(&i) => {
                if let Some(e) = &mut self.entries[i as usize] {
                    e.1 = value;
                }
            }
            None => {
                self.index.insert(key, self.entries.len() as u32);
                self.entries.push(Some((key_value, value)));
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let i = self.index.remove(key)?;
        let (_, v) = self.entries[i as usize].take()?;
        if self.entries.len() > 16 && self.index.len() * 2 < self.entries.len() {
            self.compact();
        }
        Some(v)
    }

    fn compact(&mut self) {
        self.entries.retain(|e| e.is_some());
        // Renumber: positions changed, keys did not. Rebuilding walks the entries once.
        let mut pos: KeyMap<u32> = KeyMap::with_capacity_and_hasher(self.entries.len(), Default::default());
        let old = std::mem::take(&mut self.index);
        let mut by_old: Vec<(u32, Key)> = old.into_iter().map(|(k, i)| (i, k)).collect();
        by_old.sort_unstable_by_key(|(i, _)| *i);
        for (new_i, (_, k)) in by_old.into_iter().enumerate() {
            pos.insert(k, new_i as u32);
        }
        self.index = pos;
    }

    /// Live entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Value, Value)> + '_ {
        self.entries.iter().filter_map(|e| *e)
    }

    /// Every value the map holds (keys and values), for the collector.
    pub fn values_for_gc(&self) -> impl Iterator<Item = Value> + '_ {
        self.iter().flat_map(|(k, v)| [k, v])
    }
}
