//! Transactional state stores under exactly_once_v2: an instance holding a million-entry count
//! store is killed with SIGKILL mid-transaction. On restart its stores open as the last commit
//! left them and restore only the changelog tail written since; the verifier audits every output.
//!
//! The children are this test binary itself (see `streams_tests::verify_child`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use streams_core::{KafkaStreams, Topology};
use streams_dsl::{Grouped, Materialized, StreamsBuilder};
use streams_examples::verify::{default_options, verify, VerifyReport};
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::verify_child::{assert_exactly_once, spawn, worker_main};
use streams_tests::wordcount::{assert_exact_updates, await_counts, test_config};
use streams_tests::TestBroker;

/// Not a test: the entry point of a child instance.
#[test]
#[ignore = "runs only as a child of the verify tests"]
fn verify_worker() {
    worker_main().unwrap();
}

/// Entries the count store holds (committed) when the kill lands.
const KEYS: usize = 1_000_000;

/// One instance, one thread, one partition: one count store. The input writes every key once;
/// the kill lands once a million keys are counted, while the instance still works through the
/// input (more keys), so mid-transaction.
fn kill_after_a_million_keys(broker: &TestBroker, transactional: bool) -> VerifyReport {
    let dir = tempfile::tempdir().unwrap();
    let mut o = default_options(broker.bootstrap_servers(), "exactly_once_v2", dir.path());
    o.application_id = format!("{}-txn-stores-{transactional}", o.application_id);
    o.instances = 1;
    o.threads = 1;
    o.partitions = 1;
    o.keys = KEYS + KEYS / 8;
    o.records = o.keys;
    o.kills = 1;
    o.kills_after_counted_keys = Some(KEYS);
    o.kill_interval = Duration::from_millis(100);
    o.produce_duration = Duration::from_secs(20);
    o.timeout = Duration::from_secs(600);
    o.worker_config.push((
        "enable.transactional.statestores".into(),
        transactional.to_string(),
    ));
    let report = verify(&o, &spawn).unwrap();
    assert_exactly_once(&report);
    assert_eq!(report.kills, 1, "{report}");
    report
}

#[test]
fn kill_mid_transaction_restores_only_the_changelog_tail() {
    init_tracing();
    let broker = TestBroker::start();
    let report = kill_after_a_million_keys(&broker, true);
    // The first start restores nothing; every restoration after the kill starts from the offset
    // the store recorded with its last commit.
    let after_kill: Vec<_> = report.restores.iter().filter(|r| r.from > 0).collect();
    let counts = after_kill
        .iter()
        .find(|r| r.topic.ends_with("-counts-changelog"))
        .unwrap_or_else(|| panic!("no restoration of the count store after the kill:\n{report}"));
    // Committed changelog records after the offset the store recorded, as the restart found
    // them: what a restore had to read at most.
    let since_commit = (counts.to - counts.from) as u64;
    println!(
        "count store after kill -9: restored {} changelog records in {} ms; committed after its recorded offset {}: {} offsets",
        counts.restored,
        counts.elapsed.as_millis(),
        counts.from,
        since_commit
    );
    // The store commits right after the Kafka transaction, so a kill that lands between the two
    // (the verifier kills as soon as it sees the committed outputs) leaves the store one
    // transaction behind, e.g. at 997,547 with 4,000 records to restore. Without transactional
    // stores it would restore from 0.
    assert!(
        counts.from >= KEYS as i64 * 9 / 10,
        "the store kept (nearly) the million entries it committed:\n{report}"
    );
    for r in &after_kill {
        assert!(
            r.restored <= (r.to - r.from) as u64,
            "{} restored more than was written after its recorded offset:\n{report}",
            r.topic
        );
    }
    assert!(
        counts.restored < KEYS as u64 / 10,
        "a tail, not the store:\n{report}"
    );
}

/// The behaviour before transactional stores, for comparison: a crash under exactly-once wipes
/// the stores, and the restart restores every changelog from the start.
#[test]
#[ignore = "a baseline for the issue note: restores a million records (run with --ignored)"]
fn without_transactional_stores_a_kill_restores_everything() {
    init_tracing();
    let broker = TestBroker::start();
    let report = kill_after_a_million_keys(&broker, false);
    let counts = report
        .restores
        .iter()
        .rev()
        .find(|r| r.topic.ends_with("-counts-changelog"))
        .unwrap_or_else(|| panic!("no restoration of the count store:\n{report}"));
    println!(
        "count store after kill -9 without transactional stores: restored {} changelog records in {} ms",
        counts.restored,
        counts.elapsed.as_millis()
    );
    assert!(counts.restored >= KEYS as u64, "{report}");
}

/// A count per key of the input, without a repartition: the store is in the task that reads
/// the input, so its writes pile up as input is processed.
fn count_by_key(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>(input)
        .group_by_key(Grouped::as_("by-key"))
        .count(Materialized::as_("counts"))
        .to_stream()
        .to(output);
    b.build().unwrap()
}

/// `statestore.uncommitted.max.bytes`: a thread whose stores hold more uncommitted writes than
/// its share commits before `commit.interval.ms` is up, so the buffer stays bounded. With a
/// ten-minute interval, the counts become visible to a read_committed reader only through such
/// early commits.
#[test]
fn uncommitted_writes_over_the_limit_commit_early() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "txn-store-bound";
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 2), (&output, 2)]);
    let keys: Vec<String> = (0..3000).map(|i| format!("k{}", i % 500)).collect();
    let records: Vec<(Option<&str>, Option<&str>)> =
        keys.iter().map(|k| (Some(k.as_str()), Some("x"))).collect();
    produce(b, &input, &records);
    let want: BTreeMap<String, i64> = (0..500).map(|i| (format!("k{i}"), 6)).collect();

    let state = tempfile::tempdir().unwrap();
    let mut config = test_config(app, b, "exactly_once_v2", 1, state.path());
    config.set("commit.interval.ms", "600000").unwrap();
    config
        .set("statestore.uncommitted.max.bytes", "8192")
        .unwrap();
    let mut streams = KafkaStreams::new(count_by_key(&input, &output), config).unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let mut reader = TopicReader::new(b, &output, true);
    // Whatever is under the limit at the end waits for the interval (or the close).
    let visible = reader.poll_until(Duration::from_secs(90), |recs| recs.len() >= 2500);
    let commits = streams.counters().commits.load(Ordering::SeqCst);
    println!(
        "{commits} commits, {} of 3000 updates visible before the interval, at an 8 KiB uncommitted limit",
        reader.records.len()
    );
    assert!(
        visible,
        "only {} updates became visible",
        reader.records.len()
    );
    assert!(commits >= 5, "{commits} commits: the limit forced too few");
    // A clean close commits what was processed; a restart with the usual interval does the rest
    // from the stores' recorded offsets.
    assert!(streams.close(Duration::from_secs(30)));
    let config = test_config(app, b, "exactly_once_v2", 1, state.path());
    let mut streams = KafkaStreams::new(count_by_key(&input, &output), config).unwrap();
    streams.start().unwrap();
    await_counts(&mut reader, &want, Duration::from_secs(60));
    assert_exact_updates(&reader, &want);
    assert!(streams.close(Duration::from_secs(30)));
}
