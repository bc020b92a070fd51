//! State stores as processors see them: declared with a [`StoreBuilder`], used through typed handles.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

/// The time span of a session, as session stores key it.
pub use state_stores::SessionWindow;
use state_stores::{
    CacheBudget, CachingKeyValueStore, ChangeLoggingKeyValueStore, ChangeLoggingSessionStore,
    ChangeLoggingWindowStore, ChangelogRecord, FlushQueue, InMemoryKeyValueStore, InMemorySegments,
    KeyValueBytesStoreSupplier, KeyValueStore, LruMapStore, RecordTimestamp, RocksDbKeyValueStore,
    RocksDbResources, RocksDbSegments, SegmentedSessionStore, SegmentedWindowStore,
    SessionBytesStoreSupplier, SessionStore, VecChangelogSink, VersionedKeyValueStore,
    WindowBytesStoreSupplier, WindowStore, WindowStoreConfig,
};

use crate::record::Data;
use crate::serdes::SerdeRef;
use crate::stores::{StoreSupplier, SupplierShape};
use crate::{Result, StreamsError};

/// What kind of store a builder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Key -> value.
    KeyValue,
    /// Key -> (value, timestamp of the record that wrote it).
    TimestampedKeyValue,
    /// Key -> every value it had, each valid from its timestamp (KIP-889); seen as a
    /// timestamped key-value store of the latest values.
    VersionedKeyValue {
        /// How long versions stay queryable behind stream time.
        history_retention_ms: i64,
    },
    /// (key, window start) -> value, with retention.
    Window {
        /// How long windows are kept, relative to stream time.
        retention_ms: i64,
        /// Window size.
        window_size_ms: i64,
        /// Keep every value put for the same key and window (joins).
        retain_duplicates: bool,
    },
    /// (key, session window) -> value, with retention.
    Session {
        /// How long sessions are kept after their end, relative to stream time.
        retention_ms: i64,
    },
}

impl StoreKind {
    /// Key-value stores of any flavour (plain, timestamped, versioned).
    pub fn is_key_value(&self) -> bool {
        matches!(
            self,
            StoreKind::KeyValue
                | StoreKind::TimestampedKeyValue
                | StoreKind::VersionedKeyValue { .. }
        )
    }

    /// Key-value stores whose values carry a timestamp (timestamped and versioned).
    pub fn is_timestamped_key_value(&self) -> bool {
        matches!(
            self,
            StoreKind::TimestampedKeyValue | StoreKind::VersionedKeyValue { .. }
        )
    }
}

/// The serdes of a store's keys and values.
pub struct StoreSerdes<K, V> {
    /// Key serde.
    pub key: SerdeRef<K>,
    /// Value serde.
    pub value: SerdeRef<V>,
}

/// Where a store keeps its bytes.
#[derive(Clone)]
pub(crate) enum Backing {
    /// RocksDB (the default), transactional under exactly-once.
    RocksDb,
    /// Memory, rebuilt from the changelog on every start.
    InMemory,
    /// Memory, at most this many entries (Kafka Streams' `Stores.lruMap`).
    LruMap(usize),
    /// The application's key-value stores.
    KeyValue(Arc<dyn KeyValueBytesStoreSupplier>),
    /// The application's window stores.
    Window(Arc<dyn WindowBytesStoreSupplier>),
    /// The application's session stores.
    Session(Arc<dyn SessionBytesStoreSupplier>),
}

impl Backing {
    /// Whether stores on this backing may live on disk.
    pub(crate) fn persistent(&self) -> bool {
        !matches!(self, Backing::InMemory | Backing::LruMap(_))
    }
}

/// Declares a state store: its kind, serdes, and whether it is persistent, change-logged and cached.
#[derive(Clone)]
pub struct StoreBuilder {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) backing: Backing,
    /// Why this builder cannot make its store (a supplier of another shape), reported when the
    /// store is added to a topology.
    pub(crate) invalid: Option<String>,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    /// Window store values carry the timestamp of the record that wrote them.
    pub(crate) timestamped_window: bool,
    /// Topic configs of the changelog, over the runtime's defaults.
    pub(crate) changelog_configs: std::collections::BTreeMap<String, String>,
    /// The topic of the source table this store materializes (see
    /// [`StoreBuilder::for_source_table`]).
    pub(crate) source_topic: Option<String>,
    /// That topic is the changelog (`topology.optimization` reuses source topics).
    pub(crate) source_changelog: bool,
    pub(crate) serdes: Arc<dyn Any + Send + Sync>,
    pub(crate) types: (&'static str, &'static str),
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("persistent", &self.persistent())
            .field("logging", &self.logging)
            .field("caching", &self.caching)
            .finish()
    }
}

impl StoreBuilder {
    fn new<K: Data, V: Data>(
        name: impl Into<String>,
        kind: StoreKind,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        StoreBuilder {
            name: name.into(),
            kind,
            backing: Backing::RocksDb,
            invalid: None,
            logging: true,
            caching: false,
            timestamped_window: false,
            changelog_configs: Default::default(),
            source_topic: None,
            source_changelog: false,
            serdes: Arc::new(StoreSerdes { key, value }),
            types: (std::any::type_name::<K>(), std::any::type_name::<V>()),
        }
    }

    /// A persistent (RocksDB), change-logged key-value store.
    pub fn key_value<K: Data, V: Data>(
        name: impl Into<String>,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        Self::new(name, StoreKind::KeyValue, key, value)
    }

