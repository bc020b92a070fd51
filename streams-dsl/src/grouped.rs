use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::SerdeRef;
use streams_core::{Data, PartitionChooser, StoreBuilder};

use crate::builder::{BuilderState, Shared};
use crate::change::{Change, ChangeSerde};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::naming::Materialized;
use crate::processors::{Aggregator, Init, PassThrough, StreamAggregate, TableAggregate};
use crate::windowed::{SessionWindowedKStream, TimeWindowedKStream, WindowSpec};
use crate::windows::{SessionWindows, SlidingWindows, TimeWindows};

/// Adds `filter -> sink -> <base>-repartition -> source` and returns the source node name. As in
/// Kafka Streams, the three nodes use up three indexes and are named after the topic unless `base`
/// is itself a generated name (an unnamed store's).
pub(crate) fn repartition<K: Data, V: Data>(
    s: &mut BuilderState,
    parent: &str,
    base: &str,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
) -> String {
    let source = repartition_with(s, parent, base, key, value, None, None);
    // A grouping's or a join's repartition: `merge.repartition.topics` may share its topic.
    s.topology.mark_mergeable_repartition(&source);
    source
}

/// [`repartition`] with a partitioner for the sink and a fixed partition count for the topic.
pub(crate) fn repartition_with<K: Data, V: Data>(
    s: &mut BuilderState,
    parent: &str,
    base: &str,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    partitioner: Option<PartitionChooser<K, V>>,
    partitions: Option<i32>,
) -> String {
    let topic = format!("{base}-repartition");
    let generated = (
        s.next_name("KSTREAM-SINK-"),
        s.next_name("KSTREAM-FILTER-"),
        s.next_name("KSTREAM-SOURCE-"),
    );
    let (sink, filter, source) = if is_generated_name(base) {
        generated
    } else {
        (
            format!("{topic}-sink"),
            format!("{topic}-filter"),
            format!("{topic}-source"),
        )
    };
    match partitions {
        Some(n) => s.topology.add_internal_topic_with_partitions(&topic, n),
        None => s.topology.add_internal_topic(&topic),
    };
    let r = s
        .topology
        .add_processor::<K, V, _, _>(&filter, || PassThrough::<K, V>(PhantomData), &[parent])
        .and_then(|t| match partitioner {
            Some(p) => t.add_sink_with_partitioner(
                &sink,
                &topic,
                key.clone(),
                value.clone(),
                p,
                &[&filter],
            ),
            None => t.add_sink(&sink, &topic, key.clone(), value.clone(), &[&filter]),
        })
        .and_then(|t| t.add_source(&source, &[&topic], key, value))
        .map(|_| ());
    s.record(r);
    source
}

/// Whether `name` is one the builder generated (`KSTREAM...-<10 digits>`).
fn is_generated_name(name: &str) -> bool {
    name.starts_with("KSTREAM")
        && name.rsplit_once('-').is_some_and(|(_, digits)| {
            digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())
        })
}

