//! Under exactly_once_v2 a failure mid-transaction aborts it: read_committed consumers never see
//! the records written inside it, and a restarted instance produces each result exactly once.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use streams_core::serdes::Serdes;
use streams_core::{
    KafkaStreams, Processor, ProcessorContext, Record, Result, State, StreamsConfig, StreamsError,
    Topology,
};
use streams_tests::apps::pipe_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

/// Upper-cases values; fails on `boom` while `fail` is set.
struct FailOnBoom(Arc<AtomicBool>);

impl Processor<String, String> for FailOnBoom {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        if r.value == "boom" && self.0.load(Ordering::SeqCst) {
            return Err(StreamsError::processing("fail-on-boom", "injected failure"));
        }
        let v = r.value.to_uppercase();
        ctx.forward(r.with_value(v))
    }
}

fn topology(fail: Arc<AtomicBool>) -> Topology {
    pipe_topology("abort-in", "abort-out", Serdes::string(), move || {
        FailOnBoom(fail.clone())
    })
}

fn config(b: &str, commit_ms: &str, dir: &std::path::Path) -> StreamsConfig {
    let mut c = test_config("abort-app", b, "exactly_once_v2", 1, dir);
    c.set("commit.interval.ms", commit_ms).unwrap();
    c
}

#[test]
fn aborted_transaction_leaves_no_trace_for_read_committed() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("abort-in", 1), ("abort-out", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(true));

    // A long commit interval keeps the first records inside one open transaction.
    let mut s1 =
        KafkaStreams::new(topology(fail.clone()), config(b, "600000", dir.path())).unwrap();
    s1.start().unwrap();
    s1.wait_until_running(Duration::from_secs(60)).unwrap();
    let first: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
    let recs: Vec<(Option<&str>, Option<&str>)> = first
        .iter()
        .map(|v| (Some("k"), Some(v.as_str())))
        .collect();
    produce(b, "abort-in", &recs);
    let mut uncommitted = TopicReader::new(b, "abort-out", false);
    assert!(
        uncommitted.poll_until(Duration::from_secs(30), |r| r.len() == 5),
        "the open transaction's records reach the broker"
    );
    let mut committed = TopicReader::new(b, "abort-out", true);
    committed.poll_for(Duration::from_secs(1));
    assert!(committed.records.is_empty(), "nothing is committed yet");

    produce(b, "abort-in", &[(Some("k"), Some("boom"))]);
    let s = s1.wait_for_state(Duration::from_secs(30), |s| s == State::Error);
    assert_eq!(s, State::Error);
    let err = s1.last_error().unwrap().to_string();
    assert!(err.contains("injected failure"), "{err}");
    s1.close(Duration::from_secs(10));
    committed.poll_for(Duration::from_secs(2));
    assert!(
        committed.records.is_empty(),
        "read_committed sees records of the aborted transaction: {:?}",
        committed.records
    );

    // Restarted without the fault: every input is processed exactly once.
    fail.store(false, Ordering::SeqCst);
    let dir2 = tempfile::tempdir().unwrap();
    let mut s2 = KafkaStreams::new(topology(fail), config(b, "100", dir2.path())).unwrap();
    s2.start().unwrap();
    assert!(committed.poll_until(Duration::from_secs(60), |r| r.len() >= 6));
    committed.poll_for(Duration::from_secs(1));
    let values: Vec<String> = committed
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, ["R0", "R1", "R2", "R3", "R4", "BOOM"]);
    assert!(s2.close(Duration::from_secs(30)));
}

/// Sleeps on `slow` while `stall` is set (once), so the open transaction outlives
/// `transaction.timeout.ms` and the coordinator aborts it.
struct SlowOnce(Arc<AtomicBool>, Duration);

impl Processor<String, String> for SlowOnce {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        if r.value == "slow" && self.0.swap(false, Ordering::SeqCst) {
            std::thread::sleep(self.1);
        }
        let v = r.value.to_uppercase();
        ctx.forward(r.with_value(v))
    }
}

/// On `fence` (once): tells the test, waits until the test has fenced the thread's producer,
/// forwards, and gives librdkafka 3 s to have that output refused, so that the next record's
/// send may be the first call to see the fencing.
struct FencedOnce {
    armed: Arc<AtomicBool>,
    reached: mpsc::Sender<()>,
    fenced: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Processor<String, String> for FencedOnce {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        let fence = r.value == "fence" && self.armed.swap(false, Ordering::SeqCst);
        if fence {
            let _ = self.reached.send(());
            let _ = self
                .fenced
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
        }
        let v = r.value.to_uppercase();
        ctx.forward(r.with_value(v))?;
        if fence {
            std::thread::sleep(Duration::from_secs(3));
        }
        Ok(())
    }
}

