//! Word count on the test broker under at_least_once, exactly_once_v2 and legacy exactly_once:
//! records/s (ratio against at_least_once in the same run) and the number of transactional
//! producers. `BENCH_LINES` (default 100000, 5 words each) and `BENCH_PARTITIONS` (default 16).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streams_core::{KafkaStreams, StreamsConfig};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, produce, TopicReader};
use streams_tests::TestBroker;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    name: &'static str,
    secs: f64,
    producers: usize,
}

fn run(
    b: &str,
    name: &'static str,
    guarantee: &str,
    commit_ms: &str,
    input: &str,
    words: usize,
) -> Run {
    let app = format!("bench-{name}");
    let output = format!("{app}-out");
    create_topics(b, &[(&output, env("BENCH_PARTITIONS", 16) as i32)]);
    let state = tempfile::tempdir().unwrap();
    let config = StreamsConfig::from_pairs([
        ("application.id", app.as_str()),
        ("bootstrap.servers", b),
        ("processing.guarantee", guarantee),
        ("commit.interval.ms", commit_ms),
        ("replication.factor", "1"),
        ("num.stream.threads", "2"),
        ("state.dir", state.path().to_str().unwrap()),
    ])
    .unwrap();
    let mut config = config;
    if let Ok(extra) = std::env::var("BENCH_CONFIG") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("BENCH_CONFIG is k=v,k=v");
            config.set(k, v).unwrap();
        }
    }
    let mut streams =
        KafkaStreams::new(word_count_topology(input, &output).unwrap(), config).unwrap();
    let mut reader = TopicReader::new(b, &output, true);
    streams.start().unwrap();
    // Throughput from the moment the group has settled (the first join waits 3 s on purpose).
    streams
        .wait_until_running(Duration::from_secs(120))
        .unwrap();
    let started = Instant::now();
    let done = reader.poll_until(Duration::from_secs(600), |r| r.len() >= words);
    let secs = started.elapsed().as_secs_f64();
    assert!(done, "{name}: {} of {words} updates", reader.records.len());
    let producers = streams
        .counters()
        .transactional_producers_created
        .load(Ordering::SeqCst);
    streams.close(Duration::from_secs(60));
    Run {
        name,
        secs,
        producers,
    }
}

fn main() {
    streams_tests::kafka::init_tracing();
    let lines = env("BENCH_LINES", 100_000);
    let partitions = env("BENCH_PARTITIONS", 16) as i32;
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let input = "bench-lines";
    create_topics(b, &[(input, partitions)]);
    let vocabulary: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let text: Vec<String> = (0..lines)
        .map(|i| {
            (0..5)
                .map(|j| vocabulary[(i * 7 + j * 131) % 1000].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let recs: Vec<(Option<&str>, Option<&str>)> =
        text.iter().map(|l| (None, Some(l.as_str()))).collect();
    produce(b, input, &recs);
    let words = lines * 5;

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs: Vec<Run> = [
        ("alos", "at_least_once"),
        ("eos-v2", "exactly_once_v2"),
        ("eos-legacy", "exactly_once"),
    ]
    .into_iter()
    .filter(|(n, _)| only.is_empty() || only.split(',').any(|o| o == *n))
    .map(|(n, g)| run(b, n, g, "100", input, words))
    .collect();
    let base = lines as f64 / runs[0].secs;
    println!("word count, {lines} lines ({words} words), {partitions} input partitions, 2 threads, commit.interval.ms 100");
    println!(
        "{:<12} {:>10} {:>12} {:>8} {:>10}",
        "guarantee", "seconds", "lines/s", "ratio", "txn prod."
    );
    for r in &runs {
        let rate = lines as f64 / r.secs;
        println!(
            "{:<12} {:>10.2} {:>12.0} {:>8.2} {:>10}",
            r.name,
            r.secs,
            rate,
            rate / base,
            r.producers
        );
    }
}
