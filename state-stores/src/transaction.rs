//! Transactional RocksDB stores: the writes since the last commit live in an overlay that reads
//! see, and reach RocksDB in one atomic write batch together with the changelog offset they
//! reflect. A crash therefore leaves the database exactly as the last commit left it, with the
//! offset to resume restoration from; dropping the overlay is the rollback.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use rocksdb::WriteBatch;

use crate::rocks::RocksDb;
use crate::{Result, StoreError};

/// The column family holding the changelog offset a database reflects. Apart from the data, so
/// scans never meet it, yet in the same database, so one write batch covers both.
pub(crate) const OFFSETS_CF: &str = "__streams_offsets";
const CHANGELOG_OFFSET_KEY: &[u8] = b"changelog";
/// Bookkeeping per buffered entry (tree node, two `Vec` headers), so the memory bound holds for
/// many small entries too.
const ENTRY_OVERHEAD: usize = 64;

/// A buffered write: the key and its new value, `None` for a delete.
pub(crate) type PendingWrite = (Vec<u8>, Option<Vec<u8>>);

/// Uncommitted writes of one database, per column family. `None` values are deletes.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    cfs: BTreeMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Column families (expired segments) to drop once the writes before their expiry commit.
    dropped_cfs: Vec<String>,
    bytes: usize,
}

/// The overlay of a database, shared by the stores on its column families (window and session
/// segments). One thread uses it at a time; the lock is never contended.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedOverlay(Arc<Mutex<Overlay>>);

impl SharedOverlay {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Overlay> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Overlay {
    /// `Some(Some(v))`: written; `Some(None)`: deleted; `None`: not touched since the last commit.
    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.cfs.get(cf).and_then(|m| m.get(key).cloned())
    }

    pub(crate) fn write(&mut self, cf: &str, key: &[u8], value: Option<&[u8]>) {
        let entries = match self.cfs.get_mut(cf) {
            Some(m) => m,
            None => self.cfs.entry(cf.to_string()).or_default(),
        };
        let added = value.map_or(0, <[u8]>::len);
        match entries.get_mut(key) {
            Some(old) => {
                self.bytes -= old.as_ref().map_or(0, Vec::len);
                *old = value.map(<[u8]>::to_vec);
            }
            None => {
                self.bytes += key.len() + ENTRY_OVERHEAD;
                entries.insert(key.to_vec(), value.map(<[u8]>::to_vec));
            }
        }
        self.bytes += added;
    }

