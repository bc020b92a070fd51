//! Two instances share the partitions of one application; when one leaves, the other takes over
//! its tasks (restoring their state) and the output stays exact under exactly_once_v2.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use streams_core::{KafkaStreams, State};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

#[test]
fn two_instances_share_partitions_and_survive_one_leaving() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "two-instances";
    let (input, output) = ("two-in", "two-out");
    create_topics(b, &[(input, 4), (output, 4)]);
    let topology = || word_count_topology(input, output).unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 1, dir_a.path()),
    )
    .unwrap();
    let mut bb = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 1, dir_b.path()),
    )
    .unwrap();
    a.start().unwrap();
    bb.start().unwrap();
    a.wait_until_running(Duration::from_secs(60)).unwrap();
    bb.wait_until_running(Duration::from_secs(60)).unwrap();

    let mut all: Vec<String> = Vec::new();
    let round = |n: usize, all: &mut Vec<String>| {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("w{} x{} round{n}", i % 7, i % 3))
            .collect();
        let recs: Vec<(Option<&str>, Option<&str>)> =
            lines.iter().map(|l| (None, Some(l.as_str()))).collect();
        produce(b, input, &recs);
        all.extend(lines);
    };
    let mut reader = TopicReader::new(b, output, true);
    round(1, &mut all);
    await_counts(
        &mut reader,
        &expected_counts(all.iter().map(String::as_str)),
        Duration::from_secs(60),
    );
    let (pa, pb) = (
        a.counters().processed.load(Ordering::SeqCst),
        bb.counters().processed.load(Ordering::SeqCst),
    );
    assert!(pa > 0 && pb > 0, "both instances process: a={pa} b={pb}");

    // B leaves; A gets all tasks, restores B's share from the changelogs and continues.
    assert!(bb.close(Duration::from_secs(30)));
    assert_eq!(bb.state(), State::NotRunning);
    round(2, &mut all);
    let want = expected_counts(all.iter().map(String::as_str));
    await_counts(&mut reader, &want, Duration::from_secs(90));
    assert!(
        a.counters().restored.load(Ordering::SeqCst) > 0,
        "A restored B's tasks"
    );
    assert_exact_updates(&reader, &want);
    assert!(a.close(Duration::from_secs(30)));
}
