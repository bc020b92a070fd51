//! Versioned tables downstream (KIP-914): an update older than its key's latest changes the
//! table's history, not its current value. `to_stream` and filters show it; table-table joins
//! and `group_by` skip it. The expected records are what Kafka Streams 4.4.0's
//! TopologyTestDriver printed for the same topology and inputs.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::{
    BufferConfig, Consumed, Grouped, Materialized, Produced, StreamsBuilder, Suppressed,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn ns() -> SerdeRef<Option<String>> {
    Serdes::nullable(Serdes::string())
}

fn or(v: Option<&String>) -> &str {
    v.map_or("null", String::as_str)
}

type Rows = Vec<(String, Option<String>, i64)>;

fn rows(v: &[(&str, Option<&str>, i64)]) -> Rows {
    v.iter()
        .map(|(k, v, t)| (k.to_string(), v.map(str::to_string), *t))
        .collect()
}

#[test]
fn out_of_order_updates_reach_to_stream_and_filters_but_not_joins_or_aggregations() {
    let b = StreamsBuilder::new();
    let t = b.table::<String, String>(
        "t",
        Consumed::with(s(), s()),
        Materialized::as_versioned("tv", 100),
    );
    let u = b.table::<String, String>("u", Consumed::with(s(), s()), Materialized::as_("u-store"));
    t.filter_not(|_, v| v.starts_with('a'))
        .to_stream()
        .to_with("out-filter", Produced::with(s(), ns()));
    t.to_stream()
        .to_with("out-table", Produced::with(s(), ns()));
    t.join(&u, |x, y| format!("{x}+{y}"), Materialized::default())
        .to_stream()
        .to_with("out-join", Produced::with(s(), ns()));
    // Through a mapping without a store of its own the table is still versioned.
    t.map_values(|v| v.to_uppercase())
        .left_join(&u, |x, y| format!("{x}+{}", or(y)), Materialized::default())
        .to_stream()
        .to_with("out-mapped-join", Produced::with(s(), ns()));
    t.group_by(
        |_, v| (v[..1].to_string(), v.clone()),
        Grouped::with(s(), s()),
    )
    .count(Materialized::default())
    .to_stream()
    .to_with(
        "out-count",
        Produced::with(s(), Serdes::nullable(Serdes::i64())),
    );
    let d = TopologyTestDriver::new(
        b.build().unwrap(),
        StreamsConfig::new("versioned-tables").unwrap(),
    )
    .unwrap();
    let tin = d.create_input_topic("t", s(), ns());
    d.create_input_topic("u", s(), s())
        .pipe_input_with_timestamp("k1".into(), "U1".into(), 1)
        .unwrap();
    for (k, v, ts) in [
        ("k1", Some("apple"), 10),
        ("k1", Some("bob"), 20),
        ("k1", Some("avocado"), 15),
        ("k2", Some("ax"), 5),
        ("k1", Some("zed"), 12),
        ("k1", Some("cat"), 30),
        ("k1", None, 25),
    ] {
        tin.pipe_input_with_timestamp(k.into(), v.map(str::to_string), ts)
            .unwrap();
    }
    let read = |topic: &str| -> Rows {
        d.create_output_topic(topic, s(), ns())
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect()
    };
    // A filter over a versioned table forwards every change, also one filtered out on both
    // sides (Kafka Streams' KTableFilter under versioned semantics).
    assert_eq!(
        read("out-filter"),
        rows(&[
            ("k1", None, 10),
            ("k1", Some("bob"), 20),
            ("k1", None, 15),
            ("k2", None, 5),
            ("k1", Some("zed"), 12),
            ("k1", Some("cat"), 30),
            ("k1", None, 25),
        ])
    );
    assert_eq!(
        read("out-table"),
        rows(&[
            ("k1", Some("apple"), 10),
            ("k1", Some("bob"), 20),
            ("k1", Some("avocado"), 15),
            ("k2", Some("ax"), 5),
            ("k1", Some("zed"), 12),
            ("k1", Some("cat"), 30),
            ("k1", None, 25),
        ])
    );
    assert_eq!(
        read("out-join"),
        rows(&[
            ("k1", Some("apple+U1"), 10),
            ("k1", Some("bob+U1"), 20),
            ("k1", Some("cat+U1"), 30),
        ])
    );
    assert_eq!(
        read("out-mapped-join"),
        rows(&[
            ("k1", Some("APPLE+U1"), 10),
            ("k1", Some("BOB+U1"), 20),
            ("k2", Some("AX+null"), 5),
            ("k1", Some("CAT+U1"), 30),
        ])
    );
    let counts: Vec<(String, Option<i64>)> = d
        .create_output_topic("out-count", s(), Serdes::nullable(Serdes::i64()))
        .read_key_values_to_list()
        .unwrap();
    let expected: Vec<(String, Option<i64>)> =
        [("a", 1), ("a", 0), ("b", 1), ("a", 1), ("b", 0), ("c", 1)]
            .into_iter()
            .map(|(k, n)| (k.to_string(), Some(n)))
            .collect();
    assert_eq!(counts, expected);
    // Each join skipped the three out-of-order updates (avocado, zed, the delete at 25).
    assert_eq!(d.dropped_records(), 6);
}

