//! Window definitions and windowed keys: tumbling and hopping [`TimeWindows`], [`SlidingWindows`],
//! [`SessionWindows`] and the [`JoinWindows`] of stream-stream joins, each with a grace period.

use std::sync::Arc;

use streams_core::serdes::{Serde, SerdeError, SerdeRef};
use streams_core::Headers;

/// A time span `[start, end)` for time and sliding windows (sliding windows include `end`), or
/// `[start, end]` for sessions, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start, in ms.
    pub start: i64,
    /// End, in ms.
    pub end: i64,
}

/// A key with the window its aggregate belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `[start, end)`.
    pub fn new(key: K, start: i64, end: i64) -> Self {
        Windowed {
            key,
            window: Window { start, end },
        }
    }
}

fn bad(message: String) -> SerdeError {
    SerdeError::Invalid {
        format: "windowed key",
        message,
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Kafka Streams' `TimeWindowedSerde`: the inner key bytes, then the window start (8 bytes,
/// big-endian). The end is not written: the deserializer adds the window size to the start.
pub struct TimeWindowedSerde<K> {
    inner: SerdeRef<K>,
    window_size_ms: i64,
}

impl<K> TimeWindowedSerde<K> {
    /// A serde for windows of `window_size_ms`.
    pub fn new(inner: SerdeRef<K>, window_size_ms: i64) -> Self {
        TimeWindowedSerde {
            inner,
            window_size_ms,
        }
    }
}

impl<K: 'static> TimeWindowedSerde<K> {
    fn encode(
        w: &Windowed<K>,
        inner: impl FnOnce(&K) -> Result<Option<Vec<u8>>, SerdeError>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = inner(&w.key)?.ok_or_else(|| bad("the key serialized to null".into()))?;
        out.extend_from_slice(&w.window.start.to_be_bytes());
        Ok(Some(out))
    }

    fn decode(
        &self,
        data: Option<&[u8]>,
        inner: impl FnOnce(&[u8]) -> Result<K, SerdeError>,
    ) -> Result<Windowed<K>, SerdeError> {
        let b = data.ok_or(SerdeError::Null {
            type_name: "Windowed",
        })?;
        if b.len() < 8 {
            return Err(bad(format!("{} bytes, need at least 8", b.len())));
        }
        let (k, ts) = b.split_at(b.len() - 8);
        let start = be_i64(ts);
        Ok(Windowed::new(
            inner(k)?,
            start,
            start.saturating_add(self.window_size_ms),
        ))
    }
}

impl<K: 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, w: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(w, |k| self.inner.serialize(k))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        self.decode(data, |k| self.inner.deserialize(Some(k)))
    }
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        w: &Windowed<K>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(w, |k| self.inner.serialize_for(topic, headers, k))
    }
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Windowed<K>, SerdeError> {
        self.decode(data, |k| {
            self.inner.deserialize_from(topic, headers, Some(k))
        })
    }
}

/// Kafka Streams' `SessionWindowedSerde`: the inner key bytes, then the session end and start
/// (8 bytes each, big-endian).
pub struct SessionWindowedSerde<K>(pub SerdeRef<K>);

impl<K: 'static> SessionWindowedSerde<K> {
    fn encode(
        w: &Windowed<K>,
        inner: impl FnOnce(&K) -> Result<Option<Vec<u8>>, SerdeError>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = inner(&w.key)?.ok_or_else(|| bad("the key serialized to null".into()))?;
        out.extend_from_slice(&w.window.end.to_be_bytes());
        out.extend_from_slice(&w.window.start.to_be_bytes());
        Ok(Some(out))
    }

    fn decode(
        data: Option<&[u8]>,
        inner: impl FnOnce(&[u8]) -> Result<K, SerdeError>,
    ) -> Result<Windowed<K>, SerdeError> {
        let b = data.ok_or(SerdeError::Null {
            type_name: "Windowed",
        })?;
        if b.len() < 16 {
            return Err(bad(format!("{} bytes, need at least 16", b.len())));
        }
        let (k, ts) = b.split_at(b.len() - 16);
        Ok(Windowed::new(inner(k)?, be_i64(&ts[8..]), be_i64(ts)))
    }
}

