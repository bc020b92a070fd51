//! The new consumer group protocol (KIP-848, `group.protocol=consumer`, Kafka >= 4.0): the broker
//! assigns partitions (its `range` assignor keeps co-partitioned partitions together) and owns the
//! session timing. Word count under exactly_once_v2, and the exactly-once verifier with SIGKILLs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::KafkaStreams;
use streams_examples::verify::{default_options, verify};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing};
use streams_tests::scenarios::word_count_end_to_end;
use streams_tests::verify_child::{assert_exactly_once, spawn, worker_main};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

const KIP848: (&str, &str) = ("consumer.group.protocol", "consumer");

/// Not a test: the entry point of a verifier child (see `verify_child`).
#[test]
#[ignore = "runs only as a child of the verify test"]
fn verify_worker() {
    worker_main().unwrap();
}

#[test]
fn word_count_exactly_once_v2_with_the_consumer_group_protocol() {
    init_tracing();
    let broker = TestBroker::start();
    word_count_end_to_end(
        broker.bootstrap_servers(),
        "wc-kip848",
        "exactly_once_v2",
        &[KIP848],
    );
}

#[test]
fn classic_only_settings_are_refused_with_the_reason() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("kip848-bad-in", 1), ("kip848-bad-out", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("kip848-bad", b, "exactly_once_v2", 1, dir.path());
    config.set(KIP848.0, KIP848.1).unwrap();
    config.set("consumer.session.timeout.ms", "6000").unwrap();
    let topology = word_count_topology("kip848-bad-in", "kip848-bad-out").unwrap();
    let e = KafkaStreams::new(topology, config)
        .and_then(|mut s| s.start())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("session.timeout.ms") && e.contains("group.protocol=consumer"),
        "{e}"
    );
}

#[test]
fn exactly_once_v2_survives_sigkills_with_the_consumer_group_protocol() {
    init_tracing();
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = default_options(broker.bootstrap_servers(), "exactly_once_v2", dir.path());
    o.application_id = format!("verify-kip848-{}", std::process::id());
    o.records = 10_000;
    o.keys = 40;
    o.kills = 10;
    o.kill_interval = Duration::from_millis(2500);
    o.produce_duration = Duration::from_secs(30);
    o.timeout = Duration::from_secs(420);
    o.worker_config = vec![(KIP848.0.into(), KIP848.1.into())];
    let report = verify(&o, &spawn).unwrap();
    assert_eq!(report.kills, 10, "{report}");
    assert_exactly_once(&report);
}
