//! Joins through the TopologyTestDriver, checked record by record against the join semantics
//! Kafka Streams documents (the "Kafka Streams Join Semantics" page: both inputs, all records
//! with the same key, processed in timestamp order).
#![allow(clippy::unwrap_used)]

mod common;
use common::assert_golden;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, Topology, TopologyTestDriver};
use streams_dsl::{
    Consumed, JoinWindows, Joined, KStream, Materialized, StreamJoined, StreamsBuilder,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn ns() -> SerdeRef<Option<String>> {
    Serdes::nullable(Serdes::string())
}

fn driver(t: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(t, StreamsConfig::new("joins-test").unwrap()).unwrap()
}

/// The documented inputs: `ts:value` per side, `None` for null.
const LEFT: &[(i64, Option<&str>)] = &[
    (1, None),
    (3, Some("A")),
    (5, Some("B")),
    (7, None),
    (9, Some("C")),
    (12, None),
    (15, Some("D")),
];
const RIGHT: &[(i64, Option<&str>)] = &[
    (2, None),
    (4, Some("a")),
    (6, Some("b")),
    (8, None),
    (10, Some("c")),
    (11, None),
    (13, None),
    (14, Some("d")),
];

/// Pipes both inputs in timestamp order, then `extra` (left?, ts, value).
fn pipe_documented(d: &TopologyTestDriver, extra: &[(bool, i64, &str)]) {
    let l = d.create_input_topic("left", s(), ns());
    let r = d.create_input_topic("right", s(), ns());
    let mut all: Vec<(bool, i64, Option<&str>)> = LEFT
        .iter()
        .map(|(t, v)| (true, *t, *v))
        .chain(RIGHT.iter().map(|(t, v)| (false, *t, *v)))
        .collect();
    all.sort_by_key(|(_, t, _)| *t);
    all.extend(extra.iter().map(|(l, t, v)| (*l, *t, Some(*v))));
    for (is_left, ts, v) in all {
        let topic = if is_left { &l } else { &r };
        topic
            .pipe_input_with_timestamp("k".into(), v.map(str::to_string), ts)
            .unwrap();
    }
}

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

/// A stream without nulls: a null value carries nothing to join (Kafka Streams skips them).
fn stream(b: &StreamsBuilder, topic: &str) -> KStream<String, String> {
    b.stream_with::<String, Option<String>>(&[topic], Consumed::with(s(), ns()))
        .flat_map_values(|v: Option<String>| v)
}

fn results(d: &TopologyTestDriver) -> Vec<(String, i64)> {
    d.create_output_topic("out", s(), s())
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect()
}

fn owned(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(s, t)| (s.to_string(), *t)).collect()
}

/// The part of the documented stream-stream results all three variants share.
const STREAM_INNER: &[(&str, i64)] = &[
    ("A-a", 4),
    ("B-a", 5),
    ("A-b", 6),
    ("B-b", 6),
    ("C-a", 9),
    ("C-b", 9),
    ("A-c", 10),
    ("B-c", 10),
    ("C-c", 10),
    ("A-d", 14),
    ("B-d", 14),
    ("C-d", 14),
    ("D-a", 15),
    ("D-b", 15),
    ("D-c", 15),
    ("D-d", 15),
];

/// The documented tail: E at 40, F at 60, f at 80, G at 100 never find partners.
const TAIL: &[(bool, i64, &str)] = &[
    (true, 40, "E"),
    (true, 60, "F"),
    (false, 80, "f"),
    (true, 100, "G"),
];

#[test]
fn stream_stream_inner_join() {
    let b = StreamsBuilder::new();
    stream(&b, "left")
        .join(
            &stream(&b, "right"),
            |l: &String, r: &String| format!("{l}-{r}"),
            JoinWindows::of_time_difference_with_no_grace(15),
            StreamJoined::default(),
        )
        .to("out");
    let d = driver(b.build().unwrap());
    pipe_documented(&d, TAIL);
    assert_eq!(results(&d), owned(STREAM_INNER));
}

