//! Windowed aggregations and suppression through the TopologyTestDriver, record by record, against
//! Kafka Streams' semantics (window assignment, grace, late-record drops, session merges, emit-final).
#![allow(clippy::unwrap_used)]

mod common;
use common::assert_golden;

use std::sync::Arc;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{Record, StreamsConfig, TestOutputTopic, Topology, TopologyTestDriver};
use streams_dsl::{
    BufferConfig, Materialized, Produced, SessionWindowedSerde, SessionWindows, SlidingWindows,
    StreamsBuilder, Suppressed, TimeWindowedSerde, TimeWindows, Windowed,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn driver(t: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(t, StreamsConfig::new("windows-test").unwrap()).unwrap()
}

type Out = (Windowed<String>, Option<i64>, i64);

fn counts() -> SerdeRef<Option<i64>> {
    Serdes::nullable(Serdes::i64())
}

/// Windowed counts as written to `out`.
fn produced(size: i64) -> Produced<Windowed<String>, Option<i64>> {
    Produced::with(Arc::new(TimeWindowedSerde::new(s(), size)), counts())
}

fn session_produced() -> Produced<Windowed<String>, Option<i64>> {
    Produced::with(Arc::new(SessionWindowedSerde(s())), counts())
}

fn output(d: &TopologyTestDriver, size: i64) -> TestOutputTopic<Windowed<String>, Option<i64>> {
    d.create_output_topic("out", Arc::new(TimeWindowedSerde::new(s(), size)), counts())
}

fn w(k: &str, start: i64, end: i64) -> Windowed<String> {
    Windowed::new(k.to_string(), start, end)
}

fn read(records: Vec<Record<Windowed<String>, Option<i64>>>) -> Vec<Out> {
    records
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn counting(windows: impl FnOnce(&StreamsBuilder) -> Topology) -> Topology {
    windows(&StreamsBuilder::new())
}

#[test]
fn tumbling_windows_with_grace_drop_late_records() {
    let t = counting(|b| {
        b.stream::<String, String>("in")
            .group_by_key(Default::default())
            .windowed_by(TimeWindows::of_size_and_grace(10, 5))
            .count(Materialized::as_("counts"))
            .to_stream()
            .to_with("out", produced(10));
        b.build().unwrap()
    });
    let d = driver(t);
    let input = d.create_input_topic("in", s(), s());
    let out = output(&d, 10);
    for (k, ts) in [
        ("a", 0),
        ("a", 5),
        ("a", 12),
        ("b", 9),
        ("a", 3),
        ("a", 15),
        ("a", 4),
        ("a", 14),
    ] {
        input
            .pipe_input_with_timestamp(k.into(), "v".into(), ts)
            .unwrap();
    }
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![
            (w("a", 0, 10), Some(1), 0),
            (w("a", 0, 10), Some(2), 5),
            (w("a", 10, 20), Some(1), 12),
            // stream time 12, grace 5: [0,10) closes at 15, so 9 and 3 still count.
            (w("b", 0, 10), Some(1), 9),
            (w("a", 0, 10), Some(3), 5),
            (w("a", 10, 20), Some(2), 15),
            // stream time 15 reached the close time of [0,10): the record at 4 is dropped.
            (w("a", 10, 20), Some(3), 15),
        ]
    );
    assert_eq!(d.dropped_records(), 1);
    let mut store = d.window_store_all::<String, i64>("counts").unwrap();
    store.sort();
    assert_eq!(
        store,
        vec![("a".into(), 0, 3), ("a".into(), 10, 3), ("b".into(), 0, 1)]
    );
}

#[test]
fn hopping_windows_update_every_window_of_a_record() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key(Default::default())
        .windowed_by(TimeWindows::of_size_with_no_grace(10).advance_by(5))
        .count(Materialized::default())
        .to_stream()
        .to_with("out", produced(10));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", s(), s());
    let out = output(&d, 10);
    for ts in [3, 7, 11, 4] {
        input
            .pipe_input_with_timestamp("k".into(), "v".into(), ts)
            .unwrap();
    }
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![
            (w("k", 0, 10), Some(1), 3),
            (w("k", 0, 10), Some(2), 7),
            (w("k", 5, 15), Some(1), 7),
            (w("k", 5, 15), Some(2), 11),
            (w("k", 10, 20), Some(1), 11),
            // 4 falls only into [0,10), closed at stream time 11 (no grace): dropped.
        ]
    );
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn sliding_windows_create_left_and_right_windows() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key(Default::default())
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(10, 30))
        .count(Materialized::as_("sliding"))
        .to_stream()
        .to_with("out", produced(10));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", s(), s());
    let out = output(&d, 10);
    for ts in [10, 15, 21, 13] {
        input
            .pipe_input_with_timestamp("k".into(), "v".into(), ts)
            .unwrap();
    }
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![
            (w("k", 0, 10), Some(1), 10),
            (w("k", 11, 21), Some(1), 15),
            (w("k", 5, 15), Some(2), 15),
            (w("k", 11, 21), Some(2), 21),
            (w("k", 16, 26), Some(1), 21),
            // The out-of-order record at 13 joins every window that covers it, latest first (Kafka
            // Streams walks the window store backwards), and gets its own left window [3,13]
            // (with 10) and right window [14,24] (with 15 and 21).
            (w("k", 11, 21), Some(3), 21),
            (w("k", 5, 15), Some(3), 15),
            (w("k", 3, 13), Some(2), 13),
            (w("k", 14, 24), Some(2), 21),
        ]
    );
    // Every distinct set of records within 10 ms of each other, counted from the store.
    let mut store = d.window_store_all::<String, i64>("sliding").unwrap();
    store.sort();
    let starts: Vec<(i64, i64)> = store.iter().map(|(_, s, c)| (*s, *c)).collect();
    assert_eq!(
        starts,
        vec![(0, 1), (3, 2), (5, 3), (11, 3), (14, 2), (16, 1)]
    );
}

