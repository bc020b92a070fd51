use crate::Result;

/// An iterator over key/value pairs in key order.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// What every store has: a name and a lifecycle.
pub trait StateStore: Send {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;
    /// Makes every write so far durable (for persistent stores) .
    fn flush(&mut self) -> Result<()>;
    /// Flushes and releases resources; later calls fail with [`crate::StoreError::Closed`].
    fn close(&mut self) -> Result<()>;
    /// Whether the contents survive a process restart.
    fn persistent(&self) -> bool;
    /// Makes the writes since the last commit part of the store together with `changelog_offset`,
    /// the offset of the next changelog record the contents do not reflect, in one atomic write.
    /// Only transactional stores (exactly-once) keep writes apart; for the others this does
    /// nothing, and [`StateStore::flush`] is what makes writes durable.
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        let _ = changelog_offset;
        Ok(())
    }
    /// The changelog offset the last [`StateStore::commit`] recorded with the contents; `None`
    /// for stores that do not record one (or have not committed yet).
    fn committed_offset(&self) -> Result<Option<i64>> {
        Ok(None)
    }
    /// Bytes of writes since the last commit that a transactional store holds in memory.
    fn uncommitted_bytes(&self) -> usize {
        0
    }
}

/// A byte-level key-value store with ordered scans. Keys compare as unsigned bytes.
pub trait KeyValueStore: StateStore {
    /// The value for `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Inserts or replaces the value for `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Writes `value` only when `key` has no value; returns the existing value otherwise.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => {
                self.put(key, value)?;
                Ok(None)
            }
        }
    }
    /// Removes `key`; returns the value it had.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Removes `key` without reading the value it had (Kafka's `put(key, null)`): on RocksDB a
    /// delete is a blind write, while reading the old value first can go to disk for a key
    /// flushed long ago (an outer join forgets its oldest waiting record on every arrival).
    fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.delete(key).map(drop)
    }
    /// Entries with `from <= key <= to` in ascending key order; `None` leaves that side open.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>>;
    /// Entries with `from <= key <= to` in descending key order.
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>>;
    /// Entries whose key starts with `prefix`, ascending.
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>>;
    /// All entries, ascending.
    fn all(&self) -> Result<KvIter<'_>> {
        self.range(None, None)
    }
    /// An estimate of the number of entries (exact for in-memory stores).
    fn approximate_num_entries(&self) -> Result<u64>;
    /// Applies puts (`Some`) and deletes (`None`) as one batch. This is the restore path: it bypasses
    /// any changelogging layer and, on RocksDB, is one atomic write batch.
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()>;
    /// Writes what a record cache in front of the store holds, without syncing the store itself
    /// (a no-op for stores without a cache).
    fn flush_cache(&mut self) -> Result<()> {
        Ok(())
    }
    /// Keys the store dropped on its own since the last call (an LRU map evicting its least
    /// recently used entry); a changelogging layer records them as deletes.
    fn take_evicted(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// The versioned store this is or wraps, for lookups as of a time (`None` for others).
    fn as_versioned(&self) -> Option<&crate::VersionedKeyValueStore> {
        None
    }
    /// [`KeyValueStore::as_versioned`], for writes.
    fn as_versioned_mut(&mut self) -> Option<&mut crate::VersionedKeyValueStore> {
        None
    }
}

/// The smallest key strictly greater than every key that has `prefix` as prefix, if one exists.
pub(crate) fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < u8::MAX {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_upper_bound(&[255, 255]), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }
}
