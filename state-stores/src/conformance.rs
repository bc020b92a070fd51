//! One behavioural suite, run against every store implementation.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::*;

type Kv = Box<dyn KeyValueStore>;

fn collect(it: KvIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|e| e.unwrap()).collect()
}

fn keys(it: KvIter<'_>) -> Vec<Vec<u8>> {
    collect(it).into_iter().map(|(k, _)| k).collect()
}

fn kv_suite(mut store: Kv) {
    assert_eq!(store.get(b"a").unwrap(), None);
    store.put(b"a", b"1").unwrap();
    store.put(b"b", b"2").unwrap();
    store.put(b"ab", b"3").unwrap();
    store.put(b"c", b"4").unwrap();
    store.put(&[0xff, 0x01], b"5").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    store.put(b"a", b"1b").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1b".to_vec()));

    assert_eq!(
        store.put_if_absent(b"a", b"x").unwrap(),
        Some(b"1b".to_vec())
    );
    assert_eq!(store.put_if_absent(b"d", b"6").unwrap(), None);
    assert_eq!(store.get(b"d").unwrap(), Some(b"6".to_vec()));

    assert_eq!(store.delete(b"d").unwrap(), Some(b"6".to_vec()));
    assert_eq!(store.delete(b"d").unwrap(), None);
    assert_eq!(store.get(b"d").unwrap(), None);
    // Removed without reading: a present key goes, an absent one stays absent.
    store.put(b"gone", b"7").unwrap();
    store.remove(b"gone").unwrap();
    store.remove(b"never").unwrap();
    assert_eq!(store.get(b"gone").unwrap(), None);
    assert_eq!(store.get(b"never").unwrap(), None);

    let all = keys(store.all().unwrap());
    assert_eq!(
        all,
        vec![
            b"a".to_vec(),
            b"ab".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            vec![0xff, 0x01]
        ]
    );
    assert_eq!(
        keys(store.range(Some(b"ab"), Some(b"c")).unwrap()),
        vec![b"ab".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        keys(store.range(Some(b"b"), None).unwrap()),
        vec![b"b".to_vec(), b"c".to_vec(), vec![0xff, 0x01]]
    );
    assert_eq!(
        keys(store.range(None, Some(b"ab")).unwrap()),
        vec![b"a".to_vec(), b"ab".to_vec()]
    );
    assert!(keys(store.range(Some(b"c"), Some(b"a")).unwrap()).is_empty());
    assert_eq!(
        keys(store.reverse_range(Some(b"ab"), Some(b"c")).unwrap()),
        vec![b"c".to_vec(), b"b".to_vec(), b"ab".to_vec()]
    );
    assert_eq!(keys(store.reverse_range(None, None).unwrap()).len(), 5);
    assert_eq!(
        keys(store.prefix_scan(b"a").unwrap()),
        vec![b"a".to_vec(), b"ab".to_vec()]
    );
    assert_eq!(
        keys(store.prefix_scan(&[0xff]).unwrap()),
        vec![vec![0xff, 0x01]]
    );
    assert!(keys(store.prefix_scan(b"zz").unwrap()).is_empty());
    assert_eq!(
        collect(store.range(Some(b"a"), Some(b"a")).unwrap()),
        vec![(b"a".to_vec(), b"1b".to_vec())]
    );

    store
        .write_batch(&[
            (b"e".to_vec(), Some(b"7".to_vec())),
            (b"a".to_vec(), None),
            (b"b".to_vec(), Some(b"8".to_vec())),
        ])
        .unwrap();
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"b").unwrap(), Some(b"8".to_vec()));
    assert_eq!(store.get(b"e").unwrap(), Some(b"7".to_vec()));
    let n = store.approximate_num_entries().unwrap();
    assert!((1..=10).contains(&n), "approximate count {n} for 5 entries");

    store.put(b"", b"empty key").unwrap();
    assert_eq!(store.get(b"").unwrap(), Some(b"empty key".to_vec()));
    store.put(b"empty value", b"").unwrap();
    assert_eq!(store.get(b"empty value").unwrap(), Some(Vec::new()));

    store.flush().unwrap();
    store.close().unwrap();
    assert!(matches!(store.get(b"b"), Err(StoreError::Closed(_))));
}

fn rocks(dir: &Path, name: &str) -> RocksDbKeyValueStore {
    RocksDbKeyValueStore::open(name, dir.join(name), &RocksDbResources::new(16 << 20)).unwrap()
}