    /// A key-value store whose values carry the timestamp of the record that wrote them.
    pub fn timestamped_key_value<K: Data, V: Data>(
        name: impl Into<String>,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        Self::new(name, StoreKind::TimestampedKeyValue, key, value)
    }

    /// A versioned key-value store (Kafka Streams' `persistentVersionedKeyValueStore`, KIP-889):
    /// every value of a key, each valid from its record's timestamp until the next one's,
    /// queryable as of a time for `history_retention_ms` behind stream time. Writes older than
    /// that are dropped. Never cached, as in Kafka Streams.
    pub fn versioned_key_value<K: Data, V: Data>(
        name: impl Into<String>,
        history_retention_ms: i64,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        Self::new(
            name,
            StoreKind::VersionedKeyValue {
                history_retention_ms,
            },
            key,
            value,
        )
    }

    /// Marks the store as the materialization of a source table read from `topic` (what
    /// `StreamsBuilder::table` builds). With `topology.optimization` reusing source topics (Kafka
    /// Streams' `reuse.ktable.source.topics`), that topic is the store's changelog: no
    /// `-changelog` topic, no writes to one, restoration from the topic up to the committed
    /// offset.
    pub fn for_source_table(mut self, topic: impl Into<String>) -> Self {
        self.source_topic = Some(topic.into());
        self
    }

    /// A window store.
    pub fn window<K: Data, V: Data>(
        name: impl Into<String>,
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        Self::new(
            name,
            StoreKind::Window {
                retention_ms,
                window_size_ms,
                retain_duplicates,
            },
            key,
            value,
        )
    }

    /// A window store whose values carry the timestamp of the record that wrote them (what windowed
    /// aggregations use; read it with `ProcessorContext::timestamped_window_store`).
    pub fn timestamped_window<K: Data, V: Data>(
        name: impl Into<String>,
        retention_ms: i64,
        window_size_ms: i64,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        let mut b = Self::window(name, retention_ms, window_size_ms, false, key, value);
        b.timestamped_window = true;
        b
    }

    /// A session store.
    pub fn session<K: Data, V: Data>(
        name: impl Into<String>,
        retention_ms: i64,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        Self::new(name, StoreKind::Session { retention_ms }, key, value)
    }

    /// Keep the store in memory instead of RocksDB (still restored from its changelog).
    pub fn in_memory(mut self) -> Self {
        self.backing = Backing::InMemory;
        self
    }

    /// Keeps the store's bytes where `supplier` says (Kafka Streams' `Stores.*StoreBuilder(supplier,
    /// ...)` and `Materialized.as(supplier)`). A window or session store takes the supplier's
    /// retention; its window size must be the store's. A supplier of another shape (a window
    /// supplier for a key-value store) makes adding the store to a topology fail.
    pub fn with_supplier(mut self, supplier: StoreSupplier) -> Self {
        let shape = supplier.shape();
        match (&mut self.kind, shape) {
            (StoreKind::KeyValue | StoreKind::TimestampedKeyValue, SupplierShape::KeyValue) => {}
            (
                StoreKind::Window {
                    retention_ms,
                    window_size_ms,
                    retain_duplicates,
                },
                SupplierShape::Window {
                    retention_ms: r,
                    window_size_ms: size,
                    retain_duplicates: dups,
                },
            ) => {
                if size != *window_size_ms {
                    self.invalid = Some(format!(
                        "the supplier's window size ({size} ms) must be the windows' size ({} ms)",
                        *window_size_ms
                    ));
                } else if size <= 0 || r < size {
                    self.invalid = Some(format!(
                        "the supplier's retention ({r} ms) must be at least its window size ({size} ms), which must be positive"
                    ));
                }
                *retention_ms = r;
                *retain_duplicates = dups;
            }
            (StoreKind::Session { retention_ms }, SupplierShape::Session { retention_ms: r }) => {
                if r < 0 {
                    self.invalid = Some(format!("the supplier's retention ({r} ms) is negative"));
                }
                *retention_ms = r;
            }
            (StoreKind::VersionedKeyValue { .. }, _) => {
                self.invalid = Some(
                    "versioned stores take no supplier here; use `StoreBuilder::versioned_key_value` \
                     (`Materialized::as_versioned`)"
                        .into(),
                );
            }
            (kind, shape) => {
                let (kind, shape) = (kind_words(kind), shape.words());
                self.invalid = Some(format!(
                    "a {kind} store cannot use a supplier of {shape} stores; pass a {kind} supplier"
                ));
            }
        }
        self.backing = supplier.backing;
        self
    }

    /// Do not write a changelog: the store is lost with its task directory.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Keep a changelog topic, created with these topic configs (Kafka Streams'
    /// `withLoggingEnabled(config)`; the cleanup policy stays the store's).
    pub fn with_logging_enabled(
        mut self,
        configs: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.logging = true;
        self.changelog_configs.extend(configs);
        self
    }

    /// Put the record cache in front of the store.
    pub fn with_caching(mut self, enabled: bool) -> Self {
        self.caching = enabled;
        self
    }

    /// The store name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Whether the store keeps a changelog topic.
    pub fn logging_enabled(&self) -> bool {
        self.logging
    }

    /// Fails when the builder's supplier cannot make its store.
    pub(crate) fn check_supplier(&self) -> Result<()> {
        match &self.invalid {
            Some(why) => Err(StreamsError::Topology(format!(
                "store `{}`: {why}",
                self.name
            ))),
            None => Ok(()),
        }
    }

