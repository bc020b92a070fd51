//! Event time through the TopologyTestDriver: per-source timestamp extractors and
//! `default.timestamp.extractor`, as Kafka Streams' `TimestampExtractor`s behave.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::timestamp::timestamp_from_record;
use streams_core::{StreamsConfig, StreamsError, TopologyTestDriver};
use streams_dsl::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Counts per key, written with the timestamp each update was processed with.
fn counting(consumed: Consumed<String, String>, config: &[(&str, &str)]) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&["in"], consumed)
        .group_by_key(Grouped::with(s(), s()))
        .count(Materialized::as_("counts").with_caching_disabled())
        .to_stream()
        .to_with("out", Produced::with(s(), Serdes::nullable(Serdes::i64())));
    let mut pairs = vec![("application.id", "event-time")];
    pairs.extend_from_slice(config);
    TopologyTestDriver::new(
        b.build().unwrap(),
        StreamsConfig::from_pairs(pairs).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_source_extractor_takes_the_event_time_from_the_value() {
    // Values are `<millis>|<payload>`: the event time is the number, not the record timestamp.
    let extractor = timestamp_from_record(s(), s(), |_k: &String, v: &String, record_ts, _| {
        v.split('|')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(record_ts)
    });
    let d = counting(
        Consumed::with(s(), s()).with_timestamp_extractor(extractor),
        &[],
    );
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::i64()));
    input
        .pipe_input_with_timestamp("k".into(), "500|a".into(), 9_000)
        .unwrap();
    input
        .pipe_input_with_timestamp("k".into(), "x|b".into(), 9_001)
        .unwrap();
    let got: Vec<i64> = out
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| r.timestamp)
        .collect();
    // The second value has no number: the record's own timestamp (larger) is used.
    assert_eq!(got, vec![500, 9_001]);
}

#[test]
fn negative_timestamps_fail_by_default_naming_the_record_and_the_fix() {
    let d = counting(Consumed::with(s(), s()), &[]);
    let input = d.create_input_topic("in", s(), s());
    let err = input
        .pipe_input_with_timestamp("k".into(), "v".into(), -1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StreamsError::InvalidTimestamp {
                timestamp: -1,
                offset: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("in-0 offset 0") && text.contains("LogAndSkipOnInvalidTimestamp"));
}

#[test]
fn log_and_skip_drops_and_counts_records_with_negative_timestamps() {
    let d = counting(
        Consumed::with(s(), s()),
        &[(
            "default.timestamp.extractor",
            "org.apache.kafka.streams.processor.LogAndSkipOnInvalidTimestamp",
        )],
    );
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::i64()));
    input
        .pipe_input_with_timestamp("k".into(), "a".into(), -5)
        .unwrap();
    input
        .pipe_input_with_timestamp("k".into(), "b".into(), 7)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("k".to_string(), Some(1))]
    );
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn use_partition_time_replaces_a_negative_timestamp_with_the_partition_time() {
    let d = counting(
        Consumed::with(s(), s()),
        &[(
            "default.timestamp.extractor",
            "UsePartitionTimeOnInvalidTimestamp",
        )],
    );
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::i64()));
    // Before the partition has a time there is nothing to use instead.
    assert!(input
        .pipe_input_with_timestamp("k".into(), "a".into(), -1)
        .is_err());
    input
        .pipe_input_with_timestamp("k".into(), "b".into(), 40)
        .unwrap();
    input
        .pipe_input_with_timestamp("k".into(), "c".into(), 30)
        .unwrap();
    input
        .pipe_input_with_timestamp("k".into(), "d".into(), -1)
        .unwrap();
    let got: Vec<(Option<i64>, i64)> = out
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect();
    // The partition time is the largest seen (40), not the last (30).
    assert_eq!(got, vec![(Some(1), 40), (Some(2), 40), (Some(3), 40)]);
}

#[test]
fn an_unknown_extractor_name_is_refused_with_the_choices() {
    let err = StreamsConfig::from_pairs([
        ("application.id", "x"),
        ("default.timestamp.extractor", "com.example.MyExtractor"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("com.example.MyExtractor") && text.contains("WallclockTimestampExtractor")
    );
}
