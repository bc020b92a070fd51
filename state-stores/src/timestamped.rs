use crate::{KeyValueStore, Result, StoreError};

/// A value and the timestamp of the record that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp {
    /// The value bytes.
    pub value: Vec<u8>,
    /// Timestamp in ms.
    pub timestamp: i64,
}

impl ValueAndTimestamp {
    /// The stored form: 8 bytes big-endian timestamp, then the value (Kafka Streams' layout).
    pub fn encode(value: &[u8], timestamp: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + value.len());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    /// Parses the stored form; `store` names the store in the error.
    pub fn decode(store: &str, raw: &[u8]) -> Result<Self> {
        if raw.len() < 8 {
            return Err(StoreError::CorruptEntry {
                store: store.to_string(),
                reason: format!(
                    "timestamped value of {} bytes is shorter than its 8-byte timestamp",
                    raw.len()
                ),
            });
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        Ok(ValueAndTimestamp {
            value: raw[8..].to_vec(),
            timestamp: i64::from_be_bytes(ts),
        })
    }
}

/// A key-value store whose values carry a timestamp, over any [`KeyValueStore`].
pub struct TimestampedKeyValueStore<S: KeyValueStore + ?Sized> {
    inner: Box<S>,
}

impl<S: KeyValueStore + ?Sized> TimestampedKeyValueStore<S> {
    /// Wraps `inner`, which must only ever hold timestamped values.
    pub fn new(inner: Box<S>) -> Self {
        TimestampedKeyValueStore { inner }
    }
    /// The value and timestamp for `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<ValueAndTimestamp>> {
        self.inner
            .get(key)?
            .map(|raw| ValueAndTimestamp::decode(self.inner.name(), &raw))
            .transpose()
    }
    /// Writes `value` with `timestamp`.
    pub fn put(&mut self, key: &[u8], value: &[u8], timestamp: i64) -> Result<()> {
        self.inner
            .put(key, &ValueAndTimestamp::encode(value, timestamp))
    }
    /// Removes `key`, returning what it held.
    pub fn delete(&mut self, key: &[u8]) -> Result<Option<ValueAndTimestamp>> {
        self.inner
            .delete(key)?
            .map(|raw| ValueAndTimestamp::decode(self.inner.name(), &raw))
            .transpose()
    }
    /// All entries in key order.
    pub fn all(&self) -> Result<Vec<(Vec<u8>, ValueAndTimestamp)>> {
        self.inner
            .all()?
            .map(|e| {
                e.and_then(|(k, raw)| Ok((k, ValueAndTimestamp::decode(self.inner.name(), &raw)?)))
            })
            .collect()
    }
    /// The underlying byte store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
    /// The underlying byte store, mutably (restore path, flush, close).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}