#[test]
fn kv_in_memory() {
    kv_suite(Box::new(InMemoryKeyValueStore::new("mem")));
}

#[test]
fn kv_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    kv_suite(Box::new(rocks(dir.path(), "rocks")));
}

#[test]
fn kv_change_logging_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let inner: [Kv; 2] = [
        Box::new(InMemoryKeyValueStore::new("m")),
        Box::new(rocks(dir.path(), "r")),
    ];
    for inner in inner {
        let sink = VecChangelogSink::new();
        let ts = RecordTimestamp::default();
        ts.set(77);
        kv_suite(Box::new(ChangeLoggingKeyValueStore::new(
            inner,
            Box::new(sink.clone()),
            ts,
        )));
        let logged = sink.drain();
        // puts a, b, ab, c, ff01, a again, put_if_absent d, delete d twice, put and remove a key, remove
        // an absent key, then 2 more puts; the batch is not logged.
        assert_eq!(logged.len(), 14, "{logged:?}");
        assert_eq!(
            logged[0],
            ChangelogRecord {
                key: b"a".to_vec(),
                value: Some(b"1".to_vec()),
                timestamp: 77
            }
        );
        assert_eq!(
            logged[7],
            ChangelogRecord {
                key: b"d".to_vec(),
                value: None,
                timestamp: 77
            }
        );
        assert_eq!(
            logged[11],
            ChangelogRecord {
                key: b"never".to_vec(),
                value: None,
                timestamp: 77
            }
        );
        assert!(
            logged.iter().all(|r| r.key != b"e"),
            "restore batch must bypass the changelog"
        );
    }
}

#[test]
fn timestamped_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let inner: [Kv; 2] = [
        Box::new(InMemoryKeyValueStore::new("m")),
        Box::new(rocks(dir.path(), "t")),
    ];
    for inner in inner {
        let mut s = TimestampedKeyValueStore::new(inner);
        s.put(b"k", b"v", 1234).unwrap();
        assert_eq!(
            s.get(b"k").unwrap(),
            Some(ValueAndTimestamp {
                value: b"v".to_vec(),
                timestamp: 1234
            })
        );
        s.put(b"k", b"w", -5).unwrap();
        assert_eq!(
            s.all().unwrap(),
            vec![(
                b"k".to_vec(),
                ValueAndTimestamp {
                    value: b"w".to_vec(),
                    timestamp: -5
                }
            )]
        );
        assert_eq!(
            s.delete(b"k").unwrap().map(|v| v.value),
            Some(b"w".to_vec())
        );
        s.inner_mut().put(b"bad", b"123").unwrap();
        assert!(matches!(
            s.get(b"bad"),
            Err(StoreError::CorruptEntry { .. })
        ));
    }
}