    /// Whether it builds a versioned key-value store.
    pub fn is_versioned(&self) -> bool {
        matches!(self.kind, StoreKind::VersionedKeyValue { .. })
    }

    /// Marks the builder as unusable: adding it to a topology fails, naming the store and
    /// `why`. A DSL reports an option that cannot apply to the store it builds this way.
    pub fn invalid_because(mut self, why: impl Into<String>) -> Self {
        self.invalid.get_or_insert(why.into());
        self
    }

    /// Whether it may live on disk (an application's supplier counts as persistent: the runtime
    /// distrusts and wipes its directory as it would RocksDB's).
    pub fn persistent(&self) -> bool {
        self.backing.persistent()
    }
}

/// What a store kind is called in messages.
fn kind_words(kind: &StoreKind) -> &'static str {
    match kind {
        StoreKind::KeyValue | StoreKind::TimestampedKeyValue => "key-value",
        StoreKind::VersionedKeyValue { .. } => "versioned key-value",
        StoreKind::Window { .. } => "window",
        StoreKind::Session { .. } => "session",
    }
}

/// The changelog topic of a store: `<application.id>-<store>-changelog`.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

pub(crate) enum AnyStore {
    KeyValue(Box<dyn KeyValueStore>),
    Window(Box<dyn WindowStore>),
    Session(Box<dyn SessionStore>),
}

impl AnyStore {
    pub(crate) fn as_state_store(&mut self) -> &mut dyn state_stores::StateStore {
        match self {
            AnyStore::KeyValue(s) => s.as_mut(),
            AnyStore::Window(s) => s.as_mut(),
            AnyStore::Session(s) => s.as_mut(),
        }
    }

    /// Applies changelog records, bypassing change logging. `timestamped_values`: the store keeps
    /// `[timestamp][value]`, and its changelog (as Kafka Streams') the value stamped with the
    /// timestamp.
    pub(crate) fn restore(
        &mut self,
        records: Vec<ChangelogRecord>,
        timestamped_values: bool,
    ) -> Result<()> {
        // A versioned store replays each write at its record's timestamp, tombstones included.
        if let AnyStore::KeyValue(s) = self {
            if let Some(v) = s.as_versioned_mut() {
                v.restore(records)?;
                return Ok(());
            }
        }
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
            .into_iter()
            .map(|r| {
                let value = match r.value {
                    Some(v) if timestamped_values => {
                        Some(state_stores::ValueAndTimestamp::encode(&v, r.timestamp))
                    }
                    other => other,
                };
                (r.key, value)
            })
            .collect();
        match self {
            AnyStore::KeyValue(s) => s.write_batch(&entries)?,
            AnyStore::Window(s) => s.restore_batch(&entries)?,
            AnyStore::Session(s) => s.restore_batch(&entries)?,
        }
        Ok(())
    }
}

/// Builds the store of `builder` for one task, wrapped for change logging when enabled.
/// `transactional`: persistent stores keep writes in memory until the runtime commits them with
/// their changelog offset (exactly-once).
pub(crate) fn build_store(
    builder: &StoreBuilder,
    task_dir: &Path,
    resources: &RocksDbResources,
    transactional: bool,
    changelog: Option<(&VecChangelogSink, &RecordTimestamp)>,
    cache: Option<(&CacheBudget, &RecordTimestamp, &FlushQueue)>,
) -> Result<AnyStore> {
    let name = builder.name.clone();
    let path = task_dir.join("rocksdb").join(&name);
    let store = match builder.kind {
        StoreKind::KeyValue | StoreKind::TimestampedKeyValue => {
            let inner = open_key_value(builder, &path, resources, transactional)?;
            let logged: Box<dyn KeyValueStore> = match changelog {
                Some((sink, ts)) => {
                    let logging =
                        ChangeLoggingKeyValueStore::new(inner, Box::new(sink.clone()), ts.clone());
                    Box::new(if builder.kind == StoreKind::TimestampedKeyValue {
                        logging.with_timestamped_values()
                    } else {
                        logging
                    })
                }
                None => inner,
            };
            AnyStore::KeyValue(match cache {
                Some((budget, ts, queue)) if builder.caching && budget.max() > 0 => Box::new(
                    CachingKeyValueStore::new(logged, budget.clone(), ts.clone(), queue.clone()),
                ),
                _ => logged,
            })
        }
        StoreKind::VersionedKeyValue {
            history_retention_ms,
        } => {
            let inner = open_key_value(builder, &path, resources, transactional)?;
            let (sink, record_timestamp) = match changelog {
                Some((sink, ts)) => (
                    Some(Box::new(sink.clone()) as Box<dyn state_stores::ChangelogSink>),
                    ts.clone(),
                ),
                None => (None, RecordTimestamp::default()),
            };
            AnyStore::KeyValue(Box::new(VersionedKeyValueStore::new(
                inner,
                history_retention_ms,
                sink,
                record_timestamp,
            )?))
        }
        StoreKind::Window {
            retention_ms,
            window_size_ms,
            retain_duplicates,
        } => {
            let cfg = WindowStoreConfig::new(retention_ms, window_size_ms, retain_duplicates);
            let inner: Box<dyn WindowStore> = match &builder.backing {
                Backing::Window(supplier) => supplier.get(&path)?,
                Backing::InMemory => Box::new(SegmentedWindowStore::new(
                    &name,
                    InMemorySegments::new(&name),
                    cfg,
                )?),
                _ => Box::new(SegmentedWindowStore::new(
                    &name,
                    open_segments(&name, &path, resources, transactional)?,
                    cfg,
                )?),
            };
            AnyStore::Window(match changelog {
                Some((sink, ts)) => {
                    let logging =
                        ChangeLoggingWindowStore::new(inner, Box::new(sink.clone()), ts.clone());
                    Box::new(if builder.timestamped_window {
                        logging.with_timestamped_values()
                    } else {
                        logging
                    })
                }
                None => inner,
            })
        }
        StoreKind::Session { retention_ms } => {
            let inner: Box<dyn SessionStore> = match &builder.backing {
                Backing::Session(supplier) => supplier.get(&path)?,
                Backing::InMemory => Box::new(SegmentedSessionStore::new(
                    &name,
                    InMemorySegments::new(&name),
                    retention_ms,
                )?),
                _ => Box::new(SegmentedSessionStore::new(
                    &name,
                    open_segments(&name, &path, resources, transactional)?,
                    retention_ms,
                )?),
            };
            AnyStore::Session(match changelog {
                Some((sink, ts)) => Box::new(ChangeLoggingSessionStore::new(
                    inner,
                    Box::new(sink.clone()),
                    ts.clone(),
                )),
                None => inner,
            })
        }
    };
    Ok(store)
}

