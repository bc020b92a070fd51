//! End-to-end scenarios that more than one test binary runs (on the shared cluster, on Kafka 3.9,
//! under KIP-848): each takes the cluster's bootstrap servers and an application id that names
//! its topics, and asserts the outputs record by record.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::{KafkaStreams, State};
use streams_examples::orders::{enrichment_topology, Customer, EnrichedOrder, Order};
use streams_examples::word_count_topology;

use crate::kafka::{create_topics, produce, produce_with_timestamps, TopicReader};
use crate::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};

/// The input lines of [`word_count_end_to_end`].
pub const WORD_COUNT_LINES: &[&str] = &[
    "the quick brown fox",
    "jumps over the lazy dog",
    "The dog barks",
    "the fox runs",
    "quick quick QUICK",
    "lazy days of the dog",
];

/// Word count under `guarantee` on the cluster at `b` (`app` names the application and its topics),
/// with `extra` settings: every count update exactly once in the read_committed output, one
/// transactional producer per thread under exactly_once_v2 (KIP-447), clean state transitions.
pub fn word_count_end_to_end(b: &str, app: &str, guarantee: &str, extra: &[(&str, &str)]) {
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 4), (&output, 4)]);
    let lines: Vec<(Option<&str>, Option<&str>)> =
        WORD_COUNT_LINES.iter().map(|l| (None, Some(*l))).collect();
    produce(b, &input, &lines);

    let state = tempfile::tempdir().unwrap();
    let mut config = test_config(app, b, guarantee, 2, state.path());
    for (k, v) in extra {
        config.set(k, v).unwrap();
    }
    let mut streams =
        KafkaStreams::new(word_count_topology(&input, &output).unwrap(), config).unwrap();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = transitions.clone();
    streams.set_state_listener(move |new, old| seen.lock().unwrap().push((old, new)));
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();

    let want = expected_counts(WORD_COUNT_LINES.iter().copied());
    let mut reader = TopicReader::new(b, &output, true);
    await_counts(&mut reader, &want, Duration::from_secs(60));
    assert_exact_updates(&reader, &want);
    // KIP-447: exactly_once_v2 has one transactional producer per thread (2); legacy
    // exactly_once one per task (2 sub-topologies x 4 partitions).
    // Counted once the group has settled: a cooperative hand-over of a task between the two
    // threads closes its legacy producer one generation before the new owner opens one.
    let expected_producers = match guarantee {
        "exactly_once_v2" => 2,
        "exactly_once" => 8,
        _ => 0,
    };
    let producers = || {
        streams
            .counters()
            .transactional_producers
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while producers() != expected_producers && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(producers(), expected_producers);
    assert!(streams.close(Duration::from_secs(30)));
    assert_eq!(streams.state(), State::NotRunning);
    let t = transitions.lock().unwrap().clone();
    assert_eq!(
        t.first(),
        Some(&(State::Created, State::Rebalancing)),
        "{t:?}"
    );
    assert!(t.contains(&(State::Rebalancing, State::Running)), "{t:?}");
    assert_eq!(
        &t[t.len() - 2..],
        &[
            (State::Running, State::PendingShutdown),
            (State::PendingShutdown, State::NotRunning)
        ],
        "{t:?}"
    );
}

/// `v` as JSON.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

/// Waits until `streams` has processed `n` records (failing on an application error).
pub fn wait_processed(streams: &KafkaStreams, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams.counters().processed.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} records processed",
            streams.counters().processed.load(Ordering::SeqCst)
        );
        assert!(streams.last_error().is_none(), "{:?}", streams.last_error());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The order-enrichment example (a stream-table join) under exactly_once_v2 on the cluster at
/// `b`: every order enriched exactly once, with its customer's name where the table has one.
pub fn order_enrichment_end_to_end(b: &str, app: &str) {
    let (orders, customers, out) = (
        &format!("{app}-orders"),
        &format!("{app}-customers"),
        &format!("{app}-out"),
    );
    create_topics(b, &[(orders, 3), (customers, 2), (out, 2)]);
    let known = 20;
    let cust: Vec<(String, String)> = (0..known)
        .map(|i| {
            (
                format!("c{i}"),
                json(&Customer {
                    name: format!("name{i}"),
                    tier: if i % 2 == 0 { "gold" } else { "silver" }.into(),
                }),
            )
        })
        .collect();
    let recs: Vec<_> = cust
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(1_000)))
        .collect();
    produce_with_timestamps(b, customers, &recs);

    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        enrichment_topology(orders, customers, out).unwrap(),
        test_config(app, b, "exactly_once_v2", 2, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    // The table first: stream-table joins see the table as it is when the order is processed.
    wait_processed(&streams, known as u64);

    let n = 200;
    let ord: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("o{i}"),
                json(&Order {
                    order_id: format!("o{i}"),
                    customer_id: format!("c{}", i % 25),
                    item: "tea".into(),
                    amount_cents: i as i64,
                }),
            )
        })
        .collect();
    let recs: Vec<_> = ord
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (Some(k.as_str()), Some(v.as_str()), Some(2_000 + i as i64)))
        .collect();
    produce_with_timestamps(b, orders, &recs);

    let mut reader = TopicReader::new(b, out, true);
    assert!(
        reader.poll_until(Duration::from_secs(90), |r| r.len() >= n),
        "{} of {n} enriched orders",
        reader.records.len()
    );
    reader.poll_for(Duration::from_millis(500));
    assert!(streams.close(Duration::from_secs(30)));

    let mut seen: BTreeMap<String, EnrichedOrder> = BTreeMap::new();
    for r in &reader.records {
        let e: EnrichedOrder = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(r.key_str(), e.order.customer_id, "keyed by customer");
        let id = e.order.order_id.clone();
        assert!(seen.insert(id.clone(), e).is_none(), "order {id} twice");
    }
    assert_eq!(seen.len(), n);
    for (id, e) in &seen {
        let c: usize = e.order.customer_id[1..].parse().unwrap();
        let want = (c < known).then(|| format!("name{c}"));
        assert_eq!(e.customer_name, want, "order {id}");
    }
}