    /// Entries of `cf` within the bounds, in key order (reversed when `reverse`), copied so the
    /// caller can merge them with a database iterator without holding the lock.
    pub(crate) fn range(
        &self,
        cf: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> Vec<PendingWrite> {
        let Some(m) = self.cfs.get(cf) else {
            return Vec::new();
        };
        if let (Bound::Included(f) | Bound::Excluded(f), Bound::Included(t) | Bound::Excluded(t)) =
            (from, to)
        {
            if f > t {
                return Vec::new();
            }
        }
        let it = m
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()));
        if reverse {
            it.rev().collect()
        } else {
            it.collect()
        }
    }

    /// Number of buffered entries of `cf` that are writes (not deletes).
    pub(crate) fn puts(&self, cf: &str) -> usize {
        self.cfs
            .get(cf)
            .map_or(0, |m| m.values().filter(|v| v.is_some()).count())
    }

    /// Forgets the writes to `cf` and drops it at the next commit.
    pub(crate) fn drop_cf(&mut self, cf: &str) {
        if let Some(m) = self.cfs.remove(cf) {
            for (k, v) in m {
                self.bytes -= k.len() + ENTRY_OVERHEAD + v.map_or(0, |v| v.len());
            }
        }
        self.dropped_cfs.push(cf.to_string());
    }

    /// Whether `cf` waits to be dropped; taking it back means dropping it now, so its old data
    /// cannot reappear in a segment created again.
    pub(crate) fn take_pending_drop(&mut self, cf: &str) -> bool {
        let before = self.dropped_cfs.len();
        self.dropped_cfs.retain(|c| c != cf);
        before != self.dropped_cfs.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every uncommitted write (the rollback).
    pub(crate) fn clear(&mut self) {
        *self = Overlay::default();
    }

    /// Writes the buffered entries and `changelog_offset` in one atomic batch, then drops the
    /// expired column families. A crash before the batch leaves the previous commit; a crash
    /// after it but before a drop leaves a segment the store expires again.
    pub(crate) fn commit(
        &mut self,
        db: &RocksDb,
        store: &str,
        changelog_offset: Option<i64>,
    ) -> Result<()> {
        let err = |action: &'static str| {
            move |source| StoreError::RocksDb {
                store: store.to_string(),
                action,
                source,
            }
        };
        if self.cfs.is_empty() && self.dropped_cfs.is_empty() && changelog_offset.is_none() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (cf, entries) in &self.cfs {
            let handle = db.cf_handle(cf).ok_or_else(|| StoreError::CorruptEntry {
                store: store.to_string(),
                reason: format!("column family `{cf}` is missing"),
            })?;
            for (k, v) in entries {
                match v {
                    Some(v) => batch.put_cf(&handle, k, v),
                    None => batch.delete_cf(&handle, k),
                }
            }
        }
        if let Some(offset) = changelog_offset {
            let handle = db
                .cf_handle(OFFSETS_CF)
                .ok_or_else(|| StoreError::CorruptEntry {
                    store: store.to_string(),
                    reason: format!("column family `{OFFSETS_CF}` is missing"),
                })?;
            batch.put_cf(&handle, CHANGELOG_OFFSET_KEY, offset.to_be_bytes());
        }
        // Logged, unlike a plain store's writes: the log is what lets a store killed after this
        // commit open exactly as it left it (restoring only the changelog written since) rather
        // than as its last memtable flush did. Not synced: a process crash keeps what the kernel
        // holds, and a machine crash recovers a prefix of whole batches, each with its offset.
        db.write(batch).map_err(err("committing a transaction"))?;
        let dropped = std::mem::take(&mut self.dropped_cfs);
        self.clear();
        for cf in dropped {
            db.drop_cf(&cf)
                .map_err(err("dropping an expired segment"))?;
        }
        Ok(())
    }
}

/// [`crate::StateStore::commit`] of a RocksDB-backed store: commits its overlay, if it has one.
/// `db` is the store's database, or the error a closed store gives.
pub(crate) fn commit(
    overlay: Option<&SharedOverlay>,
    db: Result<&Arc<RocksDb>>,
    store: &str,
    changelog_offset: Option<i64>,
) -> Result<()> {
    match overlay {
        Some(o) => o.lock().commit(db?, store, changelog_offset),
        None => Ok(()),
    }
}

/// [`crate::StateStore::committed_offset`] of a RocksDB-backed store: only a store with an
/// overlay records offsets.
pub(crate) fn committed_offset(
    overlay: Option<&SharedOverlay>,
    db: Result<&Arc<RocksDb>>,
    store: &str,
) -> Result<Option<i64>> {
    match overlay {
        Some(_) => recorded_offset(db?, store),
        None => Ok(None),
    }
}

/// [`crate::StateStore::uncommitted_bytes`] of a RocksDB-backed store.
pub(crate) fn uncommitted_bytes(overlay: Option<&SharedOverlay>) -> usize {
    overlay.map_or(0, |o| o.lock().bytes())
}

/// The changelog offset the database's contents reflect, as the last commit recorded it.
pub(crate) fn recorded_offset(db: &RocksDb, store: &str) -> Result<Option<i64>> {
    let Some(handle) = db.cf_handle(OFFSETS_CF) else {
        return Ok(None);
    };
    let raw = db
        .get_cf(&handle, CHANGELOG_OFFSET_KEY)
        .map_err(|source| StoreError::RocksDb {
            store: store.to_string(),
            action: "reading the committed changelog offset",
            source,
        })?;
    match raw {
        None => Ok(None),
        Some(b) => {
            let bytes: [u8; 8] = b
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::CorruptEntry {
                    store: store.to_string(),
                    reason: format!(
                        "the committed changelog offset has {} bytes, not 8",
                        b.len()
                    ),
                })?;
            Ok(Some(i64::from_be_bytes(bytes)))
        }
    }
}

