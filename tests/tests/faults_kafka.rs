//! Faults only a real Kafka cluster makes, each under exactly_once_v2 with every output record
//! audited by the verifier (3 instances x 2 threads as child processes, read_committed audit):
//! a single node SIGKILLed and restarted (its own log recovery); on three nodes the leaders of the
//! input, repartition and changelog partitions SIGKILLed in turn, and the transaction
//! coordinator's node; two of three nodes down (ISR below `min.insync.replicas`); and a frozen
//! instance (a zombie) whose late commit the broker must fence.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use streams_examples::verify::VerifyReport;
use streams_examples::verify::{
    default_options, internal_topics, verify_with, ChaosEvent, VerifyOptions, VerifyTopics,
};
use streams_tests::kafka::init_tracing;
use streams_tests::verify_child::{assert_exactly_once, spawn, worker_main};
use streams_tests::{ClusterOptions, KafkaCluster, TestBroker};

/// Each scenario runs 3 instances x 2 threads beside its brokers: one at a time on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Not a test: the entry point of a child instance (see `verify_child`).
#[test]
#[ignore = "runs only as a child of the fault tests"]
fn verify_worker() {
    worker_main().unwrap();
}

fn options(cluster_bootstrap: &str, dir: &std::path::Path, replication: i32) -> VerifyOptions {
    let mut o = default_options(cluster_bootstrap, "exactly_once_v2", dir);
    o.records = 12_000;
    o.keys = 40;
    o.kills = 0;
    o.produce_duration = Duration::from_secs(45);
    o.timeout = Duration::from_secs(420);
    // A transaction left hanging by the broker stalls the run for good (see
    // `assert_exact_unless_the_broker_hangs`); recoveries here resume output within a minute.
    o.stall_timeout = Some(Duration::from_secs(120));
    o.replication_factor = replication;
    o
}

/// [`assert_exactly_once`], printing the brokers' logs first when the run was not exact: a
/// broker-side cause (a node that did not come back, a coordinator stuck loading) shows there.
fn assert_exact_on(report: &VerifyReport, cluster: &KafkaCluster) {
    if !report.passed() {
        println!("brokers' logs:\n{}", cluster.log_tail_lines(150));
    }
    assert_exactly_once(report);
}

/// Runs a scenario that kills brokers (it starts its cluster and returns it with the report)
/// and asserts the run exact, once more on a fresh cluster if the broker left a transaction
/// hanging.
///
/// A single node SIGKILLed while a transaction was in PrepareCommit, once restarted, completed
/// the transaction (its log says CompleteCommit) without writing the commit marker to two of its
/// partitions (Kafka 4.4.0; 2 of 18 runs here, 1 of 14 in CI): read_committed readers stop at that
/// transaction's first record for good, whatever the application does, and the run cannot
/// complete. Brokers that verify transactional writes (3.6 and later, the default) refuse a
/// record for a partition its coordinator does not list, so a client cannot leave a transaction
/// hanging: such a run proves nothing about the application. Its report and the hanging
/// partitions are printed, and only a second such run fails the test.
fn assert_exact_unless_the_broker_hangs(scenario: impl Fn() -> (VerifyReport, Arc<KafkaCluster>)) {
    for attempt in 1..=2 {
        let (report, cluster) = scenario();
        if !report.passed() && attempt == 1 {
            match cluster.hanging_transactions() {
                Ok(hanging) if !hanging.is_empty() => {
                    println!(
                        "{report}\nthe brokers left transactions hanging; the scenario runs again:\n{}",
                        hanging.join("\n")
                    );
                    continue;
                }
                Ok(_) => {}
                Err(e) => println!("hanging transactions not read: {e}"),
            }
        }
        assert_exact_on(&report, &cluster);
        return;
    }
}

fn event(at_secs: u64, action: impl FnMut(&[Option<u32>]) + 'static) -> ChaosEvent {
    (Duration::from_secs(at_secs), Box::new(action))
}

