use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, FlushOptions, IteratorMode, MultiThreaded,
    Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions,
};

use crate::commit_writer::CommitWriter;
use crate::key_value::prefix_upper_bound;
use crate::transaction::{self, SharedOverlay, OFFSETS_CF};
use crate::{KeyValueStore, KvIter, Result, StateStore, StoreError};

pub(crate) type RocksDb = rocksdb::DBWithThreadMode<MultiThreaded>;

const DEFAULT_CF: &str = rocksdb::DEFAULT_COLUMN_FAMILY_NAME;

/// The options of a plain (non-transactional) store's writes: without RocksDB's write-ahead log,
/// as Kafka Streams writes. The changelog topic already holds every write, so the log would only
/// write each one a second time (and the old `flush_wal(true)` at every commit fsynced it). What a
/// crash takes from the memtables is restored from the changelog: [`StateStore::flush`] writes
/// the memtables to disk before the task's checkpoint file names the changelog offset the store
/// reflects, so the file never vouches for writes a crash can lose. Transactional stores keep
/// the log for their commit batches (see `commit_writer::CommitBatch::write`).
pub(crate) fn unlogged() -> &'static WriteOptions {
    static UNLOGGED: std::sync::LazyLock<WriteOptions> = std::sync::LazyLock::new(|| {
        let mut o = WriteOptions::default();
        o.disable_wal(true);
        o
    });
    &UNLOGGED
}

/// Writes the memtables of the column families `cfs` (those that exist) of `db` to disk.
pub(crate) fn persist<'a>(
    db: &RocksDb,
    store: &str,
    cfs: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut names: Vec<&str> = cfs.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let handles: Vec<_> = names.into_iter().filter_map(|n| db.cf_handle(n)).collect();
    let refs: Vec<_> = handles.iter().collect();
    db.flush_cfs_opt(&refs, &FlushOptions::default())
        .map_err(|source| StoreError::RocksDb {
            store: store.to_string(),
            action: "flushing",
            source,
        })
}

/// A hook to tune the options of every RocksDB store the runtime opens (like Kafka Streams'
/// `RocksDBConfigSetter`). It runs after the defaults are set, so it can override any of them.
pub trait RocksDbConfigSetter: Send + Sync {
    /// Adjusts `options` for the store named `store_name`.
    fn set_config(&self, store_name: &str, options: &mut Options);
}

/// Memory shared by all RocksDB stores of a process: one block cache and one write-buffer budget,
/// so the total stays within a configured bound however many tasks are assigned.
#[derive(Clone)]
pub struct RocksDbResources {
    cache: Cache,
    write_buffers: Arc<WriteBufferManager>,
    config_setter: Option<Arc<dyn RocksDbConfigSetter>>,
    /// Writes the transactional stores' commits while their stream threads go on.
    commit_writer: Arc<CommitWriter>,
}

impl fmt::Debug for RocksDbResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbResources")
            .field("config_setter", &self.config_setter.is_some())
            .finish()
    }
}

impl RocksDbResources {
    /// Resources bounded by `total_memory_bytes`: a quarter for memtables (charged to the cache),
    /// the rest for the block cache (data, index and filter blocks).
    pub fn new(total_memory_bytes: usize) -> Self {
        let total = total_memory_bytes.max(4 << 20);
        let cache = Cache::new_lru_cache(total);
        let write_buffers = Arc::new(WriteBufferManager::new_write_buffer_manager_with_cache(
            total / 4,
            false,
            cache.clone(),
        ));
        RocksDbResources {
            cache,
            write_buffers,
            config_setter: None,
            commit_writer: Arc::default(),
        }
    }

    /// Installs a hook that can override the options of every store opened with these resources.
    pub fn with_config_setter(mut self, setter: Arc<dyn RocksDbConfigSetter>) -> Self {
        self.config_setter = Some(setter);
        self
    }