/// The byte store under a key-value store's layers, at `path`: RocksDB (transactional under
/// exactly-once), memory, an LRU map, or the application's supplier.
pub(crate) fn open_key_value(
    builder: &StoreBuilder,
    path: &Path,
    resources: &RocksDbResources,
    transactional: bool,
) -> Result<Box<dyn KeyValueStore>> {
    let name = &builder.name;
    Ok(match &builder.backing {
        Backing::RocksDb if transactional => Box::new(RocksDbKeyValueStore::open_transactional(
            name, path, resources,
        )?),
        Backing::RocksDb => Box::new(RocksDbKeyValueStore::open(name, path, resources)?),
        Backing::InMemory => Box::new(InMemoryKeyValueStore::new(name)),
        Backing::LruMap(max_entries) => Box::new(LruMapStore::new(name, *max_entries)),
        Backing::KeyValue(supplier) => supplier.get(path)?,
        Backing::Window(_) | Backing::Session(_) => {
            return Err(StreamsError::Topology(format!(
            "store `{name}` is a key-value store but its supplier makes window or session stores"
        )))
        }
    })
}

fn open_segments(
    name: &str,
    path: &Path,
    resources: &RocksDbResources,
    transactional: bool,
) -> Result<RocksDbSegments> {
    Ok(if transactional {
        RocksDbSegments::open_transactional(name, path, resources)?
    } else {
        RocksDbSegments::open(name, path, resources)?
    })
}

/// A value with the timestamp of the record that last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Timestamp in ms.
    pub timestamp: i64,
}

struct Codec<'a, K, V> {
    store: &'a str,
    serdes: &'a StoreSerdes<K, V>,
}

impl<K: 'static, V: 'static> Codec<'_, K, V> {
    fn key(&self, k: &K) -> Result<Vec<u8>> {
        self.serdes
            .key
            .serialize(k)
            .map_err(|source| StreamsError::Serialization {
                part: "key",
                target: format!("store `{}`", self.store),
                source,
            })?
            .ok_or_else(|| StreamsError::Serialization {
                part: "key",
                target: format!("store `{}`", self.store),
                source: crate::serdes::SerdeError::Null {
                    type_name: std::any::type_name::<K>(),
                },
            })
    }
    fn value(&self, v: &V) -> Result<Option<Vec<u8>>> {
        self.serdes
            .value
            .serialize(v)
            .map_err(|source| StreamsError::Serialization {
                part: "value",
                target: format!("store `{}`", self.store),
                source,
            })
    }
    fn de_key(&self, b: &[u8]) -> Result<K> {
        self.serdes
            .key
            .deserialize(Some(b))
            .map_err(|source| StreamsError::StoreDeserialization {
                part: "key",
                store: self.store.to_string(),
                source,
            })
    }
    fn de_value(&self, b: &[u8]) -> Result<V> {
        self.serdes.value.deserialize(Some(b)).map_err(|source| {
            StreamsError::StoreDeserialization {
                part: "value",
                store: self.store.to_string(),
                source,
            }
        })
    }
}

/// Decodes a flushed cache entry of a timestamped store: `(key, new, old)`.
#[allow(clippy::type_complexity)]
pub(crate) fn decode_flushed<K: 'static, V: 'static>(
    store: &str,
    serdes: &StoreSerdes<K, V>,
    e: &state_stores::FlushedEntry,
) -> Result<(
    K,
    Option<ValueAndTimestamp<V>>,
    Option<ValueAndTimestamp<V>>,
)> {
    let c = Codec { store, serdes };
    let decode = |raw: &Option<Vec<u8>>| -> Result<Option<ValueAndTimestamp<V>>> {
        match raw {
            Some(raw) => {
                let vt = state_stores::ValueAndTimestamp::decode(store, raw)?;
                Ok(Some(ValueAndTimestamp {
                    value: c.de_value(&vt.value)?,
                    timestamp: vt.timestamp,
                }))
            }
            None => Ok(None),
        }
    };
    Ok((c.de_key(&e.key)?, decode(&e.new)?, decode(&e.old)?))
}

