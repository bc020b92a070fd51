//! The Processor API through the TopologyTestDriver: validation, stores, punctuation, errors.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::Serdes;
use streams_core::store::StoreRef;
use streams_core::{
    Processor, ProcessorContext, PunctuationType, PunctuatorId, Record, Result, StoreBuilder,
    StreamsConfig, StreamsError, Topology, TopologyTestDriver,
};

fn s() -> streams_core::serdes::SerdeRef<String> {
    Serdes::string()
}

fn config() -> StreamsConfig {
    StreamsConfig::new("papi-test").unwrap()
}

fn topology_err(t: &Topology) -> String {
    t.validate().unwrap_err().to_string()
}

#[test]
fn validation_errors_are_clear() {
    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    let dup = t
        .add_source::<String, String>("src", &["other"], s(), s())
        .err()
        .unwrap()
        .to_string();
    assert!(dup.contains("`src` already exists"), "{dup}");
    let same_topic = t
        .add_source::<String, String>("src2", &["in"], s(), s())
        .err()
        .unwrap()
        .to_string();
    assert!(
        same_topic.contains("topic `in` is already read by source `src`"),
        "{same_topic}"
    );

    t.add_sink::<String, String>("sink", "out", s(), s(), &["nope"])
        .unwrap();
    assert!(topology_err(&t).contains("node `sink` names unknown parent `nope`"));

    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, String, Pass, _>("a", || Pass, &["src", "b"])
        .unwrap();
    t.add_processor::<String, String, Pass, _>("b", || Pass, &["a"])
        .unwrap();
    let cycle = topology_err(&t);
    assert!(cycle.contains("cycle"), "{cycle}");

    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_sink::<String, String>("sink", "out", s(), s(), &["src"])
        .unwrap();
    t.add_processor::<String, String, Pass, _>("after-sink", || Pass, &["sink"])
        .unwrap();
    assert!(topology_err(&t).contains("sinks have no children"));

    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, String, Pass, _>("p", || Pass, &["src"])
        .unwrap();
    t.add_state_store(StoreBuilder::key_value("lonely", s(), s()), &[])
        .unwrap();
    assert!(topology_err(&t).contains("store `lonely` is not connected to any processor"));
    let e = t
        .connect_processor_and_store("src", "lonely")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("only be connected to processors"), "{e}");
    let e = t
        .connect_processor_and_store("p", "missing")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("store `missing` is not added"), "{e}");
    assert!(Topology::new()
        .validate()
        .unwrap_err()
        .to_string()
        .contains("no source"));
}

struct Pass;
impl Processor<String, String> for Pass {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        ctx.forward(r)
    }
}

/// Sums values per key in a store (through a reference taken in `init`); emits the running sum,
/// and on every punctuation emits a marker.
struct Summer {
    store: &'static str,
    sums: Option<StoreRef<String, i64>>,
}
impl Processor<String, i64> for Summer {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.sums = Some(ctx.store_ref(self.store)?);
        ctx.schedule(10, PunctuationType::StreamTime)?;
        ctx.schedule(1000, PunctuationType::WallClockTime)?;
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, i64>) -> Result<()> {
        let meta = ctx.record_metadata().cloned().unwrap();
        assert_eq!(meta.topic, "numbers");
        let mut store = ctx.key_value(self.sums.as_ref().unwrap())?;
        let sum = store.get(&r.key)?.unwrap_or(0) + r.value;
        store.put(&r.key, &sum)?;
        ctx.forward(r.with_value(sum))
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        _id: PunctuatorId,
        ts: i64,
    ) -> Result<()> {
        let kind = if ctx.record_metadata().is_some() {
            "stream"
        } else {
            "wall"
        };
        ctx.forward(Record::new(format!("punctuate-{kind}"), ts, ts))
    }
}

fn summing_topology(store: StoreBuilder) -> Topology {
    let mut t = Topology::new();
    t.add_source::<String, i64>("src", &["numbers"], s(), Serdes::i64())
        .unwrap();
    t.add_processor::<String, i64, Summer, _>(
        "sum",
        || Summer {
            store: "sums",
            sums: None,
        },
        &["src"],
    )
    .unwrap();
    t.add_state_store(store, &["sum"]).unwrap();
    t.add_sink::<String, i64>("out", "sums-out", s(), Serdes::i64(), &["sum"])
        .unwrap();
    t
}