/// Forgets a recorded offset: a store opened without transactions writes straight to RocksDB,
/// so an offset recorded earlier would no longer describe its contents.
pub(crate) fn forget_offset(db: &RocksDb, store: &str) -> Result<()> {
    if let Some(handle) = db.cf_handle(OFFSETS_CF) {
        // Logged, unlike data writes: once the store writes without transactions, no crash may
        // bring the old offset back.
        db.delete_cf(&handle, CHANGELOG_OFFSET_KEY)
            .map_err(|source| StoreError::RocksDb {
                store: store.to_string(),
                action: "forgetting the committed changelog offset",
                source,
            })?;
    }
    Ok(())
}

/// Merges a database scan with the overlay's entries of the same range and order: overlay
/// entries replace database entries with the same key, and overlay deletes hide them.
pub(crate) struct MergedIter<I: Iterator> {
    db: std::iter::Peekable<I>,
    overlay: std::iter::Peekable<std::vec::IntoIter<PendingWrite>>,
    reverse: bool,
}

impl<I> MergedIter<I>
where
    I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
{
    pub(crate) fn new(db: I, overlay: Vec<PendingWrite>, reverse: bool) -> Self {
        MergedIter {
            db: db.peekable(),
            overlay: overlay.into_iter().peekable(),
            reverse,
        }
    }
}

impl<I> Iterator for MergedIter<I>
where
    I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
{
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_overlay = match (self.db.peek(), self.overlay.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.db.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((dk, _))), Some((ok, _))) => {
                    let ord = ok.cmp(dk);
                    if ord == std::cmp::Ordering::Equal {
                        // The overlay's entry replaces the database's.
                        self.db.next();
                        true
                    } else {
                        (ord == std::cmp::Ordering::Less) != self.reverse
                    }
                }
            };
            if !take_overlay {
                return self.db.next();
            }
            match self.overlay.next() {
                Some((k, Some(v))) => return Some(Ok((k, v))),
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(entries: &[(&str, &str)]) -> Vec<Result<(Vec<u8>, Vec<u8>)>> {
        entries
            .iter()
            .map(|(k, v)| Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec())))
            .collect()
    }

    fn overlay(entries: &[(&str, Option<&str>)]) -> Vec<PendingWrite> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    fn keys_values(it: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>) -> Vec<(String, String)> {
        it.map(|r| {
            let (k, v) = r.expect("no error in the test input");
            (
                String::from_utf8(k).expect("utf8"),
                String::from_utf8(v).expect("utf8"),
            )
        })
        .collect()
    }

    #[test]
    fn overlay_replaces_hides_and_adds() {
        let merged = MergedIter::new(
            db(&[("a", "1"), ("c", "3"), ("e", "5")]).into_iter(),
            overlay(&[
                ("b", Some("2")),
                ("c", None),
                ("e", Some("50")),
                ("f", Some("6")),
            ]),
            false,
        );
        assert_eq!(
            keys_values(merged),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("e".into(), "50".into()),
                ("f".into(), "6".into())
            ]
        );
        let merged = MergedIter::new(
            db(&[("e", "5"), ("c", "3"), ("a", "1")]).into_iter(),
            overlay(&[("f", Some("6")), ("e", None), ("b", Some("2"))]),
            true,
        );
        assert_eq!(
            keys_values(merged),
            vec![
                ("f".into(), "6".into()),
                ("c".into(), "3".into()),
                ("b".into(), "2".into()),
                ("a".into(), "1".into())
            ]
        );
    }

    #[test]
    fn byte_count_follows_rewrites_and_drops() {
        let mut o = Overlay::default();
        o.write("d", b"key", Some(b"12345"));
        assert_eq!(o.bytes(), 3 + ENTRY_OVERHEAD + 5);
        o.write("d", b"key", Some(b"1"));
        assert_eq!(o.bytes(), 3 + ENTRY_OVERHEAD + 1);
        o.write("d", b"key", None);
        assert_eq!(o.bytes(), 3 + ENTRY_OVERHEAD);
        assert_eq!(o.get("d", b"key"), Some(None));
        o.write("s", b"k2", Some(b"v"));
        o.drop_cf("d");
        assert_eq!(o.bytes(), 2 + ENTRY_OVERHEAD + 1);
        assert!(o.take_pending_drop("d"));
        assert!(!o.take_pending_drop("d"));
    }
}