/// A typed reference to a key-value store of a task, from
/// [`ProcessorContext::store_ref`](crate::ProcessorContext::store_ref): the name, kind and types
/// are checked once, and each access is an index into the task's stores.
pub struct StoreRef<K, V> {
    pub(crate) index: usize,
    pub(crate) kind: StoreKind,
    pub(crate) name: Arc<str>,
    pub(crate) serdes: Arc<StoreSerdes<K, V>>,
}

impl<K, V> Clone for StoreRef<K, V> {
    fn clone(&self) -> Self {
        StoreRef {
            index: self.index,
            kind: self.kind,
            name: self.name.clone(),
            serdes: self.serdes.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for StoreRef<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRef")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<K, V> StoreRef<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A page of a key range: the entries, and the serialized key to resume after when more follow.
pub(crate) type RangePage<K, V> = (Vec<(K, V)>, Option<Vec<u8>>);

/// Typed access to a key-value store. Keys are ordered by their serialized bytes.
pub struct KeyValueStoreHandle<'a, K, V> {
    pub(crate) store: &'a mut dyn KeyValueStore,
    pub(crate) name: &'a str,
    pub(crate) serdes: &'a StoreSerdes<K, V>,
}

impl<K: 'static, V: 'static> KeyValueStoreHandle<'_, K, V> {
    fn codec(&self) -> Codec<'_, K, V> {
        Codec {
            store: self.name,
            serdes: self.serdes,
        }
    }
    /// The value for `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let c = self.codec();
        self.store
            .get(&c.key(key)?)?
            .map(|b| c.de_value(&b))
            .transpose()
    }
    /// Writes `value` for `key` (a value that serializes to null deletes the key).
    pub fn put(&mut self, key: &K, value: &V) -> Result<()> {
        let c = Codec {
            store: self.name,
            serdes: self.serdes,
        };
        let k = c.key(key)?;
        match c.value(value)? {
            Some(v) => self.store.put(&k, &v)?,
            None => self.store.remove(&k)?,
        }
        Ok(())
    }
    /// Writes only if absent; returns the existing value otherwise.
    pub fn put_if_absent(&mut self, key: &K, value: &V) -> Result<Option<V>> {
        let c = Codec {
            store: self.name,
            serdes: self.serdes,
        };
        let k = c.key(key)?;
        let Some(v) = c.value(value)? else {
            return Ok(None);
        };
        self.store
            .put_if_absent(&k, &v)?
            .map(|b| c.de_value(&b))
            .transpose()
    }
    /// Deletes `key`, returning its value.
    pub fn delete(&mut self, key: &K) -> Result<Option<V>> {
        let c = Codec {
            store: self.name,
            serdes: self.serdes,
        };
        let k = c.key(key)?;
        self.store.delete(&k)?.map(|b| c.de_value(&b)).transpose()
    }
    /// Deletes `key` without reading its value first (Kafka's `put(key, null)`), which spares
    /// a read from disk when the value is not needed.
    pub fn remove(&mut self, key: &K) -> Result<()> {
        let k = self.codec().key(key)?;
        Ok(self.store.remove(&k)?)
    }
    /// Entries with `from <= key <= to` (by serialized key), ascending, decoded as they are read.
    pub fn range(
        &self,
        from: Option<&K>,
        to: Option<&K>,
    ) -> Result<impl Iterator<Item = Result<(K, V)>> + '_> {
        let (f, t) = self.bounds(from, to)?;
        Ok(self.decoded(self.store.range(f.as_deref(), t.as_deref())?))
    }
    /// All entries, ascending by serialized key, decoded as they are read.
    pub fn all(&self) -> Result<impl Iterator<Item = Result<(K, V)>> + '_> {
        self.range(None, None)
    }
    /// Entries with `from <= key <= to` (by serialized key), descending.
    pub fn reverse_range(
        &self,
        from: Option<&K>,
        to: Option<&K>,
    ) -> Result<impl Iterator<Item = Result<(K, V)>> + '_> {
        let (f, t) = self.bounds(from, to)?;
        Ok(self.decoded(self.store.reverse_range(f.as_deref(), t.as_deref())?))
    }
    /// Serialized range bounds.
    #[allow(clippy::type_complexity)]
    fn bounds(
        &self,
        from: Option<&K>,
        to: Option<&K>,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let c = self.codec();
        Ok((
            from.map(|k| c.key(k)).transpose()?,
            to.map(|k| c.key(k)).transpose()?,
        ))
    }
    /// Decodes store entries as they are read.
    fn decoded<'s>(
        &'s self,
        entries: state_stores::KvIter<'s>,
    ) -> impl Iterator<Item = Result<(K, V)>> + 's {
        let c = self.codec();
        entries.map(move |e| {
            let (k, v) = e?;
            Ok((c.de_key(&k)?, c.de_value(&v)?))
        })
    }
    /// Up to `limit` entries of `[from, to]` (by serialized key, ascending) past the serialized
    /// key `after`, or from `from` without it; with the serialized key to resume after when more
    /// entries follow. `timestamped`: the stored values carry a timestamp, left out here.
    pub(crate) fn range_page(
        &self,
        from: Option<&K>,
        to: Option<&K>,
        after: Option<&[u8]>,
        limit: usize,
        timestamped: bool,
    ) -> Result<RangePage<K, V>> {
        let (from, to) = self.bounds(from, to)?;
        let lower = after.map(<[u8]>::to_vec).or(from);
        let c = self.codec();
        let mut entries = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for e in self.store.range(lower.as_deref(), to.as_deref())? {
            let (k, raw) = e?;
            if after == Some(k.as_slice()) {
                continue;
            }
            if entries.len() == limit {
                return Ok((entries, last));
            }
            let value = if timestamped {
                state_stores::ValueAndTimestamp::decode(self.name, &raw)?.value
            } else {
                raw
            };
            entries.push((c.de_key(&k)?, c.de_value(&value)?));
            last = Some(k);
        }
        Ok((entries, None))
    }
    /// All entries, descending by serialized key.
    pub fn reverse_all(&self) -> Result<impl Iterator<Item = Result<(K, V)>> + '_> {
        self.reverse_range(None, None)
    }
    /// Writes every `(key, value)` (Kafka Streams' `putAll`).
    pub fn put_all<'e>(&mut self, entries: impl IntoIterator<Item = (&'e K, &'e V)>) -> Result<()>
    where
        K: 'e,
        V: 'e,
    {
        for (k, v) in entries {
            self.put(k, v)?;
        }
        Ok(())
    }
    /// Entries whose serialized key starts with the serialized `prefix`.
    pub fn prefix_scan(&self, prefix: &K) -> Result<impl Iterator<Item = Result<(K, V)>> + '_> {
        let entries = self.store.prefix_scan(&self.codec().key(prefix)?)?;
        Ok(self.decoded(entries))
    }
    /// Estimated number of entries.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.store.approximate_num_entries()?)
    }
}

