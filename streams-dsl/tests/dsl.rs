//! DSL behaviour through the TopologyTestDriver, and describe() pinned by golden files.
#![allow(clippy::unwrap_used)]

mod common;
use common::assert_golden;

use std::collections::HashMap;
use std::sync::Arc;

use streams_core::serdes::{Nullable, SerdeRef, Serdes};
use streams_core::{StreamsConfig, Topology, TopologyTestDriver};
use streams_dsl::{Consumed, Grouped, Materialized, Named, Produced, StreamsBuilder};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn driver(t: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(t, StreamsConfig::new("dsl-test").unwrap()).unwrap()
}

fn stateless() -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("input")
        .filter(|_, v| !v.is_empty())
        .map_values(|v: String| v.to_uppercase())
        .peek(|_, _| {})
        .to("output");
    b.build().unwrap()
}

#[test]
fn stateless_ops() {
    let t = stateless();
    assert_golden("stateless", &t);
    let d = driver(t);
    let input = d.create_input_topic("input", s(), s());
    let out = d.create_output_topic("output", s(), s());
    input
        .pipe_key_value_list([
            ("a".to_string(), "x".to_string()),
            ("b".into(), "".into()),
            ("c".into(), "yz".into()),
        ])
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("a".into(), "X".into()), ("c".into(), "YZ".into())]
    );
}

#[test]
fn map_flat_map_select_key_filter_not_foreach() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let b = StreamsBuilder::new();
    let st = b.stream::<String, i64>("nums");
    st.flat_map(|k: String, v: i64| {
        (0..v)
            .map(move |i| (format!("{k}{i}"), i))
            .collect::<Vec<_>>()
    })
    .filter_not(|_, v| *v == 1)
    .select_key(|k, v| format!("{k}/{v}"))
    .map(|k: String, v: i64| (k, v * 10))
    .to("out");
    st.foreach(move |k, v| seen2.lock().unwrap().push((k.clone(), *v)));
    let d = driver(b.build().unwrap());
    d.create_input_topic("nums", s(), Serdes::i64())
        .pipe_input("a".into(), 3)
        .unwrap();
    let out = d
        .create_output_topic("out", s(), Serdes::i64())
        .read_key_values_to_list()
        .unwrap();
    assert_eq!(out, vec![("a0/0".to_string(), 0), ("a2/2".to_string(), 20)]);
    assert_eq!(*seen.lock().unwrap(), vec![("a".to_string(), 3)]);
}

#[test]
fn split_and_merge() {
    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("nums")
        .split(Named::as_("n-"))
        .branch(Some("neg"), |_, v| *v < 0)
        .branch(Some("small"), |_, v| *v < 10)
        .default_branch(Some("big"));
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec!["n-big", "n-neg", "n-small"]
    );
    branches["n-neg"].to("neg");
    branches["n-small"]
        .merge(&branches["n-big"])
        .map_values(|v: i64| v + 1)
        .to("nonneg");
    let t = b.build().unwrap();
    assert_golden("split_merge", &t);
    let d = driver(t);
    let input = d.create_input_topic("nums", s(), Serdes::i64());
    for v in [-1, 5, 50, -7] {
        input.pipe_input("k".into(), v).unwrap();
    }
    assert_eq!(
        d.create_output_topic("neg", s(), Serdes::i64())
            .read_key_values_to_list()
            .unwrap()
            .len(),
        2
    );
    let nonneg: Vec<i64> = d
        .create_output_topic("nonneg", s(), Serdes::i64())
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(nonneg, vec![6, 51]);
}

fn aggregation() -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("purchases")
        .group_by_key(Grouped::default())
        .aggregate(|| 0i64, |_k, v, sum| sum + v, Materialized::as_("totals"))
        .to_stream()
        .to("totals-out");
    b.build().unwrap()
}

#[test]
fn aggregation_without_repartition() {
    let t = aggregation();
    assert_golden("aggregation", &t);
    assert_eq!(t.subtopologies().len(), 1);
    let d = driver(t);
    let input = d.create_input_topic("purchases", s(), Serdes::i64());
    input
        .pipe_input_with_timestamp("alice".into(), 5, 100)
        .unwrap();
    input
        .pipe_input_with_timestamp("bob".into(), 1, 50)
        .unwrap();
    input
        .pipe_input_with_timestamp("alice".into(), 7, 90)
        .unwrap();
    let out = d
        .create_output_topic("totals-out", s(), Serdes::nullable(Serdes::i64()))
        .read_records_to_list()
        .unwrap();
    let got: Vec<(String, Option<i64>, i64)> = out
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    // Out-of-order input keeps the aggregate's timestamp at the max seen.
    assert_eq!(
        got,
        vec![
            ("alice".into(), Some(5), 100),
            ("bob".into(), Some(1), 50),
            ("alice".into(), Some(12), 100)
        ]
    );
    let ts = d
        .timestamped_key_value_store_get::<String, i64>("totals", &"alice".to_string())
        .unwrap()
        .unwrap();
    assert_eq!((ts.value, ts.timestamp), (12, 100));
}

