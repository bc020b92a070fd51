use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::rocks::RocksDb;
use crate::transaction::{self, SharedOverlay, OFFSETS_CF};
use crate::{
    InMemoryKeyValueStore, KeyValueStore, Result, RocksDbKeyValueStore, RocksDbResources,
    StoreError,
};

/// Where a time-segmented store keeps its segments. Each segment is an ordered key-value space covering one
/// `segment_interval` of time; expiring old data means dropping whole segments, never deleting key by key.
pub trait SegmentStorage: Send {
    /// The segment with `id`, created when absent.
    fn segment_mut(&mut self, id: i64) -> Result<&mut dyn KeyValueStore>;
    /// The segment with `id`, if it exists.
    fn segment(&self, id: i64) -> Option<&dyn KeyValueStore>;
    /// Ids of the existing segments, ascending.
    fn segment_ids(&self) -> Vec<i64>;
    /// Removes a segment and all its data.
    fn drop_segment(&mut self, id: i64) -> Result<()>;
    /// Makes all writes durable.
    fn flush(&mut self) -> Result<()>;
    /// Releases resources.
    fn close(&mut self) -> Result<()>;
    /// Whether the data survives a restart.
    fn persistent(&self) -> bool;
    /// See [`crate::StateStore::commit`].
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        let _ = changelog_offset;
        Ok(())
    }
    /// See [`crate::StateStore::committed_offset`].
    fn committed_offset(&self) -> Result<Option<i64>> {
        Ok(None)
    }
    /// See [`crate::StateStore::uncommitted_bytes`].
    fn uncommitted_bytes(&self) -> usize {
        0
    }
}

/// Segments kept in memory.
#[derive(Debug, Default)]
pub struct InMemorySegments {
    name: String,
    segments: BTreeMap<i64, InMemoryKeyValueStore>,
}

impl InMemorySegments {
    /// Empty segments for the store `name`.
    pub fn new(name: impl Into<String>) -> Self {
        InMemorySegments {
            name: name.into(),
            segments: BTreeMap::new(),
        }
    }
}

impl SegmentStorage for InMemorySegments {
    fn segment_mut(&mut self, id: i64) -> Result<&mut dyn KeyValueStore> {
        let name = &self.name;
        Ok(self
            .segments
            .entry(id)
            .or_insert_with(|| InMemoryKeyValueStore::new(format!("{name}.{id}"))))
    }
    fn segment(&self, id: i64) -> Option<&dyn KeyValueStore> {
        self.segments.get(&id).map(|s| s as &dyn KeyValueStore)
    }
    fn segment_ids(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    fn drop_segment(&mut self, id: i64) -> Result<()> {
        self.segments.remove(&id);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) -> Result<()> {
        self.segments.clear();
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
}

/// Segments as column families of one RocksDB database per store, so dropping a segment is one
/// `drop_cf` and opening the store opens one database whatever the retention.
///
/// Opened with [`RocksDbSegments::open_transactional`], the writes to all segments and the drops
/// of expired ones wait for [`SegmentStorage::commit`], as for a transactional key-value store.
pub struct RocksDbSegments {
    name: String,
    path: PathBuf,
    db: Option<Arc<RocksDb>>,
    resources: RocksDbResources,
    segments: BTreeMap<i64, RocksDbKeyValueStore>,
    overlay: Option<SharedOverlay>,
}

const SEGMENT_CF_PREFIX: &str = "segment-";

impl RocksDbSegments {
    /// Opens (or creates) the segmented database at `path`, picking up the segments it already has.
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        resources: &RocksDbResources,
    ) -> Result<Self> {
        Self::open_with(name.into(), path.into(), resources, None)
    }

    /// Opens the segmented database in transactional mode (see [`RocksDbKeyValueStore::open_transactional`]).
    pub fn open_transactional(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        resources: &RocksDbResources,
    ) -> Result<Self> {
        Self::open_with(
            name.into(),
            path.into(),
            resources,
            Some(resources.overlay()),
        )
    }

    fn open_with(
        name: String,
        path: PathBuf,
        resources: &RocksDbResources,
        overlay: Option<SharedOverlay>,
    ) -> Result<Self> {
        let extra = match overlay {
            Some(_) => vec![OFFSETS_CF.to_string()],
            None => Vec::new(),
        };
        let db = resources.open_db(&name, &path, &extra)?;
        if overlay.is_none() {
            transaction::forget_offset(&db, &name)?;
        }
        let mut segments = BTreeMap::new();
        let cfs = RocksDb::list_cf(&resources.options(&name), &path).map_err(|source| {
            StoreError::RocksDb {
                store: name.clone(),
                action: "listing segments",
                source,
            }
        })?;
        for cf in cfs {
            if let Some(id) = cf.strip_prefix(SEGMENT_CF_PREFIX) {
                let id: i64 = id.parse().map_err(|_| StoreError::CorruptEntry {
                    store: name.clone(),
                    reason: format!("column family `{cf}` is not a segment"),
                })?;
                segments.insert(
                    id,
                    RocksDbKeyValueStore::on_column_family(
                        name.clone(),
                        db.clone(),
                        cf,
                        path.clone(),
                        overlay.clone(),
                    ),
                );
            }
        }
        Ok(RocksDbSegments {
            name,
            path,
            db: Some(db),
            resources: resources.clone(),
            segments,
            overlay,
        })
    }

    fn db(&self) -> Result<&Arc<RocksDb>> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Closed(self.name.clone()))
    }
}