/// One version of a value in a versioned store.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedRecord<V> {
    /// The value.
    pub value: V,
    /// When this version became valid.
    pub timestamp: i64,
    /// When the next version replaced it; `None` for the latest.
    pub valid_to: Option<i64>,
}

/// [`VersionedKeyValueStoreHandle::put`]: the write is the key's latest value.
pub use state_stores::PUT_IS_LATEST;
/// [`VersionedKeyValueStoreHandle::put`]: the write was older than the history retention.
pub use state_stores::PUT_NOT_PUT;

/// Typed access to a versioned key-value store (see [`StoreBuilder::versioned_key_value`]).
pub struct VersionedKeyValueStoreHandle<'a, K, V> {
    pub(crate) store: &'a mut VersionedKeyValueStore,
    pub(crate) name: &'a str,
    pub(crate) serdes: &'a StoreSerdes<K, V>,
}

impl<K: 'static, V: 'static> VersionedKeyValueStoreHandle<'_, K, V> {
    fn codec(&self) -> Codec<'_, K, V> {
        Codec {
            store: self.name,
            serdes: self.serdes,
        }
    }

    fn typed(
        &self,
        r: Option<state_stores::VersionedRecord>,
    ) -> Result<Option<VersionedRecord<V>>> {
        r.map(|r| {
            Ok(VersionedRecord {
                value: self.codec().de_value(&r.value)?,
                timestamp: r.timestamp,
                valid_to: r.valid_to,
            })
        })
        .transpose()
    }

    /// Writes `value` (`None`: a delete) for `key` as of `timestamp`. Returns until when the
    /// new version is valid: [`PUT_IS_LATEST`] when it is the latest, the next version's
    /// timestamp when written out of order, [`PUT_NOT_PUT`] when `timestamp` is older than the
    /// history retention (nothing written).
    pub fn put(&mut self, key: &K, value: Option<&V>, timestamp: i64) -> Result<i64> {
        let c = self.codec();
        let k = c.key(key)?;
        let v = value.map(|v| c.value(v)).transpose()?.flatten();
        Ok(self.store.put(&k, v.as_deref(), timestamp)?)
    }

    /// The latest value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<VersionedRecord<V>>> {
        let k = self.codec().key(key)?;
        let r = self.store.get_latest(&k)?;
        self.typed(r)
    }

    /// The value `key` had at `as_of` (`None` past the history retention).
    pub fn get_as_of(&self, key: &K, as_of: i64) -> Result<Option<VersionedRecord<V>>> {
        let k = self.codec().key(key)?;
        let r = self.store.get_as_of(&k, as_of)?;
        self.typed(r)
    }

    /// Deletes `key` as of `timestamp`; returns the version that was valid then.
    pub fn delete(&mut self, key: &K, timestamp: i64) -> Result<Option<VersionedRecord<V>>> {
        let before = self.get_as_of(key, timestamp)?;
        let k = self.codec().key(key)?;
        self.store.put(&k, None, timestamp)?;
        Ok(before)
    }
}

/// Typed access to a timestamped key-value store.
pub struct TimestampedKeyValueStoreHandle<'a, K, V> {
    pub(crate) inner: KeyValueStoreHandle<'a, K, V>,
}

