//! Store suppliers: how an application brings its own store implementation (Kafka Streams'
//! `KeyValueBytesStoreSupplier`, `WindowBytesStoreSupplier` and `SessionBytesStoreSupplier`).
//! The runtime asks the supplier for one byte store per task and puts its own layers (changelog,
//! record cache, metrics) around it.

use std::path::Path;

use crate::{KeyValueStore, Result, SessionStore, WindowStore};

/// Opens the key-value byte store of each task.
pub trait KeyValueBytesStoreSupplier: Send + Sync {
    /// The store's name (its changelog topic is named after it).
    fn name(&self) -> &str;
    /// The store of one task. A store that keeps files keeps them under `dir`, which the runtime
    /// deletes when it cannot trust them (after a crash under exactly-once); a store that does
    /// not record its changelog offset ([`crate::StateStore::committed_offset`]) is restored
    /// from the changelog's beginning or from the task's checkpoint.
    fn get(&self, dir: &Path) -> Result<Box<dyn KeyValueStore>>;
}

/// Opens the window byte store of each task; the windowed operation using it must have the
/// supplier's window size.
pub trait WindowBytesStoreSupplier: Send + Sync {
    /// The store's name.
    fn name(&self) -> &str;
    /// The store of one task, its files (if any) under `dir`: see
    /// [`KeyValueBytesStoreSupplier::get`].
    fn get(&self, dir: &Path) -> Result<Box<dyn WindowStore>>;
    /// How long windows are kept, in milliseconds.
    fn retention_period(&self) -> i64;
    /// The size of the windows the store holds, in milliseconds.
    fn window_size(&self) -> i64;
    /// Whether a key keeps every value put for the same window (stream-stream joins).
    fn retain_duplicates(&self) -> bool {
        false
    }
}

/// Opens the session byte store of each task.
pub trait SessionBytesStoreSupplier: Send + Sync {
    /// The store's name.
    fn name(&self) -> &str;
    /// The store of one task, its files (if any) under `dir`: see
    /// [`KeyValueBytesStoreSupplier::get`].
    fn get(&self, dir: &Path) -> Result<Box<dyn SessionStore>>;
    /// How long sessions are kept after they end, in milliseconds.
    fn retention_period(&self) -> i64;
}
