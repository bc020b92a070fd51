//! The record cache in front of a key-value store: writes between two flushes collapse per key, so
//! the changelog and downstream operators see one update per hot key per commit instead of one per
//! record.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::changelog::RecordTimestamp;
use crate::key_value::{KeyValueStore, KvIter, StateStore};
use crate::Result;

/// Byte budget shared by every cache of one stream thread (`statestore.cache.max.bytes` divided
/// by the thread count, as in Kafka Streams).
#[derive(Debug, Clone)]
pub struct CacheBudget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl CacheBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        CacheBudget {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }
    /// Bytes in use across the caches sharing this budget.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// A cached write reaching the store: the runtime forwards `(key, new, old)` downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushedEntry {
    /// Key bytes.
    pub key: Vec<u8>,
    /// The value written (`None`: deleted).
    pub new: Option<Vec<u8>>,
    /// The value the store held before.
    pub old: Option<Vec<u8>>,
    /// Timestamp of the record that wrote `new`.
    pub timestamp: i64,
}

/// Where flushed entries queue until the runtime forwards them.
pub type FlushQueue = Arc<Mutex<Vec<FlushedEntry>>>;

#[derive(Debug)]
struct Entry {
    value: Option<Vec<u8>>,
    timestamp: i64,
    seq: u64,
}

/// What an entry costs beyond its key and value bytes, so the budget bounds memory rather than
/// payload: its hash table slot (65 bytes at a load between 7/16 and 7/8), the allocator's
/// minimum for the key and the value, the LRU tree's slot and its copy of the key (about 230
/// bytes for small entries). At 64, a cache of small entries took about three times its budget.
const ENTRY_OVERHEAD: usize = 224;

/// The capacity a cache keeps after a flush: small stores refill without regrowing, large ones
/// give their table back.
const RETAINED_ENTRIES: usize = 1024;

fn size_of(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

/// Kafka Streams' `CachingKeyValueStore`: dirty entries in LRU order in front of `inner`
/// (usually the change-logging store). Flushed on [`StateStore::flush`], on eviction when the
/// thread's budget is exceeded, and before scans (which then read `inner` alone).
pub struct CachingKeyValueStore {
    inner: Box<dyn KeyValueStore>,
    entries: HashMap<Vec<u8>, Entry>,
    lru: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    bytes: usize,
    budget: CacheBudget,
    queue: FlushQueue,
    timestamp: RecordTimestamp,
}

impl CachingKeyValueStore {
    /// Caches `inner`. `timestamp` is the record timestamp the processors write under (flushes set
    /// it to each entry's own timestamp for the changelog); `queue` receives flushed entries.
    pub fn new(
        inner: Box<dyn KeyValueStore>,
        budget: CacheBudget,
        timestamp: RecordTimestamp,
        queue: FlushQueue,
    ) -> Self {
        CachingKeyValueStore {
            inner,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            budget,
            queue,
            timestamp,
        }
    }

    /// Entries waiting in the cache.
    pub fn dirty_len(&self) -> usize {
        self.entries.len()
    }

    fn write_through(&mut self, key: Vec<u8>, e: Entry) -> Result<()> {
        let old = self.inner.get(&key)?;
        let saved = self.timestamp.get();
        self.timestamp.set(e.timestamp);
        let r = match &e.value {
            Some(v) => self.inner.put(&key, v),
            None => self.inner.delete(&key).map(|_| ()),
        };
        self.timestamp.set(saved);
        r?;
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(FlushedEntry {
                key,
                new: e.value,
                old,
                timestamp: e.timestamp,
            });
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.lru.remove(&e.seq);
        let sz = size_of(key, &e.value);
        self.bytes -= sz;
        self.budget.used.fetch_sub(sz, Ordering::Relaxed);
        Some(e)
    }

    /// Writes every cached entry to the store, oldest first.
    fn flush_cache(&mut self) -> Result<()> {
        while let Some((_, key)) = self.lru.pop_first() {
            if let Some(mut e) = self.entries.remove(&key) {
                let sz = size_of(&key, &e.value);
                self.bytes -= sz;
                self.budget.used.fetch_sub(sz, Ordering::Relaxed);
                e.seq = 0;
                self.write_through(key, e)?;
            }
        }
        // A hash table keeps the capacity of its fullest moment. Every task's cache can fill to
        // the thread's whole budget in turn, so without this the tables together held several
        // budgets (70 MB against a 10 MiB budget in the benchmark's 1M-key store).
        self.entries.shrink_to(RETAINED_ENTRIES);
        Ok(())
    }

    fn evict_while_over_budget(&mut self) -> Result<()> {
        while self.budget.used() > self.budget.max {
            let Some((_, key)) = self.lru.first_key_value().map(|(s, k)| (*s, k.clone())) else {
                return Ok(());
            };
            if let Some(e) = self.remove(&key) {
                self.write_through(key, e)?;
            }
        }
        Ok(())
    }

    fn cache_write(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        self.remove(key);
        let sz = size_of(key, &value);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            key.to_vec(),
            Entry {
                value,
                timestamp: self.timestamp.get(),
                seq,
            },
        );
        self.lru.insert(seq, key.to_vec());
        self.bytes += sz;
        self.budget.used.fetch_add(sz, Ordering::Relaxed);
        self.evict_while_over_budget()
    }
}