impl<K: 'static, V: 'static> TimestampedKeyValueStoreHandle<'_, K, V> {
    /// The value and timestamp for `key`.
    pub fn get(&self, key: &K) -> Result<Option<ValueAndTimestamp<V>>> {
        let c = self.inner.codec();
        match self.inner.store.get(&c.key(key)?)? {
            Some(raw) => {
                let vt = state_stores::ValueAndTimestamp::decode(self.inner.name, &raw)?;
                Ok(Some(ValueAndTimestamp {
                    value: c.de_value(&vt.value)?,
                    timestamp: vt.timestamp,
                }))
            }
            None => Ok(None),
        }
    }
    /// Writes `value` with `timestamp`; a value that serializes to null deletes the key.
    pub fn put(&mut self, key: &K, value: &V, timestamp: i64) -> Result<()> {
        let c = Codec {
            store: self.inner.name,
            serdes: self.inner.serdes,
        };
        let k = c.key(key)?;
        match c.value(value)? {
            Some(v) => self
                .inner
                .store
                .put(&k, &state_stores::ValueAndTimestamp::encode(&v, timestamp))?,
            None => {
                self.inner.store.delete(&k)?;
            }
        }
        Ok(())
    }
    /// Deletes `key`, returning what it held.
    pub fn delete(&mut self, key: &K) -> Result<Option<ValueAndTimestamp<V>>> {
        let c = Codec {
            store: self.inner.name,
            serdes: self.inner.serdes,
        };
        let k = c.key(key)?;
        match self.inner.store.delete(&k)? {
            Some(raw) => {
                let vt = state_stores::ValueAndTimestamp::decode(self.inner.name, &raw)?;
                Ok(Some(ValueAndTimestamp {
                    value: c.de_value(&vt.value)?,
                    timestamp: vt.timestamp,
                }))
            }
            None => Ok(None),
        }
    }
    /// All entries, ascending by serialized key, decoded as they are read.
    #[allow(clippy::type_complexity)]
    pub fn all(&self) -> Result<impl Iterator<Item = Result<(K, ValueAndTimestamp<V>)>> + '_> {
        self.range(None, None)
    }
    /// Entries with `from <= key <= to` (by serialized key), ascending, decoded as they are read.
    #[allow(clippy::type_complexity)]
    pub fn range(
        &self,
        from: Option<&K>,
        to: Option<&K>,
    ) -> Result<impl Iterator<Item = Result<(K, ValueAndTimestamp<V>)>> + '_> {
        let (f, t) = self.inner.bounds(from, to)?;
        let entries = self.inner.store.range(f.as_deref(), t.as_deref())?;
        Ok(self.decoded(entries))
    }
    /// Entries whose serialized key starts with the serialized `prefix`.
    #[allow(clippy::type_complexity)]
    pub fn prefix_scan(
        &self,
        prefix: &K,
    ) -> Result<impl Iterator<Item = Result<(K, ValueAndTimestamp<V>)>> + '_> {
        let entries = self
            .inner
            .store
            .prefix_scan(&self.inner.codec().key(prefix)?)?;
        Ok(self.decoded(entries))
    }
    fn decoded<'s>(
        &'s self,
        entries: state_stores::KvIter<'s>,
    ) -> impl Iterator<Item = Result<(K, ValueAndTimestamp<V>)>> + 's {
        let c = self.inner.codec();
        let name = self.inner.name;
        entries.map(move |e| {
            let (k, raw) = e?;
            let vt = state_stores::ValueAndTimestamp::decode(name, &raw)?;
            Ok((
                c.de_key(&k)?,
                ValueAndTimestamp {
                    value: c.de_value(&vt.value)?,
                    timestamp: vt.timestamp,
                },
            ))
        })
    }
}

/// Typed access to a window store.
pub struct WindowStoreHandle<'a, K, V> {
    pub(crate) store: &'a mut dyn WindowStore,
    pub(crate) name: &'a str,
    pub(crate) serdes: &'a StoreSerdes<K, V>,
}

impl<K: 'static, V: 'static> WindowStoreHandle<'_, K, V> {
    fn codec(&self) -> Codec<'_, K, V> {
        Codec {
            store: self.name,
            serdes: self.serdes,
        }
    }
    /// Writes (`Some`) or deletes (`None`) the value of `key` in the window starting at `window_start`.
    pub fn put(&mut self, key: &K, value: Option<&V>, window_start: i64) -> Result<()> {
        let c = Codec {
            store: self.name,
            serdes: self.serdes,
        };
        let k = c.key(key)?;
        let v = value.map(|v| c.value(v)).transpose()?.flatten();
        self.store.put(&k, v.as_deref(), window_start)?;
        Ok(())
    }
    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        let c = self.codec();
        self.store
            .fetch(&c.key(key)?, window_start)?
            .map(|b| c.de_value(&b))
            .transpose()
    }
    /// Values of `key` in windows starting in `[from, to]`, ascending by start.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let c = self.codec();
        self.store
            .fetch_range(&c.key(key)?, from, to)?
            .into_iter()
            .map(|(t, b)| Ok((t, c.de_value(&b)?)))
            .collect()
    }
    /// Values of `key` in windows starting in `[from, to]`, descending by start.
    pub fn backward_fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let c = self.codec();
        self.store
            .backward_fetch_range(&c.key(key)?, from, to)?
            .into_iter()
            .map(|(t, b)| Ok((t, c.de_value(&b)?)))
            .collect()
    }
    /// Every key's values in windows starting in `[from, to]`, as (key, window start, value).
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(K, i64, V)>> {
        let c = self.codec();
        self.store
            .fetch_all(from, to)?
            .into_iter()
            .map(|e| Ok((c.de_key(&e.key)?, e.window_start, c.de_value(&e.value)?)))
            .collect()
    }
    /// The store's window size in ms.
    pub fn window_size_ms(&self) -> i64 {
        self.store.config().window_size_ms
    }
}

/// Typed access to a window store whose values carry a timestamp.
pub struct TimestampedWindowStoreHandle<'a, K, V> {
    pub(crate) inner: WindowStoreHandle<'a, K, V>,
}