fn window_suite(mut make: impl FnMut(WindowStoreConfig) -> Box<dyn WindowStore>) {
    // Retention 1000 ms, segments of 500 ms (set explicitly so expiry is exercised).
    let cfg = WindowStoreConfig {
        retention_ms: 1000,
        segment_interval_ms: 500,
        window_size_ms: 100,
        retain_duplicates: false,
    };
    let mut s = make(cfg);
    assert_eq!(s.config(), cfg);
    s.put(b"a", Some(b"a0"), 0).unwrap();
    s.put(b"a", Some(b"a100"), 100).unwrap();
    s.put(b"ab", Some(b"ab100"), 100).unwrap();
    s.put(b"b", Some(b"b600"), 600).unwrap();
    s.put(b"a", Some(b"a700"), 700).unwrap();
    assert_eq!(s.fetch(b"a", 100).unwrap(), Some(b"a100".to_vec()));
    assert_eq!(s.fetch(b"a", 200).unwrap(), None);
    let a: Vec<i64> = s
        .fetch_range(b"a", 0, 700)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(a, vec![0, 100, 700], "key `a` must not see key `ab`");
    let back: Vec<i64> = s
        .backward_fetch_range(b"a", 0, 700)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(back, vec![700, 100, 0]);
    assert_eq!(
        s.fetch_range(b"a", 50, 650).unwrap(),
        vec![(100, b"a100".to_vec())]
    );
    let all = s.fetch_all(100, 600).unwrap();
    assert_eq!(
        all.iter()
            .map(|e| (e.key.clone(), e.window_start))
            .collect::<Vec<_>>(),
        vec![
            (b"a".to_vec(), 100),
            (b"ab".to_vec(), 100),
            (b"b".to_vec(), 600)
        ]
    );
    // Overwrite and delete.
    s.put(b"a", Some(b"a100'"), 100).unwrap();
    assert_eq!(s.fetch(b"a", 100).unwrap(), Some(b"a100'".to_vec()));
    assert!(s.put(b"a", None, 100).unwrap().is_some());
    assert_eq!(s.fetch(b"a", 100).unwrap(), None);
    // Stream time 1500: everything starting before 501 is expired, reads and late writes alike.
    s.put(b"c", Some(b"c1500"), 1500).unwrap();
    assert_eq!(s.fetch(b"a", 0).unwrap(), None);
    assert_eq!(
        s.put(b"a", Some(b"late"), 400).unwrap(),
        None,
        "a write past retention is dropped"
    );
    assert_eq!(
        s.all()
            .unwrap()
            .iter()
            .map(|e| e.window_start)
            .collect::<Vec<_>>(),
        vec![600, 700, 1500]
    );

    // Duplicates are kept for joins, in insertion order.
    let mut d = make(WindowStoreConfig {
        retain_duplicates: true,
        ..cfg
    });
    let k1 = d.put(b"k", Some(b"1"), 10).unwrap().unwrap();
    let k2 = d.put(b"k", Some(b"2"), 10).unwrap().unwrap();
    assert_ne!(k1, k2);
    assert_eq!(
        d.fetch_range(b"k", 10, 10).unwrap(),
        vec![(10, b"1".to_vec()), (10, b"2".to_vec())]
    );

    // Restoring the changelog (store keys as returned by put) rebuilds the same contents.
    let mut r = make(WindowStoreConfig {
        retain_duplicates: true,
        ..cfg
    });
    r.restore_batch(&[(k1, Some(b"1".to_vec())), (k2.clone(), Some(b"2".to_vec()))])
        .unwrap();
    assert_eq!(r.fetch_range(b"k", 0, 100).unwrap().len(), 2);
    let k3 = r.put(b"k", Some(b"3"), 10).unwrap().unwrap();
    assert!(k3 > k2, "sequence numbers continue after a restore");
    r.close().unwrap();
}

#[test]
fn window_in_memory() {
    window_suite(|cfg| {
        Box::new(SegmentedWindowStore::new("w", InMemorySegments::new("w"), cfg).unwrap())
    });
}

#[test]
fn window_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let mut n = 0;
    window_suite(|cfg| {
        n += 1;
        let seg = RocksDbSegments::open("w", dir.path().join(format!("w{n}")), &res).unwrap();
        Box::new(SegmentedWindowStore::new("w", seg, cfg).unwrap())
    });
}

#[test]
fn window_rocksdb_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let cfg = WindowStoreConfig {
        retention_ms: 1000,
        segment_interval_ms: 500,
        window_size_ms: 100,
        retain_duplicates: false,
    };
    {
        let seg = RocksDbSegments::open("w", dir.path().join("w"), &res).unwrap();
        let mut s = SegmentedWindowStore::new("w", seg, cfg).unwrap();
        s.put(b"a", Some(b"x"), 100).unwrap();
        s.put(b"a", Some(b"y"), 1200).unwrap();
        s.close().unwrap();
    }
    let seg = RocksDbSegments::open("w", dir.path().join("w"), &res).unwrap();
    let mut s = SegmentedWindowStore::new("w", seg, cfg).unwrap();
    assert_eq!(s.fetch(b"a", 1200).unwrap(), Some(b"y".to_vec()));
    assert_eq!(
        s.put(b"a", Some(b"late"), 100).unwrap(),
        None,
        "stream time is recovered on open"
    );
}