impl StateStore for CachingKeyValueStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> Result<()> {
        self.flush_cache()?;
        self.inner.flush()
    }
    fn close(&mut self) -> Result<()> {
        // Unflushed entries belong to work that was never committed: drop them.
        let keys: Vec<Vec<u8>> = self.entries.keys().cloned().collect();
        for k in keys {
            self.remove(&k);
        }
        self.inner.close()
    }
    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        self.inner.commit(changelog_offset)
    }
    fn committed_offset(&self) -> Result<Option<i64>> {
        self.inner.committed_offset()
    }
    fn uncommitted_bytes(&self) -> usize {
        self.inner.uncommitted_bytes()
    }
}

impl KeyValueStore for CachingKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.entries.get(key) {
            Some(e) => Ok(e.value.clone()),
            None => self.inner.get(key),
        }
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.cache_write(key, Some(value.to_vec()))
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.get(key)?;
        self.cache_write(key, None)?;
        Ok(old)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        let cached = self.cached_in(|k| from.is_none_or(|f| k >= f) && to.is_none_or(|t| k <= t));
        Ok(merge(cached, self.inner.range(from, to)?, false))
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        let mut cached =
            self.cached_in(|k| from.is_none_or(|f| k >= f) && to.is_none_or(|t| k <= t));
        cached.reverse();
        Ok(merge(cached, self.inner.reverse_range(from, to)?, true))
    }
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        let cached = self.cached_in(|k| k.starts_with(prefix));
        Ok(merge(cached, self.inner.prefix_scan(prefix)?, false))
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.inner.approximate_num_entries()? + self.entries.len() as u64)
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (k, _) in entries {
            self.remove(k);
        }
        self.inner.write_batch(entries)
    }
    fn flush_cache(&mut self) -> Result<()> {
        CachingKeyValueStore::flush_cache(self)
    }
}

