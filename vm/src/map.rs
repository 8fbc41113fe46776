//! Molt's map: insertion-ordered, with O(1) removal that keeps the order of the rest. As in
//! CPython's dict, a compact hash table of entry indices (4 bytes a bucket) points into an
//! array of entries in insertion order; removed entries are tombstones, compacted when half
//! are dead. A lookup touches the control bytes, one small bucket and one entry.

use std::hash::BuildHasher;
use std::rc::Rc;

use hashbrown::HashTable;

use crate::Value;

/// A map key: nil, bool, int or string, compared by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Nil,
    Bool(bool),
    Int(i64),
    Str(Rc<str>),
}

#[derive(Clone, Debug)]
struct Entry {
    key: Key,
    /// The key as the program gave it (keeps a string key's object).
    key_value: Value,
    value: Value,
}

#[derive(Clone, Debug, Default)]
pub struct Map {
    table: HashTable<u32>,
    entries: Vec<Option<Entry>>,
    live: usize,
}

/// foldhash: fast and well mixed (FxHash clustered badly on multiplicative int keys).
fn hash(k: &Key) -> u64 {
    foldhash::fast::FixedState::default().hash_one(k)
}

impl Map {
    pub fn with_capacity(n: usize) -> Map {
        Map { table: HashTable::with_capacity(n), entries: Vec::with_capacity(n), live: 0 }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, key: &Key) -> Option<u32> {
        let entries = &self.entries;
        self.table.find(hash(key), |&i| entries[i as usize].as_ref().is_some_and(|e| e.key == *key)).copied()
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        let i = self.find(key)?;
        self.entries[i as usize].as_ref().map(|e| e.value)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.find(key).is_some()
    }

    /// Sets `key` to `value`; a new key goes last.
    pub fn insert(&mut self, key: Key, key_value: Value, value: Value) {
        let h = hash(&key);
        let entries = &mut self.entries;
        if let Some(&i) = self.table.find(h, |&i| entries[i as usize].as_ref().is_some_and(|e| e.key == key)) {
            if let Some(e) = &mut entries[i as usize] {
                e.value = value;
            }
            return;
        }
        let i = entries.len() as u32;
        entries.push(Some(Entry { key, key_value, value }));
        let entries = &self.entries;
        self.table.insert_unique(h, i, |&j| entries[j as usize].as_ref().map_or(0, |e| hash(&e.key)));
        self.live += 1;
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let entries = &self.entries;
        let found = self.table.find_entry(hash(key), |&i| entries[i as usize].as_ref().is_some_and(|e| e.key == *key));
        let (i, _) = found.ok()?.remove();
        let e = self.entries[i as usize].take()?;
        self.live -= 1;
        if self.entries.len() > 16 && self.live * 2 < self.entries.len() {
            self.compact();
        }
        Some(e.value)
    }

    /// Drops the tombstones and rebuilds the index (positions changed, order did not).
    fn compact(&mut self) {
        self.entries.retain(Option::is_some);
        self.table.clear();
        let entries = &self.entries;
        for (i, e) in entries.iter().enumerate() {
            if let Some(e) = e {
                self.table.insert_unique(hash(&e.key), i as u32, |&j| {
                    entries[j as usize].as_ref().map_or(0, |e| hash(&e.key))
                });
            }
        }
    }

    /// Live entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Value, Value)> + '_ {
        self.entries.iter().flatten().map(|e| (e.key_value, e.value))
    }

    /// Every value the map holds (keys and values), for the collector.
    pub fn values_for_gc(&self) -> impl Iterator<Item = Value> + '_ {
        self.iter().flat_map(|(k, v)| [k, v])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_survives_removal_and_compaction() {
        let mut m = Map::default();
        for i in 0..100 {
            m.insert(Key::Int(i), Value::Int(i), Value::Int(i * 10));
        }
        for i in (0..100).step_by(2) {
            assert_eq!(m.remove(&Key::Int(i)).map(|v| matches!(v, Value::Int(x) if x == i * 10)), Some(true));
        }
        m.insert(Key::Int(0), Value::Int(0), Value::Int(-1));
        assert_eq!(m.len(), 51);
        let keys: Vec<i64> = m.iter().map(|(k, _)| if let Value::Int(i) = k { i } else { -99 }).collect();
        let mut want: Vec<i64> = (1..100).step_by(2).collect();
        want.push(0);
        assert_eq!(keys, want);
        assert!(m.contains(&Key::Int(3)) && !m.contains(&Key::Int(2)));
    }
}