    /// The RocksDB options every store opened with these resources gets (shared cache and
    /// write-buffer budget, table format, the config setter's changes). Tools and benchmarks that
    /// open RocksDB directly use them to compare like with like.
    pub fn options(&self, store_name: &str) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Partitioned index and filters: with them charged to the bounded cache, a whole-file
        // filter (over a megabyte for a million keys) evicted by data blocks was read back and
        // checksummed on every get (a 10x slowdown, seen in the benchmark suite); partitions
        // are block-sized and the pinned top level finds them.
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_metadata_block_size(4096);
        table.set_pin_top_level_index_and_filter(true);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_write_buffer_manager(&self.write_buffers);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(2);
        if let Some(setter) = &self.config_setter {
            setter.set_config(store_name, &mut opts);
        }
        opts
    }

    /// A fresh overlay for a transactional store, its commits written by the resources' writer.
    pub(crate) fn overlay(&self) -> SharedOverlay {
        SharedOverlay::written_by(self.commit_writer.clone())
    }

    pub(crate) fn open_db(
        &self,
        store_name: &str,
        path: &Path,
        extra_cfs: &[String],
    ) -> Result<Arc<RocksDb>> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
        let opts = self.options(store_name);
        let mut cfs: Vec<String> = match RocksDb::list_cf(&opts, path) {
            Ok(existing) => existing,
            Err(_) => vec!["default".to_string()],
        };
        for cf in extra_cfs {
            if !cfs.contains(cf) {
                cfs.push(cf.clone());
            }
        }
        let descriptors = cfs
            .iter()
            .map(|n| rocksdb::ColumnFamilyDescriptor::new(n, self.options(store_name)));
        let db = RocksDb::open_cf_descriptors(&opts, path, descriptors).map_err(|source| {
            StoreError::RocksDb {
                store: store_name.to_string(),
                action: "opening",
                source,
            }
        })?;
        Ok(Arc::new(db))
    }
}

impl Default for RocksDbResources {
    fn default() -> Self {
        RocksDbResources::new(64 << 20)
    }
}

/// A key-value store on RocksDB: one database per store per task, or one column family of a shared
/// database (the segments of window and session stores).
///
/// Opened with [`RocksDbKeyValueStore::open_transactional`], writes stay in memory (where reads
/// see them) until [`StateStore::commit`] writes them and the changelog offset they reflect in one
/// atomic batch: after a crash the store is exactly as the last commit left it.
pub struct RocksDbKeyValueStore {
    name: String,
    db: Option<Arc<RocksDb>>,
    cf: String,
    path: PathBuf,
    overlay: Option<SharedOverlay>,
}

impl fmt::Debug for RocksDbKeyValueStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbKeyValueStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

impl RocksDbKeyValueStore {
    /// Opens (or creates) the store at `path`, e.g. `<state.dir>/<app>/<task>/rocksdb/<store>`.
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        resources: &RocksDbResources,
    ) -> Result<Self> {
        Self::open_with(name.into(), path.into(), resources, false)
    }

    /// Opens (or creates) the store at `path` in transactional mode: writes reach RocksDB only on
    /// [`StateStore::commit`], and [`StateStore::committed_offset`] tells what the contents reflect.
    pub fn open_transactional(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        resources: &RocksDbResources,
    ) -> Result<Self> {
        Self::open_with(name.into(), path.into(), resources, true)
    }

    fn open_with(
        name: String,
        path: PathBuf,
        resources: &RocksDbResources,
        transactional: bool,
    ) -> Result<Self> {
        // Only a transactional store records its changelog offset, in a column family of its own.
        let extra_cfs: Vec<String> = transactional
            .then(|| OFFSETS_CF.to_string())
            .into_iter()
            .collect();
        let db = resources.open_db(&name, &path, &extra_cfs)?;
        if !transactional {
            transaction::forget_offset(&db, &name)?;
        }
        Ok(Self::on_column_family(
            name,
            db,
            DEFAULT_CF.into(),
            path,
            transactional.then(|| resources.overlay()),
        ))
    }

    pub(crate) fn on_column_family(
        name: String,
        db: Arc<RocksDb>,
        cf: String,
        path: PathBuf,
        overlay: Option<SharedOverlay>,
    ) -> Self {
        RocksDbKeyValueStore {
            name,
            db: Some(db),
            cf,
            path,
            overlay,
        }
    }

    /// Where the store lives on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> Result<&Arc<RocksDb>> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Closed(self.name.clone()))
    }

    fn err(&self, action: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError + '_ {
        move |source| StoreError::RocksDb {
            store: self.name.clone(),
            action,
            source,
        }
    }

    fn cf_err(&self) -> StoreError {
        StoreError::CorruptEntry {
            store: self.name.clone(),
            reason: format!("column family `{}` is missing", self.cf),
        }
    }

    fn scan(
        &self,
        from: Option<&[u8]>,
        to_exclusive: Option<Vec<u8>>,
        reverse: bool,
    ) -> Result<KvIter<'_>> {
        let db = self.db()?;
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        let mut ro = ReadOptions::default();
        if let Some(f) = from {
            ro.set_iterate_lower_bound(f.to_vec());
        }
        if let Some(t) = &to_exclusive {
            ro.set_iterate_upper_bound(t.clone());
        }
        let mode = if reverse {
            IteratorMode::End
        } else {
            IteratorMode::Start
        };
        let layers = self.overlay.as_ref().map(|o| {
            let upper = to_exclusive
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded);
            let lower = from.map_or(Bound::Unbounded, Bound::Included);
            o.lock().range(&self.cf, lower, upper, reverse)
        });
        let name = self.name.clone();
        let it = db.iterator_cf_opt(&cf, ro, mode).map(move |r| {
            r.map(|(k, v)| (k.into_vec(), v.into_vec()))
                .map_err(|source| StoreError::RocksDb {
                    store: name.clone(),
                    action: "iterating",
                    source,
                })
        });
        match layers {
            Some(l) => Ok(l.over(it, reverse)),
            None => Ok(Box::new(it)),
        }
    }
}

