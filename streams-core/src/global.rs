//! Global state stores: one full copy of a topic per instance, written by the global task (fed
//! from the topic by the global thread) and read by every stream task.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use state_stores::{KeyValueStore, KvIter, RocksDbResources, StateStore, StoreError};

use crate::store::{open_key_value, StoreBuilder, StoreKind};
use crate::topology::Topology;
use crate::{Result, StreamsError};

type Shared = Arc<Mutex<Box<dyn KeyValueStore>>>;

/// One handle on a global store. Every call takes the lock, so scans are collected first: global
/// tables are lookup tables, read key by key.
pub(crate) struct SharedKeyValueStore {
    name: String,
    inner: Shared,
    writable: bool,
}

impl SharedKeyValueStore {
    /// The store, unless a panic interrupted a call into it: its state is then not trusted.
    fn lock(&self) -> state_stores::Result<MutexGuard<'_, Box<dyn KeyValueStore>>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Poisoned(self.name.clone()))
    }
    fn check_writable(&self) -> state_stores::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly(self.name.clone()))
        }
    }
}

impl StateStore for SharedKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> state_stores::Result<()> {
        self.lock()?.flush()
    }
    fn close(&mut self) -> state_stores::Result<()> {
        // The instance owns the store; tasks only drop their handle.
        Ok(())
    }
    fn persistent(&self) -> bool {
        // A fixed property of the store, not its contents: safe to read after a panic.
        match self.inner.lock() {
            Ok(g) => g.persistent(),
            Err(p) => p.into_inner().persistent(),
        }
    }
}

impl KeyValueStore for SharedKeyValueStore {
    fn get(&self, key: &[u8]) -> state_stores::Result<Option<Vec<u8>>> {
        self.lock()?.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> state_stores::Result<()> {
        self.check_writable()?;
        self.lock()?.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> state_stores::Result<Option<Vec<u8>>> {
        self.check_writable()?;
        self.lock()?.delete(key)
    }
    fn remove(&mut self, key: &[u8]) -> state_stores::Result<()> {
        self.check_writable()?;
        self.lock()?.remove(key)
    }
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> state_stores::Result<KvIter<'_>> {
        let g = self.lock()?;
        let v: Vec<_> = g.range(from, to)?.collect();
        Ok(Box::new(v.into_iter()))
    }
    fn reverse_range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> state_stores::Result<KvIter<'_>> {
        let g = self.lock()?;
        let v: Vec<_> = g.reverse_range(from, to)?.collect();
        Ok(Box::new(v.into_iter()))
    }
    fn prefix_scan(&self, prefix: &[u8]) -> state_stores::Result<KvIter<'_>> {
        let g = self.lock()?;
        let v: Vec<_> = g.prefix_scan(prefix)?.collect();
        Ok(Box::new(v.into_iter()))
    }
    fn approximate_num_entries(&self) -> state_stores::Result<u64> {
        self.lock()?.approximate_num_entries()
    }
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> state_stores::Result<()> {
        self.check_writable()?;
        self.lock()?.write_batch(entries)
    }
}

/// The global stores of one instance (or test driver).
#[derive(Clone, Default)]
pub(crate) struct GlobalStores {
    stores: Vec<(StoreBuilder, Shared)>,
}

impl GlobalStores {
    /// Opens every global store of `topology` empty under `dir` (`<state.dir>/<app>/global`):
    /// the global thread fills them from their topics before any stream task runs.
    pub fn open(topology: &Topology, dir: &Path, resources: &RocksDbResources) -> Result<Self> {
        let mut stores = Vec::new();
        for b in topology.global_stores() {
            let store: Box<dyn KeyValueStore> = match b.kind() {
                StoreKind::KeyValue | StoreKind::TimestampedKeyValue => {
                    let path = dir.join("rocksdb").join(b.name());
                    if b.persistent() && path.exists() {
                        std::fs::remove_dir_all(&path).map_err(|source| StreamsError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    }
                    open_key_value(b, &path, resources, false)?
                }
                other => {
                    return Err(StreamsError::Topology(format!(
                    "global store `{}` is a {other:?} store; global stores are key-value stores",
                    b.name()
                )))
                }
            };
            stores.push((b.clone(), Arc::new(Mutex::new(store))));
        }
        Ok(GlobalStores { stores })
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The builder and a handle of every store; `writable` only for the global task.
    pub fn handles(&self, writable: bool) -> Vec<(StoreBuilder, SharedKeyValueStore)> {
        self.stores
            .iter()
            .map(|(b, s)| {
                (
                    b.clone(),
                    SharedKeyValueStore {
                        name: b.name().to_string(),
                        inner: s.clone(),
                        writable,
                    },
                )
            })
            .collect()
    }

    /// Flushes and closes every store.
    pub fn close(&self) {
        for (b, s) in &self.stores {
            // Closing after a panic is safe: global stores are rebuilt from their topics on start.
            if let Err(e) = s.lock().unwrap_or_else(|p| p.into_inner()).close() {
                tracing::warn!(store = b.name(), error = %e, "closing a global store failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_a_panic_interrupted_is_not_read_again() {
        let inner: Shared = Arc::new(Mutex::new(Box::new(
            state_stores::InMemoryKeyValueStore::new("g"),
        )));
        let mut writer = SharedKeyValueStore {
            name: "g".into(),
            inner: inner.clone(),
            writable: true,
        };
        writer.put(b"k", b"v1").expect("put");
        let poisoner = inner.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("a processor panics in the middle of a store write");
        })
        .join();
        assert!(panicked.is_err());
        let reader = SharedKeyValueStore {
            name: "g".into(),
            inner,
            writable: false,
        };
        let err = reader.get(b"k").expect_err("poisoned");
        assert!(
            matches!(err, StoreError::Poisoned(ref s) if s == "g"),
            "{err}"
        );
        assert!(writer.put(b"k", b"v2").is_err());
        assert!(reader.range(None, None).is_err());
        assert!(!reader.persistent());
    }
}