#[test]
fn stream_stream_left_join_emits_unmatched_records_once_their_window_closes() {
    let b = StreamsBuilder::new();
    stream(&b, "left")
        .left_join(
            &stream(&b, "right"),
            |l: &String, r: Option<&String>| format!("{l}-{}", show(r)),
            JoinWindows::of_time_difference_with_no_grace(15),
            StreamJoined::default(),
        )
        .to("out");
    let d = driver(b.build().unwrap());
    pipe_documented(&d, TAIL);
    // No spurious "A-null" at 3: A waits in the outer store and joins with a at 4. E's window
    // closes at 55, so F (60) emits "E-null"; f (80) emits "F-null"; G (100) is still open.
    let mut expected = owned(STREAM_INNER);
    expected.extend(owned(&[("E-null", 40), ("F-null", 60)]));
    assert_eq!(results(&d), expected);
}

#[test]
fn stream_stream_outer_join_emits_unmatched_records_of_both_sides() {
    let b = StreamsBuilder::new();
    stream(&b, "left")
        .outer_join(
            &stream(&b, "right"),
            |l: Option<&String>, r: Option<&String>| format!("{}-{}", show(l), show(r)),
            JoinWindows::of_time_difference_with_no_grace(15),
            StreamJoined::default(),
        )
        .to("out");
    let d = driver(b.build().unwrap());
    pipe_documented(&d, TAIL);
    let mut expected = owned(STREAM_INNER);
    expected.extend(owned(&[("E-null", 40), ("F-null", 60), ("null-f", 80)]));
    assert_eq!(results(&d), expected);
}

#[test]
fn stream_stream_join_grace_keeps_late_partners_and_delays_left_results() {
    let b = StreamsBuilder::new();
    stream(&b, "left")
        .left_join(
            &stream(&b, "right"),
            |l: &String, r: Option<&String>| format!("{l}-{}", show(r)),
            JoinWindows::of_time_difference_and_grace(5, 10),
            StreamJoined::default().with_name("late"),
        )
        .to("out");
    let d = driver(b.build().unwrap());
    let l = d.create_input_topic("left", s(), ns());
    let r = d.create_input_topic("right", s(), ns());
    l.pipe_input_with_timestamp("k".into(), Some("A".into()), 100)
        .unwrap();
    l.pipe_input_with_timestamp("k".into(), Some("B".into()), 112)
        .unwrap();
    // Out of order by 10 ms, within grace: joins A (|100-103| <= 5).
    r.pipe_input_with_timestamp("k".into(), Some("a".into()), 103)
        .unwrap();
    // Stream time 127 = 112 + 5 + 10: B's window is still open (grace)...
    l.pipe_input_with_timestamp("k".into(), Some("C".into()), 127)
        .unwrap();
    assert_eq!(results(&d), owned(&[("A-a", 103)]));
    // ... and closes past it: B never found a partner.
    l.pipe_input_with_timestamp("k".into(), Some("D".into()), 128)
        .unwrap();
    assert_eq!(results(&d), owned(&[("B-null", 112)]));
}

#[test]
fn stream_table_inner_and_left_join() {
    for left_join in [false, true] {
        let b = StreamsBuilder::new();
        let table = b.table::<String, String>(
            "right",
            Consumed::default(),
            Materialized::as_("right-store"),
        );
        let st = stream(&b, "left");
        if left_join {
            st.left_join_table(&table, |l: &String, r: Option<&String>| {
                format!("{l}-{}", show(r))
            })
            .to("out");
        } else {
            st.join_table(&table, |l: &String, r: &String| format!("{l}-{r}"))
                .to("out");
        }
        let d = driver(b.build().unwrap());
        pipe_documented(&d, &[]);
        let expected = if left_join {
            owned(&[("A-null", 3), ("B-a", 5), ("C-null", 9), ("D-d", 15)])
        } else {
            // Table updates never emit; the tombstones at 8 and 11 delete the right value.
            owned(&[("B-a", 5), ("D-d", 15)])
        };
        assert_eq!(results(&d), expected, "left_join = {left_join}");
    }
}

