//! Taking over a Kafka Streams (Java) application: the Java app (`tests/oracle/src/TakeoverApp.java`)
//! runs under exactly_once_v2 on Apache Kafka and leaves the group; this project's same topology with
//! the same `application.id` resumes from its committed offsets, restores its stores from Java's
//! changelog topics (count, windowed count, session count, table) and continues; then Java takes
//! over again from a fresh state directory, restoring what this project wrote. Every output record
//! is audited: each count update exactly once, in order, across both switches.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use std::sync::Arc;

use streams_core::serdes::{Serde, Serdes};
use streams_core::{KafkaStreams, Topology};
use streams_dsl::{
    Consumed, Grouped, Materialized, Produced, SessionWindowedSerde, SessionWindows,
    StreamsBuilder, TimeWindowedSerde, TimeWindows,
};
use streams_tests::kafka::{
    create_topics, init_tracing, long, produce_with_timestamps, ReadRecord, TopicReader,
};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

/// One takeover at a time: each runs a JVM application next to the broker's, on 2 cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Kafka Streams application, stopped (leaving the group) on drop if the test did not.
struct JavaApp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl JavaApp {
    fn start(bootstrap: &str, app: &str, state: &Path, describe: &Path, args: &[&str]) -> JavaApp {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let build = Command::new("bash")
            .arg(here.join("oracle/build.sh"))
            .output()
            .expect("bash runs tests/oracle/build.sh");
        assert!(
            build.status.success(),
            "building the Java application failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let classpath = String::from_utf8(build.stdout).unwrap();
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(classpath.trim())
            .arg("TakeoverApp")
            .args([bootstrap, app])
            .arg(state)
            .arg(describe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("java runs TakeoverApp");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let java = JavaApp {
            child,
            stdin,
            lines,
        };
        java.expect("RUNNING", Duration::from_secs(90));
        java
    }

    /// Waits for the line `want`; other state lines (a rebalance prints RUNNING again) are passed
    /// over, an ERROR state fails the test.
    fn expect(&self, want: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("the Java application never printed {want}: {e}"));
            assert!(
                line != "ERROR" && line != "CLOSE TIMED OUT",
                "the Java application: {line}"
            );
            if line == want {
                return;
            }
        }
    }

