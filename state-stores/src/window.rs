use crate::changelog_layout::{split_window_changelog_key, window_changelog_key};
use crate::{Result, SegmentStorage, StateStore, StoreError};

/// Retention and layout of a window store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStoreConfig {
    /// How long a window is kept after its start, relative to the newest window start seen.
    pub retention_ms: i64,
    /// Time covered by one segment; expired data is dropped a segment at a time.
    pub segment_interval_ms: i64,
    /// The size of the windows stored (for callers that need window ends).
    pub window_size_ms: i64,
    /// Keep every put of the same key and window (stream-stream joins) instead of overwriting.
    pub retain_duplicates: bool,
}

impl WindowStoreConfig {
    /// Kafka Streams' default layout: segment interval = max(retention / 2, 60 s).
    pub fn new(retention_ms: i64, window_size_ms: i64, retain_duplicates: bool) -> Self {
        WindowStoreConfig {
            retention_ms,
            segment_interval_ms: (retention_ms / 2).max(60_000),
            window_size_ms,
            retain_duplicates,
        }
    }
}

/// One entry of a window store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowedEntry {
    /// The record key.
    pub key: Vec<u8>,
    /// Start of the window, in ms.
    pub window_start: i64,
    /// The stored value.
    pub value: Vec<u8>,
}

/// A store of values per (key, window start), with retention.
pub trait WindowStore: StateStore {
    /// Writes (`Some`) or deletes (`None`) the value of `key` in the window starting at `window_start`.
    /// Returns the changelog key of the entry written (Kafka Streams' layout, see
    /// [`window_changelog_key`](crate::window_changelog_key)), or `None` when the window is already
    /// past retention and the write was dropped.
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<Option<Vec<u8>>>;
    /// The value of `key` in the window starting at `window_start` (the latest one if duplicates are kept).
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>>;
    /// Values of `key` in windows starting within `[time_from, time_to]`, by window start ascending.
    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>>;
    /// Like [`WindowStore::fetch_range`], descending.
    fn backward_fetch_range(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut v = self.fetch_range(key, time_from, time_to)?;
        v.reverse();
        Ok(v)
    }
    /// Entries of every key in windows starting within `[time_from, time_to]`.
    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<WindowedEntry>>;
    /// Every live entry.
    fn all(&self) -> Result<Vec<WindowedEntry>> {
        self.fetch_all(i64::MIN, i64::MAX)
    }
    /// Applies changelog records (changelog key as `put` returns it, value or tombstone) without
    /// logging them.
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()>;
    /// The configuration the store was opened with.
    fn config(&self) -> WindowStoreConfig;
}

