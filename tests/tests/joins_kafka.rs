//! The join examples end to end on Apache Kafka under exactly_once_v2: every input record's
//! result appears exactly once in the read_committed output, with the right partner.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use streams_core::KafkaStreams;
use streams_dsl::{Consumed, Materialized, StreamsBuilder};
use streams_examples::clicks::{attribution_topology, Attribution, Click, Impression, WINDOW_MS};
use streams_tests::kafka::{create_topics, init_tracing, produce_with_timestamps, TopicReader};
use streams_tests::scenarios::{json, order_enrichment_end_to_end, wait_processed};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

#[test]
fn order_enrichment_runs_exactly_once() {
    init_tracing();
    let broker = TestBroker::start();
    order_enrichment_end_to_end(broker.bootstrap_servers(), "enrich-e2e");
}

#[test]
fn click_attribution_runs_exactly_once() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "clicks-e2e";
    let (imps, clicks, out) = ("clicks-impressions", "clicks-clicks", "clicks-out");
    create_topics(b, &[(imps, 2), (clicks, 2), (out, 2)]);
    let min = 60_000i64;
    let n = 100;
    // Impression i at 1000 + i seconds; every third is clicked 2 minutes later, every fifth (not
    // clicked in time) 6 minutes later.
    let base = 1_000_000i64;
    let imp: Vec<(String, String, i64)> = (0..n)
        .map(|i| {
            (
                format!("i{i}"),
                json(&Impression {
                    ad_id: format!("ad{}", i % 7),
                    user: format!("u{i}"),
                }),
                base + i as i64 * 1000,
            )
        })
        .collect();
    let mut clk: Vec<(String, String, i64)> = (0..n)
        .filter_map(|i| {
            let at = base + i as i64 * 1000;
            let v = json(&Click {
                position: "top".into(),
            });
            if i % 3 == 0 {
                Some((format!("i{i}"), v, at + 2 * min))
            } else if i % 5 == 0 {
                Some((format!("i{i}"), v, at + 6 * min))
            } else {
                None
            }
        })
        .collect();
    // In time order: within a partition records are processed by offset, and a late click
    // produced first would move stream time past earlier impressions' windows.
    clk.sort_by_key(|(_, _, t)| *t);
    let as_recs = |v: &[(String, String, i64)]| {
        v.iter()
            .map(|(k, v, t)| (Some(k.clone()), Some(v.clone()), Some(*t)))
            .collect::<Vec<_>>()
    };
    fn borrow(
        v: &[(Option<String>, Option<String>, Option<i64>)],
    ) -> Vec<(Option<&str>, Option<&str>, Option<i64>)> {
        v.iter()
            .map(|(k, v, t)| (k.as_deref(), v.as_deref(), *t))
            .collect()
    }
    let (ir, cr) = (as_recs(&imp), as_recs(&clk));
    produce_with_timestamps(b, imps, &borrow(&ir));
    produce_with_timestamps(b, clicks, &borrow(&cr));

    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        attribution_topology(imps, clicks, out).unwrap(),
        test_config(app, b, "exactly_once_v2", 2, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    wait_processed(&streams, (ir.len() + cr.len()) as u64);
    // Move stream time of every task far past the last window so unclicked impressions close.
    let far = (base + n as i64 * 1000 + WINDOW_MS + 10 * min).to_string();
    let ticks: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("tick{i}"),
                json(&Impression {
                    ad_id: "tick".into(),
                    user: far.clone(),
                }),
            )
        })
        .collect();
    let t: i64 = far.parse().unwrap();
    let tr: Vec<_> = ticks
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(t)))
        .collect();
    produce_with_timestamps(b, imps, &tr);
    let tc: Vec<_> = ticks
        .iter()
        .map(|(k, _)| (Some(k.as_str()), Some(r#"{"position":"tick"}"#), Some(t)))
        .collect();
    produce_with_timestamps(b, clicks, &tc);

    let mut reader = TopicReader::new(b, out, true);
    let want = n + ticks.len();
    if !reader.poll_until(Duration::from_secs(60), |r| r.len() >= want) {
        let keys: std::collections::BTreeSet<String> =
            reader.records.iter().map(|r| r.key_str()).collect();
        let missing: Vec<String> = (0..n)
            .map(|i| format!("i{i}"))
            .chain((0..ticks.len()).map(|i| format!("tick{i}")))
            .filter(|k| !keys.contains(k))
            .collect();
        panic!(
            "{} of {want} attributions; missing {missing:?}",
            reader.records.len()
        );
    }
    reader.poll_for(Duration::from_millis(500));
    assert!(streams.close(Duration::from_secs(30)));

    let mut seen: BTreeMap<String, Attribution> = BTreeMap::new();
    for r in &reader.records {
        let a: Attribution = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        if let Some(prev) = seen.insert(r.key_str(), a.clone()) {
            let all: Vec<_> = reader
                .records
                .iter()
                .filter(|x| x.key == r.key)
                .map(|x| {
                    (
                        x.partition,
                        x.offset,
                        x.timestamp,
                        String::from_utf8_lossy(x.value.as_deref().unwrap_or_default())
                            .into_owned(),
                    )
                })
                .collect();
            panic!("{} twice: {prev:?} then {a:?}; all: {all:?}", r.key_str());
        }
    }
    for i in 0..n {
        let a = &seen[&format!("i{i}")];
        assert_eq!(a.click.is_some(), i % 3 == 0, "impression i{i}: {a:?}");
        assert_eq!(a.ad_id, format!("ad{}", i % 7));
    }
}

#[test]
fn global_table_is_bootstrapped_before_processing_and_followed_after() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "global-e2e";
    let (orders, customers, out) = ("global-orders", "global-customers", "global-out");
    // Different partition counts: a global table needs no co-partitioning.
    create_topics(b, &[(orders, 3), (customers, 1), (out, 1)]);
    let recs: Vec<(String, String)> = (0..50)
        .map(|i| (format!("c{i}"), format!("name{i}")))
        .collect();
    let rr: Vec<_> = recs
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), None))
        .collect();
    produce_with_timestamps(b, customers, &rr);
    let builder = StreamsBuilder::new();
    let table = builder.global_table::<String, String>(
        customers,
        Consumed::default(),
        Materialized::as_("customers-global"),
    );
    builder
        .stream::<String, String>(orders)
        .join_global(
            &table,
            |_, c: &String| c.clone(),
            |c: &String, name: &String| format!("{c}={name}"),
        )
        .to(out);
    let topology = builder.build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        topology,
        test_config(app, b, "exactly_once_v2", 2, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    // Orders produced right after start see every customer: start() bootstrapped the table.
    let first: Vec<(String, String)> = (0..50)
        .map(|i| (format!("o{i}"), format!("c{i}")))
        .collect();
    let fr: Vec<_> = first
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), None))
        .collect();
    produce_with_timestamps(b, orders, &fr);
    let mut reader = TopicReader::new(b, out, true);
    assert!(reader.poll_until(Duration::from_secs(60), |r| r.len() >= 50));
    // An update to the table topic reaches the running instance through the global thread.
    produce_with_timestamps(b, customers, &[(Some("c7"), Some("renamed"), None)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        produce_with_timestamps(b, orders, &[(Some("probe"), Some("c7"), None)]);
        reader.poll_for(Duration::from_millis(300));
        if reader
            .records
            .iter()
            .any(|r| r.value.as_deref() == Some(b"c7=renamed"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the global table never saw the update"
        );
    }
    assert!(streams.close(Duration::from_secs(30)));
    let firsts: Vec<String> = reader.records[..50]
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    for i in 0..50 {
        assert!(
            firsts.contains(&format!("c{i}=name{i}")),
            "c{i} missing: {firsts:?}"
        );
    }
}
