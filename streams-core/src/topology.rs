//! The processor graph: sources, processors, sinks and state stores, split into sub-topologies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::describe::{
    NodeDescription, NodeKindDescription, SubtopologyDescription, TopologyDescription,
};
use crate::describe_order::{hash_order, JavaTreeSet};
use crate::processor::{ErasedProcessor, Processor, TypedProcessor};
use crate::record::{Data, Datum, DynRecord, Headers};
use crate::serdes::{SerdeError, SerdeRef};
use crate::store::StoreBuilder;
use crate::timestamp::TimestampExtractor;
use crate::{Result, StreamsError};

pub(crate) type ProcessorFactory = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

/// Turns Kafka bytes into a type-erased record (the typed serdes of a source node).
pub(crate) trait RecordDeserializer: Send + Sync {
    fn deserialize(
        &self,
        topic: &str,
        headers: &Headers,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> std::result::Result<(Datum, Datum), (&'static str, SerdeError)>;
}

type SerializedRecord =
    std::result::Result<(Option<Vec<u8>>, Option<Vec<u8>>), (&'static str, SerdeError)>;

/// Turns a type-erased record into Kafka bytes (the typed serdes of a sink node).
pub(crate) trait RecordSerializer: Send + Sync {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Headers,
        rec: &DynRecord,
    ) -> Option<SerializedRecord>;
    fn types(&self) -> (&'static str, &'static str);
}

struct TypedSerdes<K, V>(SerdeRef<K>, SerdeRef<V>, PhantomData<fn(K, V)>);

/// Chooses the partition of a type-erased record (a sink's partitioner).
pub(crate) trait RecordPartitioner: Send + Sync {
    /// The partition, or `None` for the producer's default (murmur2 of the key bytes).
    fn partition(&self, rec: &DynRecord) -> Option<i32>;
}

/// A record's explicit partition, from its key and value; `None` leaves it to the default
/// partitioner (murmur2 of the serialized key, as Kafka's).
pub type PartitionChooser<K, V> = Arc<dyn Fn(&K, &V) -> Option<i32> + Send + Sync>;

struct TypedPartitioner<K, V>(PartitionChooser<K, V>);

/// Chooses the topic of a type-erased record (a dynamic sink's extractor).
pub(crate) trait RecordTopicChooser: Send + Sync {
    /// The topic, or `None` when the record is not of the sink's types.
    fn topic(&self, rec: &DynRecord) -> Option<String>;
}

/// The topic each record goes to, from its key and value (Kafka Streams' `TopicNameExtractor`).
/// The topics must exist.
pub type TopicChooser<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

struct TypedTopicChooser<K, V>(TopicChooser<K, V>);

impl<K: Data, V: Data> RecordTopicChooser for TypedTopicChooser<K, V> {
    fn topic(&self, rec: &DynRecord) -> Option<String> {
        let k = rec.key.downcast_ref::<K>()?;
        let v = rec.value.downcast_ref::<V>()?;
        Some((self.0)(k, v))
    }
}

impl<K: Data, V: Data> RecordPartitioner for TypedPartitioner<K, V> {
    fn partition(&self, rec: &DynRecord) -> Option<i32> {
        let k = rec.key.downcast_ref::<K>()?;
        let v = rec.value.downcast_ref::<V>()?;
        (self.0)(k, v)
    }
}

impl<K: Data, V: Data> RecordDeserializer for TypedSerdes<K, V> {
    fn deserialize(
        &self,
        topic: &str,
        headers: &Headers,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> std::result::Result<(Datum, Datum), (&'static str, SerdeError)> {
        let k = self
            .0
            .deserialize_from(topic, headers, key)
            .map_err(|e| ("key", e))?;
        let v = self
            .1
            .deserialize_from(topic, headers, value)
            .map_err(|e| ("value", e))?;
        Ok((Arc::new(k), Arc::new(v)))
    }
}

impl<K: Data, V: Data> RecordSerializer for TypedSerdes<K, V> {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Headers,
        rec: &DynRecord,
    ) -> Option<SerializedRecord> {
        let k = rec.key.downcast_ref::<K>()?;
        let v = rec.value.downcast_ref::<V>()?;
        Some((|| {
            Ok((
                self.0
                    .serialize_for(topic, headers, k)
                    .map_err(|e| ("key", e))?,
                self.1
                    .serialize_for(topic, headers, v)
                    .map_err(|e| ("value", e))?,
            ))
        })())
    }
    fn types(&self) -> (&'static str, &'static str) {
        (std::any::type_name::<K>(), std::any::type_name::<V>())
    }
}

#[derive(Clone)]
pub(crate) enum NodeKind {
    Source {
        topics: Vec<String>,
        pattern: Option<regex::Regex>,
        deserializer: Arc<dyn RecordDeserializer>,
        timestamp_extractor: Option<Arc<dyn TimestampExtractor>>,
    },
    Processor {
        factory: ProcessorFactory,
    },
    Sink {
        /// The topic, or with `topic_chooser` a description of the chooser.
        topic: String,
        serializer: Arc<dyn RecordSerializer>,
        partitioner: Option<Arc<dyn RecordPartitioner>>,
        topic_chooser: Option<Arc<dyn RecordTopicChooser>>,
    },
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub name: String,
    pub parents: Vec<String>,
    pub kind: NodeKind,
    pub stores: BTreeSet<String>,
    /// Part of a global store's update graph: runs in the global task, never in stream tasks.
    pub global: bool,
}

/// One sub-topology: a connected part of the graph that runs as one task per input partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtopology {
    /// Its id (the first number of a `TaskId`).
    pub id: u32,
    /// Node names, in the order they were added.
    pub nodes: Vec<String>,
    /// Source topics as declared (internal topics without the application-id prefix).
    pub source_topics: Vec<String>,
    /// Source patterns.
    pub source_patterns: Vec<String>,
    /// Sink topics as declared.
    pub sink_topics: Vec<String>,
    /// Stores used by its processors.
    pub stores: Vec<String>,
}

/// A processing graph: the unit `KafkaStreams` and `TopologyTestDriver` run.
///
/// ```
/// use std::sync::Arc;
/// use streams_core::{Topology, serdes::StringSerde};
/// let mut t = Topology::new();
/// t.add_source::<String, String>("in", &["lines"], Arc::new(StringSerde), Arc::new(StringSerde)).unwrap();
/// t.add_sink::<String, String>("out", "copy", Arc::new(StringSerde), Arc::new(StringSerde), &["in"]).unwrap();
/// assert!(t.describe().to_string().contains("Source: in (topics: [lines])"));
/// ```
#[derive(Clone, Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) stores: Vec<StoreBuilder>,
    pub(crate) global_stores: Vec<StoreBuilder>,
    pub(crate) internal_topics: BTreeSet<String>,
    /// Internal topics whose partition count is given rather than derived.
    pub(crate) internal_topic_partitions: BTreeMap<String, i32>,
    /// Processors that change keys, and those that change values only (for repartition
    /// merging).
    pub(crate) key_changing: BTreeSet<String>,
    pub(crate) value_changing: BTreeSet<String>,
    /// Sources of repartitions that `merge.repartition.topics` may merge, in the order added.
    pub(crate) mergeable_repartitions: Vec<String>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the `topology.optimization` of `config` (Kafka Streams applies it in
    /// `StreamsBuilder.build(props)`): source tables' topics as their changelogs, repartitions
    /// merged. `KafkaStreams` and the `TopologyTestDriver` call it; calling it again changes
    /// nothing.
    pub fn optimize(&mut self, config: &crate::StreamsConfig) -> Result<()> {
        if config.reuse_source_topics {
            self.reuse_source_topics_as_changelogs();
        }
        if config.merge_repartition_topics {
            self.merge_repartition_topics()?;
        }
        Ok(())
    }

    /// `topology.optimization` with `reuse.ktable.source.topics`: every logged store of a source
    /// table takes the table's topic as its changelog.
    pub(crate) fn reuse_source_topics_as_changelogs(&mut self) {
        for s in &mut self.stores {
            if s.logging && s.source_topic.is_some() {
                s.source_changelog = true;
            }
        }
    }

    fn add_node(&mut self, name: &str, parents: &[&str], kind: NodeKind) -> Result<&mut Self> {
        if name.is_empty() {
            return Err(StreamsError::Topology(
                "node names must not be empty".into(),
            ));
        }
        if self.index.contains_key(name) {
            return Err(StreamsError::Topology(format!(
                "a node named `{name}` already exists; node names must be unique"
            )));
        }
        self.index.insert(name.to_string(), self.nodes.len());
        self.nodes.push(NodeDef {
            name: name.to_string(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            kind,
            stores: BTreeSet::new(),
            global: false,
        });
        Ok(self)
    }

    fn check_topics_free(&self, topics: &[&str]) -> Result<()> {
        for t in topics {
            for n in &self.nodes {
                if let NodeKind::Source {
                    topics: existing, ..
                } = &n.kind
                {
                    if existing.iter().any(|e| e == t) {
                        return Err(StreamsError::Topology(format!(
                            "topic `{t}` is already read by source `{}`",
                            n.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a source node reading `topics` with the given serdes.
    pub fn add_source<K: Data, V: Data>(
        &mut self,
        name: &str,
        topics: &[&str],
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<&mut Self> {
        if topics.is_empty() {
            return Err(StreamsError::Topology(format!(
                "source `{name}` needs at least one topic"
            )));
        }
        self.check_topics_free(topics)?;
        let deserializer = Arc::new(TypedSerdes(key, value, PhantomData));
        self.add_node(
            name,
            &[],
            NodeKind::Source {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                pattern: None,
                deserializer,
                timestamp_extractor: None,
            },
        )
    }

    /// Gives source `source` its own timestamp extractor (instead of
    /// `default.timestamp.extractor`; see [`crate::timestamp`]).
    pub fn set_timestamp_extractor(
        &mut self,
        source: &str,
        extractor: Arc<dyn TimestampExtractor>,
    ) -> Result<&mut Self> {
        let node = self
            .index
            .get(source)
            .and_then(|&i| self.nodes.get_mut(i))
            .ok_or_else(|| StreamsError::Topology(format!("no node named `{source}`")))?;
        match &mut node.kind {
            NodeKind::Source {
                timestamp_extractor,
                ..
            } => {
                *timestamp_extractor = Some(extractor);
                Ok(self)
            }
            _ => Err(StreamsError::Topology(format!(
                "`{source}` is not a source node: only sources take a timestamp extractor"
            ))),
        }
    }

    /// Adds a source node reading every topic whose whole name matches the regular expression `pattern`.
    pub fn add_source_pattern<K: Data, V: Data>(
        &mut self,
        name: &str,
        pattern: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<&mut Self> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            StreamsError::Topology(format!(
                "source `{name}` has an invalid pattern `{pattern}`: {e}"
            ))
        })?;
        let deserializer = Arc::new(TypedSerdes(key, value, PhantomData));
        self.add_node(
            name,
            &[],
            NodeKind::Source {
                topics: Vec::new(),
                pattern: Some(re),
                deserializer,
                timestamp_extractor: None,
            },
        )
    }

    /// Adds a processor receiving `Record<K, V>` from `parents`; `supplier` makes one instance per task.
    pub fn add_processor<K, V, P, F>(
        &mut self,
        name: &str,
        supplier: F,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        K: Data,
        V: Data,
        P: Processor<K, V> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        if parents.is_empty() {
            return Err(StreamsError::Topology(format!(
                "processor `{name}` needs at least one parent"
            )));
        }
        let node = name.to_string();
        let factory: ProcessorFactory =
            Arc::new(move || Box::new(TypedProcessor::<K, V, P>::new(node.clone(), supplier())));
        self.add_node(name, parents, NodeKind::Processor { factory })
    }

    /// Adds a sink writing the records of `parents` to `topic`.
    pub fn add_sink<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        self.add_sink_inner(name, topic, key, value, None, None, parents)
    }

    /// Like [`Topology::add_sink`], with each record's partition chosen by `partition`.
    pub fn add_sink_with_partitioner<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
        partition: PartitionChooser<K, V>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        let partitioner: Arc<dyn RecordPartitioner> = Arc::new(TypedPartitioner(partition));
        self.add_sink_inner(name, topic, key, value, Some(partitioner), None, parents)
    }

    /// Adds a sink writing each record to the topic `choose` names for it (Kafka Streams'
    /// `TopicNameExtractor`); `description` stands for it in `describe()`. The topics must exist.
    #[allow(clippy::too_many_arguments)]
    pub fn add_sink_with_topic_chooser<K: Data, V: Data>(
        &mut self,
        name: &str,
        description: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
        choose: TopicChooser<K, V>,
        partition: Option<PartitionChooser<K, V>>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        let partitioner =
            partition.map(|p| Arc::new(TypedPartitioner(p)) as Arc<dyn RecordPartitioner>);
        let chooser: Arc<dyn RecordTopicChooser> = Arc::new(TypedTopicChooser(choose));
        self.add_sink_inner(
            name,
            description,
            key,
            value,
            partitioner,
            Some(chooser),
            parents,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn add_sink_inner<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
        partitioner: Option<Arc<dyn RecordPartitioner>>,
        topic_chooser: Option<Arc<dyn RecordTopicChooser>>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        if parents.is_empty() {
            return Err(StreamsError::Topology(format!(
                "sink `{name}` needs at least one parent"
            )));
        }
        if topic.is_empty() {
            return Err(StreamsError::Topology(format!(
                "sink `{name}` needs a topic"
            )));
        }
        let serializer = Arc::new(TypedSerdes(key, value, PhantomData));
        self.add_node(
            name,
            parents,
            NodeKind::Sink {
                topic: topic.to_string(),
                serializer,
                partitioner,
                topic_chooser,
            },
        )
    }

    /// Registers a state store and connects it to `processors` (more can be connected later).
    pub fn add_state_store(
        &mut self,
        store: StoreBuilder,
        processors: &[&str],
    ) -> Result<&mut Self> {
        if self.stores.iter().any(|s| s.name == store.name) {
            return Err(StreamsError::Topology(format!(
                "a store named `{}` already exists",
                store.name
            )));
        }
        store.check_supplier()?;
        let name = store.name.clone();
        self.stores.push(store);
        for p in processors {
            self.connect_processor_and_store(p, &name)?;
        }
        Ok(self)
    }

    /// Lets processor `processor` use store `store`.
    pub fn connect_processor_and_store(
        &mut self,
        processor: &str,
        store: &str,
    ) -> Result<&mut Self> {
        if !self.stores.iter().any(|s| s.name == store) {
            return Err(StreamsError::Topology(format!(
                "store `{store}` is not added; add it with add_state_store first"
            )));
        }
        let idx = *self.index.get(processor).ok_or_else(|| {
            StreamsError::Topology(format!(
                "cannot connect store `{store}` to unknown processor `{processor}`"
            ))
        })?;
        let node = &mut self.nodes[idx];
        if !matches!(node.kind, NodeKind::Processor { .. }) {
            return Err(StreamsError::Topology(format!(
                "store `{store}` can only be connected to processors, not to `{processor}`"
            )));
        }
        node.stores.insert(store.to_string());
        Ok(self)
    }

    /// Adds a global store: every instance keeps a full copy of `topic` in `store`, written by
    /// `processor` (the node `processor_name`, fed by the source `source_name`) in the global thread
    /// and readable from every processor of every task. The topic is the store's changelog, so the
    /// store must not log; it is rebuilt from the topic when the instance starts.
    #[allow(clippy::too_many_arguments)]
    pub fn add_global_store<K, V, P, F>(
        &mut self,
        store: StoreBuilder,
        source_name: &str,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
        processor_name: &str,
        supplier: F,
    ) -> Result<&mut Self>
    where
        K: Data,
        V: Data,
        P: Processor<K, V> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let name = store.name.clone();
        if self
            .stores
            .iter()
            .chain(&self.global_stores)
            .any(|s| s.name == name)
        {
            return Err(StreamsError::Topology(format!(
                "a store named `{name}` already exists"
            )));
        }
        store.check_supplier()?;
        if !matches!(
            store.kind,
            crate::StoreKind::KeyValue | crate::StoreKind::TimestampedKeyValue
        ) {
            return Err(StreamsError::Topology(format!(
                "global store `{name}` must be a key-value store"
            )));
        }
        self.add_source(source_name, &[topic], key, value)?;
        self.add_processor(processor_name, supplier, &[source_name])?;
        for n in [source_name, processor_name] {
            let i = self.index[n];
            self.nodes[i].global = true;
        }
        let i = self.index[processor_name];
        self.nodes[i].stores.insert(name);
        self.global_stores.push(store.with_logging_disabled());
        Ok(self)
    }

    /// The global stores.
    pub fn global_stores(&self) -> &[StoreBuilder] {
        &self.global_stores
    }

    /// The topics global stores are read from.
    pub fn global_topics(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.global)
            .filter_map(|n| match &n.kind {
                NodeKind::Source { topics, .. } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Indexes of the nodes that update global stores.
    pub(crate) fn global_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].global)
            .collect()
    }

    /// Declares `topic` as an internal (repartition) topic: the runtime creates it and prefixes it with
    /// `<application.id>-`. Sinks and sources name it without the prefix.
    pub fn add_internal_topic(&mut self, topic: &str) -> &mut Self {
        self.internal_topics.insert(topic.to_string());
        self
    }

    /// Declares an internal topic with a fixed partition count (Kafka Streams'
    /// `Repartitioned.withNumberOfPartitions`), instead of the count of the sub-topology writing it.
    pub fn add_internal_topic_with_partitions(
        &mut self,
        topic: &str,
        partitions: i32,
    ) -> &mut Self {
        self.internal_topics.insert(topic.to_string());
        self.internal_topic_partitions
            .insert(topic.to_string(), partitions);
        self
    }

    /// The fixed partition count of internal topic `topic` (as declared), if it has one.
    pub(crate) fn internal_topic_partitions(&self, topic: &str) -> Option<i32> {
        self.internal_topic_partitions.get(topic).copied()
    }

    /// Whether `topic` (as declared) is internal.
    pub fn is_internal_topic(&self, topic: &str) -> bool {
        self.internal_topics.contains(topic)
    }

    /// The declared stores.
    pub fn stores(&self) -> &[StoreBuilder] {
        &self.stores
    }

    /// Whether a node named `name` exists.
    pub fn has_node(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Checks the whole graph: parents exist and are not sinks, no cycles, every store used.
    pub fn validate(&self) -> Result<()> {
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source { .. }))
        {
            return Err(StreamsError::Topology(
                "the topology has no source node".into(),
            ));
        }
        for n in &self.nodes {
            for p in &n.parents {
                let Some(&pi) = self.index.get(p) else {
                    return Err(StreamsError::Topology(format!(
                        "node `{}` names unknown parent `{p}`",
                        n.name
                    )));
                };
                if self.nodes[pi].global != n.global {
                    return Err(StreamsError::Topology(format!(
                        "node `{}` cannot be connected to `{p}`: global store update nodes form their own graph",
                        n.name
                    )));
                }
                if matches!(self.nodes[pi].kind, NodeKind::Sink { .. }) {
                    return Err(StreamsError::Topology(format!(
                        "node `{}` cannot have sink `{p}` as parent: sinks have no children",
                        n.name
                    )));
                }
            }
        }
        // Depth-first search for a cycle over child edges: 0 = unvisited, 1 = on stack, 2 = done.
        let children = self.children();
        let mut state = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some((n, i)) = stack.pop() {
                if let Some(&c) = children[n].get(i) {
                    stack.push((n, i + 1));
                    match state[c] {
                        0 => {
                            state[c] = 1;
                            stack.push((c, 0));
                        }
                        1 => {
                            return Err(StreamsError::Topology(format!(
                                "cycle: node `{}` is its own ancestor (through `{}`)",
                                self.nodes[c].name, self.nodes[n].name
                            )))
                        }
                        _ => {}
                    }
                } else {
                    state[n] = 2;
                }
            }
        }
        for s in &self.stores {
            if self.global_stores.iter().any(|g| g.name == s.name) {
                continue;
            }
            if !self.nodes.iter().any(|n| n.stores.contains(&s.name)) {
                return Err(StreamsError::Topology(format!(
                    "store `{}` is not connected to any processor; connect it with connect_processor_and_store",
                    s.name
                )));
            }
        }
        Ok(())
    }

    /// Child indexes of every node, in node insertion order.
    pub(crate) fn children(&self) -> Vec<Vec<usize>> {
        let mut children = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &n.parents {
                if let Some(&pi) = self.index.get(p) {
                    children[pi].push(i);
                }
            }
        }
        children
    }

    /// Node indexes per sub-topology. Nodes are joined with their parents and with the other users
    /// of their stores; groups are numbered in the order their first node was added, so upstream
    /// sub-topologies come first and ids stay stable as long as the code adding nodes does.
    pub(crate) fn node_groups(&self) -> Vec<Vec<usize>> {
        let mut parent: Vec<usize> = (0..self.nodes.len()).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let unite = |a: usize, b: usize, parent: &mut Vec<usize>| {
            let (ra, rb) = (root(parent, a), root(parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut store_user: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| !n.global) {
            for p in &n.parents {
                if let Some(&pi) = self.index.get(p) {
                    unite(i, pi, &mut parent);
                }
            }
            for s in &n.stores {
                match store_user.get(s.as_str()) {
                    Some(&other) => unite(i, other, &mut parent),
                    None => {
                        store_user.insert(s, i);
                    }
                }
            }
        }
        let mut order: Vec<usize> = Vec::new();
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in (0..self.nodes.len()).filter(|&i| !self.nodes[i].global) {
            let r = root(&mut parent, i);
            if !groups.contains_key(&r) {
                order.push(r);
            }
            groups.entry(r).or_default().push(i);
        }
        order
            .into_iter()
            .filter_map(|r| groups.remove(&r))
            .collect()
    }

    /// The sub-topologies, in id order.
    pub fn subtopologies(&self) -> Vec<Subtopology> {
        self.node_groups()
            .into_iter()
            .enumerate()
            .map(|(id, group)| {
                let mut s = Subtopology {
                    id: id as u32,
                    nodes: Vec::new(),
                    source_topics: Vec::new(),
                    source_patterns: Vec::new(),
                    sink_topics: Vec::new(),
                    stores: Vec::new(),
                };
                for i in group {
                    let n = &self.nodes[i];
                    s.nodes.push(n.name.clone());
                    match &n.kind {
                        NodeKind::Source {
                            topics, pattern, ..
                        } => {
                            s.source_topics.extend(topics.iter().cloned());
                            if let Some(p) = pattern {
                                s.source_patterns.push(pattern_text(p));
                            }
                        }
                        NodeKind::Sink {
                            topic,
                            topic_chooser: None,
                            ..
                        } => s.sink_topics.push(topic.clone()),
                        NodeKind::Sink { .. } => {}
                        NodeKind::Processor { .. } => {}
                    }
                    for st in &n.stores {
                        if !s.stores.contains(st) {
                            s.stores.push(st.clone());
                        }
                    }
                }
                s
            })
            .collect()
    }

    /// The layout in Kafka Streams' `TopologyDescription` format (print it with `{}`).
    pub fn describe(&self) -> TopologyDescription {
        let children = self.children();
        // Size of the sub-graph reachable from each node, counting every path as Kafka does.
        let mut size = vec![0usize; self.nodes.len()];
        fn compute(i: usize, children: &[Vec<usize>], size: &mut [usize], guard: usize) -> usize {
            if size[i] == 0 {
                size[i] = 1;
                if guard < children.len() {
                    let total: usize = children[i]
                        .iter()
                        .map(|&c| compute(c, children, size, guard + 1))
                        .sum();
                    size[i] = 1 + total;
                }
            }
            size[i]
        }
        for i in 0..self.nodes.len() {
            compute(i, &children, &mut size, 0);
        }
        let order = |a: &usize, b: &usize| {
            size[*b]
                .cmp(&size[*a])
                .then_with(|| self.nodes[*a].name.cmp(&self.nodes[*b].name))
        };
        let mut groups: Vec<(Vec<usize>, bool)> =
            self.node_groups().into_iter().map(|g| (g, false)).collect();
        let global = self.global_nodes();
        if !global.is_empty() {
            groups.push((global, true));
        }
        let subtopologies = groups
            .into_iter()
            .enumerate()
            .map(|(id, (mut group, global))| {
                let (successors, predecessors) = self.java_neighbour_order(&group);
                group.sort_by(order);
                let nodes = group
                    .into_iter()
                    .map(|i| {
                        let n = &self.nodes[i];
                        let kind = match &n.kind {
                            NodeKind::Source {
                                topics, pattern, ..
                            } => match pattern {
                                Some(p) => NodeKindDescription::SourcePattern(pattern_text(p)),
                                None => NodeKindDescription::Source(
                                    hash_order(topics)
                                        .into_iter()
                                        .map(|t| topics[t].clone())
                                        .collect(),
                                ),
                            },
                            NodeKind::Processor { .. } => {
                                let stores: Vec<&String> = n.stores.iter().collect();
                                NodeKindDescription::Processor(
                                    hash_order(&stores)
                                        .into_iter()
                                        .map(|s| stores[s].clone())
                                        .collect(),
                                )
                            }
                            NodeKind::Sink {
                                topic,
                                topic_chooser: Some(_),
                                ..
                            } => NodeKindDescription::SinkExtractor(topic.clone()),
                            NodeKind::Sink { topic, .. } => {
                                NodeKindDescription::Sink(topic.clone())
                            }
                        };
                        let names = |v: &[usize]| -> Vec<String> {
                            v.iter().map(|&c| self.nodes[c].name.clone()).collect()
                        };
                        NodeDescription {
                            name: n.name.clone(),
                            kind,
                            successors: names(&successors[&i]),
                            predecessors: names(&predecessors[&i]),
                        }
                    })
                    .collect();
                SubtopologyDescription {
                    id: id as u32,
                    nodes,
                    global,
                }
            })
            .collect();
        TopologyDescription { subtopologies }
    }
}

impl Topology {
    /// Each node's successors and predecessors within `group`, in the order Kafka Streams'
    /// `describe()` lists them (see [`crate::describe_order`]): nodes visited in `HashMap` order,
    /// each linked to its parents in the order they were given, sub-graph sizes growing as links
    /// are made, and every set ordered by the sizes at the moment of each insertion.
    #[allow(clippy::type_complexity)]
    fn java_neighbour_order(
        &self,
        group: &[usize],
    ) -> (HashMap<usize, Vec<usize>>, HashMap<usize, Vec<usize>>) {
        let names: Vec<&str> = group.iter().map(|&i| self.nodes[i].name.as_str()).collect();
        let local: HashMap<&str, usize> = names.iter().enumerate().map(|(l, n)| (*n, l)).collect();
        let mut size = vec![1usize; group.len()];
        let mut succ: Vec<JavaTreeSet> = (0..group.len()).map(|_| JavaTreeSet::default()).collect();
        let mut pred: Vec<JavaTreeSet> = (0..group.len()).map(|_| JavaTreeSet::default()).collect();
        fn grow(l: usize, delta: usize, size: &mut [usize], pred: &[JavaTreeSet]) {
            size[l] += delta;
            for p in pred[l].items() {
                grow(p, delta, size, pred);
            }
        }
        for node in hash_order(&names) {
            for parent in &self.nodes[group[node]].parents {
                let Some(&parent) = local.get(parent.as_str()) else {
                    continue;
                };
                let compare = |a: usize, b: usize| {
                    if a == b {
                        std::cmp::Ordering::Equal
                    } else {
                        size[b].cmp(&size[a]).then_with(|| names[a].cmp(names[b]))
                    }
                };
                pred[node].insert(parent, compare);
                succ[parent].insert(node, compare);
                let delta = size[node];
                grow(parent, delta, &mut size, &pred);
            }
        }
        let global = |sets: Vec<JavaTreeSet>| -> HashMap<usize, Vec<usize>> {
            sets.into_iter()
                .enumerate()
                .map(|(l, set)| {
                    (
                        group[l],
                        set.items().into_iter().map(|i| group[i]).collect(),
                    )
                })
                .collect()
        };
        (global(succ), global(pred))
    }
}

fn pattern_text(p: &regex::Regex) -> String {
    let s = p.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
        .to_string()
}