#[test]
fn sessions_merge_and_late_records_are_dropped() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key(Default::default())
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(5))
        .count(Materialized::as_("sessions"))
        .to_stream()
        .to_with("out", session_produced());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", Arc::new(SessionWindowedSerde(s())), counts());
    for ts in [0, 3, 20, 9, 16] {
        input
            .pipe_input_with_timestamp("k".into(), "v".into(), ts)
            .unwrap();
    }
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![
            (w("k", 0, 0), Some(1), 0),
            // 3 is within the gap of [0,0]: the old session is deleted (tombstone) and the merged
            // one emitted.
            (w("k", 0, 0), None, 0),
            (w("k", 0, 3), Some(2), 3),
            (w("k", 20, 20), Some(1), 20),
            // 16 is within the gap of [20,20]: the merged session [16,20] ends at stream time
            // 20, so it is not closed yet.
            (w("k", 20, 20), None, 20),
            (w("k", 16, 20), Some(2), 20),
        ]
    );
    // The record at 9 alone would form [9,9], which ended before stream time 20: dropped.
    assert_eq!(d.dropped_records(), 1);
    let mut all = d.session_store_all::<String, i64>("sessions").unwrap();
    all.sort_by_key(|(_, w, _)| w.start);
    let sessions: Vec<(i64, i64, i64)> = all.iter().map(|(_, w, c)| (w.start, w.end, *c)).collect();
    // Retention is gap + grace = 5 ms of session end: [0,3] has expired from the store.
    assert_eq!(sessions, vec![(16, 20, 2)]);
}

fn suppressed(buffer: BufferConfig) -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key(Default::default())
        .windowed_by(TimeWindows::of_size_and_grace(10, 2))
        .count(Materialized::default())
        .suppress(Suppressed::until_window_closes(buffer))
        .to_stream()
        .to_with("out", produced(10));
    b.build().unwrap()
}

#[test]
fn suppress_until_window_closes_emits_one_final_result_per_window() {
    let d = driver(suppressed(BufferConfig::unbounded()));
    let input = d.create_input_topic("in", s(), s());
    let out = output(&d, 10);
    for (k, ts) in [("k", 1), ("k", 5), ("k", 8), ("j", 9), ("k", 11)] {
        input
            .pipe_input_with_timestamp(k.into(), "v".into(), ts)
            .unwrap();
    }
    // Stream time 11 < 10 + grace 2: nothing is final yet.
    assert!(out.is_empty());
    // A late record within grace still counts, and is not emitted on its own.
    input
        .pipe_input_with_timestamp("k".into(), "v".into(), 7)
        .unwrap();
    assert!(out.is_empty());
    input
        .pipe_input_with_timestamp("x".into(), "v".into(), 12)
        .unwrap();
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![(w("j", 0, 10), Some(1), 9), (w("k", 0, 10), Some(4), 8)]
    );
    input
        .pipe_input_with_timestamp("x".into(), "v".into(), 30)
        .unwrap();
    assert_eq!(
        read(out.read_records_to_list().unwrap()),
        vec![(w("k", 10, 20), Some(1), 11), (w("x", 10, 20), Some(1), 12)]
    );
}

#[test]
fn a_full_suppression_buffer_fails_with_a_clear_error() {
    let d = driver(suppressed(BufferConfig::max_records(1)));
    let input = d.create_input_topic("in", s(), s());
    input
        .pipe_input_with_timestamp("a".into(), "v".into(), 1)
        .unwrap();
    let err = input
        .pipe_input_with_timestamp("b".into(), "v".into(), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("suppression buffer"), "{err}");
    assert!(err.contains("BufferConfig"), "{err}");
}

#[test]
fn suppress_until_time_limit_emits_latest_value_after_the_limit() {
    let b = StreamsBuilder::new();
    b.table::<String, String>("in", Default::default(), Materialized::default())
        .suppress(Suppressed::until_time_limit(10, BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", s(), Serdes::nullable(Serdes::string()));
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::string()));
    input
        .pipe_input_with_timestamp("k".into(), Some("1".into()), 0)
        .unwrap();
    input
        .pipe_input_with_timestamp("k".into(), Some("2".into()), 5)
        .unwrap();
    input
        .pipe_input_with_timestamp("j".into(), Some("x".into()), 9)
        .unwrap();
    assert!(out.is_empty());
    // The timer of `k` started at its first update (0), and is not restarted by the second.
    input
        .pipe_input_with_timestamp("j".into(), None, 10)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("k".to_string(), Some("2".to_string()))]
    );
    input
        .pipe_input_with_timestamp("z".into(), Some("z".into()), 19)
        .unwrap();
    // A tombstone is a result too under a time limit.
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("j".to_string(), None)]
    );
}

#[test]
fn windowed_topologies_are_described_like_kafka_streams() {
    assert_golden(
        "windowed_suppressed",
        &suppressed(BufferConfig::unbounded()),
    );
}