/// Big-endian bytes of `ts` with the sign bit flipped, so byte order equals numeric order.
pub(crate) fn encode_ts(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn decode_ts(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

/// `[u32 key length][key]`: a length prefix keeps every key's entries contiguous whatever its bytes.
pub(crate) fn encode_key_prefix(key: &[u8], extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + extra);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits `[len][key][rest]`, checking that `rest` has `rest_len` bytes.
pub(crate) fn split_key<'a>(
    store: &str,
    raw: &'a [u8],
    rest_len: usize,
) -> Result<(Vec<u8>, &'a [u8])> {
    let bad = || StoreError::CorruptEntry {
        store: store.to_string(),
        reason: format!("bad segmented key of {} bytes", raw.len()),
    };
    if raw.len() < 4 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    if raw.len() != 4 + len + rest_len {
        return Err(bad());
    }
    Ok((raw[4..4 + len].to_vec(), &raw[4 + len..]))
}

fn window_key(key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut k = encode_key_prefix(key, 12);
    k.extend_from_slice(&encode_ts(start));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A window store over any [`SegmentStorage`], so the in-memory and RocksDB variants share all logic.
pub struct SegmentedWindowStore<S: SegmentStorage> {
    name: String,
    storage: S,
    config: WindowStoreConfig,
    observed_stream_time: i64,
    seq: u32,
}

impl<S: SegmentStorage> SegmentedWindowStore<S> {
    /// Wraps `storage`; recovers the newest window start from existing segments.
    pub fn new(name: impl Into<String>, storage: S, config: WindowStoreConfig) -> Result<Self> {
        let name = name.into();
        let mut observed = i64::MIN;
        // The newest segment with data: a rolled-back transaction can leave an empty one.
        for id in storage.segment_ids().iter().rev() {
            if let Some(seg) = storage.segment(*id) {
                for entry in seg.all()? {
                    let (k, _) = entry?;
                    let (_, rest) = split_key(&name, &k, 12)?;
                    observed = observed.max(decode_ts(rest));
                }
            }
            if observed != i64::MIN {
                break;
            }
        }
        Ok(SegmentedWindowStore {
            name,
            storage,
            config,
            observed_stream_time: observed,
            seq: 0,
        })
    }

    fn segment_id(&self, ts: i64) -> i64 {
        ts.div_euclid(self.config.segment_interval_ms)
    }

    fn min_live_time(&self) -> i64 {
        if self.observed_stream_time == i64::MIN {
            i64::MIN
        } else {
            self.observed_stream_time
                .saturating_sub(self.config.retention_ms)
                .saturating_add(1)
        }
    }

    fn drop_expired(&mut self) -> Result<()> {
        let min_live = self.min_live_time();
        if min_live == i64::MIN {
            return Ok(());
        }
        let min_segment = self.segment_id(min_live);
        for id in self.storage.segment_ids() {
            if id < min_segment {
                self.storage.drop_segment(id)?;
            }
        }
        Ok(())
    }

    fn write_raw(&mut self, store_key: &[u8], value: Option<&[u8]>, start: i64) -> Result<bool> {
        self.observed_stream_time = self.observed_stream_time.max(start);
        self.drop_expired()?;
        if start < self.min_live_time() {
            return Ok(false);
        }
        let seg = self.storage.segment_mut(self.segment_id(start))?;
        match value {
            Some(v) => seg.put(store_key, v)?,
            None => {
                seg.delete(store_key)?;
            }
        }
        Ok(true)
    }

    fn scan_key(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let from = from.max(self.min_live_time());
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let (lo, hi) = (window_key(key, from, 0), window_key(key, to, u32::MAX));
        for id in self.storage.segment_ids() {
            if id < self.segment_id(from) || id > self.segment_id(to) {
                continue;
            }
            if let Some(seg) = self.storage.segment(id) {
                for entry in seg.range(Some(&lo), Some(&hi))? {
                    let (k, v) = entry?;
                    let (_, rest) = split_key(&self.name, &k, 12)?;
                    out.push((decode_ts(rest), v));
                }
            }
        }
        Ok(out)
    }
}

impl<S: SegmentStorage> StateStore for SegmentedWindowStore<S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> Result<()> {
        self.storage.flush()
    }
    fn close(&mut self) -> Result<()> {
        self.storage.close()
    }
    fn persistent(&self) -> bool {
        self.storage.persistent()
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        self.storage.commit(changelog_offset)
    }
    fn committed_offset(&self) -> Result<Option<i64>> {
        self.storage.committed_offset()
    }
    fn uncommitted_bytes(&self) -> usize {
        self.storage.uncommitted_bytes()
    }
}

impl<S: SegmentStorage> WindowStore for SegmentedWindowStore<S> {
    fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window_start: i64,
    ) -> Result<Option<Vec<u8>>> {
        let seq = if self.config.retain_duplicates {
            if value.is_none() {
                // Deleting one of several duplicates is not expressible; Kafka ignores it too.
                return Ok(None);
            }
            self.seq = self.seq.wrapping_add(1);
            self.seq
        } else {
            0
        };
        let store_key = window_key(key, window_start, seq);
        Ok(self
            .write_raw(&store_key, value, window_start)?
            .then(|| window_changelog_key(key, window_start, seq)))
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .scan_key(key, window_start, window_start)?
            .pop()
            .map(|(_, v)| v))
    }

    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        self.scan_key(key, time_from, time_to)
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<WindowedEntry>> {
        let from = time_from.max(self.min_live_time());
        let mut out = Vec::new();
        for id in self.storage.segment_ids() {
            if from > time_to || id < self.segment_id(from) || id > self.segment_id(time_to) {
                continue;
            }
            if let Some(seg) = self.storage.segment(id) {
                for entry in seg.all()? {
                    let (k, value) = entry?;
                    let (key, rest) = split_key(&self.name, &k, 12)?;
                    let window_start = decode_ts(rest);
                    if window_start >= from && window_start <= time_to {
                        out.push(WindowedEntry {
                            key,
                            window_start,
                            value,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| (a.window_start, &a.key).cmp(&(b.window_start, &b.key)));
        Ok(out)
    }

    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (changelog_key, value) in records {
            let (key, start, seq) = split_window_changelog_key(&self.name, changelog_key)?;
            self.seq = self.seq.max(seq);
            self.write_raw(&window_key(key, start, seq), value.as_deref(), start)?;
        }
        Ok(())
    }

    fn config(&self) -> WindowStoreConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_bytes() {
        let ts = [i64::MIN, -5, -1, 0, 1, 1000, i64::MAX];
        for w in ts.windows(2) {
            assert!(encode_ts(w[0]) < encode_ts(w[1]));
            assert_eq!(decode_ts(&encode_ts(w[0])), w[0]);
        }
    }
}