fn session_suite(mut make: impl FnMut(i64) -> Box<dyn SessionStore>) {
    let mut s = make(10_000);
    let w = |start, end| SessionWindow { start, end };
    s.put(b"u", w(0, 100), Some(b"2")).unwrap();
    s.put(b"u", w(500, 600), Some(b"3")).unwrap();
    s.put(b"uu", w(50, 60), Some(b"9")).unwrap();
    s.put(b"v", w(0, 10), Some(b"1")).unwrap();
    assert_eq!(
        s.fetch_session(b"u", w(0, 100)).unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(s.fetch_session(b"u", w(0, 99)).unwrap(), None);
    let found: Vec<SessionWindow> = s
        .find_sessions(b"u", 0, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(found, vec![w(0, 100), w(500, 600)]);
    let found: Vec<SessionWindow> = s
        .find_sessions(b"u", 101, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(found, vec![w(500, 600)]);
    let found: Vec<SessionWindow> = s
        .find_sessions(b"u", 0, 499)
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(found, vec![w(0, 100)]);

    // A record at 300 with gap 200 bridges both sessions of `u`.
    let (merged, parts) = s.merge_candidates(b"u", 300, 200).unwrap();
    assert_eq!(merged, w(0, 600));
    assert_eq!(parts.len(), 2);
    // A record at 1000 with gap 200 starts a new session.
    let (merged, parts) = s.merge_candidates(b"u", 1000, 200).unwrap();
    assert_eq!((merged, parts.len()), (w(1000, 1000), 0));

    let key = s.put(b"u", w(0, 100), None).unwrap().unwrap();
    assert_eq!(s.fetch_session(b"u", w(0, 100)).unwrap(), None);
    assert_eq!(s.all().unwrap().len(), 3);

    // Retention: a session ending at 20_000 expires those ending before 10_001.
    s.put(b"v", w(19_000, 20_000), Some(b"x")).unwrap();
    assert_eq!(s.find_sessions(b"u", 0, i64::MAX).unwrap(), vec![]);
    // A late write to a segment still live is kept (Kafka Streams drops whole segments only):
    // lookups by key skip it, the sessions-by-end scan of final results sees it. Once its
    // segment expired, a write is dropped.
    assert!(s.put(b"v", w(0, 50), Some(b"late")).unwrap().is_some());
    assert_eq!(s.find_sessions(b"v", 0, i64::MAX).unwrap().len(), 1);
    let ending_early_of_v = |s: &dyn SessionStore| {
        s.sessions_ending_between(0, 100)
            .unwrap()
            .into_iter()
            .filter(|(k, _, _)| k == b"v")
            .map(|(_, w, v)| (w, v))
            .collect::<Vec<_>>()
    };
    assert!(ending_early_of_v(s.as_ref()).contains(&(w(0, 50), b"late".to_vec())));
    s.put(b"v", w(200_000, 200_000), Some(b"y")).unwrap();
    assert_eq!(s.put(b"v", w(0, 60), Some(b"later")).unwrap(), None);
    assert_eq!(ending_early_of_v(s.as_ref()), vec![]);

    let mut r = make(10_000);
    r.restore_batch(&[(key.clone(), Some(b"2".to_vec())), (key, None)])
        .unwrap();
    assert_eq!(r.all().unwrap(), vec![]);
    r.close().unwrap();
}

#[test]
fn session_in_memory() {
    session_suite(|ret| {
        Box::new(SegmentedSessionStore::new("s", InMemorySegments::new("s"), ret).unwrap())
    });
}

#[test]
fn session_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let mut n = 0;
    session_suite(|ret| {
        n += 1;
        let seg = RocksDbSegments::open("s", dir.path().join(format!("s{n}")), &res).unwrap();
        Box::new(SegmentedSessionStore::new("s", seg, ret).unwrap())
    });
}

#[test]
fn logging_window_and_session_stores() {
    let sink = VecChangelogSink::new();
    let ts = RecordTimestamp::default();
    ts.set(5);
    let cfg = WindowStoreConfig::new(1000, 100, false);
    let inner = SegmentedWindowStore::new("w", InMemorySegments::new("w"), cfg).unwrap();
    let mut w = ChangeLoggingWindowStore::new(inner, Box::new(sink.clone()), ts.clone());
    let k = w.put(b"a", Some(b"1"), 10).unwrap().unwrap();
    let logged = sink.drain();
    assert_eq!(
        logged,
        vec![ChangelogRecord {
            key: k,
            value: Some(b"1".to_vec()),
            timestamp: 5
        }]
    );

    let inner = SegmentedSessionStore::new("s", InMemorySegments::new("s"), 1000).unwrap();
    let mut s = ChangeLoggingSessionStore::new(inner, Box::new(sink.clone()), ts);
    s.put(b"a", SessionWindow { start: 1, end: 2 }, Some(b"x"))
        .unwrap();
    s.put(b"a", SessionWindow { start: 1, end: 2 }, None)
        .unwrap();
    let logged = sink.drain();
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[1].value, None);
}

const CRASH_DIR: &str = "STATE_STORES_CRASH_DIR";

/// Run only as the child of `rocksdb_crash_keeps_flushed_data`: writes, flushes, writes more, and
/// aborts without closing anything.
#[test]
#[ignore = "child process of rocksdb_crash_keeps_flushed_data"]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else {
        return;
    };
    let mut s = rocks(Path::new(&dir), "crash");
    for i in 0..1000u32 {
        s.put(format!("flushed-{i:04}").as_bytes(), &i.to_be_bytes())
            .unwrap();
    }
    s.flush().unwrap();
    s.put(b"unflushed", b"maybe").unwrap();
    std::process::abort();
}

