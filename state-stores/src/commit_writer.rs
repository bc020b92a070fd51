//! The thread that writes transactional stores' committed batches into RocksDB, so that a stream
//! thread goes on processing while they reach the database.
//!
//! By the time a store commits, the Kafka transaction its writes belong to has committed: what
//! remains is making the database reflect it, which costs a logged write per store (about
//! 150 us each in the benchmark, most of it waiting in `write(2)`). The overlay keeps the batch
//! readable until the write is done, and the next commit of the same store waits for it, so
//! batches reach each database in commit order. A crash before the write leaves the store at its
//! previous commit, which it already had to survive: the changelog tail since is restored.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, OnceLock};

use rocksdb::WriteBatch;

use crate::rocks::RocksDb;
use crate::transaction::{CHANGELOG_OFFSET_KEY, OFFSETS_CF};
use crate::{Result, StoreError};

/// Buffered writes per column family, in key order; `None` values are deletes.
pub(crate) type Writes = BTreeMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

/// One store's commit: its writes and the changelog offset they reflect, then the column
/// families (expired segments) to drop.
pub(crate) struct CommitBatch {
    pub(crate) db: Arc<RocksDb>,
    pub(crate) store: String,
    pub(crate) writes: Arc<Writes>,
    pub(crate) changelog_offset: Option<i64>,
    pub(crate) dropped_cfs: Vec<String>,
}

impl CommitBatch {
    /// Writes the entries and the offset in one atomic batch, then drops the expired column
    /// families. A crash before the batch leaves the previous commit; a crash after it but
    /// before a drop leaves a segment the store expires again.
    pub(crate) fn write(self) -> Result<()> {
        let CommitBatch {
            db,
            store,
            writes,
            changelog_offset,
            dropped_cfs,
        } = self;
        let err = |action: &'static str| {
            let store = store.clone();
            move |source| StoreError::RocksDb {
                store,
                action,
                source,
            }
        };
        let missing = |cf: &str| StoreError::CorruptEntry {
            store: store.clone(),
            reason: format!("column family `{cf}` is missing"),
        };
        let mut batch = WriteBatch::default();
        for (cf, entries) in writes.iter() {
            let handle = db.cf_handle(cf).ok_or_else(|| missing(cf))?;
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
                .ok_or_else(|| missing(OFFSETS_CF))?;
            batch.put_cf(&handle, CHANGELOG_OFFSET_KEY, offset.to_be_bytes());
        }
        // Logged, unlike a plain store's writes: the log is what lets a store killed after this
        // commit open exactly as it left it (restoring only the changelog written since) rather
        // than as its last memtable flush did. Not synced: a process crash keeps what the kernel
        // holds, and a machine crash recovers a prefix of whole batches, each with its offset.
        db.write(batch).map_err(err("committing a transaction"))?;
        for cf in dropped_cfs {
            db.drop_cf(&cf)
                .map_err(err("dropping an expired segment"))?;
        }
        Ok(())
    }
}

impl Drop for InFlight {
    /// The store is going away (closed, or dropped with its task): its last commit must be in
    /// the database before the database can be opened again.
    fn drop(&mut self) {
        if let Err(e) = self.take_result() {
            tracing::warn!(error = %e, "a store's last commit did not reach RocksDB: the store restores from its commit before");
        }
    }
}

/// A batch for the writer thread and where to answer.
type Job = (CommitBatch, SyncSender<Result<()>>);

/// A batch handed to the writer: its writes stay readable until [`InFlight::wait`] reports it
/// written.
pub(crate) struct InFlight {
    pub(crate) writes: Arc<Writes>,
    store: String,
    done: Receiver<Result<()>>,
    result: Option<Result<()>>,
}

impl InFlight {
    /// Whether the write is over (successfully or not), without blocking.
    pub(crate) fn written(&mut self) -> bool {
        if self.result.is_none() {
            match self.done.try_recv() {
                Ok(r) => self.result = Some(r),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.result = Some(Err(self.gone())),
            }
        }
        matches!(self.result, Some(Ok(())))
    }

    /// Waits for the write and gives its result.
    pub(crate) fn wait(mut self) -> Result<()> {
        self.take_result()
    }

    /// The write's result, waited for if it has not come yet; `Ok` once taken, so `drop` has
    /// nothing left to wait for or report.
    fn take_result(&mut self) -> Result<()> {
        let result = match self.result.take() {
            Some(r) => r,
            None => self.done.recv().unwrap_or_else(|_| Err(self.gone())),
        };
        self.result = Some(Ok(()));
        result
    }

    fn gone(&self) -> StoreError {
        StoreError::CommitWriterStopped(self.store.clone())
    }
}

/// The writer thread of one set of [`crate::RocksDbResources`], started at the first commit and
/// ended when the last store using it is gone.
#[derive(Default)]
pub(crate) struct CommitWriter {
    jobs: OnceLock<Option<Sender<Job>>>,
}

impl CommitWriter {
    /// Hands `batch` to the writer thread, or writes it here if that thread cannot start.
    pub(crate) fn submit(&self, batch: CommitBatch) -> InFlight {
        let writes = batch.writes.clone();
        let store = batch.store.clone();
        let (tx, done) = mpsc::sync_channel(1);
        let job = match self.jobs.get_or_init(spawn) {
            Some(jobs) => jobs.send((batch, tx)).err().map(|e| e.0),
            None => Some((batch, tx)),
        };
        let result = job.map(|(batch, _)| batch.write());
        InFlight {
            writes,
            store,
            done,
            result,
        }
    }
}

/// Starts the writer thread; `None` if the system refuses a thread (commits then write inline).
fn spawn() -> Option<Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("store-commits".into())
        .spawn(move || {
            for (batch, done) in rx {
                // The batch (and its handle on the database) is dropped before the answer, so a
                // store closed right after its last commit can open the database again.
                let result = batch.write();
                let _ = done.send(result);
            }
        });
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "no thread for store commits: committing on the stream threads");
            None
        }
    }
}