/// The documented table-table results, one entry per input row: `None` = no output,
/// `Some(None)` = a tombstone, `Some(Some(v))` = a result.
fn table_join_results(kind: &str) -> Vec<(i64, Option<String>)> {
    let b = StreamsBuilder::new();
    let l = b.table::<String, String>("left", Consumed::default(), Materialized::as_("l"));
    let r = b.table::<String, String>("right", Consumed::default(), Materialized::as_("r"));
    let joined = match kind {
        "inner" => l.join(
            &r,
            |a: &String, b: &String| format!("{a}-{b}"),
            Materialized::default(),
        ),
        "left" => l.left_join(
            &r,
            |a: &String, b: Option<&String>| format!("{a}-{}", show(b)),
            Materialized::default(),
        ),
        _ => l.outer_join(
            &r,
            |a: Option<&String>, b: Option<&String>| format!("{}-{}", show(a), show(b)),
            Materialized::as_("joined"),
        ),
    };
    joined
        .to_stream()
        .to_with("out", streams_dsl::Produced::with(s(), ns()));
    let d = driver(b.build().unwrap());
    pipe_documented(&d, &[]);
    d.create_output_topic("out", s(), ns())
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.timestamp, r.value))
        .collect()
}

fn rows(v: &[(i64, Option<&str>)]) -> Vec<(i64, Option<String>)> {
    v.iter().map(|(t, s)| (*t, s.map(str::to_string))).collect()
}

#[test]
fn table_table_inner_join() {
    assert_eq!(
        table_join_results("inner"),
        rows(&[
            (4, Some("A-a")),
            (5, Some("B-a")),
            (6, Some("B-b")),
            (7, None),
            (10, Some("C-c")),
            (11, None),
            (15, Some("D-d")),
        ])
    );
}

#[test]
fn table_table_left_join() {
    assert_eq!(
        table_join_results("left"),
        rows(&[
            (3, Some("A-null")),
            (4, Some("A-a")),
            (5, Some("B-a")),
            (6, Some("B-b")),
            (7, None),
            (9, Some("C-null")),
            (10, Some("C-c")),
            (11, Some("C-null")),
            (12, None),
            (15, Some("D-d")),
        ])
    );
}

#[test]
fn table_table_outer_join() {
    assert_eq!(
        table_join_results("outer"),
        rows(&[
            (3, Some("A-null")),
            (4, Some("A-a")),
            (5, Some("B-a")),
            (6, Some("B-b")),
            (7, Some("null-b")),
            (8, None),
            (9, Some("C-null")),
            (10, Some("C-c")),
            (11, Some("C-null")),
            (12, None),
            (14, Some("null-d")),
            (15, Some("D-d")),
        ])
    );
}

#[test]
fn joining_a_filtered_table_materializes_it() {
    let b = StreamsBuilder::new();
    let t = b
        .table::<String, String>("right", Consumed::default(), Materialized::default())
        .filter(|_, v| v != "b");
    stream(&b, "left")
        .left_join_table(&t, |l: &String, r: Option<&String>| {
            format!("{l}-{}", show(r))
        })
        .to("out");
    let d = driver(b.build().unwrap());
    pipe_documented(&d, &[]);
    // The filter turns the update to "b" into a delete: B still sees a at 5, D sees d at 15.
    assert_eq!(
        results(&d),
        owned(&[("A-null", 3), ("B-a", 5), ("C-null", 9), ("D-d", 15)])
    );
}

