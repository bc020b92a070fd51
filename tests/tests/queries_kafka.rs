//! Interactive queries: a running instance answers key, range and window lookups from its local
//! stores (and its global stores).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::iq::{
    FailureReason, KeyQuery, Position, PositionBound, RangeQuery, StateQueryRequest, WindowKeyQuery,
};
use streams_core::runtime::{StandbySuspendReason, StandbyUpdateListener};
use streams_core::KafkaStreams;
use streams_dsl::{Consumed, Grouped, Materialized, StreamsBuilder, TimeWindows};
use streams_tests::kafka::{create_topics, event_time, init_tracing, produce_with_timestamps};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_running_instance_answers_key_range_and_window_queries() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (input, table) = ("queries-in", "queries-table");
    create_topics(b, &[(input, 3), (table, 1)]);
    let builder = StreamsBuilder::new();
    let words = builder.stream::<String, String>(input);
    words
        .group_by_key(Grouped::default())
        .count(Materialized::as_("counts"));
    words
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_and_grace(1000, 5000))
        .count(Materialized::as_("per-second"));
    builder.global_table::<String, String>(table, Consumed::default(), Materialized::as_("names"));
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        builder.build().unwrap(),
        test_config("queries", b, "exactly_once_v2", 2, dir.path()),
    )
    .unwrap();
    produce_with_timestamps(b, table, &[(Some("a"), Some("Alpha"), None)]);
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let recs: Vec<(String, i64)> = (0..30)
        .map(|i| {
            (
                ["a", "b", "c"][i % 3].to_string(),
                10_000 + (i as i64 / 3) * 200,
            )
        })
        .collect();
    let rr: Vec<_> = recs
        .iter()
        .map(|(k, t)| (Some(k.as_str()), Some("x"), Some(*t)))
        .collect();
    produce_with_timestamps(b, input, &rr);

    eventually("counts reach 10 per key", || {
        ["a", "b", "c"].iter().all(|k| {
            streams
                .query_key_value::<String, i64>("counts", &k.to_string())
                .unwrap()
                == Some(10)
        })
    });
    let mut all = streams
        .query_key_value_range::<String, i64>("counts", None, None)
        .unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]
    );
    let some = streams
        .query_key_value_range::<String, i64>("counts", Some(&"b".to_string()), None)
        .unwrap();
    assert!(
        some.iter().all(|(k, _)| k.as_str() >= "b") && some.len() == 2,
        "{some:?}"
    );
    // Each key had records at 10000, 10200, ..., 11800: five per one-second window (both kept:
    // retention is size + grace = 6 s).
    assert_eq!(
        streams
            .query_window::<String, i64>("per-second", &"a".to_string(), 0, i64::MAX)
            .unwrap(),
        vec![(event_time(10_000), 5), (event_time(11_000), 5)]
    );
    assert_eq!(
        streams
            .query_key_value::<String, String>("names", &"a".to_string())
            .unwrap(),
        Some("Alpha".into())
    );
    let err = streams
        .query_key_value::<String, i64>("no-such-store", &"a".to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no store named `no-such-store`"), "{err}");

    // Interactive queries v2: one answer per partition of the 3, positioned at the last input
    // offset each processed.
    let counts = streams
        .query(
            StateQueryRequest::in_store("counts")
                .with_query(RangeQuery::<String, i64>::with_no_bounds())
                .require_active(),
        )
        .unwrap();
    assert_eq!(counts.partition_results().len(), 3);
    let positions: Vec<(i32, Option<i64>)> = counts
        .partition_results()
        .iter()
        .map(|(p, r)| (*p, r.position().offset(input, *p)))
        .collect();
    let per_partition: BTreeMap<i32, Vec<(String, i64)>> = counts
        .into_partition_results()
        .into_iter()
        .map(|(p, r)| (p, r.into_result().unwrap().map(Result::unwrap).collect()))
        .collect();
    let mut rows: Vec<(String, i64)> = per_partition.values().flatten().cloned().collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]
    );
    // A partition that processed records is positioned at its last one; one that got no key
    // has an empty position.
    for (p, at) in &positions {
        let rows = per_partition[p].len();
        assert_eq!(
            rows > 0,
            at.is_some(),
            "partition {p}: {rows} rows at {at:?}"
        );
    }
    // Pinned to one partition; and a bound past what that partition processed.
    let (p, at) = positions
        .iter()
        .find_map(|(p, at)| at.map(|o| (*p, o)))
        .unwrap();
    let key_query = || KeyQuery::<String, i64>::with_key("a".to_string());
    let pinned = streams
        .query(
            StateQueryRequest::in_store("counts")
                .with_query(key_query())
                .with_partitions([p]),
        )
        .unwrap();
    assert_eq!(pinned.partition_results().len(), 1);
    assert!(pinned.only_partition_result().unwrap().is_success());
    let ahead = streams
        .query(
            StateQueryRequest::in_store("counts")
                .with_query(key_query())
                .with_partitions([p, 7])
                .with_position_bound(PositionBound::At(Position::empty().with_component(
                    input,
                    p,
                    at + 1,
                ))),
        )
        .unwrap();
    let reason = |q: i32| {
        ahead.partition_results()[&q]
            .failure_reason()
            .map(|(r, _)| r)
    };
    assert_eq!(reason(p), Some(FailureReason::NotUpToBound));
    assert_eq!(reason(7), Some(FailureReason::NotPresent));
    let windows = streams
        .query(StateQueryRequest::in_store("per-second").with_query(
            WindowKeyQuery::<String, i64>::with_key_and_window_start_range(
                "a".to_string(),
                0,
                i64::MAX,
            ),
        ))
        .unwrap();
    let found: Vec<(i64, i64)> = windows
        .partition_results()
        .values()
        .flat_map(|r| r.result().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        found,
        vec![(event_time(10_000), 5), (event_time(11_000), 5)]
    );
    let global = streams
        .query(
            StateQueryRequest::in_store("names")
                .with_query(KeyQuery::<String, String>::with_key("a".to_string())),
        )
        .unwrap();
    assert_eq!(
        global.global_result().and_then(|r| r.result().cloned()),
        Some(Some("Alpha".to_string()))
    );
    // A query of types the store does not hold fails for that partition, not the call.
    let wrong = streams
        .query(
            StateQueryRequest::in_store("counts")
                .with_query(KeyQuery::<String, String>::with_key("a".to_string())),
        )
        .unwrap();
    assert!(wrong
        .partition_results()
        .values()
        .all(|r| r.failure_reason().map(|(r, _)| r) == Some(FailureReason::StoreException)));
    assert!(streams.close(Duration::from_secs(30)));
}