impl SegmentStorage for RocksDbSegments {
    fn segment_mut(&mut self, id: i64) -> Result<&mut dyn KeyValueStore> {
        if !self.segments.contains_key(&id) {
            let cf = format!("{SEGMENT_CF_PREFIX}{id}");
            let db = self.db()?.clone();
            if let Some(o) = &self.overlay {
                if o.lock().take_pending_drop(&cf)? {
                    db.drop_cf(&cf).map_err(|source| StoreError::RocksDb {
                        store: self.name.clone(),
                        action: "dropping an expired segment",
                        source,
                    })?;
                }
            }
            db.create_cf(&cf, &self.resources.options(&self.name))
                .map_err(|source| StoreError::RocksDb {
                    store: self.name.clone(),
                    action: "creating a segment",
                    source,
                })?;
            let store = RocksDbKeyValueStore::on_column_family(
                self.name.clone(),
                db,
                cf,
                self.path.clone(),
                self.overlay.clone(),
            );
            self.segments.insert(id, store);
        }
        Ok(self
            .segments
            .get_mut(&id)
            .map(|s| s as &mut dyn KeyValueStore)
            .expect("inserted above"))
    }

    fn segment(&self, id: i64) -> Option<&dyn KeyValueStore> {
        self.segments.get(&id).map(|s| s as &dyn KeyValueStore)
    }

    fn segment_ids(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    fn drop_segment(&mut self, id: i64) -> Result<()> {
        if self.segments.remove(&id).is_some() {
            let cf = format!("{SEGMENT_CF_PREFIX}{id}");
            if let Some(o) = &self.overlay {
                // Dropped at the commit that covers the writes which expired it.
                o.lock().drop_cf(&cf);
                return Ok(());
            }
            self.db()?
                .drop_cf(&cf)
                .map_err(|source| StoreError::RocksDb {
                    store: self.name.clone(),
                    action: "dropping an expired segment",
                    source,
                })?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let db = self.db()?;
        if let Some(o) = &self.overlay {
            // Commit batches are logged: syncing the log makes them durable.
            o.lock().settle()?;
            return db.flush_wal(true).map_err(|source| StoreError::RocksDb {
                store: self.name.clone(),
                action: "flushing",
                source,
            });
        }
        // Plain writes skip the write-ahead log: only memtables on disk survive a crash.
        let segments: Vec<String> = self
            .segments
            .keys()
            .map(|id| format!("{SEGMENT_CF_PREFIX}{id}"))
            .collect();
        let cfs = std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .chain(segments.iter().map(String::as_str));
        crate::rocks::persist(db, &self.name, cfs)
    }

    fn close(&mut self) -> Result<()> {
        if self.db.is_some() {
            if let Some(o) = &self.overlay {
                o.lock().clear();
            }
            self.flush()?;
        }
        self.segments.clear();
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