#[test]
fn stream_global_table_join_maps_keys_and_sees_later_updates() {
    let b = StreamsBuilder::new();
    let customers = b.global_table::<String, String>(
        "customers",
        Consumed::default(),
        Materialized::as_("customers-store"),
    );
    let orders = b.stream::<String, String>("orders");
    // order id -> "customer:item"; the table is keyed by customer.
    let customer = |_: &String, v: &String| v.split(':').next().unwrap_or_default().to_string();
    orders
        .join_global(&customers, customer, |o: &String, c: &String| {
            format!("{o}@{c}")
        })
        .to("out");
    orders
        .left_join_global(&customers, customer, |o: &String, c: Option<&String>| {
            format!("{o}@{}", show(c))
        })
        .to("out-left");
    let d = driver(b.build().unwrap());
    let c = d.create_input_topic("customers", s(), ns());
    let o = d.create_input_topic("orders", s(), s());
    c.pipe_input_with_timestamp("c1".into(), Some("Ada".into()), 1)
        .unwrap();
    o.pipe_input_with_timestamp("o1".into(), "c1:tea".into(), 2)
        .unwrap();
    o.pipe_input_with_timestamp("o2".into(), "c2:milk".into(), 3)
        .unwrap();
    c.pipe_input_with_timestamp("c2".into(), Some("Bob".into()), 4)
        .unwrap();
    c.pipe_input_with_timestamp("c1".into(), None, 5).unwrap();
    o.pipe_input_with_timestamp("o3".into(), "c2:jam".into(), 6)
        .unwrap();
    o.pipe_input_with_timestamp("o4".into(), "c1:cake".into(), 7)
        .unwrap();
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("o1".to_string(), "c1:tea@Ada".to_string()),
            ("o3".into(), "c2:jam@Bob".into()),
        ]
    );
    let left = d.create_output_topic("out-left", s(), s());
    assert_eq!(
        left.read_values_to_list().unwrap(),
        vec!["c1:tea@Ada", "c2:milk@null", "c2:jam@Bob", "c1:cake@null"]
    );
    assert_eq!(
        d.key_value_store_get::<String, String>("customers-store", &"c2".into())
            .unwrap(),
        Some("Bob".into())
    );
}

#[test]
fn a_join_after_a_key_change_repartitions_the_stream() {
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>("right", Consumed::default(), Materialized::default());
    b.stream::<String, String>("orders")
        .select_key(|_, v| v.clone())
        .join_table(&table, |l: &String, r: &String| format!("{l}-{r}"))
        .to("out");
    let t = b.build().unwrap();
    let desc = t.describe().to_string();
    // As Kafka Streams: the repartition topic is named after the node that changed the key.
    assert!(
        desc.contains("topics: [KSTREAM-KEY-SELECT-0000000004-repartition]"),
        "{desc}"
    );
    assert_eq!(t.subtopologies().len(), 2);
    let d = driver(t);
    d.create_input_topic("right", s(), ns())
        .pipe_input_with_timestamp("x".into(), Some("X".into()), 1)
        .unwrap();
    d.create_input_topic("orders", s(), s())
        .pipe_input_with_timestamp("o1".into(), "x".into(), 2)
        .unwrap();
    assert_eq!(results(&d), owned(&[("x-X", 2)]));
}

fn fk_results(left_join: bool) -> Vec<(String, Option<String>)> {
    let b = StreamsBuilder::new();
    let orders = b.table::<String, String>("orders", Consumed::default(), Materialized::as_("o"));
    let customers =
        b.table::<String, String>("customers", Consumed::default(), Materialized::as_("c"));
    let fk = |v: &String| v.split(':').next().unwrap_or_default().to_string();
    let item = |v: &String| v.split(':').nth(1).unwrap_or_default().to_string();
    let joined = if left_join {
        orders.left_join_on_foreign_key(
            &customers,
            fk,
            move |o: &String, c: Option<&String>| format!("{}/{}", item(o), show(c)),
            Materialized::as_("enriched"),
        )
    } else {
        orders.join_on_foreign_key(
            &customers,
            fk,
            move |o: &String, c: &String| format!("{}/{c}", item(o)),
            Materialized::as_("enriched"),
        )
    };
    joined
        .to_stream()
        .to_with("out", streams_dsl::Produced::with(s(), ns()));
    let t = b.build().unwrap();
    assert_eq!(
        t.subtopologies().len(),
        2,
        "left and right tables, linked by two topics"
    );
    let d = driver(t);
    let o = d.create_input_topic("orders", s(), ns());
    let c = d.create_input_topic("customers", s(), ns());
    let some = |v: &str| Some(v.to_string());
    c.pipe_input_with_timestamp("c1".into(), some("Ada"), 1)
        .unwrap();
    o.pipe_input_with_timestamp("o1".into(), some("c1:tea"), 2)
        .unwrap();
    o.pipe_input_with_timestamp("o2".into(), some("c9:jam"), 3)
        .unwrap();
    c.pipe_input_with_timestamp("c9".into(), some("Zed"), 4)
        .unwrap();
    // o1 moves to c9: it unsubscribes from c1, so c1's update below reaches nobody.
    o.pipe_input_with_timestamp("o1".into(), some("c9:tea"), 5)
        .unwrap();
    c.pipe_input_with_timestamp("c1".into(), some("Ada2"), 6)
        .unwrap();
    c.pipe_input_with_timestamp("c9".into(), None, 7).unwrap();
    o.pipe_input_with_timestamp("o2".into(), None, 8).unwrap();
    if left_join {
        assert_eq!(
            d.key_value_store_get::<String, String>("enriched", &"o1".into())
                .unwrap(),
            some("tea/null")
        );
    } else {
        assert_eq!(
            d.key_value_store_get::<String, String>("enriched", &"o1".into())
                .unwrap(),
            None
        );
    }
    d.create_output_topic("out", s(), ns())
        .read_key_values_to_list()
        .unwrap()
}

