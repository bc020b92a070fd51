//! A record that cannot be deserialized stops the instance with an error naming the record, and
//! nothing committed before it is lost: a fixed instance resumes right at the bad record.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use streams_core::serdes::Serdes;
use streams_core::{KafkaStreams, Processor, ProcessorContext, Record, Result, State, Topology};
use streams_tests::apps::pipe_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

struct Double;

impl Processor<String, i64> for Double {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, i64>) -> Result<()> {
        let v = r.value * 2;
        ctx.forward(r.with_value(v))
    }
}

/// `<prefix>-in` -> doubled -> `<prefix>-out` (each test has its own topics on the shared cluster).
fn topology(prefix: &str) -> Topology {
    pipe_topology(
        &format!("{prefix}-in"),
        &format!("{prefix}-out"),
        Serdes::i64(),
        || Double,
    )
}

fn long_bytes(v: i64) -> String {
    // The test producer sends &str; these 8 bytes are valid UTF-8 for small non-negative values.
    String::from_utf8(v.to_be_bytes().to_vec()).unwrap()
}

#[test]
fn undecodable_record_fails_clearly_and_loses_nothing() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("longs-in", 1), ("longs-out", 1)]);
    let (one, two) = (long_bytes(1), long_bytes(2));
    produce(
        b,
        "longs-in",
        &[
            (Some("a"), Some(&one)),
            (Some("b"), Some(&two)),
            (Some("bad"), Some("abc")),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut s = KafkaStreams::new(
        topology("longs"),
        test_config("bad-input", b, "exactly_once_v2", 1, dir.path()),
    )
    .unwrap();
    s.start().unwrap();
    assert_eq!(
        s.wait_for_state(Duration::from_secs(60), |s| s == State::Error),
        State::Error
    );
    let e = s.last_error().unwrap().to_string();
    assert!(
        e.contains("cannot deserialize the value") && e.contains("longs-in-0 offset 2"),
        "{e}"
    );
    s.close(Duration::from_secs(10));

    // The records before the bad one were processed inside the transaction that aborted: read
    // committed shows none of their output, and the group's committed position is not past the
    // bad record, so nothing is skipped when the cause is fixed (issue: exception handlers).
    let mut reader = TopicReader::new(b, "longs-out", true);
    reader.poll_for(Duration::from_secs(1));
    assert!(reader.records.is_empty(), "{:?}", reader.records);
    let committed = committed_offset(b, "bad-input", "longs-in", 0);
    assert!(
        committed.is_none_or(|o| o <= 2),
        "committed past the bad record: {committed:?}"
    );
}

fn committed_offset(b: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.elements()[0].offset() {
        rdkafka::Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[test]
fn log_and_continue_skips_bad_records_into_the_dead_letter_queue() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(
        b,
        &[
            ("dlq-longs-in", 1),
            ("dlq-longs-out", 1),
            ("dlq-longs-dlq", 1),
        ],
    );
    let (one, two) = (long_bytes(1), long_bytes(2));
    produce(
        b,
        "dlq-longs-in",
        &[
            (Some("a"), Some(&one)),
            (Some("bad"), Some("abc")),
            (Some("b"), Some(&two)),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("dlq-app", b, "exactly_once_v2", 1, dir.path());
    config
        .set("deserialization.exception.handler", "log_and_continue")
        .unwrap();
    config
        .set("errors.dead.letter.queue.topic.name", "dlq-longs-dlq")
        .unwrap();
    let mut s = KafkaStreams::new(topology("dlq-longs"), config).unwrap();
    s.start().unwrap();
    let mut out = TopicReader::new(b, "dlq-longs-out", true);
    assert!(out.poll_until(Duration::from_secs(60), |r| r.len() >= 2));
    let mut dlq = TopicReader::new(b, "dlq-longs-dlq", true);
    assert!(dlq.poll_until(Duration::from_secs(30), |r| !r.is_empty()));
    out.poll_for(Duration::from_millis(500));
    let doubled: Vec<(String, i64)> = out
        .records
        .iter()
        .map(|r| {
            (
                r.key_str(),
                streams_tests::kafka::long(r.value.as_deref().unwrap()),
            )
        })
        .collect();
    assert_eq!(doubled, [("a".to_string(), 2), ("b".to_string(), 4)]);
    assert_eq!(dlq.records.len(), 1);
    assert_eq!(
        dlq.records[0].value.as_deref(),
        Some(&b"abc"[..]),
        "original bytes kept"
    );
    assert_eq!(
        s.counters()
            .dropped_records
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(s.close(Duration::from_secs(30)));
}
