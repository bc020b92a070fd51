//! Versioned key-value stores (Kafka Streams' KIP-889): every value a key had, each valid from
//! its timestamp until the next one's, kept for `history_retention_ms` behind the store's
//! observed stream time, so a lookup can ask for the value a key had at a given time.
//!
//! On top of any [`KeyValueStore`], in three key spaces (Kafka's latest-value store and history
//! segments, in one store):
//! - latest: `0x00 key` -> `timestamp (8) value` (the timestamped layout); a deleted key has
//!   none;
//! - history: `0x01 key-length (4) key timestamp (8, sign bit flipped)` -> `valid-to (8) tag (1)
//!   value`, in key then time order, tag 0 a delete written out of order (it bounds later
//!   out-of-order writes);
//! - `0x02` -> the observed stream time, so a reopened store applies the same retention.
//!
//! Writes are logged as Kafka Streams logs them: key, value (or tombstone) and the version's
//! timestamp as the record timestamp; restoring replays them as puts. As a [`KeyValueStore`]
//! the store shows the latest values in the timestamped layout, so readers of a table (joins,
//! queries) need not know it is versioned.

use crate::changelog::{ChangelogRecord, ChangelogSink, RecordTimestamp};
use crate::key_value::{prefix_upper_bound, KvIter};
use crate::{KeyValueStore, Result, StateStore, StoreError, ValueAndTimestamp};

const LATEST: u8 = 0;
const HISTORY: u8 = 1;
const META_OBSERVED: &[u8] = &[2];
const TOMBSTONE: u8 = 0;
const VALUE: u8 = 1;

/// [`VersionedKeyValueStore::put`]: the write was older than the history retention and dropped.
pub const PUT_NOT_PUT: i64 = i64::MIN;
/// [`VersionedKeyValueStore::put`]: the write is the key's latest value.
pub const PUT_IS_LATEST: i64 = i64::MAX;

/// One version of a key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedRecord {
    /// The value bytes.
    pub value: Vec<u8>,
    /// When this version became valid.
    pub timestamp: i64,
    /// When the next version replaced it; `None` for the latest.
    pub valid_to: Option<i64>,
}

/// A versioned key-value store over an inner byte store (see the module docs).
pub struct VersionedKeyValueStore {
    inner: Box<dyn KeyValueStore>,
    history_retention_ms: i64,
    observed: i64,
    sink: Option<Box<dyn ChangelogSink>>,
    /// The timestamp of the record being processed: what a delete through the
    /// [`KeyValueStore`] view stamps its tombstone with.
    record_timestamp: RecordTimestamp,
}

fn latest_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(LATEST);
    k.extend_from_slice(key);
    k
}

