//! Routing on Apache Kafka: `repartition()` creates its topic with the given partition count and
//! writes each record where its partitioner says; a sink's partitioner and a topic-choosing sink
//! decide where outputs land.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::KafkaStreams;
use streams_dsl::{Consumed, Produced, Repartitioned, StreamsBuilder};
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// The partition a key names: its number modulo `n`.
fn numbered(key: &str, n: i32) -> i32 {
    key.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse::<i32>()
        .unwrap_or(0)
        % n
}

#[test]
fn records_land_where_partitioners_and_topic_choosers_send_them() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "routing";
    let (input, even, odd) = ("routing-in", "routing-even", "routing-odd");
    create_topics(b, &[(input, 2), (even, 3), (odd, 3)]);
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let records: Vec<(Option<&str>, Option<&str>)> =
        keys.iter().map(|k| (Some(k.as_str()), Some("v"))).collect();
    produce(b, input, &records);

    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(&[input], Consumed::with(s(), s()))
        .repartition(
            Repartitioned::as_("spread")
                .with_number_of_partitions(4)
                .with_stream_partitioner(|k: &String, _: &String| Some(numbered(k, 4))),
        )
        .to_dynamic(
            "even-or-odd",
            |k: &String, _: &String| {
                if numbered(k, 2) == 0 {
                    "routing-even".to_string()
                } else {
                    "routing-odd".to_string()
                }
            },
            Produced::with(s(), s()).with_partitioner(|k: &String, _| Some(numbered(k, 3))),
        );
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        builder.build().unwrap(),
        test_config(app, b, "exactly_once_v2", 2, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    let mut evens = TopicReader::new(b, even, true);
    let mut odds = TopicReader::new(b, odd, true);
    assert!(evens.poll_until(Duration::from_secs(60), |r| r.len() >= 20));
    assert!(odds.poll_until(Duration::from_secs(60), |r| r.len() >= 20));
    let mut spread = TopicReader::new(b, &format!("{app}-spread-repartition"), false);
    assert!(spread.poll_until(Duration::from_secs(30), |r| r.len() >= 40));
    assert!(streams.close(Duration::from_secs(30)));

    // The repartition topic has the 4 partitions asked for, each record where its number says.
    let by_partition: BTreeMap<i32, usize> =
        spread.records.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.partition).or_default() += 1;
            m
        });
    assert_eq!(
        by_partition,
        BTreeMap::from([(0, 10), (1, 10), (2, 10), (3, 10)])
    );
    for r in &spread.records {
        assert_eq!(r.partition, numbered(&r.key_str(), 4), "{}", r.key_str());
    }
    // Outputs: even keys in one topic, odd in the other, each in the partition its number names.
    for (reader, parity) in [(&evens, 0), (&odds, 1)] {
        assert_eq!(reader.records.len(), 20);
        for r in &reader.records {
            let k = r.key_str();
            assert_eq!(numbered(&k, 2), parity, "{k}");
            assert_eq!(r.partition, numbered(&k, 3), "{k}");
        }
    }
}
