//! Versioned tables and stream-table joins with a grace period on Apache Kafka (KIP-889/923): a
//! stream record waits in the join's buffer until stream time passes it by the grace period,
//! then joins the table as of its own time, seeing a table update that arrived late. The buffer
//! and the versioned store live in change-logged stores: an instance restarted on an empty
//! state directory restores both and still produces the join.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{KafkaStreams, Topology};
use streams_dsl::{Consumed, Joined, Materialized, Produced, StreamsBuilder};
use streams_tests::kafka::{create_topics, init_tracing, produce_with_timestamps, TopicReader};
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
        Materialized::as_versioned("t-versions", 1_000),
    );
    b.stream_with::<String, String>(&[&format!("{app}-in")], Consumed::with(s(), s()))
        .join_table_with(
            &table,
            |v, t| format!("{v}+{t}"),
            Joined::with(s(), s()).with_grace_period(100),
        )
        .to_with(&format!("{app}-out"), Produced::with(s(), s()));
    table.to_stream().to_with(
        &format!("{app}-table"),
        Produced::with(s(), Serdes::nullable(s())),
    );
    b.build().unwrap()
}

fn run_until(b: &str, app: &str, reader: &mut TopicReader, expected: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        topology(app),
        test_config(app, b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    assert!(
        reader.poll_until(Duration::from_secs(60), |r| r.len() >= expected),
        "{} of {expected} records",
        reader.records.len()
    );
    assert!(streams.close(Duration::from_secs(30)));
}

#[test]
fn a_buffered_record_joins_a_late_table_update_across_a_restart() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "versioned-join";
    let (input, table, out, table_out) = (
        format!("{app}-in"),
        format!("{app}-t"),
        format!("{app}-out"),
        format!("{app}-table"),
    );
    create_topics(b, &[(&input, 1), (&table, 1), (&out, 1), (&table_out, 1)]);
    let record = |k: &'static str, v: &'static str, ts: i64| (Some(k), Some(v), Some(ts));
    // k is A from 10 and C from 60; B, valid from 40, arrives last. x at 50 must see B.
    produce_with_timestamps(b, &table, &[record("k", "A", 10), record("k", "C", 60)]);
    produce_with_timestamps(b, &input, &[record("k", "x", 50)]);
    produce_with_timestamps(b, &table, &[record("k", "B", 40)]);
    let mut table_reader = TopicReader::new(b, &table_out, true);
    run_until(b, app, &mut table_reader, 3);

    // Restarted on an empty state directory: y at 200 moves stream time past x's grace.
    produce_with_timestamps(b, &input, &[record("k", "y", 200)]);
    let mut reader = TopicReader::new(b, &out, true);
    run_until(b, app, &mut reader, 1);
    reader.poll_for(Duration::from_secs(2));
    let joined: Vec<(String, String, i64)> = reader
        .records
        .iter()
        .map(|r| {
            let v = r.value.as_deref().map(String::from_utf8_lossy);
            (
                r.key_str(),
                v.unwrap_or_default().into_owned(),
                r.event_timestamp(),
            )
        })
        .collect();
    // y waits for its own grace period: only x is joined, with the value k had at 50.
    assert_eq!(joined, vec![("k".to_string(), "x+B".to_string(), 50)]);
}