/// A range query's answer is an iterator that reads its store a page (1,000 entries) at a time:
/// 2,500 keys come back in three pages, and a key written while the iterator stands in its
/// second page, past the last key it returned, comes in a later one.
#[test]
fn a_range_query_reads_its_store_a_page_at_a_time() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let input = "queries-pages-in";
    create_topics(b, &[(input, 1)]);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .group_by_key(Grouped::default())
        .count(Materialized::as_("page-counts"));
    let dir = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        builder.build().unwrap(),
        test_config("queries-pages", b, "at_least_once", 1, dir.path()),
    )
    .unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i:05}")).collect();
    let records: Vec<_> = keys
        .iter()
        .map(|k| (Some(k.as_str()), Some("x"), None))
        .collect();
    produce_with_timestamps(b, input, &records);
    let count = |k: &str| {
        streams
            .query_key_value::<String, i64>("page-counts", &k.to_string())
            .unwrap()
    };
    eventually("every key counted", || count("k02499") == Some(1));
    let mut answer = streams
        .query(
            StateQueryRequest::in_store("page-counts")
                .with_query(RangeQuery::<String, i64>::with_no_bounds()),
        )
        .unwrap()
        .into_partition_results();
    let mut entries = answer.remove(&0).unwrap().into_result().unwrap();
    let mut read: Vec<(String, i64)> = entries.by_ref().take(1500).map(Result::unwrap).collect();
    produce_with_timestamps(b, input, &[(Some("z-late"), Some("x"), None)]);
    eventually("the late key counted", || count("z-late") == Some(1));
    read.extend(entries.map(Result::unwrap));
    let mut want: Vec<(String, i64)> = keys.into_iter().map(|k| (k, 1)).collect();
    want.push(("z-late".into(), 1));
    assert_eq!(read, want);
    assert!(streams.close(Duration::from_secs(30)));
}