    /// Closes the application, leaving the group, and waits for it to exit.
    fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        self.expect("CLOSED", Duration::from_secs(90));
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for JavaApp {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn words(line: &str) -> Vec<String> {
    line.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The Rust twin of TakeoverApp's word count: a count, a 10 s windowed count and a session count,
/// all unnamed, so every store and internal topic gets Kafka Streams' generated name.
fn word_count(text: &str, counts: &str, windowed: &str, sessions: &str) -> Topology {
    let s = Serdes::string;
    let b = StreamsBuilder::new();
    // Lines have no key: a nullable key serde, as Java's String serde reads null.
    let w = b
        .stream_with::<Option<String>, String>(&[text], Consumed::with(Serdes::nullable(s()), s()))
        .flat_map_values(|line: String| words(&line));
    w.group_by_with(|_, w| w.clone(), Grouped::with(s(), s()))
        .count(Materialized::default())
        .to_stream()
        .to_with(counts, Produced::with(s(), Serdes::nullable(Serdes::i64())));
    w.group_by_with(|_, w| w.clone(), Grouped::with(s(), s()))
        .windowed_by(TimeWindows::of_size_with_no_grace(10_000))
        .count(Materialized::default())
        .to_stream()
        .to_with(
            windowed,
            Produced::with(
                Arc::new(TimeWindowedSerde::new(s(), 10_000)),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    w.group_by_with(|_, w| w.clone(), Grouped::with(s(), s()))
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(3_600_000))
        .count(Materialized::default())
        .to_stream()
        .to_with(
            sessions,
            Produced::with(
                Arc::new(SessionWindowedSerde(s())),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    b.build().unwrap()
}

/// The Rust twin of TakeoverApp's enrichment: orders joined with the customers table.
fn enrich(orders: &str, customers: &str, out: &str) -> Topology {
    let s = Serdes::string;
    let b = StreamsBuilder::new();
    let table =
        b.table::<String, String>(customers, Consumed::with(s(), s()), Materialized::default());
    b.stream_with::<String, String>(&[orders], Consumed::with(s(), s()))
        .join_table(&table, |o, c| format!("{o}|{c}"))
        .to_with(out, Produced::with(s(), s()));
    b.build().unwrap()
}

/// The text of an output key: the word for `counts`; `word@start` for windowed counts and
/// `word@start-end` for sessions, decoded from Kafka Streams' windowed key layouts with this
/// project's serdes (both sides write these topics).
fn key_text(topic: usize, r: &ReadRecord) -> String {
    let s = Serdes::string;
    match topic {
        1 => {
            let w = TimeWindowedSerde::new(s(), 10_000)
                .deserialize(r.key.as_deref())
                .unwrap();
            format!("{}@{}", w.key, w.window.start)
        }
        2 => {
            let w = SessionWindowedSerde(s())
                .deserialize(r.key.as_deref())
                .unwrap();
            format!("{}@{}-{}", w.key, w.window.start, w.window.end)
        }
        _ => r.key_str(),
    }
}

/// Count updates per word (the key up to `@`), tombstones left out, sorted: session results are
/// keyed by their session's bounds, so a word's updates spread over partitions, unordered.
fn updates(topic: usize, records: &[ReadRecord]) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in records {
        let key = key_text(topic, r);
        let word = key.split('@').next().unwrap_or_default().to_string();
        if let Some(v) = r.value.as_deref() {
            m.entry(word).or_default().push(long(v));
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

/// Reads until every word's latest update is its expected total.
fn await_totals(topic: usize, reader: &mut TopicReader, want: &BTreeMap<String, i64>) {
    let reached = reader.poll_until(Duration::from_secs(240), |records| {
        let got: BTreeMap<String, i64> = updates(topic, records)
            .into_iter()
            .filter_map(|(w, u)| u.last().map(|n| (w, *n)))
            .collect();
        &got == want
    });
    assert!(
        reached,
        "{}: totals never reached {want:?}: {:?}",
        OUTPUTS[topic],
        updates(topic, &reader.records)
    );
}

/// Exactly once: every word's updates are 1, 2, ..., total (in output order too for `counts` and
/// `windowed`, whose keys stay on one partition: `assert_ordered`).
fn assert_exact(topic: usize, reader: &TopicReader, want: &BTreeMap<String, i64>) {
    let got = updates(topic, &reader.records);
    let what = OUTPUTS[topic];
    for (w, n) in want {
        let seq: Vec<i64> = (1..=*n).collect();
        assert_eq!(got.get(w), Some(&seq), "{what}: updates of `{w}`");
    }
    assert_eq!(got.len(), want.len(), "{what}: words {:?}", got.keys());
}

/// Each key's values in output order are increasing.
fn assert_ordered(topic: usize, reader: &TopicReader) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in &reader.records {
        let n = long(r.value.as_deref().unwrap());
        let key = key_text(topic, r);
        let prev = last.insert(key.clone(), n).unwrap_or(0);
        assert_eq!(n, prev + 1, "{}: `{key}` after {prev}", OUTPUTS[topic]);
    }
}

/// The word count's outputs, in reader order.
const OUTPUTS: [&str; 3] = ["counts", "windowed", "sessions"];

#[test]
fn word_count_state_moves_from_kafka_streams_and_back() {
    init_tracing();
    let _one = exclusive();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "takeover-word-count";
    let (text, counts, windowed, sessions) = (
        "takeover-text",
        "takeover-counts",
        "takeover-windowed",
        "takeover-sessions",
    );
    for t in [text, counts, windowed, sessions] {
        create_topics(b, &[(t, 3)]);
    }
    let java_args = ["word-count", text, counts, windowed, sessions];
    let dir = tempfile::tempdir().unwrap();
    let describe = dir.path().join("describe.txt");
    let mut readers: Vec<TopicReader> = [counts, windowed, sessions]
        .iter()
        .map(|t| TopicReader::new(b, t, true))
        .collect();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    // Rounds of lines, all within one 10 s window and one session, so that each round's counts
    // continue the state the previous owner left in its changelogs.
    let round = |r: i64, n: i64, totals: &mut BTreeMap<String, i64>| {
        let lines: Vec<(String, i64)> = (0..n)
            .map(|i| {
                (
                    format!("alpha beta{} gamma{} round{r}", i % 3, i % 7),
                    10_000 + r * 1_000 + i % 1_000,
                )
            })
            .collect();
        for (l, _) in &lines {
            for w in words(l) {
                *totals.entry(w).or_insert(0) += 1;
            }
        }
        let recs: Vec<_> = lines
            .iter()
            .map(|(l, ts)| (None, Some(l.as_str()), Some(*ts)))
            .collect();
        produce_with_timestamps(b, text, &recs);
    };
    let await_all = |readers: &mut Vec<TopicReader>, totals: &BTreeMap<String, i64>| {
        for (topic, reader) in readers.iter_mut().enumerate() {
            await_totals(topic, reader, totals);
        }
    };

    // Kafka Streams first, stopped in the middle of a large round: what it wrote to its
    // repartition topics but did not count yet is left for this project to read.
    round(1, 10_000, &mut totals);
    let round1_words: i64 = totals.values().sum();
    let java = JavaApp::start(b, app, &dir.path().join("java-a"), &describe, &java_args);
    assert!(
        readers[0].poll_until(Duration::from_secs(240), |r| r.len() >= 50),
        "Kafka Streams produced no counts"
    );
    java.stop();
    let mut counted_by_java = readers[0].records.len();
    readers[0].poll_for(Duration::from_secs(1));
    counted_by_java = counted_by_java.max(readers[0].records.len());
    let theirs = std::fs::read_to_string(&describe).unwrap();
    let topology = || word_count(text, counts, windowed, sessions);
    assert_eq!(
        topology().describe().to_string().trim(),
        theirs.trim(),
        "describe(): the same stores and internal topics as the Java topology"
    );

    // This project takes over: offsets, repartition topics and changelogs are Java's.
    round(2, 30, &mut totals);
    let mut ours = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 2, &dir.path().join("rust")),
    )
    .unwrap();
    ours.start().unwrap();
    await_all(&mut readers, &totals);
    assert!(ours.close(Duration::from_secs(30)));
    assert!(ours.last_error().is_none(), "{:?}", ours.last_error());
    assert!(
        (counted_by_java as i64) < round1_words,
        "Kafka Streams counted all {round1_words} words before it stopped: the takeover did not \
         start mid-stream"
    );

    // And Java again, from an empty state directory: it restores what this project wrote.
    round(3, 30, &mut totals);
    let java = JavaApp::start(b, app, &dir.path().join("java-b"), &describe, &java_args);
    await_all(&mut readers, &totals);
    java.stop();

    for (topic, reader) in readers.iter_mut().enumerate() {
        reader.poll_for(Duration::from_secs(1));
        assert_exact(topic, reader, &totals);
    }
    assert_ordered(0, &readers[0]);
    assert_ordered(1, &readers[1]);
}

#[test]
fn stream_table_join_state_moves_from_kafka_streams_and_back() {
    init_tracing();
    let _one = exclusive();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "takeover-enrich";
    let (orders, customers, out) = ("takeover-orders", "takeover-customers", "takeover-enriched");
    for t in [orders, customers, out] {
        create_topics(b, &[(t, 3)]);
    }
    let java_args = ["enrich", orders, customers, out];
    let dir = tempfile::tempdir().unwrap();
    let describe = dir.path().join("describe.txt");
    let mut reader = TopicReader::new(b, out, true);
    let customers_at = |version: &str, ids: std::ops::Range<usize>, ts: i64| {
        let rows: Vec<(String, String)> = ids
            .map(|i| (format!("c{i}"), format!("name{i}-{version}")))
            .collect();
        let recs: Vec<_> = rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(ts)))
            .collect();
        produce_with_timestamps(b, customers, &recs);
    };
    // Orders o{from}..o{to}, of customer c{i % 10}, each a second after the table rows it must see.
    let orders_at = |ids: std::ops::Range<usize>, ts: i64| {
        let rows: Vec<(String, String)> = ids
            .map(|i| (format!("c{}", i % 10), format!("o{i}")))
            .collect();
        let recs: Vec<_> = rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(ts)))
            .collect();
        // The table rows first: a stream-table join sees the table as it is when the order arrives.
        std::thread::sleep(Duration::from_secs(3));
        produce_with_timestamps(b, orders, &recs);
    };
    let await_n = |reader: &mut TopicReader, n: usize| {
        assert!(
            reader.poll_until(Duration::from_secs(120), |r| r.len() >= n),
            "{} of {n} enriched orders",
            reader.records.len()
        );
    };

    customers_at("v1", 0..10, 1_000);
    let java = JavaApp::start(b, app, &dir.path().join("java-a"), &describe, &java_args);
    orders_at(0..30, 2_000);
    await_n(&mut reader, 30);
    java.stop();
    let theirs = std::fs::read_to_string(&describe).unwrap();
    let topology = || enrich(orders, customers, out);
    assert_eq!(
        topology().describe().to_string().trim(),
        theirs.trim(),
        "describe(): the same store and changelog as the Java topology"
    );

    // This project takes over the table Java kept, and updates half of it.
    let mut ours = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 2, &dir.path().join("rust")),
    )
    .unwrap();
    ours.start().unwrap();
    customers_at("v2", 5..10, 3_000);
    orders_at(30..60, 4_000);
    await_n(&mut reader, 60);
    assert!(ours.close(Duration::from_secs(30)));
    assert!(ours.last_error().is_none(), "{:?}", ours.last_error());

    // Java again, from an empty state directory: its table comes from both owners' changelog writes.
    let java = JavaApp::start(b, app, &dir.path().join("java-b"), &describe, &java_args);
    orders_at(60..90, 5_000);
    await_n(&mut reader, 90);
    java.stop();
    reader.poll_for(Duration::from_secs(1));

    let mut seen = BTreeMap::new();
    for r in &reader.records {
        let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
        let (order, name) = v.split_once('|').unwrap();
        let i: usize = order[1..].parse().unwrap();
        let c = i % 10;
        assert_eq!(
            r.key_str(),
            format!("c{c}"),
            "order {order} keyed by its customer"
        );
        let version = if i >= 30 && c >= 5 { "v2" } else { "v1" };
        assert_eq!(name, format!("name{c}-{version}"), "order {order}");
        assert!(seen.insert(i, ()).is_none(), "order {order} enriched twice");
    }
    assert_eq!(seen.len(), 90, "every order enriched once");
}

