//! Cogrouping (KIP-150): several grouped streams, each with its own aggregator, aggregated into
//! one table, per key or per key and window, as Kafka Streams' `CogroupedKStream` does it: one
//! aggregation processor per input, all on one store, merged into the table's stream of changes.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::SerdeRef;
use streams_core::{Data, StoreBuilder};

use crate::builder::{BuilderState, Shared};
use crate::change::Change;
use crate::grouped::KGroupedStream;
use crate::ktable::KTable;
use crate::naming::Materialized;
use crate::processors::{Aggregator, Init, PassThrough, StreamAggregate};
use crate::window_processors::{
    Merger, SessionWindowAggregate, SlidingWindowAggregate, TimeWindowAggregate,
};
use crate::windowed::WindowSpec;
use crate::windows::{
    session_windowed_serde, time_windowed_serde, SessionWindows, SlidingWindows, TimeWindows,
    Windowed,
};

/// How the cogrouped inputs aggregate: per key, or per key and window.
enum Aggregation<K, VOut> {
    Key,
    Time(TimeWindows),
    Sliding(SlidingWindows),
    Session(SessionWindows, Merger<K, VOut>),
}

/// Adds one input's aggregation processor (`name`, on `store`), once its repartition is done.
type AddAggregate<K, VOut> =
    Box<dyn FnOnce(&mut BuilderState, &str, &str, Init<VOut>, &Aggregation<K, VOut>) -> String>;
