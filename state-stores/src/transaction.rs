//! Transactional RocksDB stores: the writes since the last commit live in an overlay that reads
//! see, and reach RocksDB in one atomic write batch together with the changelog offset they
//! reflect (written by the commit writer's thread while reads still see them here). A crash
//! therefore leaves the database exactly as a commit left it, with the offset to resume
//! restoration from; dropping the overlay is the rollback.

use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::commit_writer::{CommitBatch, CommitWriter, InFlight, Writes};
use crate::rocks::RocksDb;
use crate::{KvIter, Result, StoreError};

/// The column family holding the changelog offset a database reflects. Apart from the data, so
/// scans never meet it, yet in the same database, so one write batch covers both.
pub(crate) const OFFSETS_CF: &str = "__streams_offsets";
/// The key of the offset in [`OFFSETS_CF`].
pub(crate) const CHANGELOG_OFFSET_KEY: &[u8] = b"changelog";
/// Bookkeeping per buffered entry (tree node, two `Vec` headers), so the memory bound holds for
/// many small entries too.
const ENTRY_OVERHEAD: usize = 64;

/// A buffered write: the key and its new value, `None` for a delete.
pub(crate) type PendingWrite = (Vec<u8>, Option<Vec<u8>>);

/// Uncommitted writes of one database, per column family (`None` values are deletes), and the
/// last commit's writes while the commit writer puts them into the database.
#[derive(Default)]
pub(crate) struct Overlay {
    cfs: Writes,
    /// Column families (expired segments) to drop once the writes before their expiry commit.
    dropped_cfs: Vec<String>,
    bytes: usize,
    /// The last commit, until written: reads see it under the uncommitted writes.
    in_flight: Option<InFlight>,
    /// The thread that writes commits, shared by the stores of one `RocksDbResources`.
    writer: Arc<CommitWriter>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("bytes", &self.bytes)
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

/// The overlay of a database, shared by the stores on its column families (window and session
/// segments). One thread uses it at a time; the lock is never contended.
#[derive(Debug, Clone)]
pub(crate) struct SharedOverlay(Arc<Mutex<Overlay>>);

impl SharedOverlay {
    /// An overlay whose commits `writer` writes while the stream thread goes on.
    pub(crate) fn written_by(writer: Arc<CommitWriter>) -> Self {
        SharedOverlay(Arc::new(Mutex::new(Overlay {
            writer,
            ..Overlay::default()
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Overlay> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Overlay {
    /// `Some(Some(v))`: written; `Some(None)`: deleted; `None`: not touched since the last
    /// commit that reached the database.
    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let pending = self.cfs.get(cf).and_then(|m| m.get(key));
        let committing = || {
            self.in_flight
                .as_ref()
                .and_then(|f| f.writes.get(cf))
                .and_then(|m| m.get(key))
        };
        pending.or_else(committing).cloned()
    }

    pub(crate) fn write(&mut self, cf: &str, key: &[u8], value: Option<&[u8]>) {
        // Forget the last commit's writes once they are in the database (reads no longer need
        // them), so at most one commit's writes are held twice.
        if self.in_flight.as_mut().is_some_and(InFlight::written) {
            self.in_flight = None;
        }
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
    /// caller can merge them with a database iterator without holding the lock: those of the
    /// commit being written and the uncommitted ones (see [`OverlayRange::over`]).
    pub(crate) fn range(
        &self,
        cf: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
    ) -> OverlayRange {
        if let (Bound::Included(f) | Bound::Excluded(f), Bound::Included(t) | Bound::Excluded(t)) =
            (from, to)
        {
            if f > t {
                return OverlayRange::default();
            }
        }
        let of = |writes: &Writes| -> Vec<PendingWrite> {
            let Some(m) = writes.get(cf) else {
                return Vec::new();
            };
            let it = m
                .range::<[u8], _>((from, to))
                .map(|(k, v)| (k.clone(), v.clone()));
            if reverse {
                it.rev().collect()
            } else {
                it.collect()
            }
        };
        OverlayRange {
            committing: self
                .in_flight
                .as_ref()
                .map_or_else(Vec::new, |f| of(&f.writes)),
            uncommitted: of(&self.cfs),
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
    /// cannot reappear in a segment created again. Waits for the commit being written first:
    /// it may drop `cf` or write to it, and the caller is about to drop or create it.
    pub(crate) fn take_pending_drop(&mut self, cf: &str) -> Result<bool> {
        self.settle()?;
        let before = self.dropped_cfs.len();
        self.dropped_cfs.retain(|c| c != cf);
        Ok(before != self.dropped_cfs.len())
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every uncommitted write (the rollback). The commit being written stays: Kafka
    /// has committed it.
    pub(crate) fn clear(&mut self) {
        self.cfs.clear();
        self.dropped_cfs.clear();
        self.bytes = 0;
    }

    /// Waits until the last commit is in the database, with its error if it failed.
    pub(crate) fn settle(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(f) => f.wait(),
            None => Ok(()),
        }
    }

    /// Commits the buffered entries with `changelog_offset` (see [`CommitBatch::write`]) on the
    /// writer's thread, the entries staying readable here until written; the commit before is
    /// waited for first, so commits reach the database in order, and its error is this one's.
    pub(crate) fn commit(
        &mut self,
        db: &Arc<RocksDb>,
        store: &str,
        changelog_offset: Option<i64>,
    ) -> Result<()> {
        self.settle()?;
        if self.cfs.is_empty() && self.dropped_cfs.is_empty() && changelog_offset.is_none() {
            return Ok(());
        }
        let batch = CommitBatch {
            db: db.clone(),
            store: store.to_string(),
            writes: Arc::new(std::mem::take(&mut self.cfs)),
            changelog_offset,
            dropped_cfs: std::mem::take(&mut self.dropped_cfs),
        };
        self.bytes = 0;
        self.in_flight = Some(self.writer.submit(batch));
        Ok(())
    }
}

/// An overlay's entries of one range, in scan order: the commit being written, and the writes
/// since.
#[derive(Debug, Default)]
pub(crate) struct OverlayRange {
    committing: Vec<PendingWrite>,
    uncommitted: Vec<PendingWrite>,
}

impl OverlayRange {
    /// `db`'s scan of the same range and order as the store reads it: the commit being written
    /// over the database, the uncommitted writes over both.
    pub(crate) fn over<'a, I>(self, db: I, reverse: bool) -> KvIter<'a>
    where
        I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a,
    {
        let committed: KvIter<'a> = if self.committing.is_empty() {
            Box::new(db)
        } else {
            Box::new(MergedIter::new(db, self.committing, reverse))
        };
        if self.uncommitted.is_empty() {
            committed
        } else {
            Box::new(MergedIter::new(committed, self.uncommitted, reverse))
        }
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
        Some(o) => {
            o.lock().settle()?;
            recorded_offset(db?, store)
        }
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
    fn uncommitted_writes_go_over_the_commit_being_written() {
        let layers = |committing, uncommitted| OverlayRange {
            committing: overlay(committing),
            uncommitted: overlay(uncommitted),
        };
        let merged = layers(
            &[
                ("a", Some("1")),
                ("b", Some("old")),
                ("d", Some("4")),
                ("e", None),
            ],
            &[("b", Some("new")), ("d", None)],
        )
        .over(
            db(&[("b", "db"), ("c", "3"), ("e", "5")]).into_iter(),
            false,
        );
        assert_eq!(
            keys_values(merged),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "new".into()),
                ("c".into(), "3".into())
            ]
        );
        let merged = layers(&[("d", Some("4")), ("a", Some("1"))], &[("c", None)])
            .over(db(&[("c", "3"), ("b", "2")]).into_iter(), true);
        assert_eq!(
            keys_values(merged),
            vec![
                ("d".into(), "4".into()),
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
        assert!(o.take_pending_drop("d").expect("no commit in flight"));
        assert!(!o.take_pending_drop("d").expect("no commit in flight"));
    }
}
