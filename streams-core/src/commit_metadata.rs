//! The metadata committed with each input offset, in Kafka Streams' format: the partition's time
//! and the task's processor metadata (e.g. when a windowed aggregation last emitted final
//! results). It commits atomically with the offsets (inside the transaction under
//! exactly-once), so a task resumes with both after a restart or a migration, and a task taken
//! over from a Java application reads Java's.
//!
//! Layout (Kafka's `TopicPartitionMetadata`, base64 text): magic byte 2, the partition time as a
//! big-endian i64, then the processor metadata: an i32 entry count, and per entry an i32 key
//! length, the UTF-8 key and an i64 value (nothing at all when there are no entries). Magic 1
//! carries only the partition time.

use std::collections::BTreeMap;

use base64::Engine;

const MAGIC: u8 = 2;
const MAGIC_PARTITION_TIME_ONLY: u8 = 1;

/// Per-task values processors keep across restarts, committed with the input offsets (Kafka
/// Streams' `ProcessorMetadata`): only `i64`s, keyed by a name the processor chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessorMetadata {
    entries: BTreeMap<String, i64>,
}

impl ProcessorMetadata {
    pub fn get(&self, key: &str) -> Option<i64> {
        self.entries.get(key).copied()
    }

    pub fn put(&mut self, key: &str, value: i64) {
        self.entries.insert(key.to_string(), value);
    }

    /// Takes in what another input partition committed: a key missing here is added, a key
    /// present keeps the larger value (as Kafka Streams merges the metadata of a task's inputs).
    pub fn merge_max(&mut self, other: ProcessorMetadata) {
        for (k, v) in other.entries {
            let e = self.entries.entry(k).or_insert(v);
            *e = (*e).max(v);
        }
    }

    fn serialize(&self, out: &mut Vec<u8>) {
        if self.entries.is_empty() {
            return;
        }
        out.extend_from_slice(&(self.entries.len() as i32).to_be_bytes());
        for (k, v) in &self.entries {
            out.extend_from_slice(&(k.len() as i32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn deserialize(mut b: &[u8]) -> Option<Self> {
        let mut m = ProcessorMetadata::default();
        if b.is_empty() {
            return Some(m);
        }
        let count = i32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
        for _ in 0..count {
            let len = i32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
            let key = std::str::from_utf8(take(&mut b, usize::try_from(len).ok()?)?).ok()?;
            let value = i64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
            m.entries.insert(key.to_string(), value);
        }
        Some(m)
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Some(head)
}

/// Encodes one input partition's commit metadata.
pub(crate) fn encode(partition_time: i64, processor: &ProcessorMetadata) -> String {
    let mut b = Vec::with_capacity(9);
    b.push(MAGIC);
    b.extend_from_slice(&partition_time.to_be_bytes());
    processor.serialize(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Decodes what [`encode`] (or Kafka Streams) committed: `None` for an empty string (a group
/// that committed without metadata) or one this project cannot read, which is logged and
/// treated as absent, as Kafka Streams does.
pub(crate) fn decode(text: &str) -> Option<(i64, ProcessorMetadata)> {
    if text.is_empty() {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|b| {
            let (&magic, mut rest) = b.split_first()?;
            let time = i64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?);
            match magic {
                MAGIC_PARTITION_TIME_ONLY => Some((time, ProcessorMetadata::default())),
                MAGIC => Some((time, ProcessorMetadata::deserialize(rest)?)),
                _ => None,
            }
        });
    if decoded.is_none() {
        tracing::warn!(
            metadata = text,
            "unreadable offset commit metadata; starting without partition time and processor metadata"
        );
    }
    decoded
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_kafka_streams_bytes() {
        let mut m = ProcessorMetadata::default();
        assert_eq!(encode(5, &m), "AgAAAAAAAAAF");
        m.put("store", 7);
        let text = encode(5, &m);
        // 02 | time 5 | count 1 | len 5 | "store" | 7
        let expected: Vec<u8> = [2u8]
            .into_iter()
            .chain(5i64.to_be_bytes())
            .chain(1i32.to_be_bytes())
            .chain(5i32.to_be_bytes())
            .chain(*b"store")
            .chain(7i64.to_be_bytes())
            .collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap(),
            expected
        );
        assert_eq!(decode(&text), Some((5, m)));
        // Version 1 carried only the partition time.
        let v1 = base64::engine::general_purpose::STANDARD.encode([1, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(decode(&v1), Some((9, ProcessorMetadata::default())));
        assert_eq!(decode(""), None);
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode("AgAA"), None, "truncated");
    }

    #[test]
    fn merging_keeps_the_larger_value_per_key() {
        let mut a = ProcessorMetadata::default();
        a.put("x", 3);
        a.put("y", 10);
        let mut b = ProcessorMetadata::default();
        b.put("x", 8);
        b.put("z", 1);
        a.merge_max(b);
        assert_eq!(
            (a.get("x"), a.get("y"), a.get("z")),
            (Some(8), Some(10), Some(1))
        );
    }
}
