//! `Materialized` options beyond name and serdes (retention, changelog topic configs) and the
//! key-value store handle's bulk and reverse access, through the TopologyTestDriver.
#![allow(clippy::unwrap_used)]

use streams_core::runtime::internal_topics::plan_layout;
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::TopologyTestDriver;
use streams_core::{Processor, ProcessorContext, Record, Result, StoreBuilder, StreamsConfig};
use streams_dsl::{Consumed, Grouped, Materialized, Named, StreamsBuilder, TimeWindows};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

#[test]
fn retention_keeps_closed_windows_queryable_longer() {
    let build = |m: Materialized<String, i64>| {
        let b = StreamsBuilder::new();
        b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
            .group_by_key(Grouped::with(s(), s()))
            .windowed_by(TimeWindows::of_size_with_no_grace(100))
            .count(m.with_caching_disabled());
        b.build()
    };
    let pipe = |d: &TopologyTestDriver| {
        let input = d.create_input_topic("in", s(), s());
        input
            .pipe_input_with_timestamp("k".into(), "a".into(), 0)
            .unwrap();
        input
            .pipe_input_with_timestamp("k".into(), "b".into(), 350)
            .unwrap();
    };
    // Default retention (size + grace = 100): the window at 0 is gone once stream time is 350.
    let d = TopologyTestDriver::new(
        build(Materialized::as_("short")).unwrap(),
        StreamsConfig::new("retention").unwrap(),
    )
    .unwrap();
    pipe(&d);
    let starts: Vec<i64> = d
        .timestamped_window_store_all::<String, i64>("short")
        .unwrap()
        .into_iter()
        .map(|(_, start, _)| start)
        .collect();
    assert_eq!(starts, vec![300]);
    // Retention 1000: both windows are kept.
    let d = TopologyTestDriver::new(
        build(Materialized::as_("long").with_retention(1_000)).unwrap(),
        StreamsConfig::new("retention").unwrap(),
    )
    .unwrap();
    pipe(&d);
    let starts: Vec<i64> = d
        .timestamped_window_store_all::<String, i64>("long")
        .unwrap()
        .into_iter()
        .map(|(_, start, _)| start)
        .collect();
    assert_eq!(starts, vec![0, 300]);
    // Shorter than size + grace is refused at build time.
    let e = build(Materialized::as_("bad").with_retention(50))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("retention 50 ms") && e.contains("with_retention"),
        "{e}"
    );
}

#[test]
fn changelog_topic_configs_reach_the_topic_layout() {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .count(
            Materialized::as_("counts")
                .with_logging_enabled([("min.insync.replicas", "2"), ("cleanup.policy", "delete")]),
        );
    let t = b.build().unwrap();
    let layout = plan_layout(&t, "app", &|_| Some(1), &|_| Vec::new()).unwrap();
    let changelog = layout
        .internal_topics
        .iter()
        .find(|t| t.name == "app-counts-changelog")
        .unwrap();
    assert_eq!(
        changelog
            .configs
            .get("min.insync.replicas")
            .map(String::as_str),
        Some("2")
    );
    // A key-value changelog stays compacted whatever is asked.
    assert_eq!(
        changelog.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
}

/// Writes each record with `put_all`, then forwards the store's keys in reverse order.
struct ReverseKeys;

impl Processor<String, String> for ReverseKeys {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        let keys: Vec<String> = {
            let mut store = ctx.key_value_store::<String, String>("kv")?;
            let extra = format!("{}-copy", r.key);
            store.put_all([(&r.key, &r.value), (&extra, &r.value)])?;
            let from = "a".to_string();
            let to = "c".to_string();
            let ranged: Vec<String> = store
                .reverse_range(Some(&from), Some(&to))?
                .map(|e| e.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            let all: Vec<String> = store
                .reverse_all()?
                .map(|e| e.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            vec![ranged.join(","), all.join(",")]
        };
        ctx.forward(Record::new(r.key, keys.join(" | "), r.timestamp))
    }
}

#[test]
fn key_value_stores_write_in_bulk_and_read_backwards() {
    let b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value("kv", s(), s()));
    b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .process::<String, String, _, _>(|| ReverseKeys, Named::default(), &["kv"])
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("kv").unwrap()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("b".into(), "1".into()).unwrap();
    input.pipe_input("a".into(), "2".into()).unwrap();
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("b".to_string(), "b-copy,b | b-copy,b".to_string()),
            (
                "a".to_string(),
                "b-copy,b,a-copy,a | b-copy,b,a-copy,a".to_string()
            ),
        ]
    );
}

#[test]
fn merge_repartition_topics_shares_one_topic_below_a_key_change() {
    let build = || {
        let b = StreamsBuilder::new();
        let keyed = b
            .stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
            .select_key(|_, v: &String| v[..1].to_string());
        keyed
            .group_by_key(Grouped::as_("first").with_serdes(s(), s()))
            .count(Materialized::as_("counts"))
            .to_stream()
            .to_with(
                "counts-out",
                streams_dsl::Produced::with(s(), Serdes::nullable(Serdes::i64())),
            );
        keyed
            .filter(|_, v| v.len() > 1)
            .group_by_key(Grouped::as_("second").with_serdes(s(), s()))
            .reduce(|a, v| format!("{a}|{v}"), Materialized::as_("joined"))
            .to_stream()
            .to_with(
                "joined-out",
                streams_dsl::Produced::with(s(), Serdes::nullable(s())),
            );
        b
    };
    let repartitions = |t: &streams_core::Topology| -> Vec<String> {
        let layout = plan_layout(t, "app", &|_| Some(1), &|_| Vec::new()).unwrap();
        let mut names: Vec<String> = layout
            .internal_topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| n.ends_with("-repartition"))
            .collect();
        names.sort();
        names
    };
    let plain = build().build().unwrap();
    assert_eq!(
        repartitions(&plain),
        vec!["app-first-repartition", "app-second-repartition"]
    );
    let mut config = StreamsConfig::new("app").unwrap();
    config
        .set("topology.optimization", "merge.repartition.topics")
        .unwrap();
    let merged = build().build_with(&config).unwrap();
    assert_eq!(repartitions(&merged), vec!["app-first-repartition"]);
    // The filter now reads the shared repartition: both aggregations see every record once.
    let d = TopologyTestDriver::new(merged, config).unwrap();
    let input = d.create_input_topic("in", s(), s());
    for v in ["apple", "a", "avocado", "berry"] {
        input.pipe_input("k".into(), v.into()).unwrap();
    }
    let counts = d.create_output_topic("counts-out", s(), Serdes::i64());
    let joined = d.create_output_topic("joined-out", s(), s());
    assert_eq!(
        counts.read_key_values_to_list().unwrap(),
        vec![
            ("a".to_string(), 1),
            ("a".to_string(), 2),
            ("a".to_string(), 3),
            ("b".to_string(), 1)
        ]
    );
    assert_eq!(
        joined.read_key_values_to_list().unwrap(),
        vec![
            ("a".to_string(), "apple".to_string()),
            ("a".to_string(), "apple|avocado".to_string()),
            ("b".to_string(), "berry".to_string())
        ]
    );
}
