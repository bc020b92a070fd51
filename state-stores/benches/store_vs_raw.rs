//! Store API vs the raw `rocksdb` crate, same data, same process: put, get and full range scan of
//! N keys (default 1,000,000; `BENCH_KEYS` overrides). Prints a table with the ratio
//! store-throughput / raw-throughput (target: >= 0.8).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use rocksdb::{WriteOptions, DB};
use state_stores::{KeyValueStore, RocksDbKeyValueStore, RocksDbResources, StateStore};

fn key(i: u64) -> [u8; 16] {
    // Spread keys like hashed ids so writes are not append-only.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64) -> [u8; 100] {
    let mut v = [b'v'; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn rate(n: u64, t: std::time::Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let memory = 64 << 20;

    // Raw rocksdb with exactly the options the store opens with (its own resources, so the two
    // do not share a cache).
    let raw_resources = RocksDbResources::new(memory);
    let opts = raw_resources.options("raw");
    let raw = DB::open(&opts, dir.path().join("raw")).unwrap();
    let wo = WriteOptions::default();

    let mut store = RocksDbKeyValueStore::open(
        "bench",
        dir.path().join("store"),
        &RocksDbResources::new(memory),
    )
    .unwrap();

    let mut rows = Vec::new();

    let t = Instant::now();
    for i in 0..n {
        raw.put_opt(key(i), value(i), &wo).unwrap();
    }
    let raw_put = rate(n, t.elapsed());
    let t = Instant::now();
    for i in 0..n {
        store.put(&key(i), &value(i)).unwrap();
    }
    let store_put = rate(n, t.elapsed());
    rows.push(("put", store_put, raw_put));

    let order: Vec<u64> = (0..n).map(|i| i.wrapping_mul(7919) % n).collect();
    let t = Instant::now();
    let mut found = 0u64;
    for &i in &order {
        found += u64::from(raw.get(key(i)).unwrap().is_some());
    }
    let raw_get = rate(n, t.elapsed());
    assert_eq!(found, n);
    let t = Instant::now();
    found = 0;
    for &i in &order {
        found += u64::from(store.get(&key(i)).unwrap().is_some());
    }
    let store_get = rate(n, t.elapsed());
    assert_eq!(found, n);
    rows.push(("get", store_get, raw_get));

    let t = Instant::now();
    let scanned = raw.iterator(rocksdb::IteratorMode::Start).count() as u64;
    let raw_scan = rate(scanned, t.elapsed());
    let t = Instant::now();
    let scanned2 = store.all().unwrap().count() as u64;
    let store_scan = rate(scanned2, t.elapsed());
    assert_eq!((scanned, scanned2), (n, n));
    rows.push(("range scan", store_scan, raw_scan));
    store.close().unwrap();

    println!("store API vs raw rocksdb, {n} keys, 16 B keys, 100 B values");
    println!(
        "{:<12} {:>14} {:>14} {:>8}",
        "operation", "store ops/s", "raw ops/s", "ratio"
    );
    for (op, s, r) in rows {
        println!("{op:<12} {s:>14.0} {r:>14.0} {:>8.2}", s / r);
    }
}