/// `to` inclusive as an exclusive upper bound: the next key after `to` in byte order.
fn inclusive_to_exclusive(to: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(to.len() + 1);
    v.extend_from_slice(to);
    v.push(0);
    v
}

impl StateStore for RocksDbKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn flush(&mut self) -> Result<()> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            // Commit batches are logged: syncing the log makes them durable.
            o.lock().settle()?;
            return db.flush_wal(true).map_err(self.err("flushing"));
        }
        // Plain writes skip the write-ahead log: only memtables on disk survive a crash.
        persist(db, &self.name, [DEFAULT_CF, self.cf.as_str()])
    }

    fn close(&mut self) -> Result<()> {
        if self.db.is_some() {
            // Uncommitted writes are dropped: closing without a commit is the rollback.
            if let Some(o) = &self.overlay {
                o.lock().clear();
            }
            self.flush()?;
        }
        self.db = None;
        Ok(())
    }

    fn persistent(&self) -> bool {
        true
    }

    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        transaction::commit(
            self.overlay.as_ref(),
            self.db(),
            &self.name,
            changelog_offset,
        )
    }

    fn committed_offset(&self) -> Result<Option<i64>> {
        transaction::committed_offset(self.overlay.as_ref(), self.db(), &self.name)
    }

    fn uncommitted_bytes(&self) -> usize {
        transaction::uncommitted_bytes(self.overlay.as_ref())
    }
}

impl KeyValueStore for RocksDbKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self
            .overlay
            .as_ref()
            .and_then(|o| o.lock().get(&self.cf, key))
        {
            return Ok(pending);
        }
        let db = self.db()?;
        if self.cf == DEFAULT_CF {
            // No handle lookup (a lock and a map search) on the hot path of plain stores.
            return db.get(key).map_err(self.err("reading"));
        }
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        db.get_cf(&cf, key).map_err(self.err("reading"))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            o.lock().write(&self.cf, key, Some(value));
            return Ok(());
        }
        if self.cf == DEFAULT_CF {
            return db
                .put_opt(key, value, unlogged())
                .map_err(self.err("writing"));
        }
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        db.put_cf_opt(&cf, key, value, unlogged())
            .map_err(self.err("writing"))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.get(key)?;
        if old.is_some() {
            self.remove(key)?;
        }
        Ok(old)
    }

    fn remove(&mut self, key: &[u8]) -> Result<()> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            o.lock().write(&self.cf, key, None);
            return Ok(());
        }
        if self.cf == DEFAULT_CF {
            return db.delete_opt(key, unlogged()).map_err(self.err("deleting"));
        }
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        db.delete_cf_opt(&cf, key, unlogged())
            .map_err(self.err("deleting"))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        self.scan(from, to.map(inclusive_to_exclusive), false)
    }

    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        self.scan(from, to.map(inclusive_to_exclusive), true)
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        self.scan(Some(prefix), prefix_upper_bound(prefix), false)
    }

    fn all(&self) -> Result<KvIter<'_>> {
        self.scan(None, None, false)
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            // The estimate counts what is in the database: the last commit first.
            o.lock().settle()?;
        }
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        let n = db
            .property_int_value_cf(&cf, "rocksdb.estimate-num-keys")
            .map_err(self.err("estimating size"))?;
        let pending = self.overlay.as_ref().map_or(0, |o| o.lock().puts(&self.cf));
        Ok(n.unwrap_or(0) + pending as u64)
    }

    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            let mut o = o.lock();
            for (k, v) in entries {
                o.write(&self.cf, k, v.as_deref());
            }
            return Ok(());
        }
        let cf = db.cf_handle(&self.cf).ok_or_else(|| self.cf_err())?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            match v {
                Some(v) => batch.put_cf(&cf, k, v),
                None => batch.delete_cf(&cf, k),
            }
        }
        db.write_opt(batch, unlogged())
            .map_err(self.err("writing a batch"))
    }
}
