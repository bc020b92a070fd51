//! The application reset tool: refuses while instances run; a dry run changes nothing; a reset
//! makes the application reprocess its input from scratch (same final counts, not doubled).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::runtime::reset::{reset_application, ResetOptions, ResetTo};
use streams_core::KafkaStreams;
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, topic_names, TopicReader};
use streams_tests::wordcount::{await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

#[test]
fn reset_reprocesses_from_scratch_and_refuses_while_running() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "reset-app";
    let (input, output) = ("reset-in", "reset-out");
    create_topics(b, &[(input, 2), (output, 2)]);
    let lines: Vec<String> = (0..30)
        .map(|i| format!("alpha beta{} gamma", i % 4))
        .collect();
    let recs: Vec<(Option<&str>, Option<&str>)> =
        lines.iter().map(|l| (None, Some(l.as_str()))).collect();
    produce(b, input, &recs);
    let want = expected_counts(lines.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(app, b, "exactly_once_v2", 1, dir.path());
    let mut reader = TopicReader::new(b, output, true);

    let mut s =
        KafkaStreams::new(word_count_topology(input, output).unwrap(), config.clone()).unwrap();
    s.start().unwrap();
    await_counts(&mut reader, &want, Duration::from_secs(60));
    let options = |dry_run| ResetOptions {
        input_topics: vec![input.to_string()],
        to: ResetTo::Earliest,
        dry_run,
    };
    let err = reset_application(&config, &options(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("active members"), "{err}");
    assert!(s.close(Duration::from_secs(30)));

    let plan = reset_application(&config, &options(true)).unwrap();
    println!("{plan}");
    // A partition the input's records did not land on has no committed offset (-1, "none").
    let committed: i64 = plan
        .offsets
        .iter()
        .map(|(_, _, old, _)| (*old).max(0))
        .sum();
    assert_eq!(committed, lines.len() as i64, "{plan}");
    assert!(
        plan.offsets.iter().all(|(_, _, _, new)| *new == 0),
        "{plan}"
    );
    assert!(
        plan.deleted_topics
            .iter()
            .any(|t| t.ends_with("-counts-changelog")),
        "{plan}"
    );
    assert!(
        plan.deleted_topics
            .iter()
            .any(|t| t.ends_with("-repartition")),
        "{plan}"
    );
    assert!(plan.removed_state_dir.is_some());
    assert!(
        topic_names(b).contains(&format!("{app}-counts-changelog")),
        "a dry run deletes nothing"
    );
    assert!(config.app_state_dir().exists());

    let done = reset_application(&config, &options(false)).unwrap();
    assert_eq!(done, plan);
    assert!(!config.app_state_dir().exists());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while topic_names(b).contains(&format!("{app}-counts-changelog")) {
        assert!(
            std::time::Instant::now() < deadline,
            "changelog not deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // From scratch: the counts come out again, the same, not doubled.
    let updates_before = reader.records.len();
    let mut s = KafkaStreams::new(word_count_topology(input, output).unwrap(), config).unwrap();
    s.start().unwrap();
    assert!(
        reader.poll_until(Duration::from_secs(60), |r| r.len() >= 2 * updates_before),
        "state {:?}, error {:?}, processed {}, {} updates",
        s.state(),
        s.last_error(),
        s.counters()
            .processed
            .load(std::sync::atomic::Ordering::SeqCst),
        reader.records.len()
    );
    await_counts(&mut reader, &want, Duration::from_secs(30));
    assert!(s.close(Duration::from_secs(30)));
}