/// `application.server`: every instance learns where each key lives, and the instance it names
/// holds the key (the other does not). Standby copies are named too.
#[test]
fn application_server_metadata_finds_the_instance_holding_a_key() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    create_topics(b, &[("hosts-in", 4)]);
    let topology = || {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("hosts-in")
            .group_by_key(Grouped::default())
            .count(Materialized::as_("counts"));
        builder.build().unwrap()
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |dir: &std::path::Path, port: u16| {
        let mut c = test_config("hosts", b, "exactly_once_v2", 1, dir);
        c.set("application.server", &format!("127.0.0.1:{port}"))
            .unwrap();
        c.set("num.standby.replicas", "1").unwrap();
        c
    };
    let plain = KafkaStreams::new(
        topology(),
        test_config("hosts", b, "exactly_once_v2", 1, d1.path()),
    )
    .unwrap();
    let e = plain.metadata_for_all_clients().unwrap_err().to_string();
    assert!(e.contains("application.server"), "{e}");
    drop(plain);

    let mut one = KafkaStreams::new(topology(), config(d1.path(), 7001)).unwrap();
    let mut two = KafkaStreams::new(topology(), config(d2.path(), 7002)).unwrap();
    let standby_events = Arc::new(StandbyEvents::default());
    one.set_standby_update_listener(standby_events.clone());
    one.start().unwrap();
    two.start().unwrap();
    one.wait_until_running(Duration::from_secs(60)).unwrap();
    two.wait_until_running(Duration::from_secs(60)).unwrap();
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let rr: Vec<_> = keys
        .iter()
        .map(|k| (Some(k.as_str()), Some("x"), None))
        .collect();
    produce_with_timestamps(b, "hosts-in", &rr);

    // Both instances, all 4 tasks, each stated once as active and once as standby.
    // The view is eventually consistent: wait until both instances see all of it.
    eventually("both instances announce their tasks and copies", || {
        [&one, &two].iter().all(|s| {
            let all = s.metadata_for_all_clients().unwrap();
            let active: usize = all.iter().map(|m| m.active_tasks.len()).sum();
            let standby: usize = all.iter().map(|m| m.standby_tasks.len()).sum();
            all.len() == 2 && active == 4 && standby == 4
        })
    });
    let all = two.metadata_for_all_clients().unwrap();
    assert!(all
        .iter()
        .all(|m| m.state_store_names.contains("counts") && !m.active_tasks.is_empty()));
    let ports = |v: Vec<streams_core::runtime::instance::endpoints::StreamsMetadata>| -> Vec<u16> {
        let mut p: Vec<u16> = v.iter().map(|m| m.host_info.port).collect();
        p.sort();
        p
    };
    assert_eq!(
        ports(one.streams_metadata_for_store("counts").unwrap()),
        vec![7001, 7002]
    );
    assert!(one.streams_metadata_for_store("no-such-store").is_err());
    let by_port = |port: u16| if port == 7001 { &one } else { &two };
    for k in &keys {
        eventually(&format!("{k} is counted"), || {
            [&one, &two].iter().any(|s| {
                s.query_key_value::<String, i64>("counts", k)
                    .unwrap()
                    .is_some()
            })
        });
        let meta = one
            .query_metadata_for_key::<String, i64>("counts", k)
            .unwrap();
        eventually(&format!("both instances agree where {k} lives"), || {
            two.query_metadata_for_key::<String, i64>("counts", k)
                .unwrap()
                == meta
        });
        let active = meta.active_host.clone().unwrap();
        let other = if active.port == 7001 { 7002 } else { 7001 };
        assert_eq!(meta.standby_hosts.len(), 1, "{meta:?}");
        assert_eq!(meta.standby_hosts[0].port, other);
        assert_eq!(
            by_port(active.port)
                .query_key_value::<String, i64>("counts", k)
                .unwrap(),
            Some(1),
            "{k} on {active}"
        );
        assert_eq!(
            by_port(other)
                .query_key_value::<String, i64>("counts", k)
                .unwrap(),
            None,
            "{k} is not active on :{other}"
        );
    }
    // Interactive queries v2 on `one`: requiring active copies, the partitions it holds as
    // standby answer NotActive; allowing stale reads, every partition answers.
    eventually(
        "one answers for all 4 partitions, 2 of them from standby copies",
        || {
            let active_only = one
                .query(
                    StateQueryRequest::in_store("counts")
                        .with_query(RangeQuery::<String, i64>::with_no_bounds())
                        .require_active(),
                )
                .unwrap();
            let not_active = active_only
                .partition_results()
                .values()
                .filter(|r| r.failure_reason().map(|(r, _)| r) == Some(FailureReason::NotActive))
                .count();
            let stale = one
                .query(
                    StateQueryRequest::in_store("counts")
                        .with_query(RangeQuery::<String, i64>::with_no_bounds()),
                )
                .unwrap();
            let all_answered = stale.partition_results().values().all(|r| r.is_success());
            let rows: usize = stale
                .into_partition_results()
                .into_values()
                .map(|r| r.into_result().map_or(0, Iterator::count))
                .sum();
            active_only.partition_results().len() == 4
                && not_active == 2
                && all_answered
                && rows == keys.len()
        },
    );
    // Store lags: `one` holds all 4 partitions of `counts` (2 active, 2 standby copies), all
    // caught up with changelogs that hold the counts.
    eventually("one reports 4 caught-up partitions of counts", || {
        let lags = one.all_local_store_partition_lags().unwrap();
        lags.get("counts").is_some_and(|c| {
            c.len() == 4
                && c.values().all(|l| l.offset_lag == 0)
                && c.values().map(|l| l.end_offset_position).sum::<i64>() > 0
        })
    });
    // The standby copies of `one` started following their changelogs and loaded the counts.
    eventually("the standby copies of one report loaded batches", || {
        standby_events.batches.lock().unwrap().iter().sum::<u64>() > 0
    });
    assert!(!standby_events.starts.lock().unwrap().is_empty());
    assert!(one.close(Duration::from_secs(30)));
    assert!(two.close(Duration::from_secs(30)));
    // Closing the instance suspends every copy it held.
    assert!(standby_events
        .suspended
        .lock()
        .unwrap()
        .contains(&StandbySuspendReason::Migrated));
}

/// Records what a standby update listener hears.
#[derive(Default)]
struct StandbyEvents {
    starts: Mutex<Vec<String>>,
    batches: Mutex<Vec<u64>>,
    suspended: Mutex<Vec<StandbySuspendReason>>,
}

impl StandbyUpdateListener for StandbyEvents {
    fn on_update_start(&self, topic: &str, partition: i32, _store: &str, _start: i64) {
        self.starts
            .lock()
            .unwrap()
            .push(format!("{topic}-{partition}"));
    }
    fn on_batch_loaded(
        &self,
        _topic: &str,
        _partition: i32,
        _store: &str,
        _task: streams_core::TaskId,
        _batch_end: i64,
        batch_size: u64,
        _current_end: i64,
    ) {
        self.batches.lock().unwrap().push(batch_size);
    }
    fn on_update_suspended(
        &self,
        _topic: &str,
        _partition: i32,
        _store: &str,
        _store_offset: i64,
        _current_end: i64,
        reason: StandbySuspendReason,
    ) {
        self.suspended.lock().unwrap().push(reason);
    }
}
