//! A stalled instance (a "zombie") loses its tasks to another instance; when it wakes up its
//! transaction cannot commit (KIP-447 fencing through the group generation), and read_committed
//! output stays exactly-once.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streams_core::serdes::Serdes;
use streams_core::{
    KafkaStreams, Processor, ProcessorContext, Record, Result, StreamsConfig, Topology,
};
use streams_tests::apps::pipe_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

/// Forwards values; the first `stall` record sleeps past max.poll.interval.ms, once per process.
struct Staller(Arc<AtomicBool>);

impl Processor<String, String> for Staller {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        if r.value == "stall" && self.0.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(12));
        }
        ctx.forward(r)
    }
}

fn topology(stall: Arc<AtomicBool>) -> Topology {
    pipe_topology("zombie-in", "zombie-out", Serdes::string(), move || {
        Staller(stall.clone())
    })
}

fn config(b: &str, dir: &std::path::Path) -> StreamsConfig {
    let mut c = test_config("zombie-app", b, "exactly_once_v2", 1, dir);
    for (k, v) in [
        ("consumer.session.timeout.ms", "6000"),
        ("consumer.max.poll.interval.ms", "7000"),
        ("consumer.heartbeat.interval.ms", "500"),
    ] {
        c.set(k, v).unwrap();
    }
    c
}

#[test]
fn stalled_instance_is_fenced_and_output_stays_exact() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("zombie-in", 1), ("zombie-out", 1)]);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A owns the only partition and stalls once; B joins while A sleeps and takes over.
    let a_stall = Arc::new(AtomicBool::new(true));
    let mut a = KafkaStreams::new(topology(a_stall.clone()), config(b, dir_a.path())).unwrap();
    a.start().unwrap();
    a.wait_until_running(Duration::from_secs(60)).unwrap();

    let mut values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    values.push("stall".into());
    values.extend((10..20).map(|i| format!("v{i}")));
    let recs: Vec<(Option<&str>, Option<&str>)> = values
        .iter()
        .map(|v| (Some("k"), Some(v.as_str())))
        .collect();
    produce(b, "zombie-in", &recs);
    let mut reader = TopicReader::new(b, "zombie-out", true);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while a_stall.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "A never reached the stall record"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A is asleep inside an open transaction holding v0..v9.
    let mut bb = KafkaStreams::new(
        topology(Arc::new(AtomicBool::new(false))),
        config(b, dir_b.path()),
    )
    .unwrap();
    bb.start().unwrap();
    let more: Vec<String> = (20..30).map(|i| format!("v{i}")).collect();
    let recs: Vec<(Option<&str>, Option<&str>)> =
        more.iter().map(|v| (Some("k"), Some(v.as_str()))).collect();
    produce(b, "zombie-in", &recs);
    values.extend(more);

    assert!(
        reader.poll_until(Duration::from_secs(90), |r| r.len() >= values.len()),
        "got {} of {}",
        reader.records.len(),
        values.len()
    );
    reader.poll_for(Duration::from_secs(3));
    let got: Vec<String> = reader
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(got, values, "every input exactly once, in order");
    assert!(
        bb.counters().processed.load(Ordering::SeqCst) > 0,
        "B took over the partition"
    );
    a.close(Duration::from_secs(30));
    bb.close(Duration::from_secs(30));
}