fn three_nodes(o: ClusterOptions) -> Arc<KafkaCluster> {
    init_tracing();
    Arc::new(KafkaCluster::start(&o).unwrap_or_else(|e| panic!("3-node cluster: {e}")))
}

#[test]
fn single_node_sigkilled_and_restarted_mid_run() {
    let _serial = serial();
    init_tracing();
    assert_exact_unless_the_broker_hangs(|| {
        let cluster = Arc::new(KafkaCluster::start(&ClusterOptions::nodes(1)).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let o = options(&cluster.bootstrap_servers(), dir.path(), 1);
        let (c1, c2) = (cluster.clone(), cluster.clone());
        let events = vec![
            event(15, move |_| c1.kill(1)),
            event(22, move |_| c2.restart(&[1]).unwrap()),
        ];
        (verify_with(&o, &spawn, events).unwrap(), cluster)
    });
}

#[test]
fn leaders_of_input_repartition_and_changelog_partitions_sigkilled_on_three_nodes() {
    let _serial = serial();
    assert_exact_unless_the_broker_hangs(|| {
        let cluster = three_nodes(ClusterOptions::nodes(3));
        let dir = tempfile::tempdir().unwrap();
        let o = options(&cluster.bootstrap_servers(), dir.path(), 3);
        let input = VerifyTopics::for_app(&o.application_id).input;
        let (repartition, changelog) = internal_topics(&o.application_id);
        let killed = Arc::new(Mutex::new(Vec::new()));
        let mut events = Vec::new();
        for (i, topic) in [input, repartition, changelog].into_iter().enumerate() {
            let at = 10 + 14 * i as u64;
            let (c, k) = (cluster.clone(), killed.clone());
            events.push(event(at, move |_| {
                let leader = c.leader_of(&topic, 0).unwrap();
                println!("SIGKILL node {leader}, leader of {topic}-0");
                c.kill(leader);
                k.lock().unwrap().push(leader);
            }));
            let (c, k) = (cluster.clone(), killed.clone());
            events.push(event(at + 7, move |_| {
                let node = k.lock().unwrap().pop().unwrap();
                c.restart(&[node]).unwrap();
            }));
        }
        (verify_with(&o, &spawn, events).unwrap(), cluster)
    });
}

#[test]
fn transaction_coordinator_node_sigkilled_on_three_nodes() {
    let _serial = serial();
    assert_exact_unless_the_broker_hangs(|| {
        // One transaction log partition: its leader coordinates every transaction of the run.
        let cluster = three_nodes(
            ClusterOptions::nodes(3).setting("transaction.state.log.num.partitions", "1"),
        );
        let dir = tempfile::tempdir().unwrap();
        let o = options(&cluster.bootstrap_servers(), dir.path(), 3);
        let killed = Arc::new(Mutex::new(None));
        let (c1, k1) = (cluster.clone(), killed.clone());
        let (c2, k2) = (cluster.clone(), killed.clone());
        let events = vec![
            event(15, move |_| {
                let coordinator = c1.leader_of("__transaction_state", 0).unwrap();
                println!("SIGKILL node {coordinator}, the transaction coordinator");
                c1.kill(coordinator);
                *k1.lock().unwrap() = Some(coordinator);
            }),
            event(25, move |_| {
                let node = k2.lock().unwrap().take().unwrap();
                c2.restart(&[node]).unwrap();
            }),
        ];
        (verify_with(&o, &spawn, events).unwrap(), cluster)
    });
}

/// Committed output records arriving at a read_committed reader, with their arrival times.
struct ArrivalLog {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ArrivalLog {
    fn start(bootstrap: &str, topics: &[String], partitions: i32) -> ArrivalLog {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("arrivals-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..partitions {
                tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
            }
        }
        consumer.assign(&tpl).unwrap();
        let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let stop = Arc::new(AtomicU64::new(0));
        let (a, s) = (arrivals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while s.load(Ordering::SeqCst) == 0 {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                    a.lock().unwrap().push(Instant::now());
                }
            }
        });
        ArrivalLog {
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    fn between(&self, from: Instant, to: Instant) -> usize {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t >= from && **t <= to)
            .count()
    }
}

