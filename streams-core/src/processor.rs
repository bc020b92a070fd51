//! The Processor API: user processors, their context, and punctuation.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::record::{Data, DynRecord, Record, RecordMetadata};
use crate::store::{
    AnyStore, KeyValueStoreHandle, SessionStoreHandle, StoreKind, StoreRef, StoreSerdes,
    TimestampedKeyValueStoreHandle, TimestampedWindowStoreHandle, VersionedKeyValueStoreHandle,
    WindowStoreHandle,
};
use crate::task::{NodeSlot, PunctuationSchedule, TaskCore, TaskId};
use crate::{Result, StreamsError};

/// When a punctuator fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// By stream time (the largest record timestamp the task has seen): first on the first record,
    /// then whenever stream time has advanced by the interval.
    StreamTime,
    /// By wall-clock time, checked between records.
    WallClockTime,
}

/// Identifies a scheduled punctuation; passed back to [`Processor::punctuate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PunctuatorId(pub(crate) u64);

/// A node of a topology that receives `Record<K, V>`s and may forward records of any types.
///
/// ```
/// use streams_core::{Processor, ProcessorContext, Record, Result};
/// struct Upper;
/// impl Processor<String, String> for Upper {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
///         let v = r.value.to_uppercase();
///         ctx.forward(r.with_value(v))
///     }
/// }
/// ```
pub trait Processor<K: Data, V: Data>: Send {
    /// Called once per task before any record; schedule punctuations here.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Handles one record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<()>;
    /// Handles a punctuation scheduled with [`ProcessorContext::schedule`].
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_>,
        _id: PunctuatorId,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
    /// Called when the task closes.
    fn close(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
}

pub(crate) trait ErasedProcessor: Send {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()>;
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: DynRecord) -> Result<()>;
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<()>;
    fn close(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()>;
}

pub(crate) struct TypedProcessor<K, V, P> {
    node: String,
    inner: P,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, P> TypedProcessor<K, V, P> {
    pub(crate) fn new(node: String, inner: P) -> Self {
        TypedProcessor {
            node,
            inner,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data, P: Processor<K, V>> ErasedProcessor for TypedProcessor<K, V, P> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.inner.init(ctx)
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: DynRecord) -> Result<()> {
        let typed = record
            .into_typed::<K, V>()
            .ok_or_else(|| StreamsError::TypeMismatch {
                node: self.node.clone(),
                key: std::any::type_name::<K>(),
                value: std::any::type_name::<V>(),
            })?;
        self.inner.process(ctx, typed)
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.inner.punctuate(ctx, id, timestamp)
    }
    fn close(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.inner.close(ctx)
    }
}

/// What a processor can do while it handles a record or a punctuation: forward records, use its
/// stores, schedule punctuations, and read where the current record came from.
pub struct ProcessorContext<'a> {
    pub(crate) core: &'a mut TaskCore,
    pub(crate) nodes: &'a mut [NodeSlot],
    pub(crate) current: usize,
}

impl ProcessorContext<'_> {
    /// Sends `record` to every child of this node.
    pub fn forward<K: Data, V: Data>(&mut self, record: Record<K, V>) -> Result<()> {
        self.forward_dyn(DynRecord::from_typed(record))
    }