#[test]
fn a_versioned_table_cannot_be_suppressed_even_through_a_filter() {
    let b = StreamsBuilder::new();
    b.table::<String, String>(
        "t",
        Consumed::with(s(), s()),
        Materialized::as_versioned("tv", 100),
    )
    .filter(|_, v| !v.is_empty())
    .suppress(Suppressed::until_time_limit(10, BufferConfig::unbounded()));
    let err = b.build().err().unwrap().to_string();
    assert!(err.contains("non-versioned"), "{err}");
}

#[test]
fn a_store_of_its_own_ends_versioned_semantics() {
    // Materialized, the filter keeps the latest result in a plain store, as in Kafka Streams:
    // changes below it are all "latest" and a join takes them.
    let b = StreamsBuilder::new();
    let t = b.table::<String, String>(
        "t",
        Consumed::with(s(), s()),
        Materialized::as_versioned("tv", 100),
    );
    let u = b.table::<String, String>("u", Consumed::with(s(), s()), Materialized::as_("u-store"));
    t.filter_materialized(
        |_, _| true,
        Default::default(),
        Some(Materialized::as_("kept")),
    )
    .join(&u, |x, y| format!("{x}+{y}"), Materialized::default())
    .to_stream()
    .to_with("out", Produced::with(s(), ns()));
    let d = TopologyTestDriver::new(
        b.build().unwrap(),
        StreamsConfig::new("versioned-tables").unwrap(),
    )
    .unwrap();
    d.create_input_topic("u", s(), s())
        .pipe_input_with_timestamp("k".into(), "U".into(), 1)
        .unwrap();
    let tin = d.create_input_topic("t", s(), s());
    tin.pipe_input_with_timestamp("k".into(), "new".into(), 20)
        .unwrap();
    tin.pipe_input_with_timestamp("k".into(), "old".into(), 10)
        .unwrap();
    let out: Vec<Option<String>> = d
        .create_output_topic("out", s(), ns())
        .read_values_to_list()
        .unwrap();
    assert_eq!(
        out,
        vec![Some("new+U".to_string()), Some("old+U".to_string())]
    );
    assert_eq!(d.dropped_records(), 0);
}

#[test]
fn as_versioned_is_refused_where_the_store_would_not_be_versioned() {
    let b = StreamsBuilder::new();
    b.table::<String, String>("t", Consumed::with(s(), s()), Materialized::as_("t-store"))
        .filter_materialized(
            |_, _| true,
            Default::default(),
            Some(Materialized::as_versioned("filtered", 100)),
        );
    let err = b.build().err().unwrap().to_string();
    assert!(
        err.contains("filtered") && err.contains("source tables"),
        "{err}"
    );
}