impl<K: 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, w: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(w, |k| self.0.serialize(k))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        Self::decode(data, |k| self.0.deserialize(Some(k)))
    }
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        w: &Windowed<K>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(w, |k| self.0.serialize_for(topic, headers, k))
    }
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Windowed<K>, SerdeError> {
        Self::decode(data, |k| self.0.deserialize_from(topic, headers, Some(k)))
    }
}

pub(crate) fn time_windowed_serde<K: 'static>(
    inner: SerdeRef<K>,
    size: i64,
) -> SerdeRef<Windowed<K>> {
    Arc::new(TimeWindowedSerde::new(inner, size))
}

pub(crate) fn session_windowed_serde<K: 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
    Arc::new(SessionWindowedSerde(inner))
}

/// When a windowed aggregation emits (Kafka Streams' `EmitStrategy`, KIP-825).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update of a window's aggregate is forwarded (through the record cache, when on).
    #[default]
    OnWindowUpdate,
    /// Only a window's final aggregate, once, after the window closed (its end plus grace passed
    /// by stream time): `suppress(untilWindowCloses)` without a suppression buffer, read from
    /// the aggregation's own store. Time and sliding windows.
    OnWindowClose,
}

impl EmitStrategy {
    /// [`EmitStrategy::OnWindowUpdate`], the default.
    pub fn on_window_update() -> Self {
        EmitStrategy::OnWindowUpdate
    }

    /// [`EmitStrategy::OnWindowClose`].
    pub fn on_window_close() -> Self {
        EmitStrategy::OnWindowClose
    }
}