fn store_builder<K: Data, VA: Data>(
    name: &str,
    k: SerdeRef<K>,
    v: SerdeRef<VA>,
    m: &Materialized<K, VA>,
) -> StoreBuilder {
    let sb = m.configure(StoreBuilder::timestamped_key_value(name.to_string(), k, v));
    sb.with_caching(m.caching)
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    name: Option<String>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    repartition: bool,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(
        stream: KStream<K, V>,
        name: Option<String>,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition: bool,
    ) -> Self {
        KGroupedStream {
            stream,
            name,
            key_serde,
            value_serde,
            repartition,
        }
    }

    fn aggregate_internal<VA: Data>(
        &self,
        proc_prefix: &str,
        store_prefix: &str,
        init: Option<Init<VA>>,
        agg: Aggregator<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let b = self.stream.b.clone();
        let mut s = b.borrow_mut();
        let (store, proc, serdes) = self.setup(&mut s, &materialized, proc_prefix, store_prefix);
        let Some((ks, vas, parent)) = serdes else {
            drop(s);
            return KTable::new(b.clone(), proc, None, None, None);
        };
        let st = store.clone();
        let sb = store_builder(&store, ks.clone(), vas.clone(), &materialized);
        let r = s
            .topology
            .add_processor(
                &proc,
                move || StreamAggregate::<K, V, VA> {
                    store: st.clone(),
                    store_ref: None,
                    init: init.clone(),
                    agg: agg.clone(),
                    cached: false,
                    _t: PhantomData,
                },
                &[&parent],
            )
            .and_then(|t| t.add_state_store(sb, &[&proc]))
            .map(|_| ());
        s.record(r);
        drop(s);
        KTable::new(b, proc, Some(ks), Some(vas), Some(store))
    }

    /// Names an aggregation's store and processor and finds its serdes and input node:
    /// `(store, processor, Some((key serde, aggregate serde, input node)))`, or `None` in the last
    /// place when a serde is missing (the error is recorded for `build()`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn setup<VA: Data>(
        &self,
        s: &mut BuilderState,
        m: &Materialized<K, VA>,
        proc_prefix: &str,
        store_prefix: &str,
    ) -> (String, String, Option<(SerdeRef<K>, SerdeRef<VA>, String)>) {
        let store = s.store_name_or(m.name.clone(), store_prefix);
        let proc = s.next_name(proc_prefix);
        let ks = s.key_serde(
            m.key.clone().or_else(|| self.key_serde.clone()),
            &format!("store `{store}`"),
        );
        let vas = s.value_serde(m.value.clone(), &format!("store `{store}`"));
        let serdes = match (ks, vas) {
            (Some(ks), Some(vas)) => {
                let parent = self.input_node(s, &store, &ks);
                Some((ks, vas, parent))
            }
            _ => None,
        };
        (store, proc, serdes)
    }

    /// The node aggregations read from: the stream itself, or a repartition topic when an upstream
    /// operation changed keys (named after the grouping, else after `store`).
    pub(crate) fn input_node(&self, s: &mut BuilderState, store: &str, ks: &SerdeRef<K>) -> String {
        let mut parent = self.stream.node.clone();
        if self.repartition {
            let what = format!("repartition for `{store}`");
            if let Some(vs) = s.value_serde(self.value_serde.clone(), &what) {
                let base = self.name.clone().unwrap_or_else(|| store.to_string());
                parent = repartition(s, &parent, &base, ks.clone(), vs);
            }
        }
        parent
    }

    pub(crate) fn shared(&self) -> Shared {
        self.stream.b.clone()
    }

    pub(crate) fn key_serde_of(&self) -> Option<SerdeRef<K>> {
        self.key_serde.clone()
    }

    pub(crate) fn handle(&self) -> KGroupedStream<K, V> {
        self.clone_handle()
    }

    /// Aggregates per key and tumbling or hopping time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone_handle(), WindowSpec::Time(windows))
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone_handle(), WindowSpec::Sliding(windows))
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream::new(self.clone_handle(), windows)
    }

    fn clone_handle(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.stream.clone_handle(),
            name: self.name.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition: self.repartition,
        }
    }

    /// Counts records per key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_internal(
            "KSTREAM-AGGREGATE-",
            "KSTREAM-AGGREGATE-STATE-STORE-",
            Some(Arc::new(|| 0i64)),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            materialized,
        )
    }

    /// Combines values per key with `reducer(aggregate, value)`; the first value is the initial aggregate.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let reducer = Arc::new(reducer);
        self.aggregate_internal(
            "KSTREAM-REDUCE-",
            "KSTREAM-REDUCE-STATE-STORE-",
            None,
            Arc::new(move |_: &K, v: V, agg: V| reducer(agg, v)),
            materialized,
        )
    }

    /// Folds values per key into an aggregate starting from `init()`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_internal(
            "KSTREAM-AGGREGATE-",
            "KSTREAM-AGGREGATE-STATE-STORE-",
            Some(Arc::new(init)),
            Arc::new(aggregator),
            materialized,
        )
    }
}

