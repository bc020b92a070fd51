//! A task: one sub-topology instantiated for one input partition, with its own stores.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use state_stores::{
    CacheBudget, ChangelogRecord, FlushQueue, FlushedEntry, RecordTimestamp, RocksDbResources,
    VecChangelogSink,
};

use crate::commit_metadata::{self, ProcessorMetadata};
use crate::processor::{ErasedProcessor, ProcessorContext, PunctuationType, PunctuatorId};
use crate::record::{DynRecord, Headers, RecordMetadata};
use crate::store::{build_store, changelog_topic, AnyStore, StoreKind};
use crate::timestamp::{ConsumedRecord, FailOnInvalidTimestamp, TimestampExtractor};
use crate::topology::{
    NodeKind, RecordDeserializer, RecordPartitioner, RecordSerializer, RecordTopicChooser, Topology,
};
use crate::{Result, StreamsError};

/// Identifies a task: `<sub-topology>_<partition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology id.
    pub subtopology: u32,
    /// Input partition.
    pub partition: i32,
}

impl TaskId {
    /// The task that updates the global stores.
    pub const GLOBAL: TaskId = TaskId {
        subtopology: u32::MAX,
        partition: -1,
    };
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == TaskId::GLOBAL {
            return write!(f, "global");
        }
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

impl std::str::FromStr for TaskId {
    type Err = StreamsError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || StreamsError::IllegalState(format!("`{s}` is not a task id like 0_1"));
        let (a, b) = s.split_once('_').ok_or_else(bad)?;
        Ok(TaskId {
            subtopology: a.parse().map_err(|_| bad())?,
            partition: b.parse().map_err(|_| bad())?,
        })
    }
}

/// A record a task wants written to Kafka: a sink output or a changelog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedRecord {
    /// Destination topic (internal topics already carry the application-id prefix); shared
    /// with the sink or store that wrote it, so a record costs no topic allocation.
    pub topic: Arc<str>,
    /// Fixed partition (changelogs), or `None` to let the partitioner hash the key.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Timestamp.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

/// A change-logged store, and the changelog offset its contents reflect if it records one.
pub(crate) struct RecordedOffset {
    pub store: String,
    pub topic: String,
    pub persistent: bool,
    pub offset: Option<i64>,
}

pub(crate) struct NodeSlot {
    pub name: String,
    pub processor: Option<Box<dyn ErasedProcessor>>,
    pub children: Vec<usize>,
    pub stores: Vec<usize>,
}

pub(crate) struct StoreSlot {
    pub name: String,
    pub kind: StoreKind,
    pub store: AnyStore,
    pub serdes: Arc<dyn Any + Send + Sync>,
    pub types: (&'static str, &'static str),
    pub timestamped_window: bool,
    /// A global store: readable from every node, written only by the global task.
    pub global: bool,
    pub changelog: Option<(Arc<str>, VecChangelogSink)>,
    /// The changelog is the source topic of the table the store materializes.
    pub source_changelog: bool,
    /// Entries the record cache wrote to the store, waiting to be forwarded.
    pub flushed: Option<FlushQueue>,
    /// The node forwarding those entries, and how.
    pub flush_listener: Option<(usize, FlushListener)>,
}