impl CachingKeyValueStore {
    /// Cached entries (tombstones included) whose key passes `keep`, ascending.
    fn cached_in(&self, keep: impl Fn(&[u8]) -> bool) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut v: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .entries
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Merges cached entries into a store scan of the same direction: the cache wins on equal keys,
/// cached tombstones hide store entries.
fn merge<'a>(
    cached: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    store: KvIter<'a>,
    descending: bool,
) -> KvIter<'a> {
    let mut cached = cached.into_iter().peekable();
    let mut store = store.peekable();
    Box::new(std::iter::from_fn(move || loop {
        let take_cache = match (cached.peek(), store.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(Err(_))) => false,
            (Some((ck, _)), Some(Ok((sk, _)))) => {
                if ck == sk {
                    store.next();
                    true
                } else {
                    (ck < sk) != descending
                }
            }
        };
        if take_cache {
            match cached.next() {
                Some((k, Some(v))) => return Some(Ok((k, v))),
                Some((_, None)) => continue,
                None => return None,
            }
        }
        return store.next();
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::changelog::{ChangeLoggingKeyValueStore, VecChangelogSink};
    use crate::memory::InMemoryKeyValueStore;

    fn cached(
        budget: usize,
    ) -> (
        CachingKeyValueStore,
        VecChangelogSink,
        FlushQueue,
        RecordTimestamp,
    ) {
        let sink = VecChangelogSink::new();
        let ts = RecordTimestamp::default();
        let logged = ChangeLoggingKeyValueStore::new(
            Box::new(InMemoryKeyValueStore::new("s")),
            Box::new(sink.clone()),
            ts.clone(),
        );
        let queue = FlushQueue::default();
        let store = CachingKeyValueStore::new(
            Box::new(logged),
            CacheBudget::new(budget),
            ts.clone(),
            queue.clone(),
        );
        (store, sink, queue, ts)
    }

    #[test]
    fn updates_collapse_per_key_until_flush() {
        let (mut s, sink, queue, ts) = cached(1 << 20);
        s.put(b"a", b"1").unwrap();
        ts.set(5);
        s.put(b"a", b"2").unwrap();
        s.put(b"b", b"x").unwrap();
        assert_eq!(
            s.get(b"a").unwrap(),
            Some(b"2".to_vec()),
            "reads see the cache"
        );
        assert!(
            sink.drain().is_empty(),
            "nothing reaches the changelog before a flush"
        );
        s.flush().unwrap();
        let logged = sink.drain();
        assert_eq!(logged.len(), 2);
        assert_eq!(
            (logged[0].key.as_slice(), logged[0].timestamp),
            (&b"a"[..], 5)
        );
        let flushed = std::mem::take(&mut *queue.lock().unwrap());
        assert_eq!(
            flushed[0],
            FlushedEntry {
                key: b"a".to_vec(),
                new: Some(b"2".to_vec()),
                old: None,
                timestamp: 5
            }
        );
        s.delete(b"a").unwrap();
        s.flush().unwrap();
        let flushed = std::mem::take(&mut *queue.lock().unwrap());
        assert_eq!(
            (flushed[0].new.clone(), flushed[0].old.clone()),
            (None, Some(b"2".to_vec()))
        );
        assert_eq!(s.get(b"a").unwrap(), None);
    }

    #[test]
    fn a_full_cache_evicts_its_oldest_entries() {
        let (mut s, sink, queue, _) = cached(3 * (ENTRY_OVERHEAD + 3));
        for k in [b"k1", b"k2", b"k3", b"k4", b"k5"] {
            s.put(k, b"v").unwrap();
        }
        let evicted: Vec<Vec<u8>> = queue
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.key.clone())
            .collect();
        assert_eq!(evicted, [b"k1".to_vec(), b"k2".to_vec()]);
        assert_eq!(sink.drain().len(), 2);
        assert_eq!(s.dirty_len(), 3);
        assert_eq!(s.budget.used(), 3 * (ENTRY_OVERHEAD + 3));
    }

    #[test]
    fn a_flush_gives_back_the_table_of_a_cache_that_was_full() {
        let (mut s, sink, _, _) = cached(1 << 30);
        for i in 0..50_000u32 {
            s.put(&i.to_be_bytes(), b"v").unwrap();
        }
        assert!(s.entries.capacity() >= 50_000);
        s.flush().unwrap();
        assert_eq!(
            sink.drain().len(),
            50_000,
            "every entry was written through"
        );
        assert!(
            s.entries.capacity() < 2 * RETAINED_ENTRIES,
            "{} entries of capacity kept",
            s.entries.capacity()
        );
        // A small cache keeps its table across flushes.
        for i in 0..100u32 {
            s.put(&i.to_be_bytes(), b"w").unwrap();
        }
        let small = s.entries.capacity();
        s.flush().unwrap();
        assert_eq!(s.entries.capacity(), small);
        assert_eq!(s.get(&7u32.to_be_bytes()).unwrap(), Some(b"w".to_vec()));
    }

    #[test]
    fn scans_merge_the_cache_over_the_store() {
        let (mut s, _, _, _) = cached(1 << 20);
        for k in [b"a", b"c", b"e"] {
            s.put(k, b"old").unwrap();
        }
        s.flush().unwrap();
        s.put(b"b", b"new").unwrap();
        s.put(b"c", b"new").unwrap();
        s.delete(b"e").unwrap();
        let all: Vec<(Vec<u8>, Vec<u8>)> = s.all().unwrap().map(|r| r.unwrap()).collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [("a", "old"), ("b", "new"), ("c", "new")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(all, want);
        let rev: Vec<Vec<u8>> = s
            .reverse_range(None, None)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(rev, [b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        let pre: Vec<Vec<u8>> = s.prefix_scan(b"b").unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(pre, [b"b".to_vec()]);
    }
}
