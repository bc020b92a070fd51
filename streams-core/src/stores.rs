//! Store suppliers and the factory for them (Kafka Streams' `Stores`): RocksDB, in-memory and LRU
//! stores by name, an application's own store implementations, and store builders made from a
//! supplier for the Processor API.
//!
//! ```
//! use std::sync::Arc;
//! use streams_core::serdes::Serdes;
//! use streams_core::{StoreKind, Stores};
//!
//! let recent = Stores::key_value_store_builder(
//!     Stores::lru_map("recent-users", 10_000),
//!     Serdes::string(),
//!     Serdes::i64(),
//! );
//! assert_eq!(recent.kind(), StoreKind::KeyValue);
//! assert!(!recent.persistent());
//! ```

use std::sync::Arc;

use state_stores::{
    KeyValueBytesStoreSupplier, SessionBytesStoreSupplier, WindowBytesStoreSupplier,
};

use crate::record::Data;
use crate::serdes::SerdeRef;
use crate::store::{Backing, StoreBuilder};

/// What stores a supplier makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupplierShape {
    /// Key-value stores (plain or timestamped: the store builder decides the value layout).
    KeyValue,
    /// Window stores.
    Window {
        /// How long windows are kept.
        retention_ms: i64,
        /// Window size.
        window_size_ms: i64,
        /// Keep every value put for the same key and window (joins).
        retain_duplicates: bool,
    },
    /// Session stores.
    Session {
        /// How long sessions are kept after they end.
        retention_ms: i64,
    },
}

impl SupplierShape {
    /// What stores of this shape are called in messages.
    pub fn words(&self) -> &'static str {
        match self {
            SupplierShape::KeyValue => "key-value",
            SupplierShape::Window { .. } => "window",
            SupplierShape::Session { .. } => "session",
        }
    }
}

/// A store supplier: a store's name, what stores it makes, and where they keep their bytes. Give
/// it to `Materialized::as_supplier` (DSL) or to a [`Stores`] builder (Processor API).
#[derive(Clone)]
pub struct StoreSupplier {
    name: String,
    shape: SupplierShape,
    pub(crate) backing: Backing,
}

impl std::fmt::Debug for StoreSupplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSupplier")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .finish()
    }
}

impl StoreSupplier {
    /// The application's key-value stores.
    pub fn key_value(supplier: Arc<dyn KeyValueBytesStoreSupplier>) -> Self {
        StoreSupplier {
            name: supplier.name().to_string(),
            shape: SupplierShape::KeyValue,
            backing: Backing::KeyValue(supplier),
        }
    }

    /// The application's window stores.
    pub fn window(supplier: Arc<dyn WindowBytesStoreSupplier>) -> Self {
        StoreSupplier {
            name: supplier.name().to_string(),
            shape: SupplierShape::Window {
                retention_ms: supplier.retention_period(),
                window_size_ms: supplier.window_size(),
                retain_duplicates: supplier.retain_duplicates(),
            },
            backing: Backing::Window(supplier),
        }
    }

    /// The application's session stores.
    pub fn session(supplier: Arc<dyn SessionBytesStoreSupplier>) -> Self {
        StoreSupplier {
            name: supplier.name().to_string(),
            shape: SupplierShape::Session {
                retention_ms: supplier.retention_period(),
            },
            backing: Backing::Session(supplier),
        }
    }

    /// The store name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What stores it makes.
    pub fn shape(&self) -> SupplierShape {
        self.shape
    }

    /// Whether its stores may live on disk (an application's supplier counts as persistent).
    pub fn persistent(&self) -> bool {
        self.backing.persistent()
    }

    fn built_in(name: impl Into<String>, shape: SupplierShape, backing: Backing) -> Self {
        StoreSupplier {
            name: name.into(),
            shape,
            backing,
        }
    }
}

/// Factory of store suppliers and of store builders made from them (Kafka Streams' `Stores`).
#[derive(Debug, Clone, Copy)]
pub struct Stores;

impl Stores {
    /// RocksDB key-value stores (transactional under exactly-once).
    pub fn persistent_key_value_store(name: impl Into<String>) -> StoreSupplier {
        StoreSupplier::built_in(name, SupplierShape::KeyValue, Backing::RocksDb)
    }

    /// The same supplier as [`Stores::persistent_key_value_store`]: here the store builder (or
    /// the DSL) decides whether values carry timestamps.
    pub fn persistent_timestamped_key_value_store(name: impl Into<String>) -> StoreSupplier {
        Self::persistent_key_value_store(name)
    }