/// Forwards one flushed cache entry from the node that registered it.
pub(crate) type FlushListener =
    Box<dyn FnMut(&mut ProcessorContext<'_>, &FlushedEntry) -> Result<()> + Send>;

pub(crate) struct PunctuationSchedule {
    pub id: PunctuatorId,
    pub node: usize,
    pub interval_ms: i64,
    pub kind: PunctuationType,
    pub next: i64,
}

/// Everything of a task that processors reach through their context.
pub(crate) struct TaskCore {
    pub task_id: TaskId,
    pub application_id: String,
    pub stores: Vec<StoreSlot>,
    pub store_index: HashMap<String, usize>,
    pub output: Vec<ProducedRecord>,
    pub record_timestamp: RecordTimestamp,
    pub metadata: Option<RecordMetadata>,
    pub stream_time: i64,
    pub wall_clock: i64,
    pub schedules: Vec<PunctuationSchedule>,
    pub next_punctuator: u64,
    /// Records processors dropped on purpose since the last [`StreamTask::take_dropped_records`].
    pub dropped_records: u64,
    /// What processors keep across restarts, committed with the input offsets.
    pub processor_metadata: ProcessorMetadata,
}

struct SinkProcessor {
    node: String,
    topic: Arc<str>,
    serializer: Arc<dyn RecordSerializer>,
    partitioner: Option<Arc<dyn RecordPartitioner>>,
    topic_chooser: Option<Arc<dyn RecordTopicChooser>>,
}

impl ErasedProcessor for SinkProcessor {
    fn init(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, mut record: DynRecord) -> Result<()> {
        let mut headers = std::mem::take(&mut record.headers);
        let topic = match &self.topic_chooser {
            Some(c) => c
                .topic(&record)
                .map_or_else(|| self.topic.clone(), Arc::from),
            None => self.topic.clone(),
        };
        let (key, value) = match self.serializer.serialize(&topic, &mut headers, &record) {
            Some(Ok(kv)) => kv,
            Some(Err((part, source))) => {
                return Err(StreamsError::Serialization {
                    part,
                    target: format!("topic `{topic}`"),
                    source,
                })
            }
            None => {
                let (key, value) = self.serializer.types();
                return Err(StreamsError::TypeMismatch {
                    node: self.node.clone(),
                    key,
                    value,
                });
            }
        };
        let partition = self.partitioner.as_ref().and_then(|p| p.partition(&record));
        ctx.core.output.push(ProducedRecord {
            topic,
            partition,
            key,
            value,
            timestamp: record.timestamp,
            headers,
        });
        Ok(())
    }
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_>,
        _id: PunctuatorId,
        _ts: i64,
    ) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
}

enum SourceMatch {
    Topic(String),
    Pattern(regex::Regex),
}

/// A source node of the task and what it reads.
struct SourceSlot {
    matches: SourceMatch,
    node: usize,
    deserializer: Arc<dyn RecordDeserializer>,
    timestamp_extractor: Option<Arc<dyn TimestampExtractor>>,
}

/// One sub-topology running for one partition: its processors, stores and stream time.
pub struct StreamTask {
    nodes: Vec<NodeSlot>,
    sources: Vec<SourceSlot>,
    /// `default.timestamp.extractor`, for sources without their own.
    default_timestamp_extractor: Arc<dyn TimestampExtractor>,
    /// Per input topic and partition, the largest timestamp extracted so far.
    partition_time: HashMap<String, HashMap<i32, i64>>,
    core: TaskCore,
    dir: PathBuf,
    closed: bool,
}

impl fmt::Debug for StreamTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTask")
            .field("id", &self.core.task_id)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The name a topic has at runtime: internal topics get the `<application.id>-` prefix.
pub fn runtime_topic(topology: &Topology, application_id: &str, topic: &str) -> String {
    if topology.is_internal_topic(topic) {
        format!("{application_id}-{topic}")
    } else {
        topic.to_string()
    }
}

pub(crate) fn global_slot(
    b: &crate::StoreBuilder,
    h: crate::global::SharedKeyValueStore,
) -> StoreSlot {
    StoreSlot {
        name: b.name().to_string(),
        kind: b.kind(),
        store: AnyStore::KeyValue(Box::new(h)),
        serdes: b.serdes.clone(),
        types: b.types,
        timestamped_window: false,
        global: true,
        changelog: None,
        source_changelog: false,
        flushed: None,
        flush_listener: None,
    }
}