#[test]
fn stores_punctuation_and_changelog() {
    for builder in [
        StoreBuilder::key_value("sums", s(), Serdes::i64()),
        StoreBuilder::key_value("sums", s(), Serdes::i64()).in_memory(),
    ] {
        let driver = TopologyTestDriver::new(summing_topology(builder), config()).unwrap();
        let input = driver.create_input_topic("numbers", s(), Serdes::i64());
        let output = driver.create_output_topic("sums-out", s(), Serdes::i64());
        input.pipe_input_with_timestamp("a".into(), 1, 5).unwrap();
        input.pipe_input_with_timestamp("a".into(), 2, 7).unwrap();
        input.pipe_input_with_timestamp("b".into(), 10, 16).unwrap();
        driver.advance_wall_clock_time(999).unwrap();
        assert!(output
            .read_key_values_to_list()
            .unwrap()
            .iter()
            .all(|(k, _)| k != "punctuate-wall"));
        driver.advance_wall_clock_time(1).unwrap();
        let out = output.read_key_values_to_list().unwrap();
        assert_eq!(out, vec![("punctuate-wall".to_string(), 1000)]);

        input.pipe_input_with_timestamp("a".into(), 3, 30).unwrap();
        let out = output.read_records_to_list().unwrap();
        let pairs: Vec<(String, i64, i64)> = out
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        // The sum at 30, then the stream-time punctuation due at 26 fires at stream time 30.
        assert_eq!(
            pairs,
            vec![("a".into(), 6, 30), ("punctuate-stream".into(), 30, 30)]
        );
        assert_eq!(
            driver
                .key_value_store_get::<String, i64>("sums", &"a".to_string())
                .unwrap(),
            Some(6)
        );
        let mut all = driver.key_value_store_all::<String, i64>("sums").unwrap();
        all.sort();
        assert_eq!(all, vec![("a".to_string(), 6), ("b".to_string(), 10)]);

        // Every store write went to the changelog, stamped with the record's timestamp.
        let changelog = driver.create_output_topic("papi-test-sums-changelog", s(), Serdes::i64());
        let log: Vec<(String, i64, i64)> = changelog
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        assert_eq!(
            log,
            vec![
                ("a".into(), 1, 5),
                ("a".into(), 3, 7),
                ("b".into(), 10, 16),
                ("a".into(), 6, 30)
            ]
        );
        driver.close().unwrap();
    }
}

#[test]
fn first_stream_time_punctuation_fires_on_the_first_record() {
    let driver = TopologyTestDriver::new(
        summing_topology(StoreBuilder::key_value("sums", s(), Serdes::i64())),
        config(),
    )
    .unwrap();
    let input = driver.create_input_topic("numbers", s(), Serdes::i64());
    let output = driver.create_output_topic("sums-out", s(), Serdes::i64());
    input.pipe_input_with_timestamp("a".into(), 1, 100).unwrap();
    input.pipe_input_with_timestamp("a".into(), 1, 105).unwrap();
    input.pipe_input_with_timestamp("a".into(), 1, 110).unwrap();
    let keys: Vec<String> = output
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["a", "punctuate-stream", "a", "a", "punctuate-stream"]
    );
}

#[test]
fn undecodable_record_names_topic_partition_offset() {
    let driver = TopologyTestDriver::new(
        summing_topology(StoreBuilder::key_value("sums", s(), Serdes::i64())),
        config(),
    )
    .unwrap();
    let input = driver.create_input_topic("numbers", s(), Serdes::i64());
    input.pipe_input("a".into(), 1).unwrap();
    let err = input
        .pipe_raw(Some(b"a".to_vec()), Some(b"not a long".to_vec()), 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StreamsError::Deserialization {
                part: "value",
                offset: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("numbers-0 offset 1") && msg.contains("expected 8 bytes, got 10"),
        "{msg}"
    );
    // Nothing committed is lost: the good record's state is intact and processing continues.
    input.pipe_input("a".into(), 2).unwrap();
    assert_eq!(
        driver
            .key_value_store_get::<String, i64>("sums", &"a".to_string())
            .unwrap(),
        Some(3)
    );
}

struct WrongStore;
impl Processor<String, String> for WrongStore {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        _r: Record<String, String>,
    ) -> Result<()> {
        ctx.key_value_store::<String, String>("unconnected")?;
        Ok(())
    }
}

struct WrongTypes;
impl Processor<String, String> for WrongTypes {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        _r: Record<String, String>,
    ) -> Result<()> {
        ctx.key_value_store::<String, String>("longs")?;
        Ok(())
    }
}

