//! Metrics on Apache Kafka: `/metrics` served by the instance (`metrics.http.address`) shows
//! Kafka Streams' named series, and they move as records flow, commit and restore.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use streams_core::KafkaStreams;
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

/// One scrape: `name{labels}` -> value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    body.lines()
        .filter(|l| l.starts_with("kafka_streams_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every series of `name` whose labels contain `filter`.
fn sum(m: &BTreeMap<String, f64>, name: &str, filter: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(filter))
        .map(|(_, v)| *v)
        .sum()
}

fn has(m: &BTreeMap<String, f64>, name: &str, filter: &str) -> bool {
    m.keys()
        .any(|k| k.starts_with(&format!("{name}{{")) && k.contains(filter))
}

#[test]
fn metrics_endpoint_shows_named_series_moving() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("metrics-in", 2), ("metrics-out", 2)]);
    let first = ["a b c", "a b", "a"];
    let lines: Vec<(Option<&str>, Option<&str>)> = first.iter().map(|l| (None, Some(*l))).collect();
    produce(b, "metrics-in", &lines);

    let state = tempfile::tempdir().unwrap();
    let mut config = test_config("metrics-app", b, "exactly_once_v2", 1, state.path());
    config.set("metrics.http.address", "127.0.0.1:0").unwrap();
    config.set("metrics.recording.level", "DEBUG").unwrap();
    let topology = || word_count_topology("metrics-in", "metrics-out").unwrap();
    let mut streams = KafkaStreams::new(topology(), config.clone()).unwrap();
    assert!(streams.metrics_address().is_none(), "served once started");
    streams.start().unwrap();
    let addr = streams.metrics_address().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let mut reader = TopicReader::new(b, "metrics-out", true);
    await_counts(
        &mut reader,
        &expected_counts(first.iter().copied()),
        Duration::from_secs(60),
    );

    let before = scrape(addr);
    let thread = "kafka_streams_stream_thread_metrics";
    // 3 lines read, 6 words through the repartition topic.
    assert!(
        sum(&before, &format!("{thread}_process_total"), "") >= 9.0,
        "{before:#?}"
    );
    assert!(sum(&before, &format!("{thread}_commit_total"), "") >= 1.0);
    assert!(sum(&before, &format!("{thread}_poll_total"), "") >= 1.0);
    assert!(has(
        &before,
        &format!("{thread}_process_latency_avg"),
        "StreamThread-1"
    ));
    assert!(has(&before, &format!("{thread}_commit_latency_max"), ""));
    assert!(has(&before, &format!("{thread}_punctuate_rate"), ""));
    assert_eq!(
        sum(&before, &format!("{thread}_task_created_total"), ""),
        4.0
    );
    assert_eq!(
        sum(
            &before,
            "kafka_streams_stream_metrics_alive_stream_threads",
            ""
        ),
        1.0
    );
    let task = "kafka_streams_stream_task_metrics";
    assert!(sum(&before, &format!("{task}_process_total"), "task_id=\"1_") >= 6.0);
    assert!(has(
        &before,
        &format!("{task}_dropped_records_total"),
        "task_id=\"0_0\""
    ));
    assert!(has(&before, &format!("{task}_record_lateness_max"), ""));
    // DEBUG: every count reads and writes its store.
    let state_m = "kafka_streams_stream_state_metrics";
    assert!(sum(&before, &format!("{state_m}_put_total"), "store=\"counts\"") >= 6.0);
    assert!(sum(&before, &format!("{state_m}_get_total"), "store=\"counts\"") >= 6.0);
    assert!(has(
        &before,
        &format!("{state_m}_put_latency_avg"),
        "store=\"counts\""
    ));
    let txn = "kafka_streams_producer_metrics";
    assert!(sum(&before, &format!("{txn}_txn_commit_time_ns_total"), "") > 0.0);
    assert!(sum(&before, &format!("{txn}_txn_init_time_ns_total"), "") > 0.0);

    let more = ["b c", "c c d"];
    let lines: Vec<(Option<&str>, Option<&str>)> = more.iter().map(|l| (None, Some(*l))).collect();
    produce(b, "metrics-in", &lines);
    await_counts(
        &mut reader,
        &expected_counts(first.iter().chain(more.iter()).copied()),
        Duration::from_secs(60),
    );
    let after = scrape(addr);
    for (k, v) in after.iter().filter(|(k, _)| {
        k.contains("StreamThread-1\"}") || k.contains("task_id=\"1_0\"") || k.contains("txn_commit")
    }) {
        println!("{k} {v}");
    }
    for (name, filter, grew_by) in [
        (format!("{thread}_process_total"), "", 7.0),
        (format!("{task}_process_total"), "", 7.0),
        (format!("{state_m}_put_total"), "store=\"counts\"", 5.0),
        (format!("{thread}_commit_total"), "", 1.0),
        (format!("{txn}_txn_commit_time_ns_total"), "", 1.0),
    ] {
        let (x, y) = (sum(&before, &name, filter), sum(&after, &name, filter));
        assert!(y >= x + grew_by, "{name} went {x} -> {y}");
    }
    assert!(streams.close(Duration::from_secs(30)));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the endpoint stops with the instance"
    );

    // A fresh state dir restores the counts store from its changelog: restore-total counts it.
    let state2 = tempfile::tempdir().unwrap();
    let mut config2 = config;
    config2
        .set("state.dir", state2.path().to_str().unwrap())
        .unwrap();
    let mut again = KafkaStreams::new(topology(), config2).unwrap();
    again.start().unwrap();
    again.wait_until_running(Duration::from_secs(60)).unwrap();
    let restored = scrape(again.metrics_address().unwrap());
    // 4 distinct words, each written to the changelog (at least once).
    assert!(
        sum(
            &restored,
            &format!("{state_m}_restore_total"),
            "store=\"counts\""
        ) >= 4.0,
        "{restored:#?}"
    );
    assert_eq!(
        sum(
            &restored,
            &format!("{state_m}_restore_remaining_records_total"),
            ""
        ),
        0.0
    );
    assert!(again.close(Duration::from_secs(30)));
}