impl<K: 'static, V: 'static> TimestampedWindowStoreHandle<'_, K, V> {
    fn decode(&self, raw: &[u8]) -> Result<ValueAndTimestamp<V>> {
        let vt = state_stores::ValueAndTimestamp::decode(self.inner.name, raw)?;
        Ok(ValueAndTimestamp {
            value: self.inner.codec().de_value(&vt.value)?,
            timestamp: vt.timestamp,
        })
    }
    /// Writes `value` with `timestamp` for `key` in the window starting at `window_start`
    /// (`None` deletes). A write to a window past retention is dropped.
    pub fn put(
        &mut self,
        key: &K,
        value: Option<&V>,
        timestamp: i64,
        window_start: i64,
    ) -> Result<()> {
        let c = self.inner.codec();
        let k = c.key(key)?;
        let v = match value {
            Some(v) => c
                .value(v)?
                .map(|v| state_stores::ValueAndTimestamp::encode(&v, timestamp)),
            None => None,
        };
        self.inner.store.put(&k, v.as_deref(), window_start)?;
        Ok(())
    }
    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<ValueAndTimestamp<V>>> {
        let k = self.inner.codec().key(key)?;
        self.inner
            .store
            .fetch(&k, window_start)?
            .map(|b| self.decode(&b))
            .transpose()
    }
    /// Values of `key` in windows starting in `[from, to]`, ascending by start.
    pub fn fetch_range(
        &self,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, ValueAndTimestamp<V>)>> {
        let k = self.inner.codec().key(key)?;
        self.inner
            .store
            .fetch_range(&k, from, to)?
            .into_iter()
            .map(|(t, b)| Ok((t, self.decode(&b)?)))
            .collect()
    }
    /// Every key's values in windows starting in `[from, to]`, as (key, window start, value).
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(K, i64, ValueAndTimestamp<V>)>> {
        let c = self.inner.codec();
        self.inner
            .store
            .fetch_all(from, to)?
            .into_iter()
            .map(|e| Ok((c.de_key(&e.key)?, e.window_start, self.decode(&e.value)?)))
            .collect()
    }
    /// [`TimestampedWindowStoreHandle::fetch_all`] ordered by window start, then by serialized
    /// key: the order of Kafka Streams' time-ordered window store, in which windowed
    /// aggregations emit their final results.
    pub fn fetch_all_by_time(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(K, i64, ValueAndTimestamp<V>)>> {
        let c = self.inner.codec();
        let mut entries = self.inner.store.fetch_all(from, to)?;
        entries.sort_by(|a, b| (a.window_start, &a.key).cmp(&(b.window_start, &b.key)));
        entries
            .into_iter()
            .map(|e| Ok((c.de_key(&e.key)?, e.window_start, self.decode(&e.value)?)))
            .collect()
    }
}

/// Typed access to a session store.
pub struct SessionStoreHandle<'a, K, V> {
    pub(crate) store: &'a mut dyn SessionStore,
    pub(crate) name: &'a str,
    pub(crate) serdes: &'a StoreSerdes<K, V>,
}

impl<K: 'static, V: 'static> SessionStoreHandle<'_, K, V> {
    fn codec(&self) -> Codec<'_, K, V> {
        Codec {
            store: self.name,
            serdes: self.serdes,
        }
    }
    /// Sessions of `key` ending at or after `earliest_end` and starting at or before `latest_start`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(SessionWindow, V)>> {
        let c = self.codec();
        self.store
            .find_sessions(&c.key(key)?, earliest_end, latest_start)?
            .into_iter()
            .map(|(w, b)| Ok((w, c.de_value(&b)?)))
            .collect()
    }
    /// Every key's sessions ending in `[earliest_end, latest_end]` (those the store still holds),
    /// ordered by end, then start, then serialized key: the order of Kafka Streams' time-ordered
    /// session store, in which session aggregations emit their final results.
    pub fn sessions_ending_between(
        &self,
        earliest_end: i64,
        latest_end: i64,
    ) -> Result<Vec<(K, SessionWindow, V)>> {
        let c = self.codec();
        let mut sessions = self
            .store
            .sessions_ending_between(earliest_end, latest_end)?;
        sessions.sort_by(|(ka, wa, _), (kb, wb, _)| {
            (wa.end, wa.start, ka).cmp(&(wb.end, wb.start, kb))
        });
        sessions
            .into_iter()
            .map(|(k, w, v)| Ok((c.de_key(&k)?, w, c.de_value(&v)?)))
            .collect()
    }
    /// The value of one exact session.
    pub fn fetch_session(&self, key: &K, window: SessionWindow) -> Result<Option<V>> {
        let c = self.codec();
        self.store
            .fetch_session(&c.key(key)?, window)?
            .map(|b| c.de_value(&b))
            .transpose()
    }
    /// Writes (`Some`) or removes (`None`) a session.
    pub fn put(&mut self, key: &K, window: SessionWindow, value: Option<&V>) -> Result<()> {
        let c = Codec {
            store: self.name,
            serdes: self.serdes,
        };
        let k = c.key(key)?;
        let v = value.map(|v| c.value(v)).transpose()?.flatten();
        self.store.put(&k, window, v.as_deref())?;
        Ok(())
    }
    /// The sessions a record at `timestamp` merges with under inactivity `gap`, and the merged window.
    pub fn merge_candidates(
        &self,
        key: &K,
        timestamp: i64,
        gap: i64,
    ) -> Result<(SessionWindow, Vec<(SessionWindow, V)>)> {
        let c = self.codec();
        let (w, found) = self.store.merge_candidates(&c.key(key)?, timestamp, gap)?;
        Ok((
            w,
            found
                .into_iter()
                .map(|(w, b)| Ok((w, c.de_value(&b)?)))
                .collect::<Result<_>>()?,
        ))
    }
}
