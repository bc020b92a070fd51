//! Local state stores for the streams runtime.
//!
//! This crate knows nothing of Kafka. It offers byte-level stores that the runtime layers serdes,
//! caching and changelogging on top of:
//!
//! * [`KeyValueStore`]: in memory ([`InMemoryKeyValueStore`], [`LruMapStore`]) and on RocksDB
//!   ([`RocksDbKeyValueStore`]);
//! * [`TimestampedKeyValueStore`]: a value plus the timestamp of the record that wrote it;
//! * [`VersionedKeyValueStore`]: every value a key had, for lookups as of a time;
//! * [`WindowStore`] and [`SessionStore`]: time-segmented stores with retention, in memory and on RocksDB;
//! * store suppliers ([`KeyValueBytesStoreSupplier`] and its window and session twins): an
//!   application's own store implementation;
//! * [`ChangelogSink`]: observes every write so the runtime can send it to a changelog topic;
//! * [`OffsetCheckpoint`] and [`TaskDirLock`]: what a task directory needs to restart safely.
//!
//! ```
//! use state_stores::{InMemoryKeyValueStore, KeyValueStore};
//! let mut store = InMemoryKeyValueStore::new("counts");
//! store.put(b"a", b"1").unwrap();
//! assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
//! ```
#![forbid(missing_docs)]

mod caching;
mod changelog;
mod changelog_layout;
mod checkpoint;
mod commit_writer;
mod error;
mod key_value;
mod lock;
mod lru;
mod memory;
mod rocks;
mod segments;
mod session;
mod supplier;
mod timestamped;
mod transaction;
mod versioned;
mod window;

#[cfg(test)]
mod conformance;

pub use caching::{CacheBudget, CachingKeyValueStore, FlushQueue, FlushedEntry};
pub use changelog::{
    ChangeLoggingKeyValueStore, ChangeLoggingSessionStore, ChangeLoggingWindowStore,
    ChangelogRecord, ChangelogSink, RecordTimestamp, VecChangelogSink,
};
pub use changelog_layout::{
    session_changelog_key, split_session_changelog_key, split_timestamped,
    split_window_changelog_key, window_changelog_key,
};
pub use checkpoint::OffsetCheckpoint;
pub use error::{Result, StoreError};
pub use key_value::{KeyValueStore, KvIter, StateStore};
pub use lock::TaskDirLock;
pub use lru::LruMapStore;
pub use memory::InMemoryKeyValueStore;
pub use rocks::{RocksDbConfigSetter, RocksDbKeyValueStore, RocksDbResources};
pub use segments::{InMemorySegments, RocksDbSegments, SegmentStorage};
pub use session::{
    KeyedSession, MergeCandidates, SegmentedSessionStore, SessionStore, SessionWindow,
};
pub use supplier::{
    KeyValueBytesStoreSupplier, SessionBytesStoreSupplier, WindowBytesStoreSupplier,
};
pub use timestamped::{TimestampedKeyValueStore, ValueAndTimestamp};
pub use versioned::{VersionedKeyValueStore, VersionedRecord, PUT_IS_LATEST, PUT_NOT_PUT};
pub use window::{SegmentedWindowStore, WindowStore, WindowStoreConfig, WindowedEntry};

/// A window store kept in memory.
pub type InMemoryWindowStore = SegmentedWindowStore<InMemorySegments>;
/// A window store on RocksDB (one column family per time segment).
pub type RocksDbWindowStore = SegmentedWindowStore<RocksDbSegments>;
/// A session store kept in memory.
pub type InMemorySessionStore = SegmentedSessionStore<InMemorySegments>;
/// A session store on RocksDB (one column family per time segment).
pub type RocksDbSessionStore = SegmentedSessionStore<RocksDbSegments>;
