//! Molt's map: insertion-ordered, with O(1) removal that keeps the order of the rest. As in
//! CPython's dict, a compact hash index points into an array of entries in insertion order;
//! removed entries are tombstones, compacted when half are dead. The index is an
//! open-addressing table of 8-byte slots (32 bits of the key's hash, 32 bits of entry
//! position), probed linearly, so a lookup touches one index slot and one entry: two cache
//! misses on a large map where a table of positions beside control bytes (hashbrown) took
//! three.

use std::collections::TryReserveError;
use std::hash::BuildHasher;
use std::rc::Rc;

use crate::{ObjRef, Value};

/// A map key: nil, bool, int or string, compared and hashed by value. A string key also
/// keeps the string object the program gave (what iteration hands back, and what keeps it
/// alive), so an entry needs no second copy of its key as a `Value`.
#[derive(Clone, Debug)]
pub enum Key {
    Nil,
    Bool(bool),
    Int(i64),
    Str(ObjRef, Rc<str>),
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        match (self, other) {
            (Key::Nil, Key::Nil) => true,
            (Key::Bool(a), Key::Bool(b)) => a == b,
            (Key::Int(a), Key::Int(b)) => a == b,
            (Key::Str(_, a), Key::Str(_, b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Key {}

impl Key {
    /// The key as a program value.
    pub fn value(&self) -> Value {
        match self {
            Key::Nil => Value::Nil,
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Str(r, _) => Value::Obj(*r),
        }
    }
}

/// 40 bytes (the key's 24, the value's 16): entries are read in order by iteration and at
/// random by lookups.
#[derive(Clone, Debug)]
struct Entry {
    key: Key,
    value: Value,
}

/// Index slots: `EMPTY`, `REMOVED`, or hash tag (high 32 bits) and entry position.
const EMPTY: u64 = u64::MAX;
const REMOVED: u64 = u64::MAX - 1;

#[derive(Clone, Debug, Default)]
pub struct Map {
    /// A power of two long (or empty); at most half used (live and removed slots).
    index: Vec<u64>,
    /// Slots of `index` not `EMPTY`.
    used: usize,
    entries: Vec<Option<Entry>>,
    live: usize,
}

/// An int key's hash: one folded multiply (the high and low halves of a 128-bit product
/// xored), well mixed at both ends: the index takes its position from the low bits and its tag
/// from the high ones. (FxHash clustered badly on multiplicative int keys; foldhash over the
/// derived `Hash` took three multiplies and two calls.)
#[inline]
fn hash_int(i: i64) -> u64 {
    let p = u128::from(i as u64 ^ 0x243f_6a88_85a3_08d3) * 0x9e37_79b9_7f4a_7c15;
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline]
fn hash(k: &Key) -> u64 {
    match k {
        Key::Int(i) => hash_int(*i),
        Key::Str(_, s) => foldhash::fast::FixedState::default().hash_one(&**s),
        Key::Nil => hash_int(0x6e69_6c00),
        Key::Bool(b) => hash_int(0x0062_6f6f_6c00 + i64::from(*b)),
    }
}

fn slot_of(h: u64, at: usize) -> u64 {
    (h & 0xffff_ffff_0000_0000) | at as u64
}

fn tag_of(h: u64) -> u64 {
    h >> 32
}

impl Map {
    pub fn with_capacity(n: usize) -> Map {
        let mut m = Map { index: Vec::new(), used: 0, entries: Vec::with_capacity(n), live: 0 };
        m.reindex((2 * n).next_power_of_two().max(8));
        m
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The index slot holding `key` (with hash `h`), if present.
    #[inline]
    fn find_slot(&self, key: &Key, h: u64) -> Option<usize> {
        self.probe(h, |k| k == key)
    }

    /// The index slot of the entry (with hash `h`) whose key `is_key` accepts, if present.
    #[inline]
    fn probe(&self, h: u64, is_key: impl Fn(&Key) -> bool) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.index[i];
            if s == EMPTY {
                return None;
            }
            if s != REMOVED && tag_of(s) == tag_of(h) {
                let at = (s & 0xffff_ffff) as usize;
                if self.entries[at].as_ref().is_some_and(|e| is_key(&e.key)) {
                    return Some(i);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of int key `i`: `get`, without building a `Key` (the interpreter's hot path).
    #[inline]
    pub fn get_int(&self, i: i64) -> Option<Value> {
        let slot = self.probe(hash_int(i), |k| matches!(k, Key::Int(x) if *x == i))?;
        self.entries[(self.index[slot] & 0xffff_ffff) as usize].as_ref().map(|e| e.value)
    }

    fn find(&self, key: &Key) -> Option<usize> {
        let i = self.find_slot(key, hash(key))?;
        Some((self.index[i] & 0xffff_ffff) as usize)
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        let at = self.find(key)?;
        self.entries[at].as_ref().map(|e| e.value)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.find(key).is_some()
    }

    /// Sets `key` to `value`; a new key goes last. Fails, with the map unchanged, when the
    /// system refuses the memory a new key needs. (The heap checks the map-size limit, which
    /// also keeps entry positions within the index's 32 bits.)
    pub fn insert(&mut self, key: Key, value: Value) -> Result<(), TryReserveError> {
        let h = hash(&key);
        if let Some(i) = self.find_slot(&key, h) {
            let at = (self.index[i] & 0xffff_ffff) as usize;
            if let Some(e) = &mut self.entries[at] {
                e.value = value;
            }
            return Ok(());
        }
        self.entries.try_reserve(1)?;
        if (self.used + 1) * 2 > self.index.len() {
            let size = self.grown_index();
            // Reserved in place first: `reindex` then only fills it.
            self.index.try_reserve_exact(size.saturating_sub(self.index.len()))?;
            self.reindex(size);
        }
        let at = self.entries.len();
        self.entries.push(Some(Entry { key, value }));
        self.live += 1;
        self.place(h, at);
        Ok(())
    }

    /// The index size after the next growth.
    fn grown_index(&self) -> usize {
        (2 * (self.live + 1)).next_power_of_two().max(8)
    }

    /// The bytes the map's tables take (by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.index.capacity() * std::mem::size_of::<u64>()
            + self.entries.capacity() * std::mem::size_of::<Option<Entry>>()
    }

    /// At most how many bytes inserting a new key may allocate (0: it fits as it is).
    pub fn growth_bytes(&self) -> usize {
        let mut grow = 0;
        if self.entries.len() == self.entries.capacity() {
            grow += self.entries.capacity().max(4) * std::mem::size_of::<Option<Entry>>();
        }
        if (self.used + 1) * 2 > self.index.len() {
            grow += self.grown_index() * std::mem::size_of::<u64>();
        }
        grow
    }

    /// Puts entry `at` (hash `h`) in the first free slot of its probe sequence.
    fn place(&mut self, h: u64, at: usize) {
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        while self.index[i] != EMPTY && self.index[i] != REMOVED {
            i = (i + 1) & mask;
        }
        if self.index[i] == EMPTY {
            self.used += 1;
        }
        self.index[i] = slot_of(h, at);
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let i = self.find_slot(key, hash(key))?;
        let at = (self.index[i] & 0xffff_ffff) as usize;
        self.index[i] = REMOVED;
        let e = self.entries[at].take()?;
        self.live -= 1;
        if self.entries.len() > 16 && self.live * 2 < self.entries.len() {
            self.entries.retain(Option::is_some);
            self.reindex(self.index.len());
        }
        Some(e.value)
    }

    /// Rebuilds the index with `size` slots (a power of two) from the entries (positions may
    /// have changed, order did not).
    fn reindex(&mut self, size: usize) {
        self.index.clear();
        self.index.resize(size, EMPTY);
        self.used = 0;
        for at in 0..self.entries.len() {
            if let Some(e) = &self.entries[at] {
                let h = hash(&e.key);
                self.place(h, at);
            }
        }
    }

    /// Live entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Value, Value)> + '_ {
        self.entries.iter().flatten().map(|e| (e.key.value(), e.value))
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
            m.insert(Key::Int(i), Value::Int(i * 10)).unwrap();
        }
        for i in (0..100).step_by(2) {
            assert_eq!(m.remove(&Key::Int(i)).map(|v| matches!(v, Value::Int(x) if x == i * 10)), Some(true));
        }
        m.insert(Key::Int(0), Value::Int(-1)).unwrap();
        assert_eq!(m.len(), 51);
        let keys: Vec<i64> = m.iter().map(|(k, _)| if let Value::Int(i) = k { i } else { -99 }).collect();
        let mut want: Vec<i64> = (1..100).step_by(2).collect();
        want.push(0);
        assert_eq!(keys, want);
        assert!(m.contains(&Key::Int(3)) && !m.contains(&Key::Int(2)));
    }

    /// Random inserts, overwrites and removals against a model (a vector of pairs in
    /// insertion order): same contents, same order, through growth, tombstones and compaction.
    #[test]
    fn agrees_with_a_model() {
        let mut m = Map::default();
        let mut model: Vec<(i64, i64)> = Vec::new();
        let mut x: u64 = 12345;
        for step in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let k = ((x >> 33) % 500) as i64;
            if (x >> 20).is_multiple_of(3) {
                let got = m.remove(&Key::Int(k)).map(|v| if let Value::Int(i) = v { i } else { -1 });
                let want = model.iter().position(|&(mk, _)| mk == k).map(|p| model.remove(p).1);
                assert_eq!(got, want, "remove {k} at step {step}");
            } else {
                m.insert(Key::Int(k), Value::Int(step)).unwrap();
                match model.iter_mut().find(|(mk, _)| *mk == k) {
                    Some(e) => e.1 = step,
                    None => model.push((k, step)),
                }
            }
            assert_eq!(m.len(), model.len());
        }
        let got: Vec<(i64, i64)> = m
            .iter()
            .map(|(k, v)| match (k, v) {
                (Value::Int(k), Value::Int(v)) => (k, v),
                _ => (-1, -1),
            })
            .collect();
        assert_eq!(got, model);
        for k in 0..500 {
            assert_eq!(m.contains(&Key::Int(k)), model.iter().any(|&(mk, _)| mk == k));
            let int = |v: Option<Value>| v.map(|v| if let Value::Int(i) = v { i } else { -1 });
            assert_eq!(int(m.get_int(k)), int(m.get(&Key::Int(k))), "get_int {k}");
        }
    }
}