fn history_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(13 + key.len());
    k.push(HISTORY);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn history_key(key: &[u8], ts: i64) -> Vec<u8> {
    let mut k = history_prefix(key);
    k.extend_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn ts_of_history_key(k: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[k.len() - 8..]);
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn read_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// A version in the history: valid in `[from, to)`; `value` `None` for a delete.
struct Version {
    from: i64,
    to: i64,
    value: Option<Vec<u8>>,
}

impl VersionedKeyValueStore {
    /// Wraps `inner` (which must hold nothing else), keeping versions `history_retention_ms`
    /// behind the observed stream time. `sink` receives every write; `record_timestamp` stamps
    /// deletes made through the [`KeyValueStore`] view.
    pub fn new(
        inner: Box<dyn KeyValueStore>,
        history_retention_ms: i64,
        sink: Option<Box<dyn ChangelogSink>>,
        record_timestamp: RecordTimestamp,
    ) -> Result<Self> {
        let observed = match inner.get(META_OBSERVED)? {
            Some(b) if b.len() == 8 => read_i64(&b),
            _ => i64::MIN,
        };
        Ok(VersionedKeyValueStore {
            inner,
            history_retention_ms,
            observed,
            sink,
            record_timestamp,
        })
    }

    fn corrupt(&self, reason: &str) -> StoreError {
        StoreError::CorruptEntry {
            store: self.inner.name().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The oldest timestamp lookups still answer for.
    fn history_floor(&self) -> i64 {
        self.observed.saturating_sub(self.history_retention_ms)
    }

    fn latest(&self, key: &[u8]) -> Result<Option<(i64, Vec<u8>)>> {
        let Some(raw) = self.inner.get(&latest_key(key))? else {
            return Ok(None);
        };
        if raw.len() < 8 {
            return Err(self.corrupt("latest value shorter than its timestamp"));
        }
        Ok(Some((read_i64(&raw), raw[8..].to_vec())))
    }

    fn write_latest(&mut self, key: &[u8], ts: i64, value: &[u8]) -> Result<()> {
        self.inner
            .put(&latest_key(key), &ValueAndTimestamp::encode(value, ts))
    }

    fn write_history(
        &mut self,
        key: &[u8],
        from: i64,
        to: i64,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let mut raw = Vec::with_capacity(9 + value.map_or(0, <[u8]>::len));
        raw.extend_from_slice(&to.to_be_bytes());
        match value {
            Some(v) => {
                raw.push(VALUE);
                raw.extend_from_slice(v);
            }
            None => raw.push(TOMBSTONE),
        }
        self.inner.put(&history_key(key, from), &raw)
    }

    /// History versions of `key` with `from <= valid-from <= to`, newest first.
    fn history_back(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<Version>> {
        let (lo, hi) = (history_key(key, from), history_key(key, to));
        let mut out = Vec::new();
        for e in self.inner.reverse_range(Some(&lo), Some(&hi))? {
            let (k, v) = e?;
            if v.len() < 9 {
                return Err(self.corrupt("history value shorter than its valid-to and tag"));
            }
            out.push(Version {
                from: ts_of_history_key(&k),
                to: read_i64(&v),
                value: (v[8] == VALUE).then(|| v[9..].to_vec()),
            });
        }
        Ok(out)
    }

    /// Writes `value` (`None`: a delete) for `key` as of `timestamp`. Returns when the new
    /// version stops being valid: [`PUT_IS_LATEST`] when it is the latest, the next version's
    /// timestamp when written out of order, or [`PUT_NOT_PUT`] when `timestamp` is older than
    /// the history retention (nothing is written).
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<i64> {
        if timestamp > self.observed {
            self.observed = timestamp;
            self.inner.put(META_OBSERVED, &timestamp.to_be_bytes())?;
        }
        if timestamp < self.history_floor() {
            return Ok(PUT_NOT_PUT);
        }
        let valid_to = self.apply(key, value, timestamp)?;
        if let Some(sink) = &mut self.sink {
            sink.log(ChangelogRecord {
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
                timestamp,
            });
        }
        self.expire_history(key)?;
        Ok(valid_to)
    }

    /// Kafka Streams' rules (RocksDBVersionedStore): a write at or after the latest value's
    /// time replaces it (a delete leaves no latest value; the old one moves to the history,
    /// valid until the write); with no latest value, a write after the end of every version
    /// is the latest (a delete then is kept as an empty version); any other write goes into
    /// the history, valid until the next version, and cuts short the version it lands in. A
    /// delete in the history is kept as a tombstone, so later out-of-order writes stop at it.
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>, ts: i64) -> Result<i64> {
        let latest = self.latest(key)?;
        let bound = match &latest {
            Some((latest_ts, _)) if ts < *latest_ts => *latest_ts,
            Some((latest_ts, old)) => {
                if ts > *latest_ts {
                    let (latest_ts, old) = (*latest_ts, old.clone());
                    self.write_history(key, latest_ts, ts, Some(&old))?;
                }
                match value {
                    Some(v) => self.write_latest(key, ts, v)?,
                    None => {
                        self.inner.delete(&latest_key(key))?;
                    }
                }
                return Ok(PUT_IS_LATEST);
            }
            None => {
                let newest_end = self
                    .history_back(key, i64::MIN, i64::MAX)?
                    .first()
                    .map(|v| v.to);
                if newest_end.is_none_or(|end| ts >= end) {
                    match value {
                        Some(v) => self.write_latest(key, ts, v)?,
                        // A delete of a key without a value is kept (as an empty version) so
                        // that a write out of order before it stops there.
                        None => self.write_history(key, ts, ts, None)?,
                    }
                    return Ok(PUT_IS_LATEST);
                }
                i64::MAX
            }
        };
        // Out of order: into the history, valid until the next version.
        let valid_to = match self.history_back(key, i64::MIN, ts)?.into_iter().next() {
            Some(v) if v.from == ts => v.to,
            Some(v) if v.to > ts => {
                // The version covering `ts` now ends at it.
                self.write_history(key, v.from, ts, v.value.as_deref())?;
                v.to
            }
            _ => self.next_version_after(key, ts, bound)?,
        };
        self.write_history(key, ts, valid_to, value)?;
        Ok(valid_to)
    }

    /// The first version of `key` starting after `ts` (history or `latest_ts`).
    fn next_version_after(&self, key: &[u8], ts: i64, latest_ts: i64) -> Result<i64> {
        let (lo, hi) = (
            history_key(key, ts.saturating_add(1)),
            history_key(key, i64::MAX),
        );
        match self.inner.range(Some(&lo), Some(&hi))?.next() {
            Some(e) => Ok(ts_of_history_key(&e?.0)),
            None => Ok(latest_ts),
        }
    }

    /// Drops the history versions of `key` that ended at or before the retention floor: no
    /// lookup can ask for them any more.
    fn expire_history(&mut self, key: &[u8]) -> Result<()> {
        let floor = self.history_floor();
        let expired: Vec<i64> = self
            .history_back(key, i64::MIN, floor)?
            .into_iter()
            .filter(|v| v.to <= floor)
            .map(|v| v.from)
            .collect();
        for from in expired {
            self.inner.delete(&history_key(key, from))?;
        }
        Ok(())
    }

    /// The latest value of `key`; `None` when it has none or was deleted.
    pub fn get_latest(&self, key: &[u8]) -> Result<Option<VersionedRecord>> {
        Ok(self.latest(key)?.map(|(ts, value)| VersionedRecord {
            value,
            timestamp: ts,
            valid_to: None,
        }))
    }

    /// The value `key` had at `as_of`; `None` when it had none, or when `as_of` is older than
    /// the history retention and the latest value is newer than `as_of`.
    pub fn get_as_of(&self, key: &[u8], as_of: i64) -> Result<Option<VersionedRecord>> {
        // The latest value never expires: it answers even past the history retention.
        if let Some((ts, value)) = self.latest(key)? {
            if ts <= as_of {
                return Ok(Some(VersionedRecord {
                    value,
                    timestamp: ts,
                    valid_to: None,
                }));
            }
        }
        if as_of < self.history_floor() {
            return Ok(None);
        }
        Ok(self
            .history_back(key, i64::MIN, as_of)?
            .into_iter()
            .next()
            .filter(|v| v.to > as_of)
            .and_then(|v| {
                Some(VersionedRecord {
                    value: v.value?,
                    timestamp: v.from,
                    valid_to: Some(v.to),
                })
            }))
    }

    /// Replays changelog records (key, value or tombstone, version timestamp) without logging.
    pub fn restore(&mut self, records: Vec<ChangelogRecord>) -> Result<()> {
        let sink = self.sink.take();
        let result = records.into_iter().try_for_each(|r| {
            self.put(&r.key, r.value.as_deref(), r.timestamp)
                .map(|_| ())
        });
        self.sink = sink;
        result
    }

    /// Latest entries of the key range `[from, to]` in the given direction, in the timestamped
    /// layout (which is how they are stored).
    fn latest_range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
        reverse: bool,
    ) -> Result<KvIter<'_>> {
        let lo = latest_key(from.unwrap_or_default());
        let hi = match to {
            Some(t) => latest_key(t),
            // Every latest key sorts below the history space's first byte.
            None => vec![HISTORY],
        };
        let it = if reverse {
            self.inner.reverse_range(Some(&lo), Some(&hi))?
        } else {
            self.inner.range(Some(&lo), Some(&hi))?
        };
        Ok(Box::new(it.filter_map(|e| match e {
            Err(e) => Some(Err(e)),
            Ok((k, raw)) if k.first() == Some(&LATEST) => Some(Ok((k[1..].to_vec(), raw))),
            Ok(_) => None,
        })))
    }
}

impl StateStore for VersionedKeyValueStore {
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

/// The latest values, in the timestamped layout (`timestamp (8) value`): a put writes a version
/// at the timestamp it carries, a delete a tombstone at the current record's timestamp.
impl KeyValueStore for VersionedKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_latest(key)?
            .map(|r| ValueAndTimestamp::encode(&r.value, r.timestamp)))
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let v = ValueAndTimestamp::decode(self.inner.name(), value)?;
        VersionedKeyValueStore::put(self, key, Some(&v.value), v.timestamp).map(|_| ())
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = KeyValueStore::get(self, key)?;
        let ts = self.record_timestamp.get();
        VersionedKeyValueStore::put(self, key, None, ts)?;
        Ok(old)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.latest_range(from, to, false)
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.latest_range(from, to, true)
    }
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        let upper = prefix_upper_bound(prefix);
        let it = self.latest_range(Some(prefix), upper.as_deref(), false)?;
        let prefix = prefix.to_vec();
        Ok(Box::new(it.filter(move |e| {
            e.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))
        })))
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.latest_range(None, None, false)?.count() as u64)
    }
    fn as_versioned(&self) -> Option<&VersionedKeyValueStore> {
        Some(self)
    }
    fn as_versioned_mut(&mut self) -> Option<&mut VersionedKeyValueStore> {
        Some(self)
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (k, v) in entries {
            match v {
                Some(v) => KeyValueStore::put(self, k, v)?,
                None => {
                    KeyValueStore::delete(self, k)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::InMemoryKeyValueStore;

    fn store(history: i64) -> VersionedKeyValueStore {
        VersionedKeyValueStore::new(
            Box::new(InMemoryKeyValueStore::new("v")),
            history,
            None,
            RecordTimestamp::default(),
        )
        .unwrap()
    }

    fn as_of(s: &VersionedKeyValueStore, k: &[u8], t: i64) -> Option<(Vec<u8>, i64, Option<i64>)> {
        s.get_as_of(k, t)
            .unwrap()
            .map(|r| (r.value, r.timestamp, r.valid_to))
    }

    #[test]
    fn lookups_answer_with_the_version_valid_at_the_time() {
        let mut s = store(100);
        assert_eq!(s.put(b"k", Some(b"a"), 10).unwrap(), PUT_IS_LATEST);
        assert_eq!(s.put(b"k", Some(b"b"), 20).unwrap(), PUT_IS_LATEST);
        assert_eq!(s.put(b"k", None, 30).unwrap(), PUT_IS_LATEST);
        assert_eq!(as_of(&s, b"k", 5), None);
        assert_eq!(as_of(&s, b"k", 10), Some((b"a".to_vec(), 10, Some(20))));
        assert_eq!(as_of(&s, b"k", 25), Some((b"b".to_vec(), 20, Some(30))));
        assert_eq!(as_of(&s, b"k", 30), None, "deleted at 30");
        assert_eq!(s.get_latest(b"k").unwrap(), None);
        // Out of order: valid until the next version; the version it lands in ends at it.
        assert_eq!(s.put(b"k", Some(b"x"), 15).unwrap(), 20);
        assert_eq!(as_of(&s, b"k", 12), Some((b"a".to_vec(), 10, Some(15))));
        assert_eq!(as_of(&s, b"k", 17), Some((b"x".to_vec(), 15, Some(20))));
        // Before everything, and after the delete (valid until the next put).
        assert_eq!(s.put(b"k", Some(b"y"), 35).unwrap(), PUT_IS_LATEST);
        assert_eq!(s.put(b"k", Some(b"z"), 32).unwrap(), 35);
        assert_eq!(as_of(&s, b"k", 31), None);
        assert_eq!(as_of(&s, b"k", 33), Some((b"z".to_vec(), 32, Some(35))));
        assert_eq!(s.put(b"k", Some(b"w"), 1).unwrap(), 10);
        assert_eq!(as_of(&s, b"k", 3), Some((b"w".to_vec(), 1, Some(10))));
    }

    #[test]
    fn a_delete_leaves_no_trace_where_nothing_older_records_its_time() {
        // As Kafka Streams: replacing the latest value by a delete at the same time keeps no
        // tombstone, so a later write out of order becomes the latest value.
        let mut s = store(100);
        s.put(b"c", Some(b"a"), 21).unwrap();
        s.put(b"c", None, 21).unwrap();
        assert_eq!(s.put(b"c", Some(b"x"), 18).unwrap(), PUT_IS_LATEST);
        assert_eq!(as_of(&s, b"c", 25), Some((b"x".to_vec(), 18, None)));
        // A delete of a key that has no value is kept: a write before it stops there.
        s.put(b"e", None, 8).unwrap();
        assert_eq!(s.put(b"e", Some(b"z"), 7).unwrap(), 8);
        assert_eq!(as_of(&s, b"e", 9), None);
        assert_eq!(s.put(b"e", Some(b"w"), 9).unwrap(), PUT_IS_LATEST);
        // A delete in the history is kept: a write before it stops there.
        s.put(b"d", Some(b"a"), 30).unwrap();
        assert_eq!(s.put(b"d", None, 20).unwrap(), 30);
        assert_eq!(s.put(b"d", Some(b"y"), 10).unwrap(), 20);
        assert_eq!(as_of(&s, b"d", 25), None);
    }

    #[test]
    fn history_is_kept_for_the_retention_behind_stream_time() {
        let mut s = store(10);
        s.put(b"k", Some(b"a"), 0).unwrap();
        s.put(b"k", Some(b"b"), 5).unwrap();
        s.put(b"k", Some(b"c"), 30).unwrap();
        // Stream time 30, retention 10: nothing before 20 is answered from the history or
        // written; the latest value still answers for any time after its own.
        assert_eq!(as_of(&s, b"k", 19), None);
        assert_eq!(as_of(&s, b"k", 20), Some((b"b".to_vec(), 5, Some(30))));
        assert_eq!(s.put(b"k", Some(b"late"), 19).unwrap(), PUT_NOT_PUT);
        s.put(b"k", Some(b"d"), 45).unwrap();
        // b ended at 30 <= 35: gone from the store, not just hidden.
        assert!(s.history_back(b"k", i64::MIN, i64::MAX).unwrap().len() == 1);
    }

    #[test]
    fn the_key_value_view_shows_latest_values_in_key_order() {
        let mut s = store(100);
        KeyValueStore::put(&mut s, b"b", &ValueAndTimestamp::encode(b"2", 7)).unwrap();
        KeyValueStore::put(&mut s, b"a", &ValueAndTimestamp::encode(b"1", 5)).unwrap();
        KeyValueStore::put(&mut s, b"c", &ValueAndTimestamp::encode(b"3", 9)).unwrap();
        s.record_timestamp.set(12);
        KeyValueStore::delete(&mut s, b"c").unwrap();
        let all: Vec<_> = s.all().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(
            all,
            vec![
                (b"a".to_vec(), ValueAndTimestamp::encode(b"1", 5)),
                (b"b".to_vec(), ValueAndTimestamp::encode(b"2", 7)),
            ]
        );
        assert_eq!(as_of(&s, b"c", 10), Some((b"3".to_vec(), 9, Some(12))));
        assert_eq!(s.approximate_num_entries().unwrap(), 2);
    }

    #[test]
    fn restoring_replays_the_logged_writes() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<ChangelogRecord>>>);
        impl ChangelogSink for Sink {
            fn log(&mut self, r: ChangelogRecord) {
                self.0.lock().unwrap().push(r);
            }
        }
        let sink = Sink::default();
        let mut s = VersionedKeyValueStore::new(
            Box::new(InMemoryKeyValueStore::new("v")),
            100,
            Some(Box::new(sink.clone())),
            RecordTimestamp::default(),
        )
        .unwrap();
        s.put(b"k", Some(b"a"), 10).unwrap();
        s.put(b"k", Some(b"b"), 20).unwrap();
        s.put(b"k", Some(b"x"), 15).unwrap();
        s.put(b"j", None, 3).unwrap();
        let logged = sink.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 4);
        assert_eq!(
            (logged[2].timestamp, logged[2].value.as_deref()),
            (15, Some(&b"x"[..]))
        );
        let mut r = store(100);
        r.restore(logged).unwrap();
        for t in [10, 15, 20] {
            assert_eq!(as_of(&r, b"k", t), as_of(&s, b"k", t));
        }
    }
}
