//! Cogrouping (KIP-150): several grouped streams, each with its own aggregator, aggregated into
//! one table, as Kafka Streams' `CogroupedKStream` does it: one aggregation processor per input,
//! all on one store, merged into the table's stream of changes.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::SerdeRef;
use streams_core::Data;

use crate::builder::{BuilderState, Shared};
use crate::change::Change;
use crate::grouped::KGroupedStream;
use crate::ktable::KTable;
use crate::naming::Materialized;
use crate::processors::{Aggregator, Init, PassThrough, StreamAggregate};

/// Adds one input's aggregation processor (`name`, on `store`), once its repartition is done.
type AddAggregate<VOut> = Box<dyn FnOnce(&mut BuilderState, &str, &str, Init<VOut>) -> String>;
/// Adds one input's repartition (if it needs one) for `store` with key serde `ks`.
type AddInput<K, VOut> =
    Box<dyn FnOnce(&mut BuilderState, &str, &SerdeRef<K>) -> AddAggregate<VOut>>;

/// Grouped streams being cogrouped into one aggregate per key.
pub struct CogroupedKStream<K, VOut> {
    b: Shared,
    key_serde: Option<SerdeRef<K>>,
    inputs: Vec<AddInput<K, VOut>>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Starts a cogroup (Kafka Streams' `cogroup`): records of this grouped stream update the
    /// shared aggregate with `aggregator(key, value, aggregate)`.
    pub fn cogroup<VOut: Data>(
        &self,
        aggregator: impl Fn(&K, V, VOut) -> VOut + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VOut> {
        CogroupedKStream {
            b: self.shared(),
            key_serde: self.key_serde_of(),
            inputs: vec![input(self.handle(), Arc::new(aggregator))],
        }
    }
}

fn input<K: Data, V: Data, VOut: Data>(
    grouped: KGroupedStream<K, V>,
    aggregator: Aggregator<K, V, VOut>,
) -> AddInput<K, VOut> {
    Box::new(move |s, store, ks| {
        let parent = grouped.input_node(s, store, ks);
        Box::new(move |s, name, store, init| {
            let st = store.to_string();
            let r = s
                .topology
                .add_processor(
                    name,
                    move || StreamAggregate::<K, V, VOut> {
                        store: st.clone(),
                        store_ref: None,
                        init: Some(init.clone()),
                        agg: aggregator.clone(),
                        cached: false,
                        _t: PhantomData,
                    },
                    &[&parent],
                )
                .map(|_| ());
            s.record(r);
            name.to_string()
        })
    })
}

impl<K: Data, VOut: Data> CogroupedKStream<K, VOut> {
    /// Adds another grouped stream (same key type, co-partitioned after any repartition) with its
    /// own aggregator.
    pub fn cogroup<V2: Data>(
        mut self,
        other: &KGroupedStream<K, V2>,
        aggregator: impl Fn(&K, V2, VOut) -> VOut + Send + Sync + 'static,
    ) -> Self {
        self.key_serde = self.key_serde.or_else(|| other.key_serde_of());
        self.inputs
            .push(input(other.handle(), Arc::new(aggregator)));
        self
    }

    /// The table of aggregates, each starting at `init()`, kept in the store `materialized`
    /// names (`COGROUPKSTREAM-AGGREGATE-STATE-STORE-<n>` if unnamed).
    pub fn aggregate(
        self,
        init: impl Fn() -> VOut + Send + Sync + 'static,
        materialized: Materialized<K, VOut>,
    ) -> KTable<K, VOut> {
        let b = self.b.clone();
        let mut s = b.borrow_mut();
        let store = s.store_name_or(
            materialized.name.clone(),
            "COGROUPKSTREAM-AGGREGATE-STATE-STORE-",
        );
        let what = format!("cogrouped store `{store}`");
        let ks = s.key_serde(materialized.key.clone().or(self.key_serde), &what);
        let vs = s.value_serde(materialized.value.clone(), &what);
        let (Some(ks), Some(vs)) = (ks, vs) else {
            drop(s);
            return KTable::new(b.clone(), store, None, None, None);
        };
        // Kafka Streams' order: every repartition, then the aggregations, then the merge.
        let aggregates: Vec<AddAggregate<VOut>> = self
            .inputs
            .into_iter()
            .map(|add| add(&mut s, &store, &ks))
            .collect();
        let init: Init<VOut> = Arc::new(init);
        let names: Vec<String> = aggregates
            .into_iter()
            .map(|add| {
                let name = s.next_name("COGROUPKSTREAM-AGGREGATE-");
                add(&mut s, &name, &store, init.clone())
            })
            .collect();
        let merge = s.next_name("COGROUPKSTREAM-MERGE-");
        let parents: Vec<&str> = names.iter().map(String::as_str).collect();
        let sb = materialized
            .configure(streams_core::StoreBuilder::timestamped_key_value(
                store.clone(),
                ks.clone(),
                vs.clone(),
            ))
            .with_caching(materialized.caching);
        let r = s
            .topology
            .add_processor::<K, Change<VOut>, _, _>(
                &merge,
                || PassThrough::<K, Change<VOut>>(PhantomData),
                &parents,
            )
            .and_then(|t| t.add_state_store(sb, &parents))
            .map(|_| ());
        s.record(r);
        drop(s);
        KTable::new(b, merge, Some(ks), Some(vs), Some(store))
    }
}
