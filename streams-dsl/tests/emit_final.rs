//! `emit_strategy(EmitStrategy::on_window_close())` (KIP-825): windowed aggregations that forward
//! only each window's final result, once, when stream time closes it, with no suppression
//! buffer. The Kafka Streams oracle pins the exact sequences over generated inputs; these pin
//! the rules on small hand-made ones.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::{
    Consumed, EmitStrategy, Grouped, KTable, Materialized, Produced, SessionWindows,
    SlidingWindows, StreamsBuilder, TimeWindows, Windowed,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Runs `(key, timestamp)` records through `count` and returns `key@start-end=count` per output,
/// with the output's timestamp.
fn run(
    count: impl FnOnce(streams_dsl::KGroupedStream<String, String>) -> KTable<Windowed<String>, i64>,
    input: &[(&str, i64)],
) -> Vec<(String, i64)> {
    let b = StreamsBuilder::new();
    let grouped = b
        .stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()));
    count(grouped)
        .to_stream()
        .map(|w: Windowed<String>, n: Option<i64>| {
            (
                format!("{}@{}-{}", w.key, w.window.start, w.window.end),
                n.map_or("null".to_string(), |n| n.to_string()),
            )
        })
        .to_with("out", Produced::with(s(), s()));
    let d = TopologyTestDriver::new(
        b.build().unwrap(),
        StreamsConfig::from_pairs([("application.id", "emit-final")]).unwrap(),
    )
    .unwrap();
    let i = d.create_input_topic("in", s(), s());
    for (k, ts) in input {
        i.pipe_input_with_timestamp(k.to_string(), "v".into(), *ts)
            .unwrap();
    }
    d.create_output_topic("out", s(), s())
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (format!("{}={}", r.key, r.value), r.timestamp))
        .collect()
}

#[test]
fn tumbling_windows_emit_each_final_count_once_when_stream_time_closes_them() {
    let out = run(
        |g| {
            g.windowed_by(TimeWindows::of_size_and_grace(10, 2))
                .emit_strategy(EmitStrategy::on_window_close())
                .count(Materialized::as_("counts"))
        },
        &[
            ("a", 1),
            ("b", 3),
            ("a", 9),
            ("a", 11),
            ("b", 12),
            ("a", 5),
            ("a", 13),
        ],
    );
    // [0,10) closes at stream time 12 (end + grace): a's late record at 5 (stream time 12) is
    // dropped, and the window's results come out in key order, stamped with their last record.
    assert_eq!(
        out,
        vec![("a@0-10=2".to_string(), 9), ("b@0-10=1".to_string(), 3)]
    );
}

#[test]
fn sessions_emit_when_stream_time_passes_their_end_by_gap_and_grace() {
    let out = run(
        |g| {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(5, 3))
                .emit_strategy(EmitStrategy::on_window_close())
                .count(Materialized::as_("sessions"))
        },
        &[
            ("a", 0),
            ("c", 1),
            ("a", 4),
            ("c", 5),
            ("a", 10),
            ("b", 15),
            ("b", 30),
        ],
    );
    // At 15, sessions ending before 15 - 5 - 3 = 7 closed: a [0,4] and c [1,5] (a's 10 is more
    // than the gap after 4: a session of its own); at 30, a [10,10] and b [15,15]; b [30,30] is
    // still open. Each is stamped with its end.
    assert_eq!(
        out,
        vec![
            ("a@0-4=2".to_string(), 4),
            ("c@1-5=2".to_string(), 5),
            ("a@10-10=1".to_string(), 10),
            ("b@15-15=1".to_string(), 15),
        ]
    );
}

#[test]
fn sliding_windows_emit_only_closed_windows() {
    let out = run(
        |g| {
            g.windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(5, 0))
                .emit_strategy(EmitStrategy::on_window_close())
                .count(Materialized::as_("sliding"))
        },
        &[("a", 10), ("a", 12), ("a", 30)],
    );
    // [5,10] closes at 12. The jump to 30 closes [7,12] and 10's right window [11,16] too, but
    // they are past the store's retention (2 x difference + grace) by then: as in Kafka Streams
    // (checked against it), only windows the store still holds are emitted.
    assert_eq!(out, vec![("a@5-10=1".to_string(), 10)]);
}
