//! Word count end to end on the real test broker, under each processing guarantee.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::{KafkaStreams, State};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

const LINES: &[&str] = &[
    "the quick brown fox",
    "jumps over the lazy dog",
    "The dog barks",
    "the fox runs",
    "quick quick QUICK",
    "lazy days of the dog",
];

fn run_word_count(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = format!("wc-{}", guarantee.replace('_', "-"));
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 4), (&output, 4)]);
    let lines: Vec<(Option<&str>, Option<&str>)> = LINES.iter().map(|l| (None, Some(*l))).collect();
    produce(b, &input, &lines);

    let state = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        word_count_topology(&input, &output).unwrap(),
        test_config(&app, b, guarantee, 2, state.path()),
    )
    .unwrap();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = transitions.clone();
    streams.set_state_listener(move |new, old| seen.lock().unwrap().push((old, new)));
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();

    let want = expected_counts(LINES.iter().copied());
    let mut reader = TopicReader::new(b, &output, true);
    await_counts(&mut reader, &want, Duration::from_secs(60));
    assert_exact_updates(&reader, &want);
    // KIP-447: exactly_once_v2 has one transactional producer per thread (2); legacy
    // exactly_once one per task (2 sub-topologies x 4 partitions).
    let producers = streams
        .counters()
        .transactional_producers
        .load(std::sync::atomic::Ordering::SeqCst);
    let expected_producers = match guarantee {
        "exactly_once_v2" => 2,
        "exactly_once" => 8,
        _ => 0,
    };
    assert_eq!(producers, expected_producers);
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

#[test]
fn missing_source_topic_fails_start_with_a_clear_error() {
    init_tracing();
    let broker = TestBroker::start();
    let state = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        word_count_topology("no-such-input", "wc-missing-out").unwrap(),
        test_config(
            "wc-missing",
            broker.bootstrap_servers(),
            "at_least_once",
            1,
            state.path(),
        ),
    )
    .unwrap();
    let e = streams.start().unwrap_err().to_string();
    assert!(
        e.contains("source topic `no-such-input`") && e.contains("does not exist"),
        "{e}"
    );
    assert_eq!(streams.state(), State::Created);
}

#[test]
fn word_count_at_least_once() {
    run_word_count("at_least_once");
}

#[test]
fn word_count_exactly_once_v2() {
    run_word_count("exactly_once_v2");
}

#[test]
fn word_count_exactly_once_legacy() {
    run_word_count("exactly_once");
}

#[test]
fn record_cache_collapses_updates_of_hot_keys() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = ("wc-cache-in", "wc-cache-out");
    create_topics(b, &[(input, 2), (output, 2)]);
    let lines: Vec<String> = (0..300)
        .map(|i| format!("hot hot warm{} cold{i}", i % 3))
        .collect();
    let recs: Vec<(Option<&str>, Option<&str>)> =
        lines.iter().map(|l| (None, Some(l.as_str()))).collect();
    produce(b, input, &recs);
    let state = tempfile::tempdir().unwrap();
    let mut config = test_config("wc-cache", b, "exactly_once_v2", 1, state.path());
    config
        .set("statestore.cache.max.bytes", "10485760")
        .unwrap();
    config.set("commit.interval.ms", "1000").unwrap();
    let mut streams =
        KafkaStreams::new(word_count_topology(input, output).unwrap(), config).unwrap();
    streams.start().unwrap();
    let want = expected_counts(lines.iter().map(String::as_str));
    let mut reader = TopicReader::new(b, output, true);
    await_counts(&mut reader, &want, Duration::from_secs(60));
    let updates = streams_tests::wordcount::updates_per_word(&reader);
    // Each word's updates still only go up: no update is repeated or lost in the final value.
    for (w, seq) in &updates {
        assert!(seq.windows(2).all(|p| p[0] < p[1]), "`{w}`: {seq:?}");
    }
    let words: i64 = want.values().sum();
    assert!(
        updates["hot"].len() < 600 && (reader.records.len() as i64) < words,
        "the cache collapsed nothing: {} updates for {words} words, `hot` {} times",
        reader.records.len(),
        updates["hot"].len()
    );
    assert!(streams.close(Duration::from_secs(30)));
}