#[test]
fn foreign_key_inner_join() {
    let some = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    let none = |k: &str| (k.to_string(), None);
    assert_eq!(
        fk_results(false),
        vec![
            some("o1", "tea/Ada"),
            // o2 names c9, absent: nothing until c9 arrives.
            some("o2", "jam/Zed"),
            some("o1", "tea/Zed"),
            // c9 deleted: both results are deleted.
            none("o1"),
            none("o2"),
            none("o2"),
        ]
    );
}

#[test]
fn foreign_key_left_join() {
    let some = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    assert_eq!(
        fk_results(true),
        vec![
            some("o1", "tea/Ada"),
            some("o2", "jam/null"),
            some("o2", "jam/Zed"),
            some("o1", "tea/Zed"),
            some("o1", "tea/null"),
            some("o2", "jam/null"),
            ("o2".to_string(), None),
        ]
    );
}

#[test]
fn foreign_key_join_topics_follow_each_side_partition_count() {
    let b = StreamsBuilder::new();
    let orders = b.table::<String, String>("orders", Consumed::default(), Materialized::as_("o"));
    let customers =
        b.table::<String, String>("customers", Consumed::default(), Materialized::as_("c"));
    orders
        .join_on_foreign_key(
            &customers,
            |v: &String| v.clone(),
            |a: &String, b: &String| format!("{a}{b}"),
            Materialized::default(),
        )
        .to_stream()
        .to_with("out", streams_dsl::Produced::with(s(), ns()));
    let t = b.build().unwrap();
    let layout = streams_core::runtime::internal_topics::plan_layout(
        &t,
        "app",
        &|topic: &str| match topic {
            "orders" => Some(2),
            "customers" => Some(3),
            _ => None,
        },
        &|_| Vec::new(),
    )
    .unwrap();
    let partitions = |suffix: &str| {
        layout
            .internal_topics
            .iter()
            .find(|t| t.name.ends_with(suffix) && t.name.contains("FK-JOIN"))
            .map(|t| t.partitions)
    };
    // Subscriptions are read next to the right table, responses next to the left one.
    assert_eq!(partitions("REGISTRATION-0000000004-topic"), Some(3));
    assert_eq!(partitions("RESPONSE-0000000012-topic"), Some(2));
}

#[test]
fn join_topologies_are_described_like_kafka_streams() {
    let b = StreamsBuilder::new();
    stream(&b, "left")
        .left_join(
            &stream(&b, "right"),
            |l: &String, r: Option<&String>| format!("{l}-{}", show(r)),
            JoinWindows::of_time_difference_with_no_grace(15),
            StreamJoined::default(),
        )
        .to("out");
    assert_golden("stream_stream_left_join", &b.build().unwrap());

    let b = StreamsBuilder::new();
    let customers = b.global_table::<String, String>(
        "customers",
        Consumed::default(),
        Materialized::as_("customers-store"),
    );
    let table = b.table::<String, String>("tiers", Consumed::default(), Materialized::as_("tiers"));
    b.stream::<String, String>("orders")
        .join_global(
            &customers,
            |_, v: &String| v.clone(),
            |o: &String, c: &String| format!("{o}{c}"),
        )
        .join_table(&table, |a: &String, t: &String| format!("{a}{t}"))
        .to("out");
    assert_golden("global_and_table_joins", &b.build().unwrap());
}