impl StreamTask {
    /// Instantiates sub-topology `id.subtopology` for `id.partition` (stores under `task_dir`,
    /// processors not yet initialized), with the instance's global stores readable from every node; for
    /// [`TaskId::GLOBAL`] the task is the global store update graph and writes them.
    /// `transactional`: persistent stores hold writes until [`StreamTask::commit_stores`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        topology: &Topology,
        id: TaskId,
        application_id: &str,
        task_dir: &Path,
        resources: &RocksDbResources,
        cache: Option<&CacheBudget>,
        transactional: bool,
        globals: Option<&crate::global::GlobalStores>,
    ) -> Result<Self> {
        let group = if id == TaskId::GLOBAL {
            topology.global_nodes()
        } else {
            let groups = topology.node_groups();
            groups
                .get(id.subtopology as usize)
                .ok_or_else(|| {
                    StreamsError::IllegalState(format!(
                        "task {id}: the topology has no sub-topology {}",
                        id.subtopology
                    ))
                })?
                .clone()
        };
        let group = &group;
        let mut global_handles: Vec<_> = globals
            .map(|g| g.handles(id == TaskId::GLOBAL))
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let all_children = topology.children();
        let local: HashMap<usize, usize> =
            group.iter().enumerate().map(|(li, &gi)| (gi, li)).collect();
        let record_timestamp = RecordTimestamp::default();
        let mut stores: Vec<StoreSlot> = Vec::new();
        let mut store_index = HashMap::new();
        let mut nodes = Vec::with_capacity(group.len());
        let mut sources = Vec::new();
        for &gi in group {
            let def = &topology.nodes[gi];
            let mut node_stores = Vec::new();
            for s in &def.stores {
                let global = global_handles
                    .iter()
                    .position(|h| h.as_ref().is_some_and(|(b, _)| b.name() == s));
                let idx = match store_index.get(s) {
                    Some(&i) => i,
                    None if global.is_some() => {
                        let Some((b, h)) = global.and_then(|i| global_handles[i].take()) else {
                            return Err(StreamsError::IllegalState(format!("global store `{s}`")));
                        };
                        stores.push(global_slot(&b, h));
                        store_index.insert(s.clone(), stores.len() - 1);
                        stores.len() - 1
                    }
                    None => {
                        let builder =
                            topology
                                .stores
                                .iter()
                                .find(|b| &b.name == s)
                                .ok_or_else(|| {
                                    StreamsError::Topology(format!("store `{s}` is not added"))
                                })?;
                        // A source table's store may read its topic as its changelog: it is
                        // restored from it but never writes to it.
                        let changelog = match (&builder.source_topic, builder.source_changelog) {
                            (Some(topic), true) => {
                                Some((topic.as_str().into(), VecChangelogSink::new()))
                            }
                            _ => builder.logging.then(|| {
                                (
                                    changelog_topic(application_id, s).into(),
                                    VecChangelogSink::new(),
                                )
                            }),
                        };
                        let flushed: Option<FlushQueue> = (builder.caching
                            && cache.is_some_and(|c| c.max() > 0))
                        .then(FlushQueue::default);
                        let store = build_store(
                            builder,
                            task_dir,
                            resources,
                            transactional,
                            changelog
                                .as_ref()
                                .filter(|_| !builder.source_changelog)
                                .map(|(_, sink)| (sink, &record_timestamp)),
                            cache
                                .zip(flushed.as_ref())
                                .map(|(c, q)| (c, &record_timestamp, q)),
                        )?;
                        stores.push(StoreSlot {
                            name: s.clone(),
                            kind: builder.kind,
                            store,
                            serdes: builder.serdes.clone(),
                            types: builder.types,
                            timestamped_window: builder.timestamped_window,
                            global: false,
                            changelog,
                            source_changelog: builder.source_changelog,
                            flush_listener: None,
                            flushed: match builder.kind {
                                StoreKind::KeyValue | StoreKind::TimestampedKeyValue => flushed,
                                _ => None,
                            },
                        });
                        store_index.insert(s.clone(), stores.len() - 1);
                        stores.len() - 1
                    }
                };
                node_stores.push(idx);
            }
            let processor: Option<Box<dyn ErasedProcessor>> = match &def.kind {
                NodeKind::Source {
                    topics,
                    pattern,
                    deserializer,
                    timestamp_extractor,
                } => {
                    for t in topics {
                        sources.push(SourceSlot {
                            matches: SourceMatch::Topic(runtime_topic(topology, application_id, t)),
                            node: local[&gi],
                            deserializer: deserializer.clone(),
                            timestamp_extractor: timestamp_extractor.clone(),
                        });
                    }
                    if let Some(p) = pattern {
                        sources.push(SourceSlot {
                            matches: SourceMatch::Pattern(p.clone()),
                            node: local[&gi],
                            deserializer: deserializer.clone(),
                            timestamp_extractor: timestamp_extractor.clone(),
                        });
                    }
                    None
                }
                NodeKind::Processor { factory } => Some(factory()),
                NodeKind::Sink {
                    topic,
                    serializer,
                    partitioner,
                    topic_chooser,
                } => Some(Box::new(SinkProcessor {
                    node: def.name.clone(),
                    topic: runtime_topic(topology, application_id, topic).into(),
                    serializer: serializer.clone(),
                    partitioner: partitioner.clone(),
                    topic_chooser: topic_chooser.clone(),
                })),
            };
            nodes.push(NodeSlot {
                name: def.name.clone(),
                processor,
                children: all_children[gi]
                    .iter()
                    .filter_map(|c| local.get(c).copied())
                    .collect(),
                stores: node_stores,
            });
        }
        for (b, h) in global_handles.into_iter().flatten() {
            stores.push(global_slot(&b, h));
            store_index.insert(b.name().to_string(), stores.len() - 1);
        }
        Ok(StreamTask {
            nodes,
            sources,
            default_timestamp_extractor: Arc::new(FailOnInvalidTimestamp),
            partition_time: HashMap::new(),
            core: TaskCore {
                task_id: id,
                application_id: application_id.to_string(),
                stores,
                store_index,
                output: Vec::new(),
                record_timestamp,
                metadata: None,
                stream_time: i64::MIN,
                wall_clock: 0,
                schedules: Vec::new(),
                next_punctuator: 0,
                dropped_records: 0,
                processor_metadata: ProcessorMetadata::default(),
            },
            dir: task_dir.to_path_buf(),
            closed: false,
        })
    }

    /// Replaces each of the task's own key-value stores with `wrap(name, store)` (the runtime's
    /// metering layer goes outermost, above the record cache, as in Kafka Streams).
    pub(crate) fn wrap_key_value_stores(
        &mut self,
        mut wrap: impl FnMut(
            &str,
            Box<dyn state_stores::KeyValueStore>,
        ) -> Box<dyn state_stores::KeyValueStore>,
    ) {
        let slots = std::mem::take(&mut self.core.stores);
        self.core.stores = slots
            .into_iter()
            .map(|mut slot| {
                if !slot.global {
                    slot.store = match slot.store {
                        AnyStore::KeyValue(s) => AnyStore::KeyValue(wrap(&slot.name, s)),
                        other => other,
                    };
                }
                slot
            })
            .collect();
    }

    /// The task id.
    pub fn id(&self) -> TaskId {
        self.core.task_id
    }

    /// Sets the wall-clock time processors see.
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.core.wall_clock = now_ms;
    }

    /// Calls `init` on every processor, in topology order.
    pub fn init(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.with_node(i, |p, ctx| p.init(ctx))?;
        }
        self.drain_changelogs();
        Ok(())
    }

    fn with_node(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn ErasedProcessor, &mut ProcessorContext<'_>) -> Result<()>,
    ) -> Result<()> {
        let Some(mut p) = self.nodes[i].processor.take() else {
            return Ok(());
        };
        let mut ctx = ProcessorContext {
            core: &mut self.core,
            nodes: &mut self.nodes,
            current: i,
        };
        let r = f(p.as_mut(), &mut ctx);
        self.nodes[i].processor = Some(p);
        r
    }

    /// Whether this task reads `topic`.
    pub fn reads_topic(&self, topic: &str) -> bool {
        self.source_for(topic).is_some()
    }

    fn source_slot(&self, topic: &str) -> Option<&SourceSlot> {
        self.sources.iter().find(|s| match &s.matches {
            SourceMatch::Topic(t) => t == topic,
            SourceMatch::Pattern(p) => p.is_match(topic),
        })
    }

    fn source_for(&self, topic: &str) -> Option<(usize, Arc<dyn RecordDeserializer>)> {
        self.source_slot(topic)
            .map(|s| (s.node, s.deserializer.clone()))
    }

    /// Sets `default.timestamp.extractor` (sources without their own use it).
    pub(crate) fn set_default_timestamp_extractor(&mut self, e: Arc<dyn TimestampExtractor>) {
        self.default_timestamp_extractor = e;
    }

    /// The timestamp a consumed record is processed with, from its source's extractor (or the
    /// default one), or `None` when the extractor gives a negative one: the record is dropped and
    /// counted. Moves the partition's time forward.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn extract_timestamp(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
    ) -> Result<Option<i64>> {
        let extractor = match self.source_slot(topic) {
            Some(s) => s
                .timestamp_extractor
                .clone()
                .unwrap_or_else(|| self.default_timestamp_extractor.clone()),
            None => {
                return Err(StreamsError::IllegalState(format!(
                    "task {} does not read topic `{topic}`",
                    self.core.task_id
                )))
            }
        };
        let partition_time = self
            .partition_time
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .unwrap_or(-1);
        let record = ConsumedRecord {
            topic,
            partition,
            offset,
            key,
            value,
            timestamp,
            headers,
        };
        let ts = extractor.extract(&record, partition_time)?;
        if ts < 0 {
            tracing::warn!(
                task = %self.core.task_id,
                topic,
                partition,
                offset,
                timestamp = ts,
                "skipping a record with a negative extracted timestamp"
            );
            self.core.dropped_records += 1;
            return Ok(None);
        }
        // Looked up by `&str` first: a String per topic, not per record.
        let times = match self.partition_time.get_mut(topic) {
            Some(times) => times,
            None => self.partition_time.entry(topic.to_string()).or_default(),
        };
        times.insert(partition, partition_time.max(ts));
        Ok(Some(ts))
    }

    /// The metadata to commit with the offset of input `topic`-`partition`: its partition time
    /// and the task's processor metadata (see [`commit_metadata`]).
    pub(crate) fn commit_metadata(&self, topic: &str, partition: i32) -> String {
        let time = self
            .partition_time
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .unwrap_or(-1);
        commit_metadata::encode(time, &self.core.processor_metadata)
    }

    /// Resumes from what was committed with the offset of input `topic`-`partition` (by this
    /// project or by Kafka Streams): the partition time (and with it the stream time) and the
    /// processor metadata, merged over the task's inputs. Called before [`StreamTask::init`].
    pub(crate) fn resume_from_commit_metadata(&mut self, topic: &str, partition: i32, text: &str) {
        let Some((time, processor)) = commit_metadata::decode(text) else {
            return;
        };
        if time >= 0 {
            let times = self.partition_time.entry(topic.to_string()).or_default();
            let t = times.entry(partition).or_insert(time);
            *t = (*t).max(time);
            self.core.stream_time = self.core.stream_time.max(time);
        }
        self.core.processor_metadata.merge_max(processor);
    }

    /// Processes one input record end to end (through every node it reaches), then fires due
    /// stream-time punctuations. Outputs and changelog writes collect in [`StreamTask::drain_output`].
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        let (node, de) = self.source_for(topic).ok_or_else(|| {
            StreamsError::IllegalState(format!(
                "task {} does not read topic `{topic}`",
                self.core.task_id
            ))
        })?;
        let (k, v) = de
            .deserialize(topic, &headers, key, value)
            .map_err(|(part, source)| StreamsError::Deserialization {
                part,
                topic: topic.to_string(),
                partition,
                offset,
                source,
            })?;
        self.core.metadata = Some(RecordMetadata {
            topic: topic.to_string(),
            partition,
            offset,
        });
        self.core.record_timestamp.set(timestamp);
        self.core.stream_time = self.core.stream_time.max(timestamp);
        let record = DynRecord {
            key: k,
            value: v,
            timestamp,
            headers,
        };
        let result = {
            let mut ctx = ProcessorContext {
                core: &mut self.core,
                nodes: &mut self.nodes,
                current: node,
            };
            ctx.forward_dyn(record)
        };
        let result = result.and_then(|()| self.forward_flushed());
        self.drain_changelogs();
        result?;
        self.punctuate(PunctuationType::StreamTime, self.core.stream_time)?;
        Ok(())
    }

    /// Fires the punctuations of `kind` that are due at `now` (stream time or wall-clock time).
    /// Returns whether any fired.
    pub fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<bool> {
        if kind == PunctuationType::WallClockTime {
            self.core.wall_clock = now;
        }
        if kind == PunctuationType::StreamTime && now == i64::MIN {
            return Ok(false);
        }
        let mut fired = false;
        let mut i = 0;
        while i < self.core.schedules.len() {
            let s = &mut self.core.schedules[i];
            if s.kind == kind && (s.next == i64::MIN || now >= s.next) {
                let (id, node) = (s.id, s.node);
                let at = if s.next == i64::MIN { now } else { s.next };
                s.next = at.saturating_add(s.interval_ms);
                if s.next <= now {
                    s.next = now.saturating_add(s.interval_ms);
                }
                let saved = self.core.metadata.take();
                if kind == PunctuationType::StreamTime {
                    self.core.metadata = saved.clone();
                }
                self.core.record_timestamp.set(now);
                let r = self
                    .with_node(node, |p, ctx| p.punctuate(ctx, id, now))
                    .and_then(|()| self.forward_flushed());
                self.core.metadata = saved;
                self.drain_changelogs();
                r?;
                fired = true;
            }
            i += 1;
        }
        Ok(fired)
    }

    /// Forwards what record caches wrote to their stores, from the nodes that own them.
    fn forward_flushed(&mut self) -> Result<()> {
        for i in 0..self.core.stores.len() {
            let entries = match &self.core.stores[i].flushed {
                Some(q) => std::mem::take(&mut *q.lock().unwrap_or_else(|p| p.into_inner())),
                None => continue,
            };
            if entries.is_empty() {
                continue;
            }
            let Some((node, mut listener)) = self.core.stores[i].flush_listener.take() else {
                continue;
            };
            let mut result = Ok(());
            for e in &entries {
                self.core.record_timestamp.set(e.timestamp);
                let mut ctx = ProcessorContext {
                    core: &mut self.core,
                    nodes: &mut self.nodes,
                    current: node,
                };
                result = listener(&mut ctx, e);
                if result.is_err() {
                    break;
                }
            }
            self.core.stores[i].flush_listener = Some((node, listener));
            result?;
        }
        Ok(())
    }

    /// Empties the record caches into their stores and forwards what they held downstream
    /// (before every commit, so outputs and changelog writes join the commit).
    pub fn flush_caches(&mut self) -> Result<()> {
        for s in &mut self.core.stores {
            if s.flushed.is_some() {
                if let AnyStore::KeyValue(kv) = &mut s.store {
                    kv.flush_cache()?;
                }
            }
        }
        let r = self.forward_flushed();
        self.drain_changelogs();
        r
    }

    fn drain_changelogs(&mut self) {
        let partition = self.core.task_id.partition;
        for slot in &self.core.stores {
            if let Some((topic, sink)) = &slot.changelog {
                for r in sink.drain() {
                    self.core.output.push(ProducedRecord {
                        topic: topic.clone(),
                        partition: Some(partition),
                        key: Some(r.key),
                        value: r.value,
                        timestamp: r.timestamp,
                        headers: Headers::new(),
                    });
                }
            }
        }
    }

    /// Takes the records produced so far (sink outputs and changelog writes, in order).
    pub fn drain_output(&mut self) -> Vec<ProducedRecord> {
        std::mem::take(&mut self.core.output)
    }

    /// `(store, changelog topic)` for each change-logged store of this task.
    /// The changelogs that are source topics of the task (`topology.optimization` reusing source
    /// topics): restored up to the committed offset, positioned at the consumed one.
    pub(crate) fn source_changelogs(&self) -> Vec<String> {
        self.core
            .stores
            .iter()
            .filter(|s| s.source_changelog)
            .filter_map(|s| s.changelog.as_ref().map(|(t, _)| t.to_string()))
            .collect()
    }

    pub fn changelogs(&self) -> Vec<(String, String)> {
        self.core
            .stores
            .iter()
            .filter_map(|s| {
                s.changelog
                    .as_ref()
                    .map(|(t, _)| (s.name.clone(), t.to_string()))
            })
            .collect()
    }

    /// Applies changelog records of `store` up to changelog offset `next_offset - 1`; a
    /// transactional store records `next_offset` in the same atomic write as the records.
    pub(crate) fn restore_up_to(
        &mut self,
        store: &str,
        records: Vec<ChangelogRecord>,
        next_offset: i64,
    ) -> Result<()> {
        let i = self.store_slot(store)?;
        let slot = &mut self.core.stores[i];
        let timestamped = slot.kind == StoreKind::TimestampedKeyValue || slot.timestamped_window;
        slot.store.restore(records, timestamped)?;
        slot.store.as_state_store().commit(Some(next_offset))?;
        Ok(())
    }

    fn store_slot(&self, store: &str) -> Result<usize> {
        self.core.store_index.get(store).copied().ok_or_else(|| {
            StreamsError::IllegalState(format!("task {} has no store `{store}`", self.core.task_id))
        })
    }

    /// What each change-logged store of the task reflects of its changelog.
    pub(crate) fn recorded_changelog_offsets(&mut self) -> Result<Vec<RecordedOffset>> {
        let mut out = Vec::new();
        for s in self.core.stores.iter_mut().filter(|s| !s.global) {
            if let Some((topic, _)) = &s.changelog {
                let topic = topic.to_string();
                let store = s.store.as_state_store();
                out.push(RecordedOffset {
                    store: s.name.clone(),
                    topic,
                    persistent: store.persistent(),
                    offset: store.committed_offset()?,
                });
            }
        }
        Ok(out)
    }

    /// Commits every store's writes since the last commit, each change-logged store together
    /// with its changelog's next offset from `positions` (keyed by topic).
    pub(crate) fn commit_stores(&mut self, positions: &HashMap<&str, i64>) -> Result<()> {
        for s in self.core.stores.iter_mut().filter(|s| !s.global) {
            let offset = s
                .changelog
                .as_ref()
                .and_then(|(topic, _)| positions.get(&**topic).copied());
            s.store.as_state_store().commit(offset)?;
        }
        Ok(())
    }

    /// Bytes the task's transactional stores hold uncommitted.
    pub(crate) fn uncommitted_bytes(&mut self) -> usize {
        self.core
            .stores
            .iter_mut()
            .filter(|s| !s.global)
            .map(|s| s.store.as_state_store().uncommitted_bytes())
            .sum()
    }

    /// Records processors dropped on purpose (late, unjoinable) since the last call.
    pub fn take_dropped_records(&mut self) -> u64 {
        std::mem::take(&mut self.core.dropped_records)
    }

    /// Names of the task's stores.
    pub fn store_names(&self) -> Vec<String> {
        self.core.stores.iter().map(|s| s.name.clone()).collect()
    }

    /// Flushes every store (durable up to here); record caches first.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_caches()?;
        for s in &mut self.core.stores {
            s.store.as_state_store().flush()?;
        }
        Ok(())
    }

    /// Calls `close` on every processor, then closes the stores.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut first_err = None;
        for i in 0..self.nodes.len() {
            if let Err(e) = self.with_node(i, |p, ctx| p.close(ctx)) {
                first_err.get_or_insert(e);
            }
        }
        self.drain_changelogs();
        for s in &mut self.core.stores {
            if let Err(e) = s.store.as_state_store().close() {
                first_err.get_or_insert(e.into());
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Read access to the store named `name` through a closure (test driver, interactive queries).
    pub(crate) fn with_store<R>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut crate::task::StoreSlot) -> Result<R>,
    ) -> Result<R> {
        let i = *self.core.store_index.get(name).ok_or_else(|| {
            StreamsError::IllegalState(format!("task {} has no store `{name}`", self.core.task_id))
        })?;
        f(&mut self.core.stores[i])
    }
}

impl Drop for StreamTask {
    fn drop(&mut self) {
        if !self.closed {
            if let Err(e) = self.close() {
                tracing::warn!(task = %self.core.task_id, error = %e, "closing task on drop failed");
            }
        }
    }
}
