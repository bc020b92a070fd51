use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{
    KeyValueStore, KvIter, Result, SessionStore, SessionWindow, StateStore, WindowStore,
    WindowStoreConfig,
};

/// One write as a changelog topic carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The store key.
    pub key: Vec<u8>,
    /// The new value, or `None` for a delete (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Timestamp of the record whose processing caused the write.
    pub timestamp: i64,
}

/// Receives every write of a change-logging store; the runtime supplies one that sends to Kafka.
pub trait ChangelogSink: Send {
    /// Called once per write, in write order.
    fn log(&mut self, record: ChangelogRecord);
}

/// A sink that collects records in a shared buffer the runtime drains.
#[derive(Debug, Clone, Default)]
pub struct VecChangelogSink(Arc<Mutex<Vec<ChangelogRecord>>>);

impl VecChangelogSink {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }
    /// Takes everything logged so far.
    pub fn drain(&self) -> Vec<ChangelogRecord> {
        match self.0.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.0.lock().map(|v| v.is_empty()).unwrap_or(false)
    }
}

impl ChangelogSink for VecChangelogSink {
    fn log(&mut self, record: ChangelogRecord) {
        match self.0.lock() {
            Ok(mut v) => v.push(record),
            Err(poisoned) => poisoned.into_inner().push(record),
        }
    }
}

/// The timestamp of the record being processed, shared between the runtime (which sets it) and
/// the change-logging stores (which stamp changelog records with it).
#[derive(Debug, Clone, Default)]
pub struct RecordTimestamp(Arc<AtomicI64>);

impl RecordTimestamp {
    /// Sets the current record timestamp.
    pub fn set(&self, ts: i64) {
        self.0.store(ts, Ordering::Relaxed);
    }
    /// The current record timestamp.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<T: StateStore + ?Sized> StateStore for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn persistent(&self) -> bool {
        (**self).persistent()
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        (**self).commit(changelog_offset)
    }
    fn committed_offset(&self) -> Result<Option<i64>> {
        (**self).committed_offset()
    }
    fn uncommitted_bytes(&self) -> usize {
        (**self).uncommitted_bytes()
    }
}

impl<T: KeyValueStore + ?Sized> KeyValueStore for Box<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn flush_cache(&mut self) -> Result<()> {
        (**self).flush_cache()
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        (**self).put(key, value)
    }
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).put_if_absent(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).delete(key)
    }
    fn remove(&mut self, key: &[u8]) -> Result<()> {
        (**self).remove(key)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        (**self).range(from, to)
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        (**self).reverse_range(from, to)
    }
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        (**self).prefix_scan(prefix)
    }
    fn all(&self) -> Result<KvIter<'_>> {
        (**self).all()
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        (**self).approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        (**self).write_batch(entries)
    }
    fn take_evicted(&mut self) -> Vec<Vec<u8>> {
        (**self).take_evicted()
    }
    fn as_versioned(&self) -> Option<&crate::VersionedKeyValueStore> {
        (**self).as_versioned()
    }
    fn as_versioned_mut(&mut self) -> Option<&mut crate::VersionedKeyValueStore> {
        (**self).as_versioned_mut()
    }
}

/// The changelog record of a write; a timestamped value gives the record its value and timestamp
/// (a tombstone keeps the current record's timestamp, as in Kafka Streams).
fn changelog_record(
    store: &str,
    key: Vec<u8>,
    value: Option<&[u8]>,
    timestamped_values: bool,
    record_timestamp: i64,
) -> Result<ChangelogRecord> {
    let (value, timestamp) = match value {
        Some(raw) if timestamped_values => {
            let (v, ts) = crate::changelog_layout::split_timestamped(store, raw)?;
            (Some(v.to_vec()), ts)
        }
        other => (other.map(<[u8]>::to_vec), record_timestamp),
    };
    Ok(ChangelogRecord {
        key,
        value,
        timestamp,
    })
}

/// A key-value store that reports every write to a [`ChangelogSink`]. `write_batch` (the restore
/// path) goes straight to the inner store: restoring must not log again what it reads.
pub struct ChangeLoggingKeyValueStore<S: KeyValueStore> {
    inner: S,
    sink: Box<dyn ChangelogSink>,
    timestamp: RecordTimestamp,
    timestamped_values: bool,
}

impl<S: KeyValueStore> ChangeLoggingKeyValueStore<S> {
    /// Wraps `inner`; records are stamped with `timestamp`'s current value.
    pub fn new(inner: S, sink: Box<dyn ChangelogSink>, timestamp: RecordTimestamp) -> Self {
        ChangeLoggingKeyValueStore {
            inner,
            sink,
            timestamp,
            timestamped_values: false,
        }
    }
    /// Values are `[timestamp][value]` (a timestamped store): the changelog carries the value
    /// alone, stamped with its timestamp, as Kafka Streams writes it.
    pub fn with_timestamped_values(mut self) -> Self {
        self.timestamped_values = true;
        self
    }
    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
    fn log(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let record = changelog_record(
            self.inner.name(),
            key.to_vec(),
            value,
            self.timestamped_values,
            self.timestamp.get(),
        )?;
        self.sink.log(record);
        Ok(())
    }
    /// Entries the inner store evicted are gone from it: the changelog says so, or a restore
    /// would bring them back (Kafka Streams logs an LRU map's evictions the same way).
    fn log_evictions(&mut self) -> Result<()> {
        for key in self.inner.take_evicted() {
            self.log(&key, None)?;
        }
        Ok(())
    }
}

