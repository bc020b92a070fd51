//! Store suppliers (Kafka Streams' `Stores` and `Materialized.as(supplier)`): the built-in LRU,
//! in-memory and RocksDB suppliers, an application's own store implementation, and the errors
//! for a supplier that does not fit, through the TopologyTestDriver.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use streams_core::runtime::internal_topics::plan_layout;
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::state_stores::{
    InMemoryKeyValueStore, KeyValueBytesStoreSupplier, KeyValueStore, KvIter, StateStore,
};
use streams_core::{StoreSupplier, Stores, StreamsConfig, TopologyTestDriver};
use streams_dsl::{
    Consumed, Grouped, JoinWindows, Materialized, StreamJoined, StreamsBuilder, TimeWindows,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn counts(m: Materialized<String, i64>) -> streams_core::Result<streams_core::Topology> {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .count(m.with_caching_disabled())
        .to_stream()
        .to_with(
            "out",
            streams_dsl::Produced::with(s(), Serdes::nullable(Serdes::i64())),
        );
    b.build()
}

#[test]
fn an_lru_map_evicts_the_least_recently_used_key_and_logs_its_removal() {
    let d = TopologyTestDriver::new(
        counts(Materialized::as_supplier(Stores::lru_map("recent", 2))).unwrap(),
        StreamsConfig::new("lru").unwrap(),
    )
    .unwrap();
    let input = d.create_input_topic("in", s(), s());
    for k in ["a", "b", "a", "c", "b"] {
        input.pipe_input(k.into(), "v".into()).unwrap();
    }
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::i64()));
    let pairs = |v: &[(&str, Option<i64>)]| -> Vec<(String, Option<i64>)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    // `c` evicts `b` (reading `a` made `b` the least recently used); `b` comes back at 1 and
    // evicts `a`.
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        pairs(&[
            ("a", Some(1)),
            ("b", Some(1)),
            ("a", Some(2)),
            ("c", Some(1)),
            ("b", Some(1)),
        ])
    );
    let changelog =
        d.create_output_topic("lru-recent-changelog", s(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        changelog.read_key_values_to_list().unwrap(),
        pairs(&[
            ("a", Some(1)),
            ("b", Some(1)),
            ("a", Some(2)),
            ("c", Some(1)),
            ("b", None),
            ("b", Some(1)),
            ("a", None),
        ])
    );
    let mut kept = d.key_value_store_all::<String, i64>("recent").unwrap();
    kept.sort();
    assert_eq!(kept, vec![("b".to_string(), 1), ("c".to_string(), 1)]);
}

/// An application's store: memory, counting the writes that reach it.
struct CountingSupplier {
    writes: Arc<AtomicUsize>,
}

struct CountingStore {
    inner: InMemoryKeyValueStore,
    writes: Arc<AtomicUsize>,
}

impl KeyValueBytesStoreSupplier for CountingSupplier {
    fn name(&self) -> &str {
        "counted"
    }
    fn get(&self, _dir: &Path) -> streams_core::state_stores::Result<Box<dyn KeyValueStore>> {
        Ok(Box::new(CountingStore {
            inner: InMemoryKeyValueStore::new("counted"),
            writes: self.writes.clone(),
        }))
    }
}

impl StateStore for CountingStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn flush(&mut self) -> streams_core::state_stores::Result<()> {
        self.inner.flush()
    }
    fn close(&mut self) -> streams_core::state_stores::Result<()> {
        self.inner.close()
    }
    fn persistent(&self) -> bool {
        false
    }
}

type R<T> = streams_core::state_stores::Result<T>;

impl KeyValueStore for CountingStore {
    fn get(&self, key: &[u8]) -> R<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> R<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> R<Option<Vec<u8>>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(key)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> R<KvIter<'_>> {
        self.inner.range(from, to)
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> R<KvIter<'_>> {
        self.inner.reverse_range(from, to)
    }
    fn prefix_scan(&self, prefix: &[u8]) -> R<KvIter<'_>> {
        self.inner.prefix_scan(prefix)
    }
    fn approximate_num_entries(&self) -> R<u64> {
        self.inner.approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> R<()> {
        self.inner.write_batch(entries)
    }
}

#[test]
fn an_application_store_holds_the_aggregate() {
    let writes = Arc::new(AtomicUsize::new(0));
    let supplier = StoreSupplier::key_value(Arc::new(CountingSupplier {
        writes: writes.clone(),
    }));
    let d = TopologyTestDriver::new(
        counts(Materialized::as_supplier(supplier)).unwrap(),
        StreamsConfig::new("own").unwrap(),
    )
    .unwrap();
    let input = d.create_input_topic("in", s(), s());
    for k in ["x", "y", "x"] {
        input.pipe_input(k.into(), "v".into()).unwrap();
    }
    assert_eq!(writes.load(Ordering::Relaxed), 3);
    assert_eq!(
        d.key_value_store_get::<String, i64>("counted", &"x".to_string())
            .unwrap(),
        Some(2)
    );
    // The changelog is named after the supplier's store.
    let changelog = d.create_output_topic("own-counted-changelog", s(), Serdes::i64());
    assert_eq!(changelog.read_key_values_to_list().unwrap().len(), 3);
}