impl Drop for ArrivalLog {
    fn drop(&mut self) {
        self.stop.store(1, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two of three nodes down: the transaction log and every topic are below `min.insync.replicas`
/// (and the controller quorum is lost). Nothing can commit, so no committed output appears; when
/// the nodes return the application resumes by itself, and the audit finds nothing lost or doubled.
#[test]
fn two_of_three_nodes_down_stops_progress_and_resumes_exactly() {
    let _serial = serial();
    let cluster = three_nodes(ClusterOptions::nodes(3));
    let dir = tempfile::tempdir().unwrap();
    let o = options(&cluster.bootstrap_servers(), dir.path(), 3);
    let topics = VerifyTopics::for_app(&o.application_id);
    let down_at = Arc::new(Mutex::new(None::<Instant>));
    let up_at = Arc::new(Mutex::new(None::<Instant>));
    let (c1, d1) = (cluster.clone(), down_at.clone());
    let (c2, u2) = (cluster.clone(), up_at.clone());
    let arrivals = Arc::new(Mutex::new(None::<ArrivalLog>));
    let (a, b, t, partitions) = (
        arrivals.clone(),
        cluster.bootstrap_servers(),
        [topics.counts.clone(), topics.joined.clone()],
        o.partitions,
    );
    let events = vec![
        event(8, move |_| {
            *a.lock().unwrap() = Some(ArrivalLog::start(&b, &t, partitions))
        }),
        event(15, move |_| {
            c1.kill(2);
            c1.kill(3);
            *d1.lock().unwrap() = Some(Instant::now());
        }),
        event(50, move |_| {
            *u2.lock().unwrap() = Some(Instant::now());
            c2.restart(&[2, 3]).unwrap();
        }),
    ];
    let report = verify_with(&o, &spawn, events).unwrap();
    let (down, up) = (
        down_at.lock().unwrap().unwrap(),
        up_at.lock().unwrap().unwrap(),
    );
    let log = arrivals.lock().unwrap().take().unwrap();
    let total = log.arrivals.lock().unwrap().len();
    // Outputs committed just before the outage may still be fetched in its first seconds.
    let during = log.between(down + Duration::from_secs(10), up);
    println!(
        "committed outputs read: {total} in all, {during} while two nodes were down (from 10 s after the stop until the restart)"
    );
    assert!(total > 0, "the reader saw the committed outputs");
    assert_eq!(
        during, 0,
        "nothing commits while the transaction log is below min.insync.replicas"
    );
    assert!(
        log.between(up, Instant::now()) > 0,
        "progress resumed after the restart"
    );
    assert_exact_on(&report, &cluster);
}

/// An instance frozen (SIGSTOP) while it holds an open transaction, past its session timeout: the
/// others take its tasks over. Its transaction timeout is longer than the freeze, so when it
/// wakes its transaction is still open and its commit carries the old group generation: the
/// broker must fence it (KIP-447), or the audit finds the zombie's records doubled.
#[test]
fn frozen_instance_past_its_session_timeout_is_fenced() {
    let _serial = serial();
    init_tracing();
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(broker.bootstrap_servers(), dir.path(), 1);
    o.worker_config = vec![("producer.transaction.timeout.ms".into(), "60000".into())];
    let frozen = Arc::new(Mutex::new(None::<u32>));
    let (f1, f2) = (frozen.clone(), frozen.clone());
    let signal = |sig: &str, pid: u32| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    let events = vec![
        event(12, move |pids| {
            let pid = pids[0].expect("instance 0 runs");
            println!("SIGSTOP instance 0 (pid {pid})");
            signal("-STOP", pid);
            *f1.lock().unwrap() = Some(pid);
        }),
        // The session timeout is 6 s: the others own its tasks well before it wakes.
        event(32, move |_| {
            let pid = f2.lock().unwrap().take().unwrap();
            println!("SIGCONT instance 0 (pid {pid})");
            signal("-CONT", pid);
        }),
    ];
    let report = verify_with(&o, &spawn, events).unwrap();
    assert_exactly_once(&report);
}