#[test]
fn store_misuse_and_type_mismatch_are_errors() {
    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, String, WrongStore, _>("no-store", || WrongStore, &["src"])
        .unwrap();
    t.add_processor::<String, String, WrongTypes, _>("typed", || WrongTypes, &["src"])
        .unwrap();
    t.add_processor::<String, String, Pass, _>("holder", || Pass, &["src"])
        .unwrap();
    t.add_state_store(
        StoreBuilder::key_value("unconnected", s(), s()),
        &["holder"],
    )
    .unwrap();
    t.add_state_store(
        StoreBuilder::key_value("longs", s(), Serdes::i64()),
        &["typed"],
    )
    .unwrap();
    let driver = TopologyTestDriver::new(t, config()).unwrap();
    let input = driver.create_input_topic("in", s(), s());
    let e = input
        .pipe_input("k".into(), "v".into())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`no-store` cannot use store `unconnected`") && e.contains("not connected"),
        "{e}"
    );

    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, String, WrongTypes, _>("typed", || WrongTypes, &["src"])
        .unwrap();
    t.add_state_store(
        StoreBuilder::key_value("longs", s(), Serdes::i64()),
        &["typed"],
    )
    .unwrap();
    let driver = TopologyTestDriver::new(t, config()).unwrap();
    let e = driver
        .create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds (alloc::string::String, i64)"), "{e}");

    // A processor declared for i64 values under a String-valued source.
    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, i64, Summer, _>(
        "sum",
        || Summer {
            store: "x",
            sums: None,
        },
        &["src"],
    )
    .unwrap();
    t.add_state_store(StoreBuilder::key_value("x", s(), Serdes::i64()), &["sum"])
        .unwrap();
    let driver = TopologyTestDriver::new(t, config()).unwrap();
    let e = driver
        .create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into())
        .unwrap_err();
    assert!(matches!(e, StreamsError::TypeMismatch { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("`sum` expects records of type (alloc::string::String, i64)"),
        "{e}"
    );
}

#[test]
fn pattern_sources_and_subtopologies() {
    let mut t = Topology::new();
    t.add_source_pattern::<String, String>("src", "logs-.*", s(), s())
        .unwrap();
    t.add_sink::<String, String>("sink", "all-logs", s(), s(), &["src"])
        .unwrap();
    t.add_source::<String, String>("other", &["x"], s(), s())
        .unwrap();
    t.add_sink::<String, String>("sink2", "y", s(), s(), &["other"])
        .unwrap();
    let subs = t.subtopologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].source_patterns, vec!["logs-.*".to_string()]);
    assert_eq!(subs[1].source_topics, vec!["x".to_string()]);
    assert!(t
        .describe()
        .to_string()
        .contains("Source: src (topics: logs-.*)"));
    let driver = TopologyTestDriver::new(t, config()).unwrap();
    let out = driver.create_output_topic("all-logs", s(), s());
    driver
        .create_input_topic("logs-a", s(), s())
        .pipe_input("1".into(), "a".into())
        .unwrap();
    driver
        .create_input_topic("logs-b", s(), s())
        .pipe_input("2".into(), "b".into())
        .unwrap();
    assert!(driver
        .create_input_topic("logsx", s(), s())
        .pipe_input("3".into(), "c".into())
        .is_err());
    assert_eq!(out.read_key_values_to_list().unwrap().len(), 2);
}

/// Keeps every value under its key and, on `scan`, forwards the keys of the range `[b, d]`
/// read through a store reference, lazily decoded.
struct Ranger {
    entries: Option<StoreRef<String, String>>,
}
impl Processor<String, String> for Ranger {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.entries = Some(ctx.store_ref("entries")?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
        let entries = self.entries.as_ref().unwrap();
        if r.key != "scan" {
            return ctx.key_value(entries)?.put(&r.key, &r.value);
        }
        let keys = {
            let store = ctx.key_value(entries)?;
            let from = "b".to_string();
            let to = "d".to_string();
            let keys: Result<Vec<String>> = store
                .range(Some(&from), Some(&to))?
                .map(|e| e.map(|(k, _)| k))
                .collect();
            keys?
        };
        ctx.forward(r.with_value(keys.join(",")))
    }
}

fn ranging_topology(store: StoreBuilder) -> Topology {
    let mut t = Topology::new();
    t.add_source::<String, String>("src", &["in"], s(), s())
        .unwrap();
    t.add_processor::<String, String, Ranger, _>("ranger", || Ranger { entries: None }, &["src"])
        .unwrap();
    t.add_state_store(store, &["ranger"]).unwrap();
    t.add_sink::<String, String>("out", "out", s(), s(), &["ranger"])
        .unwrap();
    t
}

#[test]
fn store_refs_are_checked_once_and_ranges_are_iterators() {
    let driver = TopologyTestDriver::new(
        ranging_topology(StoreBuilder::key_value("entries", s(), s())),
        config(),
    )
    .unwrap();
    let input = driver.create_input_topic("in", s(), s());
    let output = driver.create_output_topic("out", s(), s());
    for k in ["a", "b", "c", "d", "e"] {
        input.pipe_input(k.into(), k.to_uppercase()).unwrap();
    }
    input.pipe_input("scan".into(), String::new()).unwrap();
    assert_eq!(
        output.read_key_value().unwrap(),
        Some(("scan".to_string(), "b,c,d".to_string()))
    );

    // The reference is taken in init: a store of other types is refused there, by name.
    let e = TopologyTestDriver::new(
        ranging_topology(StoreBuilder::key_value("entries", s(), Serdes::i64())),
        config(),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`entries`") && e.contains("holds (alloc::string::String, i64)"),
        "{e}"
    );

    // A timestamped store is not a plain key-value store.
    let driver = TopologyTestDriver::new(
        ranging_topology(StoreBuilder::timestamped_key_value("entries", s(), s())),
        config(),
    )
    .unwrap();
    let e = driver
        .create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("TimestampedKeyValue"), "{e}");
}