    /// Sends `record` to the child named `child` only.
    pub fn forward_to<K: Data, V: Data>(
        &mut self,
        child: &str,
        record: Record<K, V>,
    ) -> Result<()> {
        let found = self.nodes[self.current]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].name == child);
        match found {
            Some(c) => self.run_node(c, DynRecord::from_typed(record)),
            None => Err(StreamsError::Topology(format!(
                "node `{}` has no child named `{child}`",
                self.node_name()
            ))),
        }
    }

    pub(crate) fn forward_dyn(&mut self, record: DynRecord) -> Result<()> {
        let n = self.nodes[self.current].children.len();
        if n == 0 {
            return Ok(());
        }
        for i in 0..n - 1 {
            let c = self.nodes[self.current].children[i];
            self.run_node(c, record.clone())?;
        }
        let last = self.nodes[self.current].children[n - 1];
        self.run_node(last, record)
    }

    fn run_node(&mut self, idx: usize, record: DynRecord) -> Result<()> {
        let Some(mut p) = self.nodes[idx].processor.take() else {
            return Err(StreamsError::IllegalState(format!(
                "node `{}` was re-entered while processing",
                self.nodes[idx].name
            )));
        };
        let mut ctx = ProcessorContext {
            core: &mut *self.core,
            nodes: &mut *self.nodes,
            current: idx,
        };
        let result = p.process(&mut ctx, record);
        self.nodes[idx].processor = Some(p);
        result
    }

    /// The name of the node being run.
    pub fn node_name(&self) -> &str {
        &self.nodes[self.current].name
    }

    /// The task running this node.
    pub fn task_id(&self) -> TaskId {
        self.core.task_id
    }

    /// The `application.id`.
    pub fn application_id(&self) -> &str {
        &self.core.application_id
    }

    /// Topic, partition and offset of the record being processed (`None` in wall-clock punctuations).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.core.metadata.as_ref()
    }

    /// The task's stream time: the largest record timestamp it has processed.
    pub fn stream_time_ms(&self) -> i64 {
        self.core.stream_time
    }

    /// A value this task's processors keep across restarts and migrations under `key` (Kafka
    /// Streams' processor metadata): committed with the input offsets, atomically with the
    /// outputs under exactly-once. `None` until some processor of the task set it.
    pub fn processor_metadata(&self, key: &str) -> Option<i64> {
        self.core.processor_metadata.get(key)
    }

    /// Sets [`ProcessorContext::processor_metadata`] for `key`; it commits with the next commit
    /// of the offsets of the task's inputs.
    pub fn set_processor_metadata(&mut self, key: &str, value: i64) {
        self.core.processor_metadata.put(key, value);
    }

    /// Current wall-clock time as the task sees it (mocked in the test driver).
    pub fn wall_clock_ms(&self) -> i64 {
        self.core.wall_clock
    }

    /// Schedules [`Processor::punctuate`] calls on this node every `interval_ms`.
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> Result<PunctuatorId> {
        if interval_ms < 1 {
            return Err(StreamsError::processing(
                self.node_name().to_string(),
                "punctuation interval must be at least 1 ms",
            ));
        }
        self.core.next_punctuator += 1;
        let id = PunctuatorId(self.core.next_punctuator);
        let next = match kind {
            PunctuationType::StreamTime => i64::MIN,
            PunctuationType::WallClockTime => self.core.wall_clock.saturating_add(interval_ms),
        };
        self.core.schedules.push(PunctuationSchedule {
            id,
            node: self.current,
            interval_ms,
            kind,
            next,
        });
        Ok(id)
    }

    /// Cancels a punctuation.
    pub fn cancel(&mut self, id: PunctuatorId) {
        self.core.schedules.retain(|s| s.id != id);
    }

    fn store_slot(&mut self, name: &str) -> Result<usize> {
        let node = self.current;
        let idx = self.core.store_index.get(name).copied();
        match idx {
            Some(i) if self.nodes[node].stores.contains(&i) || self.core.stores[i].global => Ok(i),
            Some(_) => Err(StreamsError::StoreAccess {
                node: self.nodes[node].name.clone(),
                store: name.to_string(),
                reason: "the store is not connected to this processor (connect it in the topology)"
                    .into(),
            }),
            None => Err(StreamsError::StoreAccess {
                node: self.nodes[node].name.clone(),
                store: name.to_string(),
                reason: "no such store in this task".into(),
            }),
        }
    }

    fn access_error(&self, store: &str, reason: String) -> StreamsError {
        StreamsError::StoreAccess {
            node: self.node_name().to_string(),
            store: store.to_string(),
            reason,
        }
    }

    fn serdes<K: Data, V: Data>(&self, i: usize) -> Result<()> {
        let slot = &self.core.stores[i];
        if slot.serdes.downcast_ref::<StoreSerdes<K, V>>().is_none() {
            return Err(self.access_error(
                &slot.name,
                format!(
                    "it holds ({}, {}) but was asked for ({}, {})",
                    slot.types.0,
                    slot.types.1,
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            ));
        }
        Ok(())
    }

    /// Typed access to the key-value store `name` (must be connected to this processor).
    pub fn key_value_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        if self.core.stores[i].kind != StoreKind::KeyValue {
            return Err(self.access_error(
                name,
                format!(
                    "it is a {:?} store, not a key-value store",
                    self.core.stores[i].kind
                ),
            ));
        }
        let slot = &mut self.core.stores[i];
        let serdes = slot
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StreamsError::IllegalState("serdes".into()))?;
        match &mut slot.store {
            AnyStore::KeyValue(s) => Ok(KeyValueStoreHandle {
                store: s.as_mut(),
                name: &slot.name,
                serdes,
            }),
            _ => Err(StreamsError::IllegalState(format!(
                "store `{name}` kind mismatch"
            ))),
        }
    }

    /// Typed access to the versioned key-value store `name` (KIP-889): writes and lookups as
    /// of a time. The same store is also readable as a timestamped key-value store of its
    /// latest values.
    pub fn versioned_key_value_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<VersionedKeyValueStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        let kind = self.core.stores[i].kind;
        if !matches!(kind, StoreKind::VersionedKeyValue { .. }) {
            return Err(self.access_error(
                name,
                format!("it is a {kind:?} store, not a versioned key-value store"),
            ));
        }
        let slot = &mut self.core.stores[i];
        let serdes = slot
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StreamsError::IllegalState("serdes".into()))?;
        match &mut slot.store {
            AnyStore::KeyValue(s) => match s.as_versioned_mut() {
                Some(store) => Ok(VersionedKeyValueStoreHandle {
                    store,
                    name: &slot.name,
                    serdes,
                }),
                None => Err(StreamsError::IllegalState(format!(
                    "store `{name}` is not versioned underneath"
                ))),
            },
            _ => Err(StreamsError::IllegalState(format!(
                "store `{name}` kind mismatch"
            ))),
        }
    }

    /// Whether `store` sits behind the record cache, so its updates should be forwarded when the
    /// cache flushes (see [`ProcessorContext::forward_cache_flushes`]) rather than per record.
    pub fn is_cached(&mut self, store: &str) -> Result<bool> {
        let i = self.store_slot(store)?;
        Ok(self.core.stores[i].flushed.is_some())
    }

    /// Makes this node forward the cache flushes of the timestamped store `store`:
    /// `f(ctx, key, new, old)` runs whenever cached writes reach the store (on commit, and on
    /// eviction when the cache is full), with the record timestamp of the write.
    pub fn forward_cache_flushes<K: Data, V: Data>(
        &mut self,
        store: &str,
        mut f: impl FnMut(
                &mut ProcessorContext<'_>,
                K,
                Option<crate::ValueAndTimestamp<V>>,
                Option<crate::ValueAndTimestamp<V>>,
            ) -> Result<()>
            + Send
            + 'static,
    ) -> Result<()> {
        let i = self.store_slot(store)?;
        self.serdes::<K, V>(i)?;
        let serdes = self.core.stores[i].serdes.clone();
        let name = store.to_string();
        let listener: crate::task::FlushListener = Box::new(move |ctx, e| {
            let serdes = serdes
                .downcast_ref::<StoreSerdes<K, V>>()
                .ok_or_else(|| StreamsError::IllegalState(format!("serdes of `{name}`")))?;
            let (k, new, old) = crate::store::decode_flushed(&name, serdes, e)?;
            f(ctx, k, new, old)
        });
        self.core.stores[i].flush_listener = Some((self.current, listener));
        Ok(())
    }

    /// Typed access to the timestamped key-value store `name`.
    pub fn timestamped_key_value_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<TimestampedKeyValueStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        if !self.core.stores[i].kind.is_timestamped_key_value() {
            return Err(self.access_error(
                name,
                format!(
                    "it is a {:?} store, not a timestamped key-value store",
                    self.core.stores[i].kind
                ),
            ));
        }
        let slot = &mut self.core.stores[i];
        let serdes = slot
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StreamsError::IllegalState("serdes".into()))?;
        match &mut slot.store {
            AnyStore::KeyValue(s) => Ok(TimestampedKeyValueStoreHandle {
                inner: KeyValueStoreHandle {
                    store: s.as_mut(),
                    name: &slot.name,
                    serdes,
                },
            }),
            _ => Err(StreamsError::IllegalState(format!(
                "store `{name}` kind mismatch"
            ))),
        }
    }

    /// A typed reference to the key-value or timestamped key-value store `name`, checked once
    /// (connection, kind, types). Take it in [`Processor::init`] and pass it to
    /// [`ProcessorContext::key_value`] or [`ProcessorContext::timestamped_key_value`] per record,
    /// which then look nothing up by name.
    ///
    /// ```
    /// use streams_core::store::StoreRef;
    /// use streams_core::{Processor, ProcessorContext, Record, Result};
    ///
    /// struct CountWords {
    ///     counts: Option<StoreRef<String, i64>>,
    /// }
    ///
    /// impl Processor<String, String> for CountWords {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
    ///         self.counts = Some(ctx.store_ref("counts")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<String, String>) -> Result<()> {
    ///         let Some(counts) = &self.counts else { return Ok(()) };
    ///         let mut store = ctx.key_value(counts)?;
    ///         let n = store.get(&r.value)?.unwrap_or(0) + 1;
    ///         store.put(&r.value, &n)?;
    ///         ctx.forward(r.with_value(n))
    ///     }
    /// }
    /// ```
    pub fn store_ref<K: Data, V: Data>(&mut self, name: &str) -> Result<StoreRef<K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        let slot = &self.core.stores[i];
        if !slot.kind.is_key_value() {
            return Err(self.access_error(
                name,
                format!(
                    "it is a {:?} store; store references are for key-value stores",
                    slot.kind
                ),
            ));
        }
        let serdes = slot
            .serdes
            .clone()
            .downcast::<StoreSerdes<K, V>>()
            .map_err(|_| StreamsError::IllegalState("serdes".into()))?;
        Ok(StoreRef {
            index: i,
            kind: slot.kind,
            name: Arc::from(name),
            serdes,
        })
    }

    fn referenced(&mut self, r: &StoreRef<impl Data, impl Data>, kind: StoreKind) -> Result<usize> {
        // A versioned store is also read as a timestamped one (its latest values).
        let versioned_as_timestamped = kind == StoreKind::TimestampedKeyValue
            && matches!(r.kind, StoreKind::VersionedKeyValue { .. });
        if r.kind != kind && !versioned_as_timestamped {
            return Err(self.access_error(
                &r.name,
                format!("it is a {:?} store, not a {kind:?} store", r.kind),
            ));
        }
        match self.core.stores.get(r.index) {
            Some(slot) if *slot.name == *r.name => Ok(r.index),
            _ => Err(self.access_error(
                &r.name,
                "the reference belongs to another task's topology".into(),
            )),
        }
    }

    /// The key-value store `r` refers to.
    pub fn key_value<'s, K: Data, V: Data>(
        &'s mut self,
        r: &'s StoreRef<K, V>,
    ) -> Result<KeyValueStoreHandle<'s, K, V>> {
        let i = self.referenced(r, StoreKind::KeyValue)?;
        let slot = &mut self.core.stores[i];
        match &mut slot.store {
            AnyStore::KeyValue(s) => Ok(KeyValueStoreHandle {
                store: s.as_mut(),
                name: &slot.name,
                serdes: &r.serdes,
            }),
            _ => Err(StreamsError::IllegalState(format!(
                "store `{}` kind mismatch",
                r.name
            ))),
        }
    }

    /// The timestamped key-value store `r` refers to.
    pub fn timestamped_key_value<'s, K: Data, V: Data>(
        &'s mut self,
        r: &'s StoreRef<K, V>,
    ) -> Result<TimestampedKeyValueStoreHandle<'s, K, V>> {
        let i = self.referenced(r, StoreKind::TimestampedKeyValue)?;
        let slot = &mut self.core.stores[i];
        match &mut slot.store {
            AnyStore::KeyValue(s) => Ok(TimestampedKeyValueStoreHandle {
                inner: KeyValueStoreHandle {
                    store: s.as_mut(),
                    name: &slot.name,
                    serdes: &r.serdes,
                },
            }),
            _ => Err(StreamsError::IllegalState(format!(
                "store `{}` kind mismatch",
                r.name
            ))),
        }
    }

    /// Typed access to the window store `name`.
    pub fn window_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<WindowStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        let slot = &mut self.core.stores[i];
        let serdes = slot
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StreamsError::IllegalState("serdes".into()))?;
        match &mut slot.store {
            AnyStore::Window(s) => Ok(WindowStoreHandle {
                store: s.as_mut(),
                name: &slot.name,
                serdes,
            }),
            _ => Err(StreamsError::StoreAccess {
                node: String::new(),
                store: name.to_string(),
                reason: "not a window store".into(),
            }),
        }
    }

    /// Typed access to the window store `name` created with `StoreBuilder::timestamped_window`.
    pub fn timestamped_window_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<TimestampedWindowStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        if !self.core.stores[i].timestamped_window {
            return Err(self.access_error(
                name,
                "it is not a timestamped window store (declare it with StoreBuilder::timestamped_window)"
                    .into(),
            ));
        }
        Ok(TimestampedWindowStoreHandle {
            inner: self.window_store::<K, V>(name)?,
        })
    }

    /// Counts a record this node dropped on purpose (late for its window, null key for a join...):
    /// the `dropped_records` metric. Log the reason at debug where it is decided.
    pub fn record_dropped(&mut self) {
        self.core.dropped_records += 1;
    }

    /// Typed access to the session store `name`.
    pub fn session_store<K: Data, V: Data>(
        &mut self,
        name: &str,
    ) -> Result<SessionStoreHandle<'_, K, V>> {
        let i = self.store_slot(name)?;
        self.serdes::<K, V>(i)?;
        let slot = &mut self.core.stores[i];
        let serdes = slot
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .ok_or_else(|| StreamsError::IllegalState("serdes".into()))?;
        match &mut slot.store {
            AnyStore::Session(s) => Ok(SessionStoreHandle {
                store: s.as_mut(),
                name: &slot.name,
                serdes,
            }),
            _ => Err(StreamsError::StoreAccess {
                node: String::new(),
                store: name.to_string(),
                reason: "not a session store".into(),
            }),
        }
    }
}
