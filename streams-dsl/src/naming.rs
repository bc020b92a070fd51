use streams_core::serdes::SerdeRef;

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

/// Serdes (and optionally the source name) for reading a topic.
pub struct Consumed<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed {
            key: None,
            value: None,
            name: None,
        }
    }
}

impl<K, V> Consumed<K, V> {
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Consumed {
            key: Some(key),
            value: Some(value),
            name: None,
        }
    }
    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serdes (and optionally the sink name) for writing a topic.
pub struct Produced<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced {
            key: None,
            value: None,
            name: None,
        }
    }
}

impl<K, V> Produced<K, V> {
    /// Both serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Produced {
            key: Some(key),
            value: Some(value),
            name: None,
        }
    }
    /// Names the sink node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
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

/// How a table is stored: store name (its changelog is `<application.id>-<name>-changelog`),
/// serdes, and store options.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) in_memory: bool,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            in_memory: false,
            logging: true,
            caching: true,
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
        self.logging = false;
        self
    }
    /// Applies the store options (in memory, logging) to `sb`.
    pub(crate) fn configure(
        &self,
        mut sb: streams_core::StoreBuilder,
    ) -> streams_core::StoreBuilder {
        if self.in_memory {
            sb = sb.in_memory();
        }
        if !self.logging {
            sb = sb.with_logging_disabled();
        }
        sb
    }
    /// Takes the store out of the record cache: every update goes to the changelog and
    /// downstream at once (the cache is on by default, as in Kafka Streams).
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
}