#[test]
fn joined_names_a_stream_table_join_and_its_repartition() {
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>("right", Consumed::default(), Materialized::default());
    b.stream::<String, String>("orders")
        .select_key(|_, v| v.clone())
        .join_table_with(
            &table,
            |l: &String, r: &String| format!("{l}-{r}"),
            Joined::as_("enrich").named("enrich"),
        )
        .to("out");
    let t = b.build().unwrap();
    let desc = t.describe().to_string();
    assert!(
        desc.contains("Processor: enrich (stores: [right-STATE-STORE-0000000000])"),
        "{desc}"
    );
    assert!(
        desc.contains("Sink: enrich-repartition-sink (topic: enrich-repartition)"),
        "{desc}"
    );
    let d = driver(t);
    d.create_input_topic("right", s(), ns())
        .pipe_input_with_timestamp("x".into(), Some("X".into()), 1)
        .unwrap();
    d.create_input_topic("orders", s(), s())
        .pipe_input_with_timestamp("o1".into(), "x".into(), 2)
        .unwrap();
    assert_eq!(
        d.create_output_topic("out", s(), s())
            .read_key_values_to_list()
            .unwrap(),
        vec![("x".to_string(), "x-X".to_string())]
    );
}

/// The key-aware joiners (Kafka Streams' `ValueJoinerWithKey`) see the key, also where one side
/// is missing: unmatched outer-join records and left stream-table joins without a row.
#[test]
fn key_aware_joiners_get_the_key_where_a_side_is_missing() {
    let b = StreamsBuilder::new();
    let left = b.stream_with::<String, String>(&["left"], Consumed::with(s(), s()));
    let right = b.stream_with::<String, String>(&["right"], Consumed::with(s(), s()));
    let table = b.table::<String, String>("t", Consumed::with(s(), s()), Materialized::as_("t"));
    left.outer_join_with_key(
        &right,
        |k, l: Option<&String>, r: Option<&String>| format!("{k}:{l:?}+{r:?}"),
        JoinWindows::of_time_difference_and_grace(5, 0),
        StreamJoined::with(s(), s(), s()),
    )
    .to_with("outer", streams_dsl::Produced::with(s(), s()));
    left.left_join_with_key(
        &right,
        |k, l: &String, r: Option<&String>| format!("{k}:{l}+{r:?}"),
        JoinWindows::of_time_difference_and_grace(5, 0),
        StreamJoined::with(s(), s(), s()),
    )
    .to_with("left-out", streams_dsl::Produced::with(s(), s()));
    left.left_join_table_with_key(
        &table,
        |k, v, t| format!("{k}:{v}+{t:?}"),
        Joined::default(),
    )
    .to_with("table", streams_dsl::Produced::with(s(), s()));
    let d = driver(b.build().unwrap());
    let l = d.create_input_topic("left", s(), s());
    let r = d.create_input_topic("right", s(), s());
    l.pipe_input_with_timestamp("k".into(), "a".into(), 0)
        .unwrap();
    r.pipe_input_with_timestamp("j".into(), "b".into(), 1)
        .unwrap();
    // Past both windows: the unmatched records come out with their keys.
    l.pipe_input_with_timestamp("z".into(), "c".into(), 100)
        .unwrap();
    let read = |topic: &str| -> Vec<String> {
        d.create_output_topic(topic, s(), s())
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(
        read("outer"),
        vec![
            "k:Some(\"a\")+None".to_string(),
            "j:None+Some(\"b\")".to_string()
        ]
    );
    assert_eq!(read("left-out"), vec!["k:a+None".to_string()]);
    assert_eq!(
        read("table"),
        vec!["k:a+None".to_string(), "z:c+None".to_string()]
    );
}