fn repartition() -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("words")
        .group_by(|_k, v: &String| v.clone())
        .count(Materialized::default())
        .to_stream()
        .to("counts");
    b.build().unwrap()
}

#[test]
fn group_by_repartitions_through_an_internal_topic() {
    let t = repartition();
    assert_golden("repartition", &t);
    let subs = t.subtopologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(
        subs[0].sink_topics,
        vec!["KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition".to_string()]
    );
    assert!(t.is_internal_topic("KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"));
    let d = driver(t);
    let input = d.create_input_topic("words", s(), s());
    for w in ["x", "y", "x"] {
        input.pipe_input("ignored".into(), w.into()).unwrap();
    }
    let counts: HashMap<String, Option<i64>> = d
        .create_output_topic("counts", s(), Serdes::nullable(Serdes::i64()))
        .read_key_values_to_map()
        .unwrap();
    assert_eq!(
        counts,
        HashMap::from([("x".into(), Some(2)), ("y".into(), Some(1))])
    );
    // The repartition topic carries the application-id prefix at runtime.
    let rep = d.create_output_topic(
        "dsl-test-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition",
        s(),
        s(),
    );
    assert_eq!(rep.queue_size(), 3);
}

#[test]
fn named_grouping_keeps_topic_names_stable() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("words")
        .group_by_with(|_, v: &String| v.clone(), Grouped::as_("by-word"))
        .reduce(
            |a, b| format!("{a}{b}"),
            Materialized::as_("concat").in_memory(),
        )
        .to_stream()
        .to("out");
    let t = b.build().unwrap();
    assert_golden("named_repartition", &t);
    assert!(t.is_internal_topic("by-word-repartition"));
    let d = driver(t);
    let input = d.create_input_topic("words", s(), s());
    for w in ["a", "b", "a"] {
        input.pipe_input("k".into(), w.into()).unwrap();
    }
    let out = d
        .create_output_topic("out", s(), Serdes::nullable(Serdes::string()))
        .read_key_values_to_list()
        .unwrap();
    assert_eq!(
        out,
        vec![
            ("a".into(), Some("a".into())),
            ("b".into(), Some("b".into())),
            ("a".into(), Some("aa".into()))
        ]
    );
    // The changelog name derives from the store name.
    assert_eq!(
        d.create_output_topic("dsl-test-concat-changelog", s(), s())
            .queue_size(),
        3,
        "in-memory stores are change-logged too"
    );
}

#[test]
fn tables_with_tombstones_filter_and_regrouping() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>(
        "users",
        Consumed::default(),
        Materialized::as_("users-store"),
    );
    users
        .filter(|_, region| region != "moon")
        .map_values(|r: String| r.to_uppercase())
        .to_stream()
        .to("visible");
    users
        .group_by(
            |_, region: &String| (region.clone(), 1i64),
            Grouped::default(),
        )
        .count(Materialized::as_("per-region"))
        .to_stream()
        .to("region-counts");
    let t = b.build().unwrap();
    assert_golden("table", &t);
    let d = driver(t);
    let input = d.create_input_topic("users", s(), Serdes::nullable(Serdes::string()));
    input.pipe_input("ann".into(), Some("eu".into())).unwrap();
    input.pipe_input("bob".into(), Some("us".into())).unwrap();
    input.pipe_input("ann".into(), Some("us".into())).unwrap();
    input.pipe_input("bob".into(), Some("moon".into())).unwrap();
    input.pipe_input("ann".into(), None).unwrap();
    input.pipe_input("zed".into(), None).unwrap();
    let visible = d
        .create_output_topic("visible", s(), Serdes::nullable(Serdes::string()))
        .read_key_values_to_list()
        .unwrap();
    assert_eq!(
        visible,
        vec![
            ("ann".into(), Some("EU".into())),
            ("bob".into(), Some("US".into())),
            ("ann".into(), Some("US".into())),
            ("bob".into(), None), // moved to the moon: filtered out, so deleted downstream
            ("ann".into(), None),
        ]
    );
    let counts = d
        .create_output_topic("region-counts", s(), Serdes::nullable(Serdes::i64()))
        .read_key_values_to_list()
        .unwrap();
    assert_eq!(
        counts,
        vec![
            ("eu".into(), Some(1)),
            ("us".into(), Some(1)),
            ("eu".into(), Some(0)),
            ("us".into(), Some(2)),
            ("us".into(), Some(1)),
            ("moon".into(), Some(1)),
            ("us".into(), Some(0)),
        ]
    );
    assert_eq!(
        d.key_value_store_get::<String, String>("users-store", &"bob".to_string())
            .unwrap(),
        Some("moon".into())
    );
    assert_eq!(
        d.key_value_store_get::<String, String>("users-store", &"ann".to_string())
            .unwrap(),
        None
    );
}

