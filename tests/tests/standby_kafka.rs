//! Standby replicas on Apache Kafka: with `num.standby.replicas=1` the surviving instance keeps
//! a copy of the other's stores, so a failover restores only the changelog tail. The same
//! failover without standbys restores the whole changelog; both are measured and printed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use streams_core::{KafkaStreams, StreamsConfig, TaskId};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{await_counts, test_config};
use streams_tests::TestBroker;

const WORDS: usize = 500;
const RECORDS: usize = 12_000;

/// Each phase has its own application and topics on the shared cluster: `standby-<replicas>`.
fn app(replicas: u32) -> String {
    format!("standby-{replicas}")
}

fn config(b: &str, replicas: u32, dir: &Path) -> StreamsConfig {
    let mut c = test_config(&app(replicas), b, "exactly_once_v2", 1, dir);
    c.set("num.standby.replicas", &replicas.to_string())
        .unwrap();
    c
}

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("w{}", i % WORDS)).collect()
}

fn produce_lines(b: &str, app: &str, lines: &[String]) {
    let recs: Vec<(Option<&str>, Option<&str>)> =
        lines.iter().map(|l| (None, Some(l.as_str()))).collect();
    for chunk in recs.chunks(2000) {
        produce(b, &format!("{app}-in"), chunk);
    }
}

fn counts(n: usize) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in lines(0, n) {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// Per standby copy of a count task: the next changelog offset it would apply and the
/// changelog's end, as `all_local_store_partition_lags` reports them.
fn standby_positions(streams: &KafkaStreams, standbys: &[TaskId]) -> Vec<(i64, i64)> {
    let lags = streams.all_local_store_partition_lags().unwrap();
    standbys
        .iter()
        .filter(|t| t.subtopology == 1)
        .map(|t| {
            let lag = lags
                .values()
                .find_map(|partitions| partitions.get(&t.partition))
                .unwrap_or_else(|| panic!("no lag for standby {t}: {lags:?}"));
            (lag.current_offset_position, lag.end_offset_position)
        })
        .collect()
}

/// Whether `instance`'s standby copies of the count tasks have read the changelog's end.
fn standbys_caught_up(streams: &KafkaStreams, standbys: &[TaskId]) -> bool {
    let positions = standby_positions(streams, standbys);
    // The last record is a commit marker the copy's position may stop before.
    !positions.is_empty() && positions.iter().all(|(at, high)| at + 1 >= *high)
}

/// Two instances; A stops; returns (records B restored, ms until B's output resumed).
fn failover(replicas: u32) -> (u64, u128) {
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = app(replicas);
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 4), (&output, 4)]);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let topology = || word_count_topology(&input, &output).unwrap();
    let mut a = KafkaStreams::new(topology(), config(b, replicas, da.path())).unwrap();
    let mut bb = KafkaStreams::new(topology(), config(b, replicas, db.path())).unwrap();
    a.start().unwrap();
    bb.start().unwrap();
    a.wait_until_running(Duration::from_secs(60)).unwrap();
    bb.wait_until_running(Duration::from_secs(60)).unwrap();

    produce_lines(b, &app, &lines(0, RECORDS));
    let mut sent = RECORDS;
    let mut reader = TopicReader::new(b, &output, true);
    await_counts(&mut reader, &counts(RECORDS), Duration::from_secs(120));
    if replicas > 0 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !standbys_caught_up(&bb, &bb.standby_tasks()) {
            assert!(
                Instant::now() < deadline,
                "B's standby copies did not catch up: {:?}",
                bb.standby_tasks()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(a.standby_tasks().iter().any(|t| t.subtopology == 1));
        // Paused (KIP-834), B's copies stop following the changelog while A's count tasks write
        // to it; resumed, B processes its share and its copies catch up again.
        let standbys = bb.standby_tasks();
        bb.pause();
        std::thread::sleep(Duration::from_millis(500));
        let at_pause: Vec<i64> = standby_positions(&bb, &standbys)
            .iter()
            .map(|p| p.0)
            .collect();
        // Keyed, so every input partition (A's too) gets some: keyless records may all go to one.
        let keyed: Vec<(String, String)> = lines(sent, sent + WORDS)
            .into_iter()
            .enumerate()
            .map(|(i, l)| (format!("k{i}"), l))
            .collect();
        let recs: Vec<(Option<&str>, Option<&str>)> = keyed
            .iter()
            .map(|(k, l)| (Some(k.as_str()), Some(l.as_str())))
            .collect();
        produce(b, &format!("{app}-in"), &recs);
        sent += WORDS;
        let deadline = Instant::now() + Duration::from_secs(60);
        while standbys_caught_up(&bb, &standbys) {
            assert!(Instant::now() < deadline, "A's count tasks wrote nothing");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Longer than a following copy takes to read what A wrote.
        std::thread::sleep(Duration::from_secs(5));
        let later: Vec<i64> = standby_positions(&bb, &standbys)
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            later, at_pause,
            "a paused instance's copies followed the changelog"
        );
        bb.resume();
        await_counts(&mut reader, &counts(sent), Duration::from_secs(120));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !standbys_caught_up(&bb, &bb.standby_tasks()) {
            assert!(
                Instant::now() < deadline,
                "B's standby copies did not catch up after resume"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    } else {
        assert!(bb.standby_tasks().is_empty());
    }

    let restored_before = bb
        .counters()
        .restored
        .load(std::sync::atomic::Ordering::SeqCst);
    let stopped = Instant::now();
    assert!(a.close(Duration::from_secs(30)));
    // Every word once more: B must run all the count tasks to produce every new count.
    let more = lines(sent, sent + WORDS);
    produce_lines(b, &app, &more);
    await_counts(&mut reader, &counts(sent + WORDS), Duration::from_secs(120));
    let resumed_ms = stopped.elapsed().as_millis();
    let restored = bb
        .counters()
        .restored
        .load(std::sync::atomic::Ordering::SeqCst)
        - restored_before;
    assert!(bb.standby_tasks().is_empty(), "alone, B keeps no copies");
    assert!(bb.close(Duration::from_secs(30)));
    (restored, resumed_ms)
}

#[test]
fn standby_replicas_make_failover_restore_only_the_tail() {
    init_tracing();
    let (cold, cold_ms) = failover(0);
    let (warm, warm_ms) = failover(1);
    println!(
        "failover after the other instance stops ({RECORDS} updates of {WORDS} words, 4 count tasks):\n\
         num.standby.replicas=0: {cold} changelog records restored, output resumed after {cold_ms} ms\n\
         num.standby.replicas=1: {warm} changelog records restored, output resumed after {warm_ms} ms"
    );
    // Without a copy B restores A's two count tasks from scratch: about half the changelog.
    assert!(cold >= (RECORDS / 4) as u64, "{cold}");
    // With one it restores what its copy had not checkpointed: a few commits' worth at most.
    assert!(warm * 10 <= cold, "standby {warm} vs none {cold}");
}
