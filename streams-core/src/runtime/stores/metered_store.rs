//! Kafka Streams' `MeteredKeyValueStore`: the outermost layer of a task's key-value store, timing
//! each call into the `stream-state-metrics` sensors (recording level `DEBUG`).
//!
//! It sits above the record cache, so a cache hit is timed as the fast call it is. The restore
//! path (`write_batch`) is not timed: restoration has its own sensors.

use std::sync::Arc;
use std::time::Instant;

use state_stores::{KeyValueStore, KvIter, StateStore};

use crate::runtime::metrics::{
    Sensor, StreamsMetrics, STATE_DELETE, STATE_FLUSH, STATE_GET, STATE_PUT, STATE_RANGE,
};

type StoreResult<T> = state_stores::Result<T>;

/// A key-value store whose calls are timed.
pub(crate) struct MeteredKeyValueStore {
    inner: Box<dyn KeyValueStore>,
    put: Arc<Sensor>,
    get: Arc<Sensor>,
    delete: Arc<Sensor>,
    range: Arc<Sensor>,
    flush: Arc<Sensor>,
}

impl MeteredKeyValueStore {
    /// Wraps `inner`; `labels` are the thread id, task id and store name.
    pub fn wrap(
        inner: Box<dyn KeyValueStore>,
        metrics: &StreamsMetrics,
        labels: &[&str],
    ) -> Box<dyn KeyValueStore> {
        Box::new(MeteredKeyValueStore {
            inner,
            put: metrics.sensor(STATE_PUT, labels),
            get: metrics.sensor(STATE_GET, labels),
            delete: metrics.sensor(STATE_DELETE, labels),
            range: metrics.sensor(STATE_RANGE, labels),
            flush: metrics.sensor(STATE_FLUSH, labels),
        })
    }
}

fn timed<R>(sensor: &Sensor, f: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let r = f();
    sensor.record_elapsed(started);
    r
}

impl StateStore for MeteredKeyValueStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> StoreResult<()> {
        let inner = &mut self.inner;
        timed(&self.flush, || inner.flush())
    }
    fn close(&mut self) -> StoreResult<()> {
        self.inner.close()
    }
    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        self.inner.commit(changelog_offset)
    }
    fn committed_offset(&self) -> StoreResult<Option<i64>> {
        self.inner.committed_offset()
    }
    fn uncommitted_bytes(&self) -> usize {
        self.inner.uncommitted_bytes()
    }
}

impl KeyValueStore for MeteredKeyValueStore {
    fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        timed(&self.get, || self.inner.get(key))
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        let inner = &mut self.inner;
        timed(&self.put, || inner.put(key, value))
    }
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let inner = &mut self.inner;
        timed(&self.put, || inner.put_if_absent(key, value))
    }
    fn delete(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let inner = &mut self.inner;
        timed(&self.delete, || inner.delete(key))
    }
    fn remove(&mut self, key: &[u8]) -> StoreResult<()> {
        let inner = &mut self.inner;
        timed(&self.delete, || inner.remove(key))
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<KvIter<'_>> {
        timed(&self.range, || self.inner.range(from, to))
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<KvIter<'_>> {
        timed(&self.range, || self.inner.reverse_range(from, to))
    }
    fn prefix_scan(&self, prefix: &[u8]) -> StoreResult<KvIter<'_>> {
        timed(&self.range, || self.inner.prefix_scan(prefix))
    }
    fn all(&self) -> StoreResult<KvIter<'_>> {
        timed(&self.range, || self.inner.all())
    }
    fn approximate_num_entries(&self) -> StoreResult<u64> {
        self.inner.approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> StoreResult<()> {
        self.inner.write_batch(entries)
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        self.inner.flush_cache()
    }
    fn as_versioned(&self) -> Option<&state_stores::VersionedKeyValueStore> {
        self.inner.as_versioned()
    }
    fn as_versioned_mut(&mut self) -> Option<&mut state_stores::VersionedKeyValueStore> {
        self.inner.as_versioned_mut()
    }
}
