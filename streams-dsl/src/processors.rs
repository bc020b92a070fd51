//! The processors DSL operations compile to. Each holds its user function in an `Arc` so one
//! supplier can make an instance per task.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use streams_core::serdes::SerdeRef;
use streams_core::store::{StoreRef, PUT_IS_LATEST, PUT_NOT_PUT};

use crate::old_values::LazySource;
use streams_core::{Data, Processor, ProcessorContext, Record, Result};

use crate::change::Change;

/// Forwards records whose predicate result differs from `negate`.
pub(crate) struct Filter<F> {
    pub f: Arc<F>,
    pub negate: bool,
}
impl<K: Data, V: Data, F: Fn(&K, &V) -> bool + Send + Sync> Processor<K, V> for Filter<F> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        if (self.f)(&r.key, &r.value) != self.negate {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

/// Replaces key and value.
pub(crate) struct Map<F>(pub Arc<F>);
impl<K: Data, V: Data, K2: Data, V2: Data, F: Fn(K, V) -> (K2, V2) + Send + Sync> Processor<K, V>
    for Map<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let (k, v) = (self.0)(r.key, r.value);
        ctx.forward(Record {
            key: k,
            value: v,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// Replaces the value.
pub(crate) struct MapValues<F>(pub Arc<F>);
impl<K: Data, V: Data, V2: Data, F: Fn(&K, V) -> V2 + Send + Sync> Processor<K, V>
    for MapValues<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let v = (self.0)(&r.key, r.value);
        ctx.forward(Record {
            key: r.key,
            value: v,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// One record in, any number of (key, value) records out.
pub(crate) struct FlatMap<F>(pub Arc<F>);
impl<
        K: Data,
        V: Data,
        K2: Data,
        V2: Data,
        I: IntoIterator<Item = (K2, V2)>,
        F: Fn(K, V) -> I + Send + Sync,
    > Processor<K, V> for FlatMap<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        for (k, v) in (self.0)(r.key, r.value) {
            ctx.forward(Record {
                key: k,
                value: v,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// One record in, any number of values out under the same key.
pub(crate) struct FlatMapValues<F>(pub Arc<F>);
impl<K: Data, V: Data, V2: Data, I: IntoIterator<Item = V2>, F: Fn(&K, V) -> I + Send + Sync>
    Processor<K, V> for FlatMapValues<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        for v in (self.0)(&r.key, r.value) {
            ctx.forward(Record {
                key: r.key.clone(),
                value: v,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// Computes a new key.
pub(crate) struct SelectKey<F>(pub Arc<F>);
impl<K: Data, V: Data, K2: Data, F: Fn(&K, &V) -> K2 + Send + Sync> Processor<K, V>
    for SelectKey<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let k = (self.0)(&r.key, &r.value);
        ctx.forward(r.with_key(k))
    }
}

/// Calls a function per record; forwards unless terminal (`foreach`).
pub(crate) struct Peek<F> {
    pub f: Arc<F>,
    pub forward: bool,
}
impl<K: Data, V: Data, F: Fn(&K, &V) + Send + Sync> Processor<K, V> for Peek<F> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        (self.f)(&r.key, &r.value);
        if self.forward {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

/// Writes `[label]: <mapped record>` lines (Kafka Streams' `KStreamPrint`); terminal.
pub(crate) struct Print<K, V> {
    pub target: crate::naming::PrintTarget,
    pub label: String,
    pub mapper: crate::naming::PrintMapper<K, V>,
    pub file: Option<std::io::BufWriter<std::fs::File>>,
}
impl<K: Data, V: Data> Processor<K, V> for Print<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        if let crate::naming::PrintTarget::File(path) = &self.target {
            let f =
                std::fs::File::create(path).map_err(|source| streams_core::StreamsError::Io {
                    path: path.clone(),
                    source,
                })?;
            self.file = Some(std::io::BufWriter::new(f));
        }
        let _ = ctx;
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        use std::io::Write;
        let line = format!("[{}]: {}", self.label, (self.mapper)(&r.key, &r.value));
        match &mut self.file {
            Some(f) => writeln!(f, "{line}").and_then(|()| f.flush()).map_err(|e| {
                streams_core::StreamsError::processing(ctx.node_name().to_string(), e.to_string())
            }),
            None => {
                println!("{line}");
                Ok(())
            }
        }
    }
}

/// Forwards unchanged (merge points and branch outputs).
pub(crate) struct PassThrough<K, V>(pub PhantomData<fn(K, V)>);
impl<K: Data, V: Data> Processor<K, V> for PassThrough<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        ctx.forward(r)
    }
}

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Sends each record to the first branch whose predicate matches, else to the default branch.
pub(crate) struct Branch<K, V> {
    pub branches: Vec<(String, Predicate<K, V>)>,
    pub default: Option<String>,
}
impl<K: Data, V: Data> Processor<K, V> for Branch<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        for (child, p) in &self.branches {
            if p(&r.key, &r.value) {
                return ctx.forward_to(child, r);
            }
        }
        match &self.default {
            Some(child) => ctx.forward_to(child, r),
            None => Ok(()),
        }
    }
}

pub(crate) type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;
pub(crate) type Aggregator<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

/// Stream aggregation into a timestamped store; forwards `Change { new, old }` per update with the
/// larger of the record's and the previous aggregate's timestamps.
pub(crate) struct StreamAggregate<K, V, VA> {
    pub store: String,
    /// `store`, looked up once in `init`.
    pub store_ref: Option<StoreRef<K, VA>>,
    pub init: Option<Init<VA>>,
    pub agg: Aggregator<K, V, VA>,
    /// Behind the record cache: updates are forwarded when the cache flushes.
    pub cached: bool,
    pub _t: PhantomData<fn(K, V)>,
}
impl<K: Data, V: Data, VA: Data> Processor<K, V> for StreamAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.store_ref = Some(ctx.store_ref(&self.store)?);
        self.cached = ctx.is_cached(&self.store)?;
        if self.cached {
            ctx.forward_cache_flushes::<K, VA>(&self.store, |ctx, key, new, old| {
                let timestamp = new.as_ref().or(old.as_ref()).map_or(0, |v| v.timestamp);
                ctx.forward(Record::new(
                    key,
                    Change::new(new.map(|v| v.value), old.map(|v| v.value)),
                    timestamp,
                ))
            })?;
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let Some(store_ref) = &self.store_ref else {
            return Err(streams_core::StreamsError::processing(
                ctx.node_name().to_string(),
                "processed a record before init",
            ));
        };
        let node = ctx.node_name().to_string();
        let mut store = ctx.timestamped_key_value(store_ref)?;
        let old = store.get(&r.key)?;
        let (new, ts) = match (&old, &self.init) {
            (Some(o), _) => (
                (self.agg)(&r.key, r.value, o.value.clone()),
                o.timestamp.max(r.timestamp),
            ),
            (None, Some(init)) => ((self.agg)(&r.key, r.value, init()), r.timestamp),
            // reduce: the first value is the aggregate.
            (None, None) => {
                match (Arc::new(r.value) as Arc<dyn std::any::Any + Send + Sync>).downcast::<VA>() {
                    Ok(v) => (Arc::unwrap_or_clone(v), r.timestamp),
                    Err(_) => {
                        return Err(streams_core::StreamsError::processing(
                            node,
                            "reduce needs equal value and aggregate types",
                        ))
                    }
                }
            }
        };
        store.put(&r.key, &new, ts)?;
        if self.cached {
            return Ok(());
        }
        let change = Change::new(Some(new), old.map(|o| o.value));
        ctx.forward(Record {
            key: r.key,
            value: change,
            timestamp: ts,
            headers: r.headers,
        })
    }
}

/// Materializes a table from upserts/tombstones and forwards each change.
pub(crate) struct KTableSource<K, V> {
    store: String,
    /// `store`, looked up once in `init`.
    store_ref: Option<StoreRef<K, V>>,
    /// The store is versioned (KIP-889).
    versioned: bool,
    /// A store kept only if something needed it (read in `init`, once the topology is built).
    lazy: Option<Arc<LazySource>>,
    /// No store: updates are forwarded without the value they replace.
    stateless: bool,
}
impl<K, V> KTableSource<K, V> {
    pub fn new(store: String) -> Self {
        KTableSource {
            store,
            store_ref: None,
            versioned: false,
            lazy: None,
            stateless: false,
        }
    }

    /// Keeps its store only if `source` was materialized.
    pub fn lazy(mut self, source: Arc<LazySource>) -> Self {
        self.lazy = Some(source);
        self
    }

    /// Writes into a versioned store instead.
    pub fn versioned(mut self, versioned: bool) -> Self {
        self.versioned = versioned;
        self
    }
}
impl<K: Data, V: Data> Processor<K, Option<V>> for KTableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.stateless = self.lazy.as_ref().is_some_and(|l| !l.is_materialized());
        if !self.stateless {
            self.store_ref = Some(ctx.store_ref(&self.store)?);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Option<V>>) -> Result<()> {
        if self.stateless {
            return ctx.forward(Record {
                key: r.key,
                value: Change::new(r.value, None),
                timestamp: r.timestamp,
                headers: r.headers,
            });
        }
        let Some(store_ref) = &self.store_ref else {
            return Err(streams_core::StreamsError::processing(
                ctx.node_name().to_string(),
                "processed a record before init",
            ));
        };
        if self.versioned {
            // Each update is written at its own timestamp. As Kafka Streams' KTableSource, an
            // update older than the history retention is dropped; every other one (also one
            // out of order, which changes history, not the latest value) is forwarded with the
            // latest value as the old one.
            let mut store = ctx.versioned_key_value_store::<K, V>(&self.store)?;
            let old = store.get(&r.key)?.map(|o| o.value);
            let put = store.put(&r.key, r.value.as_ref(), r.timestamp)?;
            if put == PUT_NOT_PUT {
                ctx.record_dropped();
                return Ok(());
            }
            return ctx.forward(Record {
                key: r.key,
                value: Change {
                    new: r.value,
                    old,
                    is_latest: put == PUT_IS_LATEST,
                },
                timestamp: r.timestamp,
                headers: r.headers,
            });
        }
        let mut store = ctx.timestamped_key_value(store_ref)?;
        let old = match &r.value {
            Some(v) => {
                let old = store.get(&r.key)?;
                store.put(&r.key, v, r.timestamp)?;
                old
            }
            None => store.delete(&r.key)?,
        };
        let change = Change::new(r.value, old.map(|o| o.value));
        ctx.forward(Record {
            key: r.key,
            value: change,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// Filters both sides of a table change; drops changes that become empty. With a store (a
/// materialized filter) the result is kept there and the old value comes from it.
pub(crate) struct TableFilter<F> {
    pub f: Arc<F>,
    pub negate: bool,
    pub store: Option<String>,
    /// The table is versioned: as in Kafka Streams, a change both of whose sides are filtered
    /// out is still forwarded (downstream sees a delete).
    pub versioned: bool,
    /// Its old-values switch (see `old_values`): off, the filter cannot tell a row that never
    /// passed from one that stops passing, and forwards a delete for every row filtered out.
    pub send_old: Arc<AtomicBool>,
}
impl<K: Data, V: Data, F: Fn(&K, &V) -> bool + Send + Sync> Processor<K, Change<V>>
    for TableFilter<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        let keep = |v: Option<V>| v.filter(|v| (self.f)(&r.key, v) != self.negate);
        let send_old = self.send_old.load(Ordering::Relaxed);
        let old = if send_old {
            keep(r.value.old.clone())
        } else {
            None
        };
        let change = r.value.derive(keep(r.value.new.clone()), old);
        let drop_empty = !self.versioned && send_old;
        forward_table_change(ctx, self.store.as_deref(), r, change, drop_empty)
    }
}

/// Maps both sides of a table change (with a store: see [`TableFilter`]).
pub(crate) struct TableMapValues<F> {
    pub f: Arc<F>,
    pub store: Option<String>,
}
impl<K: Data, V: Data, V2: Data, F: Fn(&K, V) -> V2 + Send + Sync> Processor<K, Change<V>>
    for TableMapValues<F>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        let change = r.value.derive(
            r.value.new.clone().map(|v| (self.f)(&r.key, v)),
            r.value.old.clone().map(|v| (self.f)(&r.key, v)),
        );
        forward_table_change(ctx, self.store.as_deref(), r, change, false)
    }
}

/// Forwards `change`, the result of a table operation on `r`. With `store` (the operation's
/// result is materialized) the new value is written there and the old value read from it
/// first, as Kafka Streams' materialized table operations do. `drop_empty`: a change with
/// neither value is not forwarded (a filter's).
pub(crate) fn forward_table_change<K: Data, V: Data, V2: Data>(
    ctx: &mut ProcessorContext<'_>,
    store: Option<&str>,
    r: Record<K, Change<V>>,
    mut change: Change<V2>,
    drop_empty: bool,
) -> Result<()> {
    if let Some(store) = store {
        // Its own store is not versioned: whatever it holds now is the latest value.
        change.is_latest = true;
        let mut st = ctx.timestamped_key_value_store::<K, V2>(store)?;
        change.old = st.get(&r.key)?.map(|o| o.value);
        if !(drop_empty && change.new.is_none() && change.old.is_none()) {
            match &change.new {
                Some(v) => st.put(&r.key, v, r.timestamp)?,
                None => {
                    st.delete(&r.key)?;
                }
            }
        }
    }
    if drop_empty && change.new.is_none() && change.old.is_none() {
        return Ok(());
    }
    ctx.forward(Record {
        key: r.key,
        value: change,
        timestamp: r.timestamp,
        headers: r.headers,
    })
}

/// A table's changelog as a stream of new values (`None` for deletes).
pub(crate) struct ToStream<K, V>(pub PhantomData<fn(K, V)>);
impl<K: Data, V: Data> Processor<K, Change<V>> for ToStream<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        ctx.forward(Record {
            key: r.key,
            value: r.value.new,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// Re-keys a table change for `group_by`. When the old and the new row land on the same
/// grouping key the change travels as one (Kafka Streams >= 3.4, KIP-904), so the aggregation
/// applies subtractor and adder together and emits one update instead of two.
pub(crate) struct TableSelect<F, K2> {
    pub select: Arc<F>,
    /// Compares grouping keys by their bytes (keys need not implement `PartialEq`).
    pub key_serde: Option<SerdeRef<K2>>,
    /// The table is versioned: an out-of-order update (not the key's latest) changes no
    /// aggregate, as in Kafka Streams' `KTableRepartitionMap`.
    pub versioned: bool,
}
impl<K: Data, V: Data, K2: Data, V2: Data, F: Fn(&K, &V) -> (K2, V2) + Send + Sync>
    Processor<K, Change<V>> for TableSelect<F, K2>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        if self.versioned && !r.value.is_latest {
            return Ok(());
        }
        let old = r.value.old.as_ref().map(|v| (self.select)(&r.key, v));
        let new = r.value.new.as_ref().map(|v| (self.select)(&r.key, v));
        let same_key = match (&old, &new, &self.key_serde) {
            (Some((ko, _)), Some((kn, _)), Some(serde)) => {
                let bytes = |k| serde.serialize(k).ok().flatten();
                bytes(ko).is_some() && bytes(ko) == bytes(kn)
            }
            _ => false,
        };
        if same_key {
            if let (Some((k, vo)), Some((_, vn))) = (old, new) {
                return ctx.forward(Record {
                    key: k,
                    value: Change::new(Some(vn), Some(vo)),
                    timestamp: r.timestamp,
                    headers: r.headers,
                });
            }
            return Ok(());
        }
        if let Some((k, v)) = old {
            ctx.forward(Record {
                key: k,
                value: Change::new(None, Some(v)),
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        if let Some((k, v)) = new {
            ctx.forward(Record {
                key: k,
                value: Change::new(Some(v), None),
                timestamp: r.timestamp,
                headers: r.headers,
            })?;
        }
        Ok(())
    }
}

/// Table aggregation with adder and subtractor.
pub(crate) struct TableAggregate<K, V, VA> {
    pub store: String,
    pub init: Option<Init<VA>>,
    pub add: Aggregator<K, V, VA>,
    pub sub: Aggregator<K, V, VA>,
}
impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>> for TableAggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        let node = ctx.node_name().to_string();
        let mut store = ctx.timestamped_key_value_store::<K, VA>(&self.store)?;
        let old = store.get(&r.key)?;
        let mut agg = old.as_ref().map(|o| o.value.clone());
        if let Some(v) = r.value.old {
            if let Some(a) = agg.take() {
                agg = Some((self.sub)(&r.key, v, a));
            }
        }
        if let Some(v) = r.value.new {
            agg = Some(match (agg.take(), &self.init) {
                (Some(a), _) => (self.add)(&r.key, v, a),
                (None, Some(init)) => (self.add)(&r.key, v, init()),
                (None, None) => {
                    match (Arc::new(v) as Arc<dyn std::any::Any + Send + Sync>).downcast::<VA>() {
                        Ok(v) => Arc::unwrap_or_clone(v),
                        Err(_) => {
                            return Err(streams_core::StreamsError::processing(
                                node,
                                "reduce needs equal value and aggregate types",
                            ))
                        }
                    }
                }
            });
        }
        let ts = old
            .as_ref()
            .map_or(r.timestamp, |o| o.timestamp.max(r.timestamp));
        match &agg {
            Some(a) => store.put(&r.key, a, ts)?,
            None => {
                store.delete(&r.key)?;
            }
        }
        let change = Change::new(agg, old.map(|o| o.value));
        ctx.forward(Record {
            key: r.key,
            value: change,
            timestamp: ts,
            headers: r.headers,
        })
    }
}