/// Fixed-size windows: tumbling (advance = size) or hopping (advance < size), aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window size in ms.
    pub size_ms: i64,
    /// Distance between window starts in ms.
    pub advance_ms: i64,
    /// How long after a window ends records are still accepted into it.
    pub grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size_ms` that accept records up to `grace_ms` after they end.
    pub fn of_size_and_grace(size_ms: i64, grace_ms: i64) -> Self {
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms,
        }
    }
    /// Tumbling windows that close as soon as stream time passes their end.
    pub fn of_size_with_no_grace(size_ms: i64) -> Self {
        Self::of_size_and_grace(size_ms, 0)
    }
    /// Hopping windows: a new window every `advance_ms`.
    pub fn advance_by(mut self, advance_ms: i64) -> Self {
        self.advance_ms = advance_ms;
        self
    }
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size_ms <= 0 {
            return Err(format!(
                "window size must be positive, got {}",
                self.size_ms
            ));
        }
        if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            return Err(format!(
                "window advance must be in (0, size = {}], got {}",
                self.size_ms, self.advance_ms
            ));
        }
        if self.grace_ms < 0 {
            return Err(format!("grace must not be negative, got {}", self.grace_ms));
        }
        Ok(())
    }
    /// Start times of the windows containing `ts`, ascending (Kafka's `windowsFor`).
    pub fn window_starts(&self, ts: i64) -> Vec<i64> {
        let mut start =
            ((ts - self.size_ms + self.advance_ms).max(0) / self.advance_ms) * self.advance_ms;
        let mut out = Vec::new();
        while start <= ts {
            out.push(start);
            start += self.advance_ms;
        }
        out
    }
}

/// Windows of a fixed time difference that slide with the records: every distinct set of records
/// within `time_difference_ms` of each other is one window, `[start, start + difference]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Largest time difference between two records of one window, in ms.
    pub time_difference_ms: i64,
    /// How long after a window ends records are still accepted.
    pub grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference_ms` with grace.
    pub fn of_time_difference_and_grace(time_difference_ms: i64, grace_ms: i64) -> Self {
        SlidingWindows {
            time_difference_ms,
            grace_ms,
        }
    }
    /// Sliding windows without grace.
    pub fn of_time_difference_with_no_grace(time_difference_ms: i64) -> Self {
        Self::of_time_difference_and_grace(time_difference_ms, 0)
    }
}

/// Sessions: records of a key closer than the inactivity gap belong to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Inactivity gap in ms.
    pub gap_ms: i64,
    /// How long after a session ends records are still accepted.
    pub grace_ms: i64,
}

impl SessionWindows {
    /// Sessions with inactivity gap `gap_ms` and grace.
    pub fn of_inactivity_gap_and_grace(gap_ms: i64, grace_ms: i64) -> Self {
        SessionWindows { gap_ms, grace_ms }
    }
    /// Sessions without grace.
    pub fn of_inactivity_gap_with_no_grace(gap_ms: i64) -> Self {
        Self::of_inactivity_gap_and_grace(gap_ms, 0)
    }
}

/// The window of a stream-stream join: records join when their timestamps differ by at most
/// `before_ms` (the other record is earlier) or `after_ms` (it is later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// How much earlier the other side's record may be.
    pub before_ms: i64,
    /// How much later the other side's record may be.
    pub after_ms: i64,
    /// How long out-of-order records are still joined, and left/outer results wait.
    pub grace_ms: i64,
}

impl JoinWindows {
    /// Records within `time_difference_ms` of each other join; late ones are accepted for `grace_ms`.
    pub fn of_time_difference_and_grace(time_difference_ms: i64, grace_ms: i64) -> Self {
        JoinWindows {
            before_ms: time_difference_ms,
            after_ms: time_difference_ms,
            grace_ms,
        }
    }
    /// Without grace.
    pub fn of_time_difference_with_no_grace(time_difference_ms: i64) -> Self {
        Self::of_time_difference_and_grace(time_difference_ms, 0)
    }
    /// Changes how much earlier the other record may be.
    pub fn before(mut self, ms: i64) -> Self {
        self.before_ms = ms;
        self
    }
    /// Changes how much later the other record may be.
    pub fn after(mut self, ms: i64) -> Self {
        self.after_ms = ms;
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use streams_core::serdes::StringSerde;

    #[test]
    fn windows_for_a_timestamp() {
        let tumbling = TimeWindows::of_size_with_no_grace(10);
        assert_eq!(tumbling.window_starts(0), vec![0]);
        assert_eq!(tumbling.window_starts(19), vec![10]);
        let hopping = TimeWindows::of_size_with_no_grace(10).advance_by(5);
        assert_eq!(hopping.window_starts(12), vec![5, 10]);
        assert_eq!(hopping.window_starts(3), vec![0]);
        assert!(TimeWindows::of_size_with_no_grace(10)
            .advance_by(11)
            .validate()
            .is_err());
    }

    #[test]
    fn windowed_serdes_match_kafka_layout() {
        let s = TimeWindowedSerde::new(Arc::new(StringSerde) as SerdeRef<String>, 100);
        let w = Windowed::new("k".to_string(), 200, 300);
        let b = s.serialize(&w).unwrap().unwrap();
        assert_eq!(b, [b"k".as_slice(), &200i64.to_be_bytes()].concat());
        assert_eq!(s.deserialize(Some(&b)).unwrap(), w);
        let ss = SessionWindowedSerde(Arc::new(StringSerde) as SerdeRef<String>);
        let w = Windowed::new("k".to_string(), 5, 9);
        let b = ss.serialize(&w).unwrap().unwrap();
        assert_eq!(
            b,
            [b"k".as_slice(), &9i64.to_be_bytes(), &5i64.to_be_bytes()].concat()
        );
        assert_eq!(ss.deserialize(Some(&b)).unwrap(), w);
        assert!(ss.deserialize(Some(b"short")).is_err());
    }
}
