//! Event time: the timestamp a consumed record is processed with (Kafka Streams'
//! `TimestampExtractor`).
//!
//! Every record's timestamp comes from an extractor: the one its source was given
//! (`Topology::add_source_with_timestamp_extractor`, `Consumed::with_timestamp_extractor` in the
//! DSL), else `default.timestamp.extractor`. It orders a task's inputs, drives stream time (windows,
//! grace, suppression, joins) and stamps what the record produces. A negative timestamp drops the
//! record, counted as dropped, as in Kafka Streams.

use std::sync::Arc;

use crate::record::{Data, Headers};
use crate::serdes::SerdeRef;
use crate::{Result, StreamsError};

/// A record as consumed, before deserialization.
#[derive(Debug, Clone, Copy)]
pub struct ConsumedRecord<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// The timestamp the record carries (create or log-append time); -1 when it has none.
    pub timestamp: i64,
    /// Headers.
    pub headers: &'a Headers,
}

/// Chooses a record's event time.
pub trait TimestampExtractor: Send + Sync {
    /// The timestamp to process `record` with. `partition_time` is the largest timestamp extracted
    /// from its partition so far (-1 before the first). A negative result drops the record; an
    /// error stops the stream thread (Kafka Streams' `FailOnInvalidTimestamp`).
    fn extract(&self, record: &ConsumedRecord<'_>, partition_time: i64) -> Result<i64>;
}

fn invalid(record: &ConsumedRecord<'_>, what: &str) -> StreamsError {
    StreamsError::InvalidTimestamp {
        topic: record.topic.to_string(),
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        reason: what.to_string(),
    }
}

/// The record's own timestamp; a negative one is an error (Kafka Streams' default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOnInvalidTimestamp;

impl TimestampExtractor for FailOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_>, _partition_time: i64) -> Result<i64> {
        if record.timestamp < 0 {
            return Err(invalid(
                record,
                "set `default.timestamp.extractor` to LogAndSkipOnInvalidTimestamp or \
                 UsePartitionTimeOnInvalidTimestamp to go on, or give the source an extractor",
            ));
        }
        Ok(record.timestamp)
    }
}

/// The record's own timestamp; a record with a negative one is logged and dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndSkipOnInvalidTimestamp;

impl TimestampExtractor for LogAndSkipOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_>, _partition_time: i64) -> Result<i64> {
        if record.timestamp < 0 {
            tracing::warn!(
                topic = record.topic,
                partition = record.partition,
                offset = record.offset,
                timestamp = record.timestamp,
                "dropping a record with an invalid (negative) timestamp"
            );
        }
        Ok(record.timestamp)
    }
}

/// The record's own timestamp; a negative one is replaced by the partition time (an error before
/// the partition has one).
#[derive(Debug, Clone, Copy, Default)]
pub struct UsePartitionTimeOnInvalidTimestamp;

impl TimestampExtractor for UsePartitionTimeOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_>, partition_time: i64) -> Result<i64> {
        match (record.timestamp, partition_time) {
            (ts, _) if ts >= 0 => Ok(ts),
            (_, pt) if pt >= 0 => Ok(pt),
            _ => Err(invalid(
                record,
                "the partition has no time yet to use instead; use LogAndSkipOnInvalidTimestamp \
                 to drop such records",
            )),
        }
    }
}

/// Processing time: the wall clock when the record is consumed.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallclockTimestampExtractor;

impl TimestampExtractor for WallclockTimestampExtractor {
    fn extract(&self, _record: &ConsumedRecord<'_>, _partition_time: i64) -> Result<i64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }
}

/// The built-in extractor named `name`: its Kafka Streams class name (with or without the
/// `org.apache.kafka.streams.processor.` package) or its snake-case form.
pub fn timestamp_extractor_by_name(name: &str) -> Option<Arc<dyn TimestampExtractor>> {
    let short = name
        .trim()
        .strip_prefix("org.apache.kafka.streams.processor.")
        .unwrap_or(name.trim());
    Some(match short {
        "FailOnInvalidTimestamp" | "fail_on_invalid_timestamp" => Arc::new(FailOnInvalidTimestamp),
        "LogAndSkipOnInvalidTimestamp" | "log_and_skip_on_invalid_timestamp" => {
            Arc::new(LogAndSkipOnInvalidTimestamp)
        }
        "UsePartitionTimeOnInvalidTimestamp" | "use_partition_time_on_invalid_timestamp" => {
            Arc::new(UsePartitionTimeOnInvalidTimestamp)
        }
        "WallclockTimestampExtractor" | "wallclock" => Arc::new(WallclockTimestampExtractor),
        _ => return None,
    })
}

/// An extractor reading the event time from the deserialized record, e.g. a field of the value:
/// `f(key, value, record timestamp, partition time)`. A record that does not deserialize keeps its
/// own timestamp, so the deserialization error policy deals with it when it is processed.
pub fn timestamp_from_record<K: Data, V: Data>(
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    f: impl Fn(&K, &V, i64, i64) -> i64 + Send + Sync + 'static,
) -> Arc<dyn TimestampExtractor> {
    Arc::new(TypedExtractor { key, value, f })
}

struct TypedExtractor<K, V, F> {
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    f: F,
}

impl<K: Data, V: Data, F> TimestampExtractor for TypedExtractor<K, V, F>
where
    F: Fn(&K, &V, i64, i64) -> i64 + Send + Sync,
{
    fn extract(&self, record: &ConsumedRecord<'_>, partition_time: i64) -> Result<i64> {
        let k = self
            .key
            .deserialize_from(record.topic, record.headers, record.key);
        let v = self
            .value
            .deserialize_from(record.topic, record.headers, record.value);
        Ok(match (k, v) {
            (Ok(k), Ok(v)) => (self.f)(&k, &v, record.timestamp, partition_time),
            _ => record.timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(ts: i64, headers: &Headers) -> ConsumedRecord<'_> {
        ConsumedRecord {
            topic: "t",
            partition: 0,
            offset: 7,
            key: None,
            value: Some(b"v"),
            timestamp: ts,
            headers,
        }
    }

    #[test]
    fn built_ins_treat_negative_timestamps_as_kafka_streams_does() {
        let h = Headers::new();
        let fail = timestamp_extractor_by_name(
            "org.apache.kafka.streams.processor.FailOnInvalidTimestamp",
        )
        .unwrap();
        assert_eq!(fail.extract(&rec(5, &h), -1).unwrap(), 5);
        assert!(fail.extract(&rec(-1, &h), 9).is_err());
        let skip = timestamp_extractor_by_name("LogAndSkipOnInvalidTimestamp").unwrap();
        assert_eq!(skip.extract(&rec(-1, &h), 9).unwrap(), -1);
        let partition_time =
            timestamp_extractor_by_name("UsePartitionTimeOnInvalidTimestamp").unwrap();
        assert_eq!(partition_time.extract(&rec(-1, &h), 9).unwrap(), 9);
        assert!(partition_time.extract(&rec(-1, &h), -1).is_err());
        let wall = timestamp_extractor_by_name("WallclockTimestampExtractor").unwrap();
        assert!(wall.extract(&rec(1, &h), -1).unwrap() > 1_600_000_000_000);
        assert!(timestamp_extractor_by_name("com.example.Mine").is_none());
    }
}
