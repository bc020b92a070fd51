//! `topology.optimization` reusing source topics (Kafka Streams' `reuse.ktable.source.topics`),
//! on Apache Kafka: a source table's store keeps no `-changelog` topic and writes none; an
//! instance restarted on an empty state directory restores the table from its source topic, up
//! to the committed offset, and joins with it as before. Under both guarantees.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{KafkaStreams, Topology};
use streams_dsl::{Consumed, Joined, Materialized, Produced, StreamsBuilder};
use streams_tests::kafka::{create_topics, init_tracing, produce, topic_names, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn topology(app: &str) -> Topology {
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>(
        &format!("{app}-t"),
        Consumed::with(s(), s()),
        Materialized::as_("t-store"),
    );
    b.stream_with::<String, String>(&[&format!("{app}-in")], Consumed::with(s(), s()))
        .left_join_table_with(
            &table,
            |v, t| format!("{v}+{}", t.map_or("null", String::as_str)),
            Joined::default(),
        )
        .to_with(&format!("{app}-out"), Produced::with(s(), s()));
    b.build().unwrap()
}

/// Runs the app on a fresh state directory until `expected` outputs were read.
fn run(b: &str, app: &str, guarantee: &str, reader: &mut TopicReader, expected: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(app, b, guarantee, 1, dir.path());
    config.set("topology.optimization", "all").unwrap();
    let mut streams = KafkaStreams::new(topology(app), config).unwrap();
    streams.start().unwrap();
    assert!(
        reader.poll_until(Duration::from_secs(60), |r| r.len() >= expected),
        "{} of {expected} outputs",
        reader.records.len()
    );
    assert!(streams.close(Duration::from_secs(30)));
}

fn restores_from_the_source_topic(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = format!("reuse-{}", guarantee.replace('_', "-"));
    let (table, input, out) = (
        format!("{app}-t"),
        format!("{app}-in"),
        format!("{app}-out"),
    );
    create_topics(b, &[(&table, 2), (&input, 2), (&out, 1)]);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let rows: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    let pairs = |vals: &[String]| -> Vec<(Option<String>, Option<String>)> {
        keys.iter()
            .zip(vals)
            .map(|(k, v)| (Some(k.clone()), Some(v.clone())))
            .collect()
    };
    let send = |topic: &str, vals: &[String]| {
        let owned = pairs(vals);
        let records: Vec<(Option<&str>, Option<&str>)> = owned
            .iter()
            .map(|(k, v)| (k.as_deref(), v.as_deref()))
            .collect();
        produce(b, topic, &records);
    };
    send(&table, &rows);
    std::thread::sleep(Duration::from_millis(50));
    let first: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    send(&input, &first);
    let mut reader = TopicReader::new(b, &out, true);
    run(b, &app, guarantee, &mut reader, 10);
    assert!(
        !topic_names(b).iter().any(|t| t.ends_with("-changelog")),
        "no changelog topic: {:?}",
        topic_names(b)
    );

    // Restarted on an empty state directory: the table comes back from its source topic.
    let second: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    send(&input, &second);
    run(b, &app, guarantee, &mut reader, 20);
    let mut got: Vec<String> = reader
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..10)
        .flat_map(|i| [format!("a{i}+v{i}"), format!("b{i}+v{i}")])
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn exactly_once_v2_restores_a_source_table_from_its_topic() {
    restores_from_the_source_topic("exactly_once_v2");
}

#[test]
fn at_least_once_restores_a_source_table_from_its_topic() {
    restores_from_the_source_topic("at_least_once");
}
