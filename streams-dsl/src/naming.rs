use std::sync::Arc;

use streams_core::serdes::SerdeRef;
use streams_core::timestamp::TimestampExtractor;
use streams_core::{PartitionChooser, StoreSupplier, SupplierShape};

/// A name for the processor an operation creates (stable names keep rolling upgrades safe).
#[derive(Debug, Clone, Default)]
pub struct Named(pub(crate) Option<String>);

impl Named {
    /// Names the processor `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Named(Some(name.into()))
    }
}

/// What a branch of [`KStream::split`](crate::KStream::split) is called and what is done with it
/// (Kafka Streams' `Branched`): a chain applied at once, as in Java, so its nodes are numbered
/// right after the branch's.
pub struct Branched<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) chain: Option<BranchChain<K, V>>,
}

type BranchFunction<K, V> = Box<dyn FnOnce(crate::KStream<K, V>) -> Option<crate::KStream<K, V>>>;

pub(crate) enum BranchChain<K, V> {
    Function(BranchFunction<K, V>),
    Consumer(Box<dyn FnOnce(crate::KStream<K, V>)>),
}

impl<K, V> Default for Branched<K, V> {
    fn default() -> Self {
        Branched {
            name: None,
            chain: None,
        }
    }
}

impl<K, V> Branched<K, V> {
    /// A branch named `<split prefix><name>`.
    pub fn as_(name: impl Into<String>) -> Self {
        Branched {
            name: Some(name.into()),
            chain: None,
        }
    }
    /// Applies `f` to the branch; what it returns (if anything) is the branch in the result map.
    pub fn with_function(
        f: impl FnOnce(crate::KStream<K, V>) -> Option<crate::KStream<K, V>> + 'static,
    ) -> Self {
        Branched {
            name: None,
            chain: Some(BranchChain::Function(Box::new(f))),
        }
    }
    /// Hands the branch to `f` (e.g. to write it to a topic); it is left out of the result map.
    pub fn with_consumer(f: impl FnOnce(crate::KStream<K, V>) + 'static) -> Self {
        Branched {
            name: None,
            chain: Some(BranchChain::Consumer(Box::new(f))),
        }
    }
    /// Names the branch `<split prefix><name>`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Where [`KStream::print`](crate::KStream::print) writes (Kafka Streams' `Printed`): lines
/// `[<label>]: <key>, <value>` to standard output or a file.
pub struct Printed<K, V> {
    pub(crate) to: PrintTarget,
    pub(crate) label: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) mapper: PrintMapper<K, V>,
}

/// How a printed record becomes text.
pub(crate) type PrintMapper<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

/// Standard output or a file (created, or truncated, when the task starts).
#[derive(Clone, Debug)]
pub(crate) enum PrintTarget {
    Stdout,
    File(std::path::PathBuf),
}

impl<K: std::fmt::Display, V: std::fmt::Display> Printed<K, V> {
    /// Prints `key, value` to standard output.
    pub fn to_sys_out() -> Self {
        Self::to_sys_out_with(|k, v| format!("{k}, {v}"))
    }
    /// Prints `key, value` to the file `path`.
    pub fn to_file(path: impl Into<std::path::PathBuf>) -> Self {
        Self::to_file_with(path, |k, v| format!("{k}, {v}"))
    }
}

impl<K, V> Printed<K, V> {
    /// Prints what `mapper` makes of each record to standard output.
    pub fn to_sys_out_with(mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static) -> Self {
        Printed {
            to: PrintTarget::Stdout,
            label: None,
            name: None,
            mapper: Arc::new(mapper),
        }
    }
    /// Prints what `mapper` makes of each record to the file `path`.
    pub fn to_file_with(
        path: impl Into<std::path::PathBuf>,
        mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static,
    ) -> Self {
        Printed {
            to: PrintTarget::File(path.into()),
            label: None,
            name: None,
            mapper: Arc::new(mapper),
        }
    }
    /// The label in front of each line (default: the name of the printed stream's node).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    /// Names the printing node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serdes, source name and timestamp extractor for reading a topic.
pub struct Consumed<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
    pub(crate) timestamp_extractor: Option<Arc<dyn TimestampExtractor>>,
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed {
            key: None,
            value: None,
            name: None,
            timestamp_extractor: None,
        }
    }
}

