//! A foreign-key join over a foreign table partitioned by its own rule (not the default
//! partitioner of its key), on Apache Kafka: with `TableJoined::with_other_partitioner` each
//! subscription reaches the partition that holds its foreign key, so every row joins.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::KafkaStreams;
use streams_dsl::{Consumed, Materialized, Produced, StreamsBuilder, TableJoined};
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// The foreign table's own placement: keys `a`, `c`, ... in partition 0, `b`, `d`, ... in 1.
fn by_letter(key: &str) -> i32 {
    i32::from(key.as_bytes()[0].wrapping_sub(b'a') % 2)
}

#[test]
fn subscriptions_follow_the_foreign_tables_partitioner() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "fk-partitioner";
    let (left, right, out) = ("fkp-left", "fkp-right", "fkp-out");
    create_topics(b, &[(left, 2), (right, 2), (out, 1)]);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .create()
        .unwrap();
    for fk in ["a", "b", "c", "d"] {
        let name = format!("name-{fk}");
        p.send(
            BaseRecord::to(right)
                .key(fk)
                .payload(name.as_str())
                .partition(by_letter(fk)),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let rows: Vec<(String, String)> = (0..8)
        .map(|i| {
            (
                format!("row{i}"),
                format!("row{i}:{}", ["a", "b", "c", "d"][i % 4]),
            )
        })
        .collect();
    let records: Vec<(Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
        .collect();
    produce(b, left, &records);

    let builder = StreamsBuilder::new();
    let l =
        builder.table::<String, String>(left, Consumed::with(s(), s()), Materialized::default());
    let r =
        builder.table::<String, String>(right, Consumed::with(s(), s()), Materialized::default());
    l.join_on_foreign_key_with(
        &r,
        |v: &String| v.split(':').nth(1).unwrap_or_default().to_string(),
        |v, name| format!("{}->{name}", v.split(':').next().unwrap_or_default()),
        TableJoined::as_("by-letter").with_other_partitioner(|fk: &String| Some(by_letter(fk))),
        Materialized::default(),
    )
    .to_stream()
    .to_with(out, Produced::with(s(), Serdes::nullable(s())));
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        builder.build().unwrap(),
        test_config(app, b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    let mut reader = TopicReader::new(b, out, true);
    let joined = reader.poll_until(Duration::from_secs(60), |r| r.len() >= rows.len());
    assert!(streams.close(Duration::from_secs(30)));
    assert!(
        joined,
        "{} of {} rows joined",
        reader.records.len(),
        rows.len()
    );
    let mut got: Vec<String> = reader
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = rows
        .iter()
        .map(|(row, v)| format!("{row}->name-{}", &v[v.len() - 1..]))
        .collect();
    want.sort();
    assert_eq!(got, want);
}