impl<S: KeyValueStore> StateStore for ChangeLoggingKeyValueStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn close(&mut self) -> Result<()> {
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

impl<S: KeyValueStore> KeyValueStore for ChangeLoggingKeyValueStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value)?;
        self.log(key, Some(value))?;
        self.log_evictions()
    }
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        let existing = self.inner.put_if_absent(key, value)?;
        if existing.is_none() {
            self.log(key, Some(value))?;
            self.log_evictions()?;
        }
        Ok(existing)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.inner.delete(key)?;
        self.log(key, None)?;
        Ok(old)
    }
    fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.inner.remove(key)?;
        self.log(key, None)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.inner.range(from, to)
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.inner.reverse_range(from, to)
    }
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        self.inner.prefix_scan(prefix)
    }
    fn all(&self) -> Result<KvIter<'_>> {
        self.inner.all()
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        self.inner.approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.inner.write_batch(entries)
    }
}

/// A window store that reports every write to a [`ChangelogSink`].
pub struct ChangeLoggingWindowStore<S: WindowStore> {
    inner: S,
    sink: Box<dyn ChangelogSink>,
    timestamp: RecordTimestamp,
    timestamped_values: bool,
}

impl<S: WindowStore> ChangeLoggingWindowStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, sink: Box<dyn ChangelogSink>, timestamp: RecordTimestamp) -> Self {
        ChangeLoggingWindowStore {
            inner,
            sink,
            timestamp,
            timestamped_values: false,
        }
    }
    /// Values are `[timestamp][value]`: see
    /// [`ChangeLoggingKeyValueStore::with_timestamped_values`].
    pub fn with_timestamped_values(mut self) -> Self {
        self.timestamped_values = true;
        self
    }
}

impl<S: WindowStore> StateStore for ChangeLoggingWindowStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn close(&mut self) -> Result<()> {
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

impl<S: WindowStore> WindowStore for ChangeLoggingWindowStore<S> {
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<Option<Vec<u8>>> {
        let changelog_key = self.inner.put(key, value, window_start)?;
        if let Some(k) = &changelog_key {
            let record = changelog_record(
                self.inner.name(),
                k.clone(),
                value,
                self.timestamped_values,
                self.timestamp.get(),
            )?;
            self.sink.log(record);
        }
        Ok(changelog_key)
    }
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>> {
        self.inner.fetch(key, window_start)
    }
    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        self.inner.fetch_range(key, time_from, time_to)
    }
    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<crate::window::WindowedEntry>> {
        self.inner.fetch_all(time_from, time_to)
    }
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.inner.restore_batch(records)
    }
    fn config(&self) -> WindowStoreConfig {
        self.inner.config()
    }
}

/// A session store that reports every write to a [`ChangelogSink`].
pub struct ChangeLoggingSessionStore<S: SessionStore> {
    inner: S,
    sink: Box<dyn ChangelogSink>,
    timestamp: RecordTimestamp,
}

impl<S: SessionStore> ChangeLoggingSessionStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, sink: Box<dyn ChangelogSink>, timestamp: RecordTimestamp) -> Self {
        ChangeLoggingSessionStore {
            inner,
            sink,
            timestamp,
        }
    }
}

impl<S: SessionStore> StateStore for ChangeLoggingSessionStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn close(&mut self) -> Result<()> {
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

impl<S: SessionStore> SessionStore for ChangeLoggingSessionStore<S> {
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(SessionWindow, Vec<u8>)>> {
        self.inner.find_sessions(key, earliest_end, latest_start)
    }
    fn fetch_session(&self, key: &[u8], window: SessionWindow) -> Result<Option<Vec<u8>>> {
        self.inner.fetch_session(key, window)
    }
    fn put(
        &mut self,
        key: &[u8],
        window: SessionWindow,
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        let changelog_key = self.inner.put(key, window, value)?;
        if let Some(k) = &changelog_key {
            let record = changelog_record(
                self.inner.name(),
                k.clone(),
                value,
                false,
                self.timestamp.get(),
            )?;
            self.sink.log(record);
        }
        Ok(changelog_key)
    }
    fn all(&self) -> Result<Vec<crate::session::KeyedSession>> {
        self.inner.all()
    }
    fn sessions_ending_between(
        &self,
        earliest_end: i64,
        latest_end: i64,
    ) -> Result<Vec<crate::session::KeyedSession>> {
        self.inner.sessions_ending_between(earliest_end, latest_end)
    }
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.inner.restore_batch(records)
    }
}

impl<T: WindowStore + ?Sized> WindowStore for Box<T> {
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<Option<Vec<u8>>> {
        (**self).put(key, value, window_start)
    }
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>> {
        (**self).fetch(key, window_start)
    }
    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        (**self).fetch_range(key, time_from, time_to)
    }
    fn backward_fetch_range(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        (**self).backward_fetch_range(key, time_from, time_to)
    }
    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<crate::window::WindowedEntry>> {
        (**self).fetch_all(time_from, time_to)
    }
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        (**self).restore_batch(records)
    }
    fn config(&self) -> WindowStoreConfig {
        (**self).config()
    }
}

impl<T: SessionStore + ?Sized> SessionStore for Box<T> {
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(SessionWindow, Vec<u8>)>> {
        (**self).find_sessions(key, earliest_end, latest_start)
    }
    fn fetch_session(&self, key: &[u8], window: SessionWindow) -> Result<Option<Vec<u8>>> {
        (**self).fetch_session(key, window)
    }
    fn put(
        &mut self,
        key: &[u8],
        window: SessionWindow,
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        (**self).put(key, window, value)
    }
    fn all(&self) -> Result<Vec<crate::session::KeyedSession>> {
        (**self).all()
    }
    fn sessions_ending_between(
        &self,
        earliest_end: i64,
        latest_end: i64,
    ) -> Result<Vec<crate::session::KeyedSession>> {
        (**self).sessions_ending_between(earliest_end, latest_end)
    }
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        (**self).restore_batch(records)
    }
}
