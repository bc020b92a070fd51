//! Word count end to end on Apache Kafka, under each processing guarantee.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::{KafkaStreams, State};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::scenarios::word_count_end_to_end;
use streams_tests::wordcount::{await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

fn run_word_count(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let app = format!("wc-{}", guarantee.replace('_', "-"));
    word_count_end_to_end(broker.bootstrap_servers(), &app, guarantee, &[]);
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

/// A Kafka Streams (Java) properties file works unchanged: unprefixed client keys reach the
/// clients they are for under their librdkafka names, `main.consumer.` and `topic.` prefixes
/// apply, Java handler class names are understood, and Java-only keys are ignored with a reason.
#[test]
fn word_count_with_a_kafka_streams_properties_file() {
    init_tracing();
    let broker = TestBroker::start();
    word_count_end_to_end(
        broker.bootstrap_servers(),
        "wc-java-properties",
        "exactly_once_v2",
        &[
            ("linger.ms", "5"),
            ("fetch.max.wait.ms", "100"),
            ("max.request.size", "2097152"),
            ("main.consumer.max.poll.interval.ms", "300000"),
            ("topic.segment.bytes", "10485760"),
            ("acceptable.recovery.lag", "100"),
            ("sasl.jaas.config", "ignored;"),
            (
                "default.deserialization.exception.handler",
                "org.apache.kafka.streams.errors.LogAndFailExceptionHandler",
            ),
        ],
    );
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
