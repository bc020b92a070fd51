//! Final results across restarts on Apache Kafka: a windowed count emitting on window close
//! commits the close time it last emitted up to with its input offsets (Kafka Streams' processor
//! metadata, in the offset commit metadata), so an instance restarting on an empty state
//! directory (its store restored from the changelog, windows already emitted still in it)
//! emits each window exactly once. Under both processing guarantees.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{KafkaStreams, Topology};
use streams_dsl::{
    Consumed, EmitStrategy, Grouped, Materialized, Produced, StreamsBuilder, TimeWindows, Windowed,
};
use streams_tests::kafka::{
    create_topics, event_epoch, init_tracing, produce_with_timestamps, TopicReader,
};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Per key and 10 ms window, the count once the window closed, as `key@start` -> count (start as
/// a test time, after [`event_epoch`]). The
/// store keeps windows for 1 s, far past their close, so a repeated emission would find them.
fn final_counts(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&[input], Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by(TimeWindows::of_size_and_grace(10, 0))
        .emit_strategy(EmitStrategy::on_window_close())
        .count(Materialized::as_("counts").with_retention(1_000))
        .to_stream()
        .map(|w: Windowed<String>, n: Option<i64>| {
            (
                format!("{}@{}", w.key, w.window.start - event_epoch()),
                n.unwrap_or(-1).to_string(),
            )
        })
        .to_with(output, Produced::with(s(), s()));
    b.build().unwrap()
}

/// Runs the app on a fresh state directory until `expected` outputs were read, then closes it.
fn run_once(b: &str, app: &str, guarantee: &str, reader: &mut TopicReader, expected: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut streams = KafkaStreams::new(
        final_counts(&input, &output),
        test_config(app, b, guarantee, 1, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    assert!(
        reader.poll_until(Duration::from_secs(60), |r| r.len() >= expected),
        "{} of {expected} outputs",
        reader.records.len()
    );
    assert!(streams.close(Duration::from_secs(30)));
}

/// The metadata the group committed with the input partition's offset.
fn committed_metadata(b: &str, app: &str, input: &str) -> String {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", app)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(input, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    committed
        .find_partition(input, 0)
        .map(|e| e.metadata().to_string())
        .unwrap_or_default()
}

fn each_window_once_across_a_restart(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = format!("final-{}", guarantee.replace('_', "-"));
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 1), (&output, 1)]);
    let mut reader = TopicReader::new(b, &output, true);

    // a@12 closes [0,10): a=2 and b=1 come out.
    let first = [("a", 1), ("b", 2), ("a", 5), ("a", 12), ("b", 15)];
    produce_with_timestamps(
        b,
        &input,
        &first
            .iter()
            .map(|(k, ts)| (Some(*k), Some("v"), Some(*ts)))
            .collect::<Vec<_>>(),
    );
    run_once(b, &app, guarantee, &mut reader, 2);
    // Kafka Streams' layout (base64 of magic byte 2, partition time, processor metadata).
    let metadata = committed_metadata(b, &app, &input);
    assert!(
        metadata.starts_with("Ag") && metadata.len() > 12,
        "partition time and processor metadata committed: {metadata:?}"
    );

    // Restarted on an empty state directory: a@25 closes [10,20) only; [0,10), restored from
    // the changelog, is not emitted again.
    produce_with_timestamps(b, &input, &[(Some("a"), Some("v"), Some(25))]);
    run_once(b, &app, guarantee, &mut reader, 4);
    reader.poll_for(Duration::from_secs(2));
    let outputs: Vec<(String, String)> = reader
        .records
        .iter()
        .map(|r| {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            (r.key_str(), value.unwrap_or_default().into_owned())
        })
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect()
    };
    assert_eq!(
        outputs,
        pairs(&[("a@0", "2"), ("b@0", "1"), ("a@10", "1"), ("b@10", "1")])
    );
}

#[test]
fn exactly_once_v2_emits_each_window_once_across_a_restart() {
    each_window_once_across_a_restart("exactly_once_v2");
}

#[test]
fn at_least_once_emits_each_window_once_across_a_restart() {
    each_window_once_across_a_restart("at_least_once");
}
