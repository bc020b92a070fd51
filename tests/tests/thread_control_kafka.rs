//! Controlling a running instance on Apache Kafka: the uncaught-exception handler replacing a
//! failed thread, stream threads added and removed at run time, pause and resume, clean-up.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{
    KafkaStreams, Processor, ProcessorContext, Record, Result, State,
    StreamThreadExceptionResponse, StreamsError,
};
use streams_dsl::{Consumed, Named, Produced, StreamsBuilder};
use streams_tests::kafka::{create_topics, init_tracing, produce, settled_threads, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Fails on the value `boom` the first time it sees it (a transient fault).
struct FailOnce(Arc<AtomicBool>);

impl Processor<String, String> for FailOnce {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        if r.value == "boom" && !self.0.swap(true, Ordering::SeqCst) {
            return Err(StreamsError::processing(
                ctx.node_name().to_string(),
                "transient failure",
            ));
        }
        ctx.forward(r)
    }
}

fn pipe(input: &str, output: &str, failed: Arc<AtomicBool>) -> streams_core::Topology {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&[input], Consumed::with(s(), s()))
        .process::<String, String, _, _>(move || FailOnce(failed.clone()), Named::default(), &[])
        .to_with(output, Produced::with(s(), s()));
    b.build().unwrap()
}

fn records(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), format!("v{i}")))
        .collect()
}

fn send(b: &str, topic: &str, recs: &[(String, String)]) {
    let r: Vec<(Option<&str>, Option<&str>)> = recs
        .iter()
        .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
        .collect();
    produce(b, topic, &r);
}

#[test]
fn a_failed_thread_is_replaced_and_its_records_are_processed_exactly_once() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = ("control-replace-in", "control-replace-out");
    create_topics(b, &[(input, 2), (output, 2)]);
    let dir = tempfile::tempdir().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let mut streams = KafkaStreams::new(
        pipe(input, output, failed.clone()),
        test_config("control-replace", b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    streams.set_uncaught_exception_handler(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        StreamThreadExceptionResponse::ReplaceThread
    });
    streams.start().unwrap();
    let mut recs = records("a", 20);
    recs.push(("x".into(), "boom".into()));
    recs.extend(records("b", 20));
    send(b, input, &recs);
    let mut reader = TopicReader::new(b, output, true);
    assert!(
        reader.poll_until(Duration::from_secs(90), |r| r.len() >= recs.len()),
        "{} of {} records after the replacement",
        reader.records.len(),
        recs.len()
    );
    reader.poll_for(Duration::from_secs(1));
    assert!(failed.load(Ordering::SeqCst), "the fault happened");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert!(streams.last_error().is_none(), "{:?}", streams.last_error());
    assert!(matches!(
        streams.state(),
        State::Running | State::Rebalancing
    ));
    assert_eq!(
        streams.stream_threads().len(),
        1,
        "one thread, the replacement"
    );
    // Exactly once: the failed thread's transaction never committed, the new one redid it.
    let mut keys: Vec<String> = reader.records.iter().map(|r| r.key_str()).collect();
    keys.sort();
    let mut want: Vec<String> = recs.iter().map(|(k, _)| k.clone()).collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(streams.close(Duration::from_secs(30)));
}

#[test]
fn threads_are_added_and_removed_and_processing_pauses_and_resumes() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = ("control-threads-in", "control-threads-out");
    create_topics(b, &[(input, 4), (output, 4)]);
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        pipe(input, output, Arc::new(AtomicBool::new(true))),
        test_config("control-threads", b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    assert!(streams.add_stream_thread().is_err(), "not before start");
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let added = streams.add_stream_thread().unwrap();
    assert!(added.ends_with("StreamThread-2"), "{added}");
    assert_eq!(streams.stream_threads().len(), 2);
    let mut reader = TopicReader::new(b, output, true);
    let first = records("a", 40);
    send(b, input, &first);
    assert!(reader.poll_until(Duration::from_secs(60), |r| r.len() >= 40));
    let threads = settled_threads(&streams, 2, 4, Duration::from_secs(60));
    assert_eq!(
        threads
            .iter()
            .map(|t| t.active_tasks.len())
            .collect::<Vec<_>>(),
        [2, 2],
        "the four tasks shared out: {threads:?}"
    );
    assert_eq!(threads[1].thread_name, added);

    let removed = streams
        .remove_stream_thread(Duration::from_secs(60))
        .unwrap();
    assert_eq!(removed, Some(added));
    assert_eq!(streams.stream_threads().len(), 1);
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let threads = settled_threads(&streams, 1, 4, Duration::from_secs(60));
    assert_eq!(
        threads
            .iter()
            .map(|t| t.active_tasks.len())
            .collect::<Vec<_>>(),
        [4],
        "the remaining thread took the removed one's tasks: {threads:?}"
    );

    streams.pause();
    assert!(streams.is_paused());
    // Let the pause reach the thread before the records arrive.
    std::thread::sleep(Duration::from_millis(500));
    send(b, input, &records("p", 20));
    reader.poll_for(Duration::from_secs(3));
    assert_eq!(
        reader.records.len(),
        40,
        "nothing is processed while paused"
    );
    streams.resume();
    assert!(reader.poll_until(Duration::from_secs(60), |r| r.len() >= 60));
    reader.poll_for(Duration::from_secs(1));
    assert_eq!(reader.records.len(), 60, "each record once");
    assert!(streams.close(Duration::from_secs(30)));

    // Clean-up removes the local state (only once the instance is closed).
    let app_dir = dir.path().join("control-threads");
    assert!(app_dir.exists());
    streams.clean_up().unwrap();
    assert!(!app_dir.exists());
}

#[test]
fn shutdown_application_stops_every_instance_through_the_group() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, output) = ("control-shutdown-in", "control-shutdown-out");
    create_topics(b, &[(input, 2), (output, 2)]);
    let failed = Arc::new(AtomicBool::new(false));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut instances: Vec<KafkaStreams> = dirs
        .iter()
        .map(|dir| {
            let mut c = test_config("control-shutdown", b, "at_least_once", 1, dir.path());
            // The request travels through the runtime's own group membership.
            c.set("group.membership", "streams").unwrap();
            let mut s = KafkaStreams::new(pipe(input, output, failed.clone()), c).unwrap();
            s.set_uncaught_exception_handler(|_| {
                StreamThreadExceptionResponse::ShutdownApplication
            });
            s.start().unwrap();
            s
        })
        .collect();
    for s in &instances {
        s.wait_until_running(Duration::from_secs(60)).unwrap();
    }
    // Whichever instance reads `boom` fails; its handler asks for the whole application.
    let mut recs = records("k", 10);
    recs.push(("x".into(), "boom".into()));
    send(b, input, &recs);
    for s in &instances {
        let state = s.wait_for_state(Duration::from_secs(90), |st| st == State::Error);
        assert_eq!(state, State::Error, "{:?}", s.last_error());
    }
    assert!(failed.load(Ordering::SeqCst), "the fault happened");
    let errors: Vec<String> = instances
        .iter()
        .map(|s| s.last_error().map(|e| e.to_string()).unwrap_or_default())
        .collect();
    // One instance failed with the processing error, the other was told to stop.
    assert!(
        errors.iter().any(|e| e.contains("transient failure")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("SHUTDOWN_APPLICATION")),
        "{errors:?}"
    );
    for s in &mut instances {
        s.close(Duration::from_secs(30));
    }
}
