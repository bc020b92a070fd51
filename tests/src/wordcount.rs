//! Word-count fixtures shared by the end-to-end tests: config, expected counts, output checks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use streams_core::StreamsConfig;

use crate::kafka::{long, TopicReader};

/// Word counts of `lines`, split and lower-cased like the example topology.
pub fn expected_counts<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        for w in l
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *m.entry(w.to_lowercase()).or_insert(0) += 1;
        }
    }
    m
}

/// A config for tests: fast commits, replication 1, the given guarantee, threads and state dir.
/// The record cache is off, so every update reaches the output (tests check them one by one);
/// tests of the cache turn it back on.
pub fn test_config(
    app: &str,
    bootstrap: &str,
    guarantee: &str,
    threads: usize,
    state: &Path,
) -> StreamsConfig {
    StreamsConfig::from_pairs([
        ("application.id", app),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", guarantee),
        ("commit.interval.ms", "100"),
        ("replication.factor", "1"),
        ("statestore.cache.max.bytes", "0"),
        ("num.stream.threads", &threads.to_string()),
        ("state.dir", state.to_str().unwrap_or_default()),
    ])
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

/// Every word's count updates in output order.
pub fn updates_per_word(reader: &TopicReader) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in &reader.records {
        m.entry(r.key_str())
            .or_default()
            .push(r.value.as_deref().map(long).unwrap_or(-1));
    }
    m
}

/// Polls `reader` until the latest count of every word equals `want` (then one more second for
/// stragglers); panics with the updates seen if it never does.
pub fn await_counts(reader: &mut TopicReader, want: &BTreeMap<String, i64>, timeout: Duration) {
    let reached = reader.poll_until(timeout, |recs| {
        let mut latest = BTreeMap::new();
        for r in recs {
            latest.insert(r.key_str(), r.value.as_deref().map(long).unwrap_or(-1));
        }
        &latest == want
    });
    reader.poll_for(Duration::from_secs(1));
    assert!(
        reached,
        "final counts never matched.\nwant: {want:?}\nupdates: {:?}",
        updates_per_word(reader)
    );
}

/// Exactly-once check: each word's updates are exactly 1, 2, ..., n — no update lost, none repeated.
pub fn assert_exact_updates(reader: &TopicReader, want: &BTreeMap<String, i64>) {
    let updates = updates_per_word(reader);
    for (w, n) in want {
        let seq: Vec<i64> = (1..=*n).collect();
        assert_eq!(updates.get(w), Some(&seq), "updates of `{w}`");
    }
    assert_eq!(
        updates.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "unexpected words"
    );
}
