use std::path::PathBuf;

/// Everything that can go wrong in a state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("RocksDB error in store `{store}` while {action}: {source}")]
    RocksDb {
        /// Store name.
        store: String,
        /// What the store was doing.
        action: &'static str,
        /// The RocksDB error.
        #[source]
        source: rocksdb::Error,
    },
    /// A filesystem operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file could not be parsed; the runtime should wipe the task's state and restore it.
    #[error("corrupt checkpoint file {path}: {reason}; delete the task directory to restore from the changelog")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file has a version this build does not know.
    #[error("checkpoint file {path} has unknown version {version} (this build reads version 1)")]
    UnknownCheckpointVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The version found.
        version: String,
    },
    /// Another process (or another store instance) holds the task directory.
    #[error("task directory {path} is locked by {holder}; stop that instance or give this one its own state.dir")]
    DirectoryLocked {
        /// The locked directory.
        path: PathBuf,
        /// Who holds it, as far as known (e.g. "pid 1234").
        holder: String,
    },
    /// A stored entry could not be decoded: the store's files do not match this store type.
    #[error("store `{store}` holds an undecodable entry ({reason}); the state directory may be corrupt or belong to another store type")]
    CorruptEntry {
        /// Store name.
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// A thread panicked while it held the store: a write may be half applied, so the store is
    /// not read or written again in this process.
    #[error("store `{0}` is unusable: a thread panicked while writing to it, so a write may be half applied; restart the instance to rebuild the store from its changelog or topic")]
    Poisoned(String),
    /// A write to a store that is read-only for this caller.
    #[error(
        "store `{0}` is read-only here: a global store is written only by its global processor"
    )]
    ReadOnly(String),
    /// The thread writing transactional stores' commits into RocksDB is gone (it panicked), so
    /// the store's last commit may not have reached its database.
    #[error("store `{0}`: the thread writing its commits into RocksDB stopped, so its last commit may be missing; restart the instance to restore the store from its changelog")]
    CommitWriterStopped(String),
    /// The store was used after close.
    #[error("store `{0}` is closed")]
    Closed(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