/// A table re-grouped by a new key, ready to aggregate with adders and subtractors.
pub struct KGroupedTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    fn aggregate_internal<VA: Data>(
        &self,
        proc_prefix: &str,
        store_prefix: &str,
        init: Option<Init<VA>>,
        add: Aggregator<K, V, VA>,
        sub: Aggregator<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let b = self.b.clone();
        let mut s = b.borrow_mut();
        let store = s.store_name_or(materialized.name.clone(), store_prefix);
        // Kafka Streams names the repartition's sink and source before the aggregate.
        let (sink, source) = (s.next_name("KSTREAM-SINK-"), s.next_name("KSTREAM-SOURCE-"));
        let proc = s.next_name(proc_prefix);
        let ks = s.key_serde(
            materialized.key.clone().or_else(|| self.key_serde.clone()),
            &format!("store `{store}`"),
        );
        let vas = s.value_serde(materialized.value.clone(), &format!("store `{store}`"));
        let vs = s.value_serde(
            self.value_serde.clone(),
            &format!("repartition for `{store}`"),
        );
        let (Some(ks), Some(vas), Some(vs)) = (ks, vas, vs) else {
            drop(s);
            return KTable::new(b.clone(), proc, None, None, None);
        };
        let topic = format!(
            "{}-repartition",
            self.name.clone().unwrap_or_else(|| store.clone())
        );
        let change_serde: SerdeRef<Change<V>> = Arc::new(ChangeSerde(vs));
        s.topology.add_internal_topic(&topic);
        let r = s
            .topology
            .add_sink(
                &sink,
                &topic,
                ks.clone(),
                change_serde.clone(),
                &[&self.node],
            )
            .and_then(|t| t.add_source(&source, &[&topic], ks.clone(), change_serde))
            .map(|_| ());
        s.record(r);
        let st = store.clone();
        let sb = store_builder(&store, ks.clone(), vas.clone(), &materialized);
        let r = s
            .topology
            .add_processor(
                &proc,
                move || TableAggregate::<K, V, VA> {
                    store: st.clone(),
                    init: init.clone(),
                    add: add.clone(),
                    sub: sub.clone(),
                },
                &[&source],
            )
            .and_then(|t| t.add_state_store(sb, &[&proc]))
            .map(|_| ());
        s.record(r);
        drop(s);
        KTable::new(b, proc, Some(ks), Some(vas), Some(store))
    }

    /// Counts table rows per new key (rows moving between keys are subtracted and added).
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_internal(
            "KTABLE-AGGREGATE-",
            "KTABLE-AGGREGATE-STATE-STORE-",
            Some(Arc::new(|| 0i64)),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            Arc::new(|_: &K, _: V, n: i64| n - 1),
            materialized,
        )
    }

    /// Combines with `adder(aggregate, new)` and `subtractor(aggregate, old)`.
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let (a, s) = (Arc::new(adder), Arc::new(subtractor));
        self.aggregate_internal(
            "KTABLE-REDUCE-",
            "KTABLE-REDUCE-STATE-STORE-",
            None,
            Arc::new(move |_: &K, v: V, agg: V| a(agg, v)),
            Arc::new(move |_: &K, v: V, agg: V| s(agg, v)),
            materialized,
        )
    }

    /// Aggregates with `init`, `adder(key, new, agg)` and `subtractor(key, old, agg)`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_internal(
            "KTABLE-AGGREGATE-",
            "KTABLE-AGGREGATE-STATE-STORE-",
            Some(Arc::new(init)),
            Arc::new(adder),
            Arc::new(subtractor),
            materialized,
        )
    }
}
