//! Standby replicas on Apache Kafka: with `num.standby.replicas=1` the surviving instance keeps
//! a copy of the other's stores, so a failover restores only the changelog tail. The same
//! failover without standbys restores the whole changelog; both are measured and printed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use state_stores::OffsetCheckpoint;
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

/// Whether `instance`'s standby copies of the count tasks have checkpointed the changelog's end.
fn standbys_caught_up(b: &str, app: &str, state: &Path, standbys: &[TaskId]) -> bool {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .create()
        .unwrap();
    let count_tasks: Vec<&TaskId> = standbys.iter().filter(|t| t.subtopology == 1).collect();
    !count_tasks.is_empty()
        && count_tasks.iter().all(|t| {
            let topic = &format!("{app}-counts-changelog");
            let (_, high) = c
                .fetch_watermarks(topic, t.partition, Duration::from_secs(10))
                .unwrap();
            let cp = OffsetCheckpoint::new(state.join(app).join(t.to_string()).join(".checkpoint"));
            let at = cp
                .read()
                .ok()
                .flatten()
                .and_then(|o| o.get(&(topic.to_string(), t.partition)).copied())
                .unwrap_or(-1);
            // The last record is a commit marker the copy's position may stop before.
            at + 1 >= high
        })
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
    let mut reader = TopicReader::new(b, &output, true);
    await_counts(&mut reader, &counts(RECORDS), Duration::from_secs(120));
    if replicas > 0 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !standbys_caught_up(b, &app, db.path(), &bb.standby_tasks()) {
            assert!(
                Instant::now() < deadline,
                "B's standby copies did not catch up: {:?}",
                bb.standby_tasks()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(a.standby_tasks().iter().any(|t| t.subtopology == 1));
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
    let more = lines(RECORDS, RECORDS + WORDS);
    produce_lines(b, &app, &more);
    await_counts(
        &mut reader,
        &counts(RECORDS + WORDS),
        Duration::from_secs(120),
    );
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