impl<K, V> Consumed<K, V> {
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Consumed {
            key: Some(key),
            value: Some(value),
            ..Default::default()
        }
    }
    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Takes the records' event time from `extractor` instead of `default.timestamp.extractor`
    /// (see [`streams_core::timestamp`]).
    pub fn with_timestamp_extractor(mut self, extractor: Arc<dyn TimestampExtractor>) -> Self {
        self.timestamp_extractor = Some(extractor);
        self
    }
}

/// Serdes, sink name and partitioner for writing a topic.
pub struct Produced<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
    pub(crate) partitioner: Option<PartitionChooser<K, V>>,
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced {
            key: None,
            value: None,
            name: None,
            partitioner: None,
        }
    }
}

impl<K, V> Produced<K, V> {
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Produced {
            key: Some(key),
            value: Some(value),
            ..Default::default()
        }
    }
    /// Names the sink node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Chooses each record's partition (Kafka Streams' `StreamPartitioner`); `None` leaves it to
    /// the default partitioner (murmur2 of the key bytes).
    pub fn with_partitioner(
        mut self,
        partition: impl Fn(&K, &V) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partition));
        self
    }
}

/// How [`KStream::repartition`](crate::KStream::repartition) repartitions (Kafka Streams'
/// `Repartitioned`): the topic's name (`<application.id>-<name>-repartition`), partition count,
/// partitioner and serdes.
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) partitions: Option<i32>,
    pub(crate) partitioner: Option<PartitionChooser<K, V>>,
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            name: None,
            key: None,
            value: None,
            partitions: None,
            partitioner: None,
        }
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Names the repartition topic and its nodes.
    pub fn as_(name: impl Into<String>) -> Self {
        Repartitioned {
            name: Some(name.into()),
            ..Default::default()
        }
    }
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Repartitioned {
            key: Some(key),
            value: Some(value),
            ..Default::default()
        }
    }
    /// Adds serdes.
    pub fn with_serdes(mut self, key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        self.key = Some(key);
        self.value = Some(value);
        self
    }
    /// Names the repartition topic and its nodes.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The topic's partition count (else that of the sub-topology writing it).
    pub fn with_number_of_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
    /// Chooses each record's partition; `None` leaves it to murmur2 of the key bytes.
    pub fn with_stream_partitioner(
        mut self,
        partition: impl Fn(&K, &V) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partition));
        self
    }
}

/// How a grouping repartitions: serdes for the repartition topic and its name
/// (`<application.id>-<name>-repartition`).
pub struct Grouped<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped {
            key: None,
            value: None,
            name: None,
        }
    }
}

impl<K, V> Grouped<K, V> {
    /// Names the repartition topic and its nodes.
    pub fn as_(name: impl Into<String>) -> Self {
        Grouped {
            key: None,
            value: None,
            name: Some(name.into()),
        }
    }
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Grouped {
            key: Some(key),
            value: Some(value),
            name: None,
        }
    }
    /// Adds serdes to a named grouping.
    pub fn with_serdes(mut self, key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        self.key = Some(key);
        self.value = Some(value);
        self
    }
}

/// Whether a store keeps a changelog topic, and the topic configs it is created with (the
/// logging options of `Materialized` and `StreamJoined`).
#[derive(Debug, Clone)]
pub(crate) struct ChangelogOptions {
    enabled: bool,
    topic_configs: Vec<(String, String)>,
}

impl Default for ChangelogOptions {
    fn default() -> Self {
        ChangelogOptions {
            enabled: true,
            topic_configs: Vec::new(),
        }
    }
}

impl ChangelogOptions {
    pub(crate) fn disable(&mut self) {
        self.enabled = false;
    }

    pub(crate) fn enable(
        &mut self,
        configs: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) {
        self.enabled = true;
        self.topic_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
    }

    /// `sb` with these options (its own when they are the defaults).
    pub(crate) fn apply(&self, sb: streams_core::StoreBuilder) -> streams_core::StoreBuilder {
        if !self.enabled {
            sb.with_logging_disabled()
        } else if self.topic_configs.is_empty() {
            sb
        } else {
            sb.with_logging_enabled(self.topic_configs.clone())
        }
    }
}