#[test]
fn rocksdb_crash_keeps_flushed_data() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "conformance::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the child must die by abort, not exit cleanly"
    );
    let s = rocks(dir.path(), "crash");
    for i in 0..1000u32 {
        assert_eq!(
            s.get(format!("flushed-{i:04}").as_bytes()).unwrap(),
            Some(i.to_be_bytes().to_vec()),
            "key {i}"
        );
    }
    assert_eq!(keys(s.prefix_scan(b"flushed-").unwrap()).len(), 1000);
}

// ---- transactional RocksDB stores -----------------------------------------------------------

fn rocks_txn(dir: &Path, name: &str) -> RocksDbKeyValueStore {
    RocksDbKeyValueStore::open_transactional(name, dir.join(name), &RocksDbResources::new(16 << 20))
        .unwrap()
}

#[test]
fn kv_rocksdb_transactional_reads_see_uncommitted_writes() {
    let dir = tempfile::tempdir().unwrap();
    kv_suite(Box::new(rocks_txn(dir.path(), "t")));
    // The same with part of the data committed underneath, so scans merge both.
    let mut s = rocks_txn(dir.path(), "u");
    for k in [b"a", b"b", b"c", b"d"] {
        s.put(k, b"db").unwrap();
    }
    s.commit(Some(4)).unwrap();
    s.put(b"b", b"new").unwrap();
    s.delete(b"c").unwrap();
    s.put(b"e", b"new").unwrap();
    let want = vec![
        (b"a".to_vec(), b"db".to_vec()),
        (b"b".to_vec(), b"new".to_vec()),
        (b"d".to_vec(), b"db".to_vec()),
        (b"e".to_vec(), b"new".to_vec()),
    ];
    assert_eq!(collect(s.all().unwrap()), want);
    let mut rev = want.clone();
    rev.reverse();
    assert_eq!(collect(s.reverse_range(None, None).unwrap()), rev);
    assert_eq!(
        keys(s.range(Some(b"b"), Some(b"d")).unwrap()),
        vec![b"b".to_vec(), b"d".to_vec()]
    );
    assert_eq!(s.get(b"c").unwrap(), None);
    assert!(s.approximate_num_entries().unwrap() >= 4);
}

#[test]
fn kv_rocksdb_transactional_close_without_commit_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = rocks_txn(dir.path(), "t");
        assert_eq!(s.committed_offset().unwrap(), None);
        s.put(b"a", b"1").unwrap();
        s.put(b"b", b"2").unwrap();
        s.commit(Some(10)).unwrap();
        assert_eq!(s.uncommitted_bytes(), 0);
        s.put(b"c", b"3").unwrap();
        s.delete(b"a").unwrap();
        s.remove(b"b").unwrap();
        assert_eq!(s.get(b"b").unwrap(), None);
        assert!(s.uncommitted_bytes() > 0);
        s.close().unwrap();
    }
    let mut s = rocks_txn(dir.path(), "t");
    assert_eq!(s.committed_offset().unwrap(), Some(10));
    assert_eq!(
        collect(s.all().unwrap()),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    s.put(b"c", b"3").unwrap();
    s.remove(b"b").unwrap();
    s.commit(Some(12)).unwrap();
    s.close().unwrap();
    let s = rocks_txn(dir.path(), "t");
    assert_eq!(s.committed_offset().unwrap(), Some(12));
    assert_eq!(s.get(b"c").unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.get(b"b").unwrap(), None);
    drop(s);
    // Written without transactions, the recorded offset no longer describes the contents.
    let mut plain = rocks(dir.path(), "t");
    plain.put(b"d", b"4").unwrap();
    plain.close().unwrap();
    assert_eq!(rocks_txn(dir.path(), "t").committed_offset().unwrap(), None);
}

