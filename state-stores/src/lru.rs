//! The LRU map store (Kafka Streams' `Stores.lruMap`): an in-memory key-value store holding at
//! most a fixed number of entries, dropping the least recently used one to make room.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::{InMemoryKeyValueStore, KeyValueStore, KvIter, Result, StateStore};

/// An in-memory key-value store of at most `max_entries` entries. Reads and writes of a key make
/// it the most recently used; a write past the bound evicts the least recently used key, which
/// [`KeyValueStore::take_evicted`] reports so the changelog records its removal.
#[derive(Debug)]
pub struct LruMapStore {
    map: InMemoryKeyValueStore,
    max_entries: usize,
    /// Recency, behind a `RefCell` because a read (`&self`) refreshes it. A store is used by one
    /// thread at a time (`StateStore: Send`, not `Sync`).
    recency: RefCell<Recency>,
    evicted: Vec<Vec<u8>>,
}

/// Use order: each key's last use tick, and the keys by tick (oldest first).
#[derive(Debug, Default)]
struct Recency {
    tick: u64,
    by_key: HashMap<Vec<u8>, u64>,
    by_tick: BTreeMap<u64, Vec<u8>>,
}

impl Recency {
    fn touch(&mut self, key: &[u8]) {
        self.tick += 1;
        let tick = self.tick;
        match self.by_key.get_mut(key) {
            Some(last) => {
                self.by_tick.remove(last);
                *last = tick;
            }
            None => {
                self.by_key.insert(key.to_vec(), tick);
            }
        }
        self.by_tick.insert(tick, key.to_vec());
    }

    fn forget(&mut self, key: &[u8]) {
        if let Some(tick) = self.by_key.remove(key) {
            self.by_tick.remove(&tick);
        }
    }

    fn pop_oldest(&mut self) -> Option<Vec<u8>> {
        let (_, key) = self.by_tick.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }
}

impl LruMapStore {
    /// An empty store keeping at most `max_entries` entries (at least one).
    pub fn new(name: impl Into<String>, max_entries: usize) -> Self {
        LruMapStore {
            map: InMemoryKeyValueStore::new(name),
            max_entries: max_entries.max(1),
            recency: RefCell::default(),
            evicted: Vec::new(),
        }
    }

    /// The most entries the store holds.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    fn evict_past_bound(&mut self) -> Result<()> {
        let mut recency = self.recency.borrow_mut();
        while recency.by_key.len() > self.max_entries {
            let Some(oldest) = recency.pop_oldest() else {
                break;
            };
            self.map.delete(&oldest)?;
            self.evicted.push(oldest);
        }
        Ok(())
    }
}

impl StateStore for LruMapStore {
    fn name(&self) -> &str {
        self.map.name()
    }
    fn flush(&mut self) -> Result<()> {
        self.map.flush()
    }
    fn close(&mut self) -> Result<()> {
        self.map.close()
    }
    fn persistent(&self) -> bool {
        false
    }
}

impl KeyValueStore for LruMapStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.map.get(key)?;
        if value.is_some() {
            self.recency.borrow_mut().touch(key);
        }
        Ok(value)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.map.put(key, value)?;
        self.recency.get_mut().touch(key);
        self.evict_past_bound()
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.recency.get_mut().forget(key);
        self.map.delete(key)
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.map.range(from, to)
    }

    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.map.reverse_range(from, to)
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        self.map.prefix_scan(prefix)
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        self.map.approximate_num_entries()
    }

    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (key, value) in entries {
            match value {
                Some(v) => self.put(key, v)?,
                None => {
                    self.delete(key)?;
                }
            }
        }
        // Restoring replays the changelog, which already records the evictions it causes.
        self.evicted.clear();
        Ok(())
    }

    fn take_evicted(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.evicted)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys(s: &LruMapStore) -> Vec<Vec<u8>> {
        s.all().unwrap().map(|e| e.unwrap().0).collect()
    }

    #[test]
    fn a_write_past_the_bound_evicts_the_least_recently_used_key() {
        let mut s = LruMapStore::new("lru", 2);
        s.put(b"a", b"1").unwrap();
        s.put(b"b", b"2").unwrap();
        // Reading `a` makes `b` the least recently used.
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        s.put(b"c", b"3").unwrap();
        assert_eq!(keys(&s), vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(s.take_evicted(), vec![b"b".to_vec()]);
        assert!(s.take_evicted().is_empty());
        // Rewriting `a` refreshes it too; a delete frees a slot without an eviction.
        s.put(b"a", b"4").unwrap();
        s.put(b"d", b"5").unwrap();
        assert_eq!(s.take_evicted(), vec![b"c".to_vec()]);
        assert_eq!(s.delete(b"d").unwrap(), Some(b"5".to_vec()));
        s.put(b"e", b"6").unwrap();
        assert!(s.take_evicted().is_empty());
        assert_eq!(s.approximate_num_entries().unwrap(), 2);
    }

    #[test]
    fn a_restore_keeps_the_bound_without_reporting_evictions() {
        let mut s = LruMapStore::new("lru", 2);
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), Some(b"2".to_vec())),
            (b"c".to_vec(), Some(b"3".to_vec())),
            (b"b".to_vec(), None),
        ];
        s.write_batch(&batch).unwrap();
        assert_eq!(keys(&s), vec![b"c".to_vec()]);
        assert!(s.take_evicted().is_empty());
    }
}