/// The Rust twin of TakeoverApp's foreign-key join: orders (`customer|item`) joined with the
/// customer each names.
fn orders_with_customers(orders: &str, customers: &str, out: &str) -> Topology {
    let s = Serdes::string;
    let b = StreamsBuilder::new();
    let customers =
        b.table::<String, String>(customers, Consumed::with(s(), s()), Materialized::default());
    b.table::<String, String>(orders, Consumed::with(s(), s()), Materialized::default())
        .join_on_foreign_key(
            &customers,
            |order: &String| order.split('|').next().unwrap_or_default().to_string(),
            |order: &String, customer: &String| format!("{order}|{customer}"),
            Materialized::default(),
        )
        .to_stream()
        .to_with(out, Produced::with(s(), Serdes::nullable(s())));
    b.build().unwrap()
}

#[test]
fn foreign_key_join_state_moves_from_kafka_streams_and_back() {
    init_tracing();
    let _one = exclusive();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "takeover-fk";
    let (orders, customers, out) = (
        "takeover-fk-orders",
        "takeover-fk-customers",
        "takeover-fk-out",
    );
    // The two tables need not be co-partitioned: subscriptions and responses cross over.
    create_topics(b, &[(orders, 3), (customers, 2), (out, 3)]);
    let java_args = ["fk", orders, customers, out];
    let dir = tempfile::tempdir().unwrap();
    let describe = dir.path().join("describe.txt");
    let mut reader = TopicReader::new(b, out, true);
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    let customers_at = |names: &mut BTreeMap<usize, String>,
                        version: &str,
                        ids: std::ops::Range<usize>,
                        ts: i64| {
        let rows: Vec<(String, String)> = ids
            .map(|i| {
                names.insert(i, format!("name{i}-{version}"));
                (format!("c{i}"), format!("name{i}-{version}"))
            })
            .collect();
        let recs: Vec<_> = rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(ts)))
            .collect();
        produce_with_timestamps(b, customers, &recs);
    };
    let orders_at = |ids: std::ops::Range<usize>, ts: i64| {
        let rows: Vec<(String, String)> = ids
            .map(|i| (format!("o{i}"), format!("c{}|item{i}", i % 10)))
            .collect();
        let recs: Vec<_> = rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(ts)))
            .collect();
        produce_with_timestamps(b, orders, &recs);
    };
    // Reads until every order's latest result names its customer's latest row.
    let await_results = |reader: &mut TopicReader, n: usize, names: &BTreeMap<usize, String>| {
        let want: BTreeMap<String, String> = (0..n)
            .map(|i| {
                (
                    format!("o{i}"),
                    format!("c{}|item{i}|{}", i % 10, names[&(i % 10)]),
                )
            })
            .collect();
        let reached = reader.poll_until(Duration::from_secs(120), |records| {
            let mut latest = BTreeMap::new();
            for r in records {
                let v = r
                    .value
                    .as_deref()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                latest.insert(r.key_str(), v.unwrap_or_default());
            }
            latest == want
        });
        assert!(
            reached,
            "results never became {want:?}; read {:?}",
            reader.records.len()
        );
    };

    customers_at(&mut names, "v1", 0..10, 1_000);
    orders_at(0..30, 2_000);
    let java = JavaApp::start(b, app, &dir.path().join("java-a"), &describe, &java_args);
    await_results(&mut reader, 30, &names);
    java.stop();
    let theirs = std::fs::read_to_string(&describe).unwrap();
    let topology = || orders_with_customers(orders, customers, out);
    assert_eq!(
        topology().describe().to_string().trim(),
        theirs.trim(),
        "describe(): the same subscription store and topics as the Java topology"
    );

    // This project takes over: customer updates must reach the orders that subscribed under Java
    // (restored subscription store), and new orders subscribe here.
    let mut ours = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 2, &dir.path().join("rust")),
    )
    .unwrap();
    ours.start().unwrap();
    customers_at(&mut names, "v2", 5..10, 3_000);
    orders_at(30..60, 4_000);
    await_results(&mut reader, 60, &names);
    assert!(ours.close(Duration::from_secs(30)));
    assert!(ours.last_error().is_none(), "{:?}", ours.last_error());

    // Java again from an empty state directory: it restores subscriptions both wrote.
    let java = JavaApp::start(b, app, &dir.path().join("java-b"), &describe, &java_args);
    customers_at(&mut names, "v3", 0..5, 5_000);
    orders_at(60..90, 6_000);
    await_results(&mut reader, 90, &names);
    java.stop();
}