/// A transaction that outlives `transaction.timeout.ms` is aborted by the coordinator, which bumps
/// the producer epoch: the instance's late offsets and commit are fenced. It must replace its
/// producer and process that input again, by itself, exactly once.
#[test]
fn transaction_outliving_its_timeout_is_redone_not_half_committed() {
    outlive_the_transaction_timeout("slow");
}

fn outlive_the_transaction_timeout(name: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = (format!("{name}-in"), format!("{name}-out"));
    create_topics(b, &[(input.as_str(), 1), (output.as_str(), 1)]);
    let dir = tempfile::tempdir().unwrap();
    let stall = Arc::new(AtomicBool::new(true));
    let st = stall.clone();
    let topology = pipe_topology(&input, &output, Serdes::string(), move || {
        // Longer than the coordinator's timeout check interval plus the timeout.
        SlowOnce(st.clone(), Duration::from_secs(13))
    });
    let mut c = test_config(&format!("{name}-app"), b, "exactly_once_v2", 1, dir.path());
    c.set("producer.transaction.timeout.ms", "2000").unwrap();
    let mut s = KafkaStreams::new(topology, c).unwrap();
    s.start().unwrap();
    s.wait_until_running(Duration::from_secs(60)).unwrap();
    produce(
        b,
        &input,
        &[
            (Some("k"), Some("a")),
            (Some("k"), Some("slow")),
            (Some("k"), Some("b")),
        ],
    );
    let mut committed = TopicReader::new(b, &output, true);
    let done = committed.poll_until(Duration::from_secs(90), |r| r.len() >= 3);
    committed.poll_for(Duration::from_secs(2));
    let values: Vec<String> = committed
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert!(done, "outputs missing: {values:?}");
    assert_eq!(values, ["A", "SLOW", "B"]);
    assert!(!stall.load(Ordering::SeqCst), "the stall happened");
    assert_ne!(s.state(), State::Error, "{:?}", s.last_error());
    assert!(
        s.counters()
            .transactional_producers_created
            .load(Ordering::SeqCst)
            >= 2,
        "the expired transaction was aborted and its producer replaced"
    );
    assert!(s.close(Duration::from_secs(30)));
}

/// Another producer with the thread's `transactional.id` fences it in the middle of a
/// transaction: the coordinator aborts the transaction with the bumped epoch. Whichever call of
/// the thread learns of it first (the next send, refused as fatal once a produce request failed,
/// as in a CI run where it failed the thread; or the offsets of the commit) must give the tasks
/// up (Kafka Streams' `TaskMigratedException`) and start over with a new producer, exactly once.
#[test]
fn a_producer_fenced_mid_transaction_is_replaced_and_the_input_redone() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("fence-in", 1), ("fence-out", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let (reached_tx, reached) = mpsc::channel();
    let (fenced, fenced_rx) = mpsc::channel();
    let fenced_rx = Arc::new(Mutex::new(fenced_rx));
    let a = armed.clone();
    let topology = pipe_topology("fence-in", "fence-out", Serdes::string(), move || {
        FencedOnce {
            armed: a.clone(),
            reached: reached_tx.clone(),
            fenced: fenced_rx.clone(),
        }
    });
    let mut c = test_config("fence-app", b, "exactly_once_v2", 1, dir.path());
    // `a` and `fence` land in one transaction even if they arrive in separate polls.
    c.set("commit.interval.ms", "5000").unwrap();
    let mut s = KafkaStreams::new(topology, c).unwrap();
    s.start().unwrap();
    s.wait_until_running(Duration::from_secs(60)).unwrap();
    produce(
        b,
        "fence-in",
        &[
            (Some("k"), Some("a")),
            (Some("k"), Some("fence")),
            (Some("k"), Some("b")),
        ],
    );
    reached
        .recv_timeout(Duration::from_secs(60))
        .expect("the fence record reached the processor");
    // The thread's transactional.id: <application.id>-<process id>-<thread index>.
    let zombie_maker: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set(
            "transactional.id",
            format!("fence-app-{}-1", s.process_id()),
        )
        .create()
        .unwrap();
    zombie_maker
        .init_transactions(Duration::from_secs(30))
        .unwrap();
    fenced.send(()).unwrap();
    let mut committed = TopicReader::new(b, "fence-out", true);
    let done = committed.poll_until(Duration::from_secs(90), |r| r.len() >= 3);
    committed.poll_for(Duration::from_secs(2));
    let values: Vec<String> = committed
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert!(done, "outputs missing: {values:?} ({:?})", s.last_error());
    assert_eq!(values, ["A", "FENCE", "B"]);
    assert_ne!(s.state(), State::Error, "{:?}", s.last_error());
    assert!(
        s.counters()
            .transactional_producers_created
            .load(Ordering::SeqCst)
            >= 2,
        "the fenced producer was replaced"
    );
    assert!(s.close(Duration::from_secs(30)));
}