/// Adds one input's repartition (if it needs one) for `store` with key serde `ks`.
type AddInput<K, VOut> =
    Box<dyn FnOnce(&mut BuilderState, &str, &SerdeRef<K>) -> AddAggregate<K, VOut>>;

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
        Box::new(move |s, name, store, init, how| {
            let (st, init, agg) = (store.to_string(), Some(init), aggregator);
            let r = match how {
                Aggregation::Key => s.topology.add_processor(
                    name,
                    move || StreamAggregate::<K, V, VOut> {
                        store: st.clone(),
                        store_ref: None,
                        init: init.clone(),
                        agg: agg.clone(),
                        cached: false,
                        _t: PhantomData,
                    },
                    &[&parent],
                ),
                Aggregation::Time(windows) => {
                    let windows = *windows;
                    s.topology.add_processor(
                        name,
                        move || TimeWindowAggregate {
                            store: st.clone(),
                            windows,
                            init: init.clone(),
                            agg: agg.clone(),
                            observed: i64::MIN,
                            final_results: None,
                        },
                        &[&parent],
                    )
                }
                Aggregation::Sliding(windows) => {
                    let windows = *windows;
                    s.topology.add_processor(
                        name,
                        move || SlidingWindowAggregate {
                            store: st.clone(),
                            windows,
                            init: init.clone(),
                            agg: agg.clone(),
                            observed: i64::MIN,
                            final_results: None,
                        },
                        &[&parent],
                    )
                }
                Aggregation::Session(windows, merger) => {
                    let (windows, merger) = (*windows, merger.clone());
                    s.topology.add_processor(
                        name,
                        move || SessionWindowAggregate {
                            store: st.clone(),
                            windows,
                            init: init.clone(),
                            agg: agg.clone(),
                            merger: merger.clone(),
                            observed: i64::MIN,
                            final_results: None,
                        },
                        &[&parent],
                    )
                }
            }
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
        let built = self.build::<K>(
            Arc::new(init),
            &materialized,
            Aggregation::Key,
            |store, ks, vs| Ok(StoreBuilder::timestamped_key_value(store, ks, vs)),
        );
        match built {
            Some((merge, store, ks, vs)) => KTable::new(b, merge, Some(ks), Some(vs), Some(store)),
            None => KTable::new(b, String::new(), None, None, None),
        }
    }

    /// Aggregates per key and time window (tumbling or hopping), as Kafka Streams'
    /// `CogroupedKStream.windowedBy(TimeWindows)`.
    pub fn windowed_by(self, windows: TimeWindows) -> TimeWindowedCogroupedKStream<K, VOut> {
        TimeWindowedCogroupedKStream {
            cogrouped: self,
            windows: WindowSpec::Time(windows),
        }
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(
        self,
        windows: SlidingWindows,
    ) -> TimeWindowedCogroupedKStream<K, VOut> {
        TimeWindowedCogroupedKStream {
            cogrouped: self,
            windows: WindowSpec::Sliding(windows),
        }
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(
        self,
        windows: SessionWindows,
    ) -> SessionWindowedCogroupedKStream<K, VOut> {
        SessionWindowedCogroupedKStream {
            cogrouped: self,
            windows,
        }
    }

    /// Adds every input's repartition, its aggregation processor (`how`) and the merge node (of
    /// key type `KOut`: the key, or the windowed key), with the store `store_builder` makes.
    /// Returns the merge node, the store and its serdes.
    fn build<KOut: Data>(
        self,
        init: Init<VOut>,
        materialized: &Materialized<K, VOut>,
        how: Aggregation<K, VOut>,
        store_builder: impl FnOnce(String, SerdeRef<K>, SerdeRef<VOut>) -> Result<StoreBuilder, String>,
    ) -> Option<(String, String, SerdeRef<K>, SerdeRef<VOut>)> {
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
            return None;
        };
        // Kafka Streams' order: every repartition, then the aggregations, then the merge.
        let aggregates: Vec<AddAggregate<K, VOut>> = self
            .inputs
            .into_iter()
            .map(|add| add(&mut s, &store, &ks))
            .collect();
        let names: Vec<String> = aggregates
            .into_iter()
            .map(|add| {
                let name = s.next_name("COGROUPKSTREAM-AGGREGATE-");
                add(&mut s, &name, &store, init.clone(), &how)
            })
            .collect();
        let merge = s.next_name("COGROUPKSTREAM-MERGE-");
        let parents: Vec<&str> = names.iter().map(String::as_str).collect();
        let sb = match store_builder(store.clone(), ks.clone(), vs.clone()) {
            Ok(sb) => materialized
                .configure(sb)
                .with_caching(materialized.caching),
            Err(e) => {
                s.fail(format!("{what}: {e}"));
                return None;
            }
        };
        let r = s
            .topology
            .add_processor::<KOut, Change<VOut>, _, _>(
                &merge,
                || PassThrough::<KOut, Change<VOut>>(PhantomData),
                &parents,
            )
            .and_then(|t| t.add_state_store(sb, &parents))
            .map(|_| ());
        s.record(r);
        Some((merge, store, ks, vs))
    }
}

/// Cogrouped streams windowed by time or sliding windows, ready to aggregate.
pub struct TimeWindowedCogroupedKStream<K, VOut> {
    cogrouped: CogroupedKStream<K, VOut>,
    windows: WindowSpec,
}

impl<K: Data, VOut: Data> TimeWindowedCogroupedKStream<K, VOut> {
    /// The table of aggregates per key and window, each window starting at `init()`.
    pub fn aggregate(
        self,
        init: impl Fn() -> VOut + Send + Sync + 'static,
        materialized: Materialized<K, VOut>,
    ) -> KTable<Windowed<K>, VOut> {
        let b = self.cogrouped.b.clone();
        let windows = self.windows;
        let (size, default_retention, grace) = windows.layout();
        let how = match windows {
            WindowSpec::Time(w) => Aggregation::Time(w),
            WindowSpec::Sliding(w) => Aggregation::Sliding(w),
        };
        let retention = materialized.retention().unwrap_or(default_retention);
        let built = self
            .cogrouped
            .build::<Windowed<K>>(Arc::new(init), &materialized, how, |store, ks, vs| {
                if let WindowSpec::Time(w) = &windows {
                    w.validate()?;
                }
                if retention < default_retention {
                    return Err(format!(
                        "retention {retention} ms is shorter than window size plus grace ({default_retention} ms); give at least that to `with_retention`"
                    ));
                }
                Ok(StoreBuilder::timestamped_window(store, retention, size, ks, vs))
            });
        let Some((merge, _, ks, vs)) = built else {
            return KTable::new(b, String::new(), None, None, None);
        };
        let mut t = KTable::new(
            b,
            merge,
            Some(time_windowed_serde(ks, size)),
            Some(vs),
            None,
        );
        t.windowing = Some((Arc::new(|k: &Windowed<K>, _| k.window.end), grace));
        t
    }
}

/// Cogrouped streams windowed by sessions, ready to aggregate.
pub struct SessionWindowedCogroupedKStream<K, VOut> {
    cogrouped: CogroupedKStream<K, VOut>,
    windows: SessionWindows,
}

impl<K: Data, VOut: Data> SessionWindowedCogroupedKStream<K, VOut> {
    /// The table of aggregates per key and session, each starting at `init()`; `merger(key, a,
    /// b)` combines two sessions a record joins into one.
    pub fn aggregate(
        self,
        init: impl Fn() -> VOut + Send + Sync + 'static,
        merger: impl Fn(&K, VOut, VOut) -> VOut + Send + Sync + 'static,
        materialized: Materialized<K, VOut>,
    ) -> KTable<Windowed<K>, VOut> {
        let b = self.cogrouped.b.clone();
        let w = self.windows;
        let default_retention = w.gap_ms + w.grace_ms;
        let retention = materialized.retention().unwrap_or(default_retention);
        let how = Aggregation::Session(w, Arc::new(merger));
        let built = self
            .cogrouped
            .build::<Windowed<K>>(Arc::new(init), &materialized, how, |store, ks, vs| {
                if retention < default_retention {
                    return Err(format!(
                        "retention {retention} ms is shorter than gap plus grace ({default_retention} ms); give at least that to `with_retention`"
                    ));
                }
                Ok(StoreBuilder::session(store, retention, ks, vs))
            });
        let Some((merge, _, ks, vs)) = built else {
            return KTable::new(b, String::new(), None, None, None);
        };
        let mut t = KTable::new(b, merge, Some(session_windowed_serde(ks)), Some(vs), None);
        t.windowing = Some((
            Arc::new(|k: &Windowed<K>, _| k.window.end),
            w.gap_ms + w.grace_ms,
        ));
        t
    }
}