/// The Rust twin of TakeoverApp's table re-grouping: users per region, from a table of each
/// user's region (the subtraction and the addition travel through the repartition topic in
/// Kafka Streams' `ChangedSerializer` layout).
fn users_per_region(regions: &str, counts: &str) -> Topology {
    let s = Serdes::string;
    let b = StreamsBuilder::new();
    b.table::<String, String>(regions, Consumed::with(s(), s()), Materialized::default())
        .group_by(
            |user: &String, region: &String| (region.clone(), user.clone()),
            Grouped::with(s(), s()),
        )
        .count(Materialized::default())
        .to_stream()
        .to_with(counts, Produced::with(s(), Serdes::nullable(Serdes::i64())));
    b.build().unwrap()
}

#[test]
fn table_regrouping_state_moves_from_kafka_streams_and_back() {
    init_tracing();
    let _one = exclusive();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "takeover-table-count";
    let (regions, counts) = ("takeover-user-regions", "takeover-region-counts");
    create_topics(b, &[(regions, 3), (counts, 3)]);
    let java_args = ["table-count", regions, counts];
    let dir = tempfile::tempdir().unwrap();
    let describe = dir.path().join("describe.txt");
    let mut reader = TopicReader::new(b, counts, true);
    let mut region_of: BTreeMap<usize, usize> = BTreeMap::new();
    // Moves users 0..n, in `rounds` passes, each pass to the next region (of 5).
    let mut moves = |users: std::ops::Range<usize>, rounds: usize, ts: i64| {
        let mut recs = Vec::new();
        for _ in 0..rounds {
            for u in users.clone() {
                let r = region_of.get(&u).map_or(u % 5, |r| (r + 1) % 5);
                region_of.insert(u, r);
                recs.push((format!("u{u}"), format!("r{r}")));
            }
        }
        let recs: Vec<_> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), Some(ts)))
            .collect();
        produce_with_timestamps(b, regions, &recs);
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for r in region_of.values() {
            *want.entry(format!("r{r}")).or_insert(0) += 1;
        }
        want
    };
    let await_counts = |reader: &mut TopicReader, want: &BTreeMap<String, i64>| {
        let reached = reader.poll_until(Duration::from_secs(120), |records| {
            let mut latest = BTreeMap::new();
            for r in records {
                let n = r.value.as_deref().map(long).unwrap_or(0);
                latest.insert(r.key_str(), n);
            }
            latest.retain(|_, n| *n != 0);
            &latest == want
        });
        assert!(reached, "region counts never became {want:?}");
    };

    // Kafka Streams, stopped as soon as it has counted anything: the changes it wrote to its
    // repartition topic and did not count yet are left for this project to read.
    let want = moves(0..200, 50, 1_000);
    let java = JavaApp::start(b, app, &dir.path().join("java-a"), &describe, &java_args);
    assert!(
        reader.poll_until(Duration::from_secs(120), |r| r.len() >= 20),
        "Kafka Streams produced no counts"
    );
    java.stop();
    let theirs = std::fs::read_to_string(&describe).unwrap();
    let topology = || users_per_region(regions, counts);
    assert_eq!(
        topology().describe().to_string().trim(),
        theirs.trim(),
        "describe(): the same store and repartition topic as the Java topology"
    );

    let mut ours = KafkaStreams::new(
        topology(),
        test_config(app, b, "exactly_once_v2", 2, &dir.path().join("rust")),
    )
    .unwrap();
    ours.start().unwrap();
    await_counts(&mut reader, &want);
    let want = moves(0..100, 3, 2_000);
    await_counts(&mut reader, &want);
    assert!(ours.close(Duration::from_secs(30)));
    assert!(ours.last_error().is_none(), "{:?}", ours.last_error());

    let java = JavaApp::start(b, app, &dir.path().join("java-b"), &describe, &java_args);
    let want = moves(50..200, 2, 3_000);
    await_counts(&mut reader, &want);
    java.stop();
}