    /// In-memory key-value stores, rebuilt from their changelog on every start.
    pub fn in_memory_key_value_store(name: impl Into<String>) -> StoreSupplier {
        StoreSupplier::built_in(name, SupplierShape::KeyValue, Backing::InMemory)
    }

    /// In-memory key-value stores of at most `max_entries` entries, evicting the least recently
    /// used key (its removal goes to the changelog too).
    pub fn lru_map(name: impl Into<String>, max_entries: usize) -> StoreSupplier {
        StoreSupplier::built_in(name, SupplierShape::KeyValue, Backing::LruMap(max_entries))
    }

    /// RocksDB window stores.
    pub fn persistent_window_store(
        name: impl Into<String>,
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
    ) -> StoreSupplier {
        let shape = SupplierShape::Window {
            retention_ms,
            window_size_ms,
            retain_duplicates,
        };
        StoreSupplier::built_in(name, shape, Backing::RocksDb)
    }

    /// The same supplier as [`Stores::persistent_window_store`] (the builder decides the value
    /// layout).
    pub fn persistent_timestamped_window_store(
        name: impl Into<String>,
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
    ) -> StoreSupplier {
        Self::persistent_window_store(name, retention_ms, window_size_ms, retain_duplicates)
    }

    /// In-memory window stores.
    pub fn in_memory_window_store(
        name: impl Into<String>,
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
    ) -> StoreSupplier {
        let persistent =
            Self::persistent_window_store(name, retention_ms, window_size_ms, retain_duplicates);
        StoreSupplier {
            backing: Backing::InMemory,
            ..persistent
        }
    }

    /// RocksDB session stores.
    pub fn persistent_session_store(name: impl Into<String>, retention_ms: i64) -> StoreSupplier {
        StoreSupplier::built_in(
            name,
            SupplierShape::Session { retention_ms },
            Backing::RocksDb,
        )
    }

    /// In-memory session stores.
    pub fn in_memory_session_store(name: impl Into<String>, retention_ms: i64) -> StoreSupplier {
        StoreSupplier::built_in(
            name,
            SupplierShape::Session { retention_ms },
            Backing::InMemory,
        )
    }

    /// A key-value store builder on `supplier` (change-logged, not cached).
    pub fn key_value_store_builder<K: Data, V: Data>(
        supplier: StoreSupplier,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> StoreBuilder {
        StoreBuilder::key_value(supplier.name.clone(), key, value).with_supplier(supplier)
    }

    /// A timestamped key-value store builder on `supplier`.
    pub fn timestamped_key_value_store_builder<K: Data, V: Data>(
        supplier: StoreSupplier,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> StoreBuilder {
        StoreBuilder::timestamped_key_value(supplier.name.clone(), key, value)
            .with_supplier(supplier)
    }

    /// A window store builder on `supplier`, with its retention and window size.
    pub fn window_store_builder<K: Data, V: Data>(
        supplier: StoreSupplier,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> StoreBuilder {
        let (retention_ms, size, dups) = window_layout(&supplier);
        StoreBuilder::window(supplier.name.clone(), retention_ms, size, dups, key, value)
            .with_supplier(supplier)
    }

    /// A timestamped window store builder on `supplier`.
    pub fn timestamped_window_store_builder<K: Data, V: Data>(
        supplier: StoreSupplier,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> StoreBuilder {
        let (retention_ms, size, _) = window_layout(&supplier);
        StoreBuilder::timestamped_window(supplier.name.clone(), retention_ms, size, key, value)
            .with_supplier(supplier)
    }

    /// A session store builder on `supplier`, with its retention.
    pub fn session_store_builder<K: Data, V: Data>(
        supplier: StoreSupplier,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> StoreBuilder {
        let retention_ms = match supplier.shape {
            SupplierShape::Session { retention_ms } => retention_ms,
            // Not a session supplier: `with_supplier` marks the builder invalid.
            _ => 0,
        };
        StoreBuilder::session(supplier.name.clone(), retention_ms, key, value)
            .with_supplier(supplier)
    }
}

/// A window supplier's retention, size and duplicates; zeros for another shape, which
/// `with_supplier` reports.
fn window_layout(supplier: &StoreSupplier) -> (i64, i64, bool) {
    match supplier.shape {
        SupplierShape::Window {
            retention_ms,
            window_size_ms,
            retain_duplicates,
        } => (retention_ms, window_size_ms, retain_duplicates),
        _ => (0, 0, false),
    }
}
