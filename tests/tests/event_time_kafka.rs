//! Event time on Apache Kafka: a source's timestamp extractor decides the windows records fall in
//! and the order a task takes its inputs in, not the timestamps the records were produced with.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::timestamp::timestamp_from_record;
use streams_core::KafkaStreams;
use streams_dsl::{Consumed, Grouped, Materialized, Produced, StreamsBuilder, TimeWindows};
use streams_tests::kafka::{
    create_topics, event_epoch, event_time, init_tracing, long, produce, TopicReader,
};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

#[test]
fn windows_follow_the_event_time_a_source_extracts() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = ("event-time-in", "event-time-out");
    create_topics(b, &[(input, 2), (output, 2)]);
    // Produced now (record timestamps of this moment); the values carry the event time.
    let values: Vec<(&str, String)> = [("k", 1000, "a"), ("k", 9999, "b"), ("k", 25000, "c")]
        .into_iter()
        .chain([("j", 12000, "d")])
        .map(|(k, t, v)| (k, format!("{}|{v}", event_time(t))))
        .collect();
    let records: Vec<(Option<&str>, Option<&str>)> = values
        .iter()
        .map(|(k, v)| (Some(*k), Some(v.as_str())))
        .collect();
    produce(b, input, &records);

    let extractor = timestamp_from_record(s(), s(), |_: &String, v: &String, record_ts, _| {
        v.split('|')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(record_ts)
    });
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(
            &[input],
            Consumed::with(s(), s()).with_timestamp_extractor(extractor),
        )
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by(TimeWindows::of_size_and_grace(10_000, 60_000))
        .count(Materialized::as_("event-time-counts"))
        .to_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.window.start - event_epoch()), n))
        .to_with(output, Produced::with(s(), Serdes::nullable(Serdes::i64())));
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        builder.build().unwrap(),
        test_config("event-time", b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();

    let want: BTreeMap<String, i64> = [("k@0", 2), ("k@20000", 1), ("j@10000", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let mut reader = TopicReader::new(b, output, true);
    let reached = reader.poll_until(Duration::from_secs(60), |records| {
        let mut latest = BTreeMap::new();
        for r in records {
            latest.insert(r.key_str(), r.value.as_deref().map(long).unwrap_or(0));
        }
        latest == want
    });
    assert!(streams.close(Duration::from_secs(30)));
    assert!(
        reached,
        "windows by event time never became {want:?}: {:?}",
        reader
            .records
            .iter()
            .map(|r| (
                r.key_str(),
                r.value.as_deref().map(long),
                r.event_timestamp()
            ))
            .collect::<Vec<_>>()
    );
    // Every update carries the event time, not the time the record was produced.
    assert!(reader
        .records
        .iter()
        .all(|r| (0..30_000).contains(&r.event_timestamp())));
}