#[test]
fn missing_serde_is_reported_by_build() {
    #[derive(Clone)]
    struct Custom;
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .map_values(|_| Custom)
        .to("out");
    let e = b.build().unwrap_err().to_string();
    assert!(
        e.contains("sink to `out` needs a value serde") && e.contains("Custom"),
        "{e}"
    );

    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .map_values(|_| Custom)
        .map_values(|_c: Custom| ())
        .to_with("out", Produced::with(s(), Arc::new(ConstSerde)));
    b.build().unwrap();
}

#[derive(Clone)]
struct ConstSerde;
impl streams_core::serdes::Serde<()> for ConstSerde {
    fn serialize(&self, _: &()) -> Result<Option<Vec<u8>>, streams_core::serdes::SerdeError> {
        Ok(Some(vec![]))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), streams_core::serdes::SerdeError> {
        Ok(())
    }
}

#[test]
fn default_serdes_from_config() {
    #[derive(Clone)]
    struct Custom;
    let cfg = StreamsConfig::from_pairs([("application.id", "x"), ("default.value.serde", "long")])
        .unwrap();
    let b = StreamsBuilder::with_config(&cfg);
    b.stream::<String, String>("in")
        .map_values(|v: String| v.len() as i64)
        .to("out");
    assert!(b.build().is_ok());
    let b = StreamsBuilder::with_config(&cfg);
    b.stream::<String, String>("in")
        .map_values(|_| Custom)
        .to("out");
    assert!(b.build().is_err());
}

struct Dedup;
impl streams_core::Processor<String, String> for Dedup {
    fn process(
        &mut self,
        ctx: &mut streams_core::ProcessorContext<'_>,
        r: streams_core::Record<String, String>,
    ) -> streams_core::Result<()> {
        let mut seen = ctx.key_value_store::<String, i64>("seen")?;
        if seen.get(&r.value)?.is_none() {
            seen.put(&r.value, &1)?;
            let v = r.value.clone();
            ctx.forward(r.with_value(v.len() as i64))?;
        }
        Ok(())
    }
}

#[test]
fn process_with_a_store_and_table_reduce_and_aggregate() {
    let b = StreamsBuilder::new();
    b.add_state_store(streams_core::StoreBuilder::key_value(
        "seen",
        s(),
        Serdes::i64(),
    ));
    b.stream::<String, String>("events")
        .process::<String, i64, _, _>(|| Dedup, Named::as_("dedup"), &["seen"])
        .to("firsts");
    let scores = b.table::<String, i64>("scores", Consumed::default(), Materialized::default());
    let by_team = scores.group_by(
        |player: &String, score: &i64| (player[..1].to_string(), *score),
        Grouped::default(),
    );
    by_team
        .reduce(|a, b| a + b, |a, b| a - b, Materialized::as_("team-sum"))
        .to_stream()
        .to("team-sums");
    by_team
        .aggregate(
            Vec::new,
            |_k, v, mut acc: Vec<i64>| {
                acc.push(v);
                acc
            },
            |_k, v, mut acc: Vec<i64>| {
                acc.retain(|x| *x != v);
                acc
            },
            Materialized::as_("team-list")
                .with_value_serde(Arc::new(streams_core::serdes::JsonSerde::<Vec<i64>>::new())),
        )
        .to_stream()
        .to_with(
            "team-lists",
            Produced::with(
                s(),
                Arc::new(Nullable::new(
                    streams_core::serdes::JsonSerde::<Vec<i64>>::new(),
                )),
            ),
        );
    let d = driver(b.build().unwrap());

    let events = d.create_input_topic("events", s(), s());
    for v in ["x", "yy", "x", "zzz", "yy"] {
        events.pipe_input("k".into(), v.into()).unwrap();
    }
    let firsts: Vec<i64> = d
        .create_output_topic("firsts", s(), Serdes::i64())
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(firsts, vec![1, 2, 3]);

    let input = d.create_input_topic("scores", s(), Serdes::nullable(Serdes::i64()));
    input.pipe_input("a1".into(), Some(10)).unwrap();
    input.pipe_input("a2".into(), Some(5)).unwrap();
    input.pipe_input("a1".into(), Some(7)).unwrap();
    input.pipe_input("a2".into(), None).unwrap();
    let sums: Vec<Option<i64>> = d
        .create_output_topic("team-sums", s(), Serdes::nullable(Serdes::i64()))
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    // 10; +5 = 15; a1 10->7 stays in team a: -10 and +7 in one update (KIP-904) = 12;
    // a2 deleted: -5 = 7.
    assert_eq!(sums, vec![Some(10), Some(15), Some(12), Some(7)]);
    let lists = d.create_output_topic(
        "team-lists",
        s(),
        Arc::new(Nullable::new(
            streams_core::serdes::JsonSerde::<Vec<i64>>::new(),
        )),
    );
    assert_eq!(
        lists.read_key_values_to_list().unwrap().last().cloned(),
        Some(("a".to_string(), Some(vec![7])))
    );
}
