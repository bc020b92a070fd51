//! State survives restarts: restored in full from the changelog into an empty state directory, and
//! only the changelog tail into a directory with a checkpoint.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::{KafkaStreams, StateRestoreListener};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

#[derive(Default)]
struct Progress {
    started: Mutex<Vec<(String, i32, i64, i64)>>,
    ended: Mutex<u64>,
}

impl StateRestoreListener for Progress {
    fn on_restore_start(&self, topic: &str, partition: i32, _store: &str, start: i64, end: i64) {
        self.started
            .lock()
            .unwrap()
            .push((topic.to_string(), partition, start, end));
    }
    fn on_batch_restored(&self, _: &str, _: i32, _: &str, _: i64, _: u64) {}
    fn on_restore_end(&self, _: &str, _: i32, _: &str, total: u64) {
        *self.ended.lock().unwrap() += total;
    }
}

fn lines(round: usize) -> Vec<String> {
    (0..20)
        .map(|i| format!("alpha beta{} gamma{} round{round}", i % 3, i % 5))
        .collect()
}

fn restart_restores(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = format!("restore-{}", guarantee.replace('_', "-"));
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 3), (&output, 3)]);
    let topology = || word_count_topology(&input, &output).unwrap();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut reader = TopicReader::new(b, &output, true);
    let mut all: Vec<String> = Vec::new();
    let produce_round = |round: usize, all: &mut Vec<String>| {
        let l = lines(round);
        let recs: Vec<(Option<&str>, Option<&str>)> =
            l.iter().map(|s| (None, Some(s.as_str()))).collect();
        produce(b, &input, &recs);
        all.extend(l);
    };

    // Run 1, state in A.
    produce_round(1, &mut all);
    let mut s1 =
        KafkaStreams::new(topology(), test_config(&app, b, guarantee, 1, dir_a.path())).unwrap();
    s1.start().unwrap();
    await_counts(
        &mut reader,
        &expected_counts(all.iter().map(String::as_str)),
        Duration::from_secs(60),
    );
    assert!(s1.close(Duration::from_secs(30)));
    let run1_writes = reader.records.len() as u64;
    assert_eq!(
        s1.counters().restored.load(Ordering::SeqCst),
        0,
        "nothing to restore on a first run"
    );

    // Run 2: empty state dir B, so the counts must come back from the changelog in full.
    produce_round(2, &mut all);
    let progress = Arc::new(Progress::default());
    let mut s2 =
        KafkaStreams::new(topology(), test_config(&app, b, guarantee, 1, dir_b.path())).unwrap();
    s2.set_restore_listener(progress.clone());
    s2.start().unwrap();
    await_counts(
        &mut reader,
        &expected_counts(all.iter().map(String::as_str)),
        Duration::from_secs(60),
    );
    assert!(s2.close(Duration::from_secs(30)));
    // Word count writes one changelog record per output update (no cache in front of the store).
    let run2_writes = reader.records.len() as u64 - run1_writes;
    let full = s2.counters().restored.load(Ordering::SeqCst);
    assert_eq!(full, run1_writes, "run 2 restores all of run 1's changelog");
    assert_eq!(*progress.ended.lock().unwrap(), full);
    assert!(progress
        .started
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, start, _)| *start == 0));

    // Run 3: back to A, whose checkpoint predates run 2: only run 2's changelog tail is restored.
    produce_round(3, &mut all);
    let mut s3 =
        KafkaStreams::new(topology(), test_config(&app, b, guarantee, 1, dir_a.path())).unwrap();
    s3.start().unwrap();
    let want = expected_counts(all.iter().map(String::as_str));
    await_counts(&mut reader, &want, Duration::from_secs(60));
    let tail = s3.counters().restored.load(Ordering::SeqCst);
    assert!(s3.close(Duration::from_secs(30)));
    assert_eq!(
        tail,
        run2_writes,
        "run 3 restores only what run 2 wrote after A's checkpoint (changelog holds {})",
        run1_writes + run2_writes
    );

    // Across three runs and two state directories every count went up by exactly one each time.
    assert_exact_updates(&reader, &want);
}

#[test]
fn restart_restores_state_at_least_once() {
    restart_restores("at_least_once");
}

#[test]
fn restart_restores_state_exactly_once_v2() {
    restart_restores("exactly_once_v2");
}