/// How a table is stored: store name (its changelog is `<application.id>-<name>-changelog`),
/// serdes, and store options.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) in_memory: bool,
    pub(crate) logging: ChangelogOptions,
    pub(crate) caching: bool,
    pub(crate) retention_ms: Option<i64>,
    /// A versioned store keeping this much history (KIP-889).
    pub(crate) versioned_history_ms: Option<i64>,
    /// Where the store keeps its bytes, when not the default RocksDB.
    pub(crate) supplier: Option<StoreSupplier>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            in_memory: false,
            logging: ChangelogOptions::default(),
            caching: true,
            retention_ms: None,
            versioned_history_ms: None,
            supplier: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Default::default()
        }
    }
    /// A versioned store named `name` (Kafka Streams'
    /// `Materialized.as(Stores.persistentVersionedKeyValueStore(name, historyRetention))`,
    /// KIP-889): it keeps every value of a key for `history_retention_ms` behind stream time.
    /// For source tables (`StreamsBuilder::table`): a stream-table join then joins each record
    /// with the value its key had at the record's time, and may wait for late table updates
    /// ([`Joined::with_grace_period`](crate::Joined::with_grace_period)). Table updates older
    /// than the history retention are dropped. Never cached.
    pub fn as_versioned(name: impl Into<String>, history_retention_ms: i64) -> Self {
        Materialized {
            name: Some(name.into()),
            caching: false,
            versioned_history_ms: Some(history_retention_ms),
            ..Default::default()
        }
    }
    /// A store made by `supplier` and named after it (Kafka Streams'
    /// `Materialized.as(KeyValueBytesStoreSupplier)` and its window and session twins):
    /// `Stores::in_memory_key_value_store`, `Stores::lru_map`, `Stores::persistent_window_store`,
    /// ..., or the application's own (`StoreSupplier::key_value`). A windowed aggregation takes
    /// the supplier's retention, and its windows must have the supplier's size. Change-logged and
    /// cached unless said otherwise.
    ///
    /// ```
    /// use streams_core::Stores;
    /// use streams_dsl::Materialized;
    ///
    /// let recent: Materialized<String, i64> =
    ///     Materialized::as_supplier(Stores::lru_map("recent-counts", 1_000));
    /// ```
    pub fn as_supplier(supplier: StoreSupplier) -> Self {
        Materialized {
            name: Some(supplier.name().to_string()),
            supplier: Some(supplier),
            ..Default::default()
        }
    }
    /// An unnamed store with these serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Materialized {
            key: Some(key),
            value: Some(value),
            ..Default::default()
        }
    }
    /// Sets the key serde.
    pub fn with_key_serde(mut self, key: SerdeRef<K>) -> Self {
        self.key = Some(key);
        self
    }
    /// Sets the value serde.
    pub fn with_value_serde(mut self, value: SerdeRef<V>) -> Self {
        self.value = Some(value);
        self
    }
    /// Keeps the store in memory instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }
    /// Disables the changelog topic.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging.disable();
        self
    }
    /// Keeps the changelog, created with these topic configs (Kafka Streams'
    /// `withLoggingEnabled(config)`, e.g. `min.insync.replicas`; the cleanup policy stays).
    pub fn with_logging_enabled(
        mut self,
        configs: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.logging.enable(configs);
        self
    }
    /// How long a windowed or session store keeps windows (Kafka Streams' `withRetention`); at
    /// least window size plus grace (the default).
    pub fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }
    /// The retention given with [`Materialized::with_retention`], else a window or session
    /// supplier's.
    pub(crate) fn retention(&self) -> Option<i64> {
        self.retention_ms
            .or_else(|| match self.supplier.as_ref()?.shape() {
                SupplierShape::Window { retention_ms, .. }
                | SupplierShape::Session { retention_ms } => Some(retention_ms),
                SupplierShape::KeyValue => None,
            })
    }
    /// Applies the store options (supplier or in memory, logging) to `sb`.
    pub(crate) fn configure(
        &self,
        mut sb: streams_core::StoreBuilder,
    ) -> streams_core::StoreBuilder {
        if self.versioned_history_ms.is_some() && !sb.is_versioned() {
            // Kafka Streams also versions derived tables; here only a source table's store is.
            sb = sb.invalid_because(
                "Materialized::as_versioned applies to source tables (StreamsBuilder::table) only; \
                 materialize this table with Materialized::as_",
            );
        }
        if let Some(supplier) = &self.supplier {
            sb = sb.with_supplier(supplier.clone());
        } else if self.in_memory {
            sb = sb.in_memory();
        }
        self.logging.apply(sb)
    }
    /// Takes the store out of the record cache: every update goes to the changelog and
    /// downstream at once (the cache is on by default, as in Kafka Streams).
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
}