#[test]
fn kv_rocksdb_transactional_reads_see_a_commit_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = rocks_txn(dir.path(), "t");
        for round in 0..50u32 {
            for k in 0..200u32 {
                s.put(format!("k{k:03}").as_bytes(), &round.to_be_bytes())
                    .unwrap();
            }
            s.delete(b"k007").unwrap();
            s.commit(Some(i64::from(round))).unwrap();
            // Written behind this thread's back, yet every read sees the commit at once,
            // under writes made since.
            s.put(b"k001", b"newer").unwrap();
            assert_eq!(s.get(b"k001").unwrap(), Some(b"newer".to_vec()));
            assert_eq!(s.get(b"k002").unwrap(), Some(round.to_be_bytes().to_vec()));
            assert_eq!(s.get(b"k007").unwrap(), None);
            let scanned = collect(s.range(Some(b"k000"), Some(b"k009")).unwrap());
            let want: Vec<(Vec<u8>, Vec<u8>)> = (0..10u32)
                .filter(|k| *k != 7)
                .map(|k| {
                    let v = if k == 1 {
                        b"newer".to_vec()
                    } else {
                        round.to_be_bytes().to_vec()
                    };
                    (format!("k{k:03}").into_bytes(), v)
                })
                .collect();
            assert_eq!(scanned, want, "round {round}");
        }
        assert_eq!(s.committed_offset().unwrap(), Some(49));
        // Dropped without a close, as a task's stores are when it is closed dirty: the last
        // commit still reaches the database, and opening it again is not refused.
    }
    let s = rocks_txn(dir.path(), "t");
    assert_eq!(s.committed_offset().unwrap(), Some(49));
    assert_eq!(s.get(b"k002").unwrap(), Some(49u32.to_be_bytes().to_vec()));
    assert_eq!(s.get(b"k001").unwrap(), Some(49u32.to_be_bytes().to_vec()));
    assert_eq!(s.get(b"k007").unwrap(), None);
}

#[test]
fn kv_rocksdb_transactional_restore_batches_commit_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = rocks_txn(dir.path(), "t");
        s.write_batch(&[(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)])
            .unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        s.commit(Some(2)).unwrap();
        s.write_batch(&[(b"z".to_vec(), Some(b"9".to_vec()))])
            .unwrap();
        // Killed before the commit of the second batch.
    }
    let s = rocks_txn(dir.path(), "t");
    assert_eq!(s.committed_offset().unwrap(), Some(2));
    assert_eq!(s.get(b"z").unwrap(), None);
}

#[test]
fn window_rocksdb_transactional() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let mut n = 0;
    window_suite(|cfg| {
        n += 1;
        let seg = RocksDbSegments::open_transactional("w", dir.path().join(format!("w{n}")), &res)
            .unwrap();
        Box::new(SegmentedWindowStore::new("w", seg, cfg).unwrap())
    });
}

#[test]
fn session_rocksdb_transactional() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let mut n = 0;
    session_suite(|ret| {
        n += 1;
        let seg = RocksDbSegments::open_transactional("s", dir.path().join(format!("s{n}")), &res)
            .unwrap();
        Box::new(SegmentedSessionStore::new("s", seg, ret).unwrap())
    });
}

#[test]
fn window_rocksdb_transactional_expiry_waits_for_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let res = RocksDbResources::new(16 << 20);
    let cfg = WindowStoreConfig {
        retention_ms: 1000,
        segment_interval_ms: 500,
        window_size_ms: 100,
        retain_duplicates: false,
    };
    let open = || {
        let seg = RocksDbSegments::open_transactional("w", dir.path().join("w"), &res).unwrap();
        SegmentedWindowStore::new("w", seg, cfg).unwrap()
    };
    {
        let mut s = open();
        s.put(b"a", Some(b"x"), 100).unwrap();
        s.commit(Some(1)).unwrap();
        // Expires the segment of window 100, then rolls back.
        s.put(b"a", Some(b"y"), 5000).unwrap();
        assert_eq!(s.fetch(b"a", 100).unwrap(), None);
        s.close().unwrap();
    }
    {
        let mut s = open();
        assert_eq!(s.committed_offset().unwrap(), Some(1));
        assert_eq!(s.fetch(b"a", 100).unwrap(), Some(b"x".to_vec()));
        assert_eq!(s.fetch(b"a", 5000).unwrap(), None);
        s.put(b"a", Some(b"y"), 5000).unwrap();
        s.commit(Some(2)).unwrap();
        s.close().unwrap();
    }
    let s = open();
    assert_eq!(s.committed_offset().unwrap(), Some(2));
    assert_eq!(s.fetch(b"a", 5000).unwrap(), Some(b"y".to_vec()));
    assert_eq!(s.fetch(b"a", 100).unwrap(), None);
}