#[test]
fn a_supplier_that_does_not_fit_is_refused_at_build_time() {
    let windowed = |m: Materialized<String, i64>| {
        let b = StreamsBuilder::new();
        b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
            .group_by_key(Grouped::with(s(), s()))
            .windowed_by(TimeWindows::of_size_and_grace(10, 5))
            .count(m);
        b.build().map(|_| ())
    };
    let e = windowed(Materialized::as_supplier(Stores::in_memory_window_store(
        "w", 100, 20, false,
    )))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("store `w`") && e.contains("window size (20 ms)"),
        "{e}"
    );
    // Too short a retention for size plus grace, as with `with_retention`.
    let e = windowed(Materialized::as_supplier(Stores::persistent_window_store(
        "w", 12, 10, false,
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains("retention 12 ms"), "{e}");
    let e = windowed(Materialized::as_supplier(
        Stores::in_memory_key_value_store("kv"),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("store `kv`: a window store cannot use a supplier of key-value stores"),
        "{e}"
    );
    let e = counts(Materialized::as_supplier(Stores::in_memory_session_store(
        "s", 100,
    )))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("store `s`: a key-value store cannot use a supplier of session stores"),
        "{e}"
    );
    // A fitting one builds.
    windowed(Materialized::as_supplier(Stores::persistent_window_store(
        "w", 100, 10, false,
    )))
    .unwrap();
}

#[test]
fn processor_api_stores_are_built_from_suppliers() {
    let kv = Stores::key_value_store_builder(Stores::in_memory_key_value_store("m"), s(), s());
    assert_eq!(kv.name(), "m");
    assert!(!kv.persistent());
    let w = Stores::timestamped_window_store_builder(
        Stores::persistent_window_store("w", 100, 10, true),
        s(),
        s(),
    );
    assert_eq!(
        w.kind(),
        streams_core::StoreKind::Window {
            retention_ms: 100,
            window_size_ms: 10,
            retain_duplicates: true
        }
    );
    assert!(w.persistent());
    let session =
        Stores::session_store_builder(Stores::persistent_session_store("s", 50), s(), s());
    assert_eq!(
        session.kind(),
        streams_core::StoreKind::Session { retention_ms: 50 }
    );
    // A key-value supplier for a session store fails when added.
    let wrong = Stores::session_store_builder(Stores::lru_map("l", 5), s(), s());
    let mut t = streams_core::Topology::new();
    let e = t.add_state_store(wrong, &[]).unwrap_err().to_string();
    assert!(e.contains("store `l`"), "{e}");
}

#[test]
fn a_stream_join_keeps_its_sides_in_the_suppliers_stores() {
    let build = |joined: StreamJoined<String, String, String>| {
        let b = StreamsBuilder::new();
        let left = b.stream_with::<String, String>(&["l"], Consumed::with(s(), s()));
        let right = b.stream_with::<String, String>(&["r"], Consumed::with(s(), s()));
        left.left_join(
            &right,
            |l, r| format!("{l}+{}", r.map_or("null", String::as_str)),
            JoinWindows::of_time_difference_and_grace(5, 3),
            joined,
        )
        .to("out");
        b.build()
    };
    let window = |name: &str| Stores::in_memory_window_store(name, 13, 10, true);
    let t = build(
        StreamJoined::with(s(), s(), s())
            .with_this_store_supplier(window("mine"))
            .with_other_store_supplier(window("theirs"))
            .with_logging_disabled(),
    )
    .unwrap();
    let layout = plan_layout(&t, "app", &|_| Some(1), &|_| Vec::new()).unwrap();
    let mut changelogs: Vec<&str> = layout
        .internal_topics
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    changelogs.sort_unstable();
    // The suppliers' stores keep their changelogs; the join's own shared store has none.
    assert_eq!(
        changelogs,
        vec!["app-mine-changelog", "app-theirs-changelog"]
    );
    let d = TopologyTestDriver::new(t, StreamsConfig::new("join").unwrap()).unwrap();
    let (l, r) = (
        d.create_input_topic("l", s(), s()),
        d.create_input_topic("r", s(), s()),
    );
    l.pipe_input_with_timestamp("k".into(), "a".into(), 100)
        .unwrap();
    r.pipe_input_with_timestamp("k".into(), "b".into(), 103)
        .unwrap();
    l.pipe_input_with_timestamp("j".into(), "c".into(), 104)
        .unwrap();
    // Stream time 120 closes j's window: it comes out unmatched.
    l.pipe_input_with_timestamp("z".into(), "d".into(), 120)
        .unwrap();
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("k".to_string(), "a+b".to_string()),
            ("j".to_string(), "c+null".to_string()),
        ]
    );

    // Kafka Streams' checks: duplicates retained, the join's size and retention, two names.
    let err = |joined: StreamJoined<String, String, String>| build(joined).unwrap_err().to_string();
    let e = err(StreamJoined::with(s(), s(), s())
        .with_this_store_supplier(Stores::in_memory_window_store("x", 13, 10, false)));
    assert!(e.contains("`x` must retain duplicates"), "{e}");
    let e = err(StreamJoined::with(s(), s(), s())
        .with_this_store_supplier(Stores::in_memory_window_store("x", 20, 10, true)));
    assert!(e.contains("retention 13 ms (size + grace)"), "{e}");
    let e = err(StreamJoined::with(s(), s(), s())
        .with_this_store_supplier(window("same"))
        .with_other_store_supplier(window("same")));
    assert!(e.contains("both store suppliers are named `same`"), "{e}");
}
