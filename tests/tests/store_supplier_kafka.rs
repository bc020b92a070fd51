//! An application's own store (a `KeyValueBytesStoreSupplier`) on Apache Kafka: the runtime opens
//! it in the task directory, logs it, trusts it after a clean close, and under exactly-once wipes
//! and restores it from the changelog when a crash may have left it ahead of the last commit.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::state_stores::{
    InMemoryKeyValueStore, KeyValueBytesStoreSupplier, KeyValueStore, KvIter, Result, StateStore,
    StoreError,
};
use streams_core::{KafkaStreams, StoreSupplier, Topology};
use streams_dsl::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};
use streams_tests::kafka::{create_topics, init_tracing, long, produce, TopicReader};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

/// A store kept in memory and written whole to `<dir>/data.json` on every flush.
struct FileStore {
    map: InMemoryKeyValueStore,
    file: PathBuf,
}

struct FileSupplier;

impl KeyValueBytesStoreSupplier for FileSupplier {
    fn name(&self) -> &str {
        "file-counts"
    }
    fn get(&self, dir: &Path) -> Result<Box<dyn KeyValueStore>> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = dir.join("data.json");
        let mut map = InMemoryKeyValueStore::new("file-counts");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let entries: Vec<(Vec<u8>, Vec<u8>)> = serde_json::from_str(&text).unwrap();
            for (k, v) in entries {
                map.put(&k, &v)?;
            }
        }
        Ok(Box::new(FileStore { map, file }))
    }
}

impl StateStore for FileStore {
    fn name(&self) -> &str {
        self.map.name()
    }
    fn flush(&mut self) -> Result<()> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self.map.all()?.collect::<Result<_>>()?;
        std::fs::write(&self.file, serde_json::to_string(&entries).unwrap()).map_err(|source| {
            StoreError::Io {
                path: self.file.clone(),
                source,
            }
        })
    }
    fn close(&mut self) -> Result<()> {
        self.flush()?;
        self.map.close()
    }
    fn persistent(&self) -> bool {
        true
    }
}

impl KeyValueStore for FileStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.map.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.map.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.map.delete(key)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.map.range(from, to)
    }
    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.map.reverse_range(from, to)
    }
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        self.map.prefix_scan(prefix)
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        self.map.approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.map.write_batch(entries)
    }
}

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn counts(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&[input], Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .count(Materialized::as_supplier(StoreSupplier::key_value(
            Arc::new(FileSupplier),
        )))
        .to_stream()
        .to_with(output, Produced::with(s(), Serdes::nullable(Serdes::i64())));
    b.build().unwrap()
}

/// Runs the app on `state` until key `k` reached `count`, then closes it.
fn run_until(
    b: &str,
    app: &str,
    guarantee: &str,
    state: &Path,
    reader: &mut TopicReader,
    count: i64,
) {
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut streams = KafkaStreams::new(
        counts(&input, &output),
        test_config(app, b, guarantee, 1, state),
    )
    .unwrap();
    streams.start().unwrap();
    let reached = reader.poll_until(Duration::from_secs(60), |r| {
        r.iter()
            .any(|x| x.value.as_deref().map(long) == Some(count))
    });
    assert!(streams.close(Duration::from_secs(30)));
    assert!(streams.last_error().is_none(), "{:?}", streams.last_error());
    assert!(
        reached,
        "the count never reached {count}: {:?}",
        counts_of(reader)
    );
}

fn counts_of(reader: &TopicReader) -> Vec<i64> {
    reader
        .records
        .iter()
        .filter_map(|r| r.value.as_deref().map(long))
        .collect()
}

fn own_store_survives_restarts(guarantee: &str) {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = format!("own-store-{}", guarantee.replace('_', "-"));
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 1), (&output, 1)]);
    let mut reader = TopicReader::new(b, &output, true);
    let dir = tempfile::tempdir().unwrap();
    let feed = |n: usize| produce(b, &input, &vec![(Some("k"), Some("v")); n]);

    feed(10);
    run_until(b, &app, guarantee, dir.path(), &mut reader, 10);
    let data = dir
        .path()
        .join(&app)
        .join("0_0")
        .join("rocksdb")
        .join("file-counts")
        .join("data.json");
    assert!(
        data.exists(),
        "the supplier's store writes under the task directory"
    );

    // A clean close: the store is trusted as it is and counting goes on.
    feed(5);
    run_until(b, &app, guarantee, dir.path(), &mut reader, 15);

    if guarantee == "exactly_once_v2" {
        // As after a crash mid-transaction: no checkpoint, and the store holds a count no
        // commit ever made. It must be wiped and restored from the changelog.
        std::fs::remove_file(dir.path().join(&app).join("0_0").join(".checkpoint")).unwrap();
        let bogus: Vec<(Vec<u8>, Vec<u8>)> = vec![(b"k".to_vec(), 1_000i64.to_be_bytes().to_vec())];
        std::fs::write(&data, serde_json::to_string(&bogus).unwrap()).unwrap();
        feed(1);
        run_until(b, &app, guarantee, dir.path(), &mut reader, 16);
    }
    reader.poll_for(Duration::from_millis(500));
    let last = if guarantee == "exactly_once_v2" {
        16
    } else {
        15
    };
    let got = counts_of(&reader);
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for n in &got {
        *seen.entry(*n).or_default() += 1;
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "{got:?}"
    );
    if guarantee == "exactly_once_v2" {
        assert!(seen.values().all(|n| *n == 1), "each count once: {got:?}");
    }
}

#[test]
fn exactly_once_v2_keeps_an_application_store_exact_across_restarts() {
    own_store_survives_restarts("exactly_once_v2");
}

#[test]
fn at_least_once_keeps_an_application_store_across_restarts() {
    own_store_survives_restarts("at_least_once");
}
