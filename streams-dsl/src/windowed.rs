//! Windowed grouped streams: `windowed_by(...)` then `count` / `reduce` / `aggregate`.

use std::sync::Arc;

use streams_core::{Data, StoreBuilder};

use crate::final_results::FinalResults;
use crate::grouped::KGroupedStream;
use crate::ktable::KTable;
use crate::naming::Materialized;
use crate::processors::{Aggregator, Init};
use crate::window_processors::{
    Merger, SessionWindowAggregate, SlidingWindowAggregate, TimeWindowAggregate,
};
use crate::windows::{
    session_windowed_serde, time_windowed_serde, EmitStrategy, SessionWindows, SlidingWindows,
    TimeWindows, Windowed,
};

#[derive(Clone, Copy)]
pub(crate) enum WindowSpec {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

impl WindowSpec {
    /// (window size, retention, grace): Kafka Streams' defaults, retention = size + grace for time
    /// windows and 2 x difference + grace for sliding windows.
    pub(crate) fn layout(&self) -> (i64, i64, i64) {
        match self {
            WindowSpec::Time(w) => (w.size_ms, w.size_ms + w.grace_ms, w.grace_ms),
            WindowSpec::Sliding(w) => (
                w.time_difference_ms,
                2 * w.time_difference_ms + w.grace_ms,
                w.grace_ms,
            ),
        }
    }
}

/// A grouped stream windowed by time or sliding windows, ready to aggregate.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: WindowSpec,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: WindowSpec) -> Self {
        TimeWindowedKStream {
            grouped,
            windows,
            emit: EmitStrategy::OnWindowUpdate,
        }
    }

    /// When the aggregation emits: every update (the default) or, with
    /// [`EmitStrategy::OnWindowClose`], each window's final result once it closed.
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    fn build<VA: Data>(
        &self,
        prefix: &str,
        init: Option<Init<VA>>,
        agg: Aggregator<K, V, VA>,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.shared();
        let mut s = b.borrow_mut();
        let (store, proc, serdes) =
            self.grouped
                .setup(&mut s, &m, prefix, &format!("{prefix}STATE-STORE-"));
        let (size, default_retention, grace) = self.windows.layout();
        if let WindowSpec::Time(w) = &self.windows {
            if let Err(e) = w.validate() {
                s.fail(format!("windowed aggregation `{store}`: {e}"));
            }
        }
        let retention = m.retention().unwrap_or(default_retention);
        if retention < default_retention {
            s.fail(format!(
                "windowed aggregation `{store}`: retention {retention} ms is shorter than window \
                 size plus grace ({default_retention} ms); give at least that to `with_retention`"
            ));
        }
        let Some((ks, vas, parent)) = serdes else {
            drop(s);
            return KTable::new(b.clone(), proc, None, None, None);
        };
        let sb = m.configure(StoreBuilder::timestamped_window(
            store.clone(),
            retention,
            size,
            ks.clone(),
            vas.clone(),
        ));
        let st = store.clone();
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let r = match self.windows {
            WindowSpec::Time(windows) => s.topology.add_processor(
                &proc,
                move || TimeWindowAggregate {
                    store: st.clone(),
                    windows,
                    init: init.clone(),
                    agg: agg.clone(),
                    observed: i64::MIN,
                    final_results: final_only.then(|| FinalResults::new(&st)),
                },
                &[&parent],
            ),
            WindowSpec::Sliding(windows) => s.topology.add_processor(
                &proc,
                move || SlidingWindowAggregate {
                    store: st.clone(),
                    windows,
                    init: init.clone(),
                    agg: agg.clone(),
                    observed: i64::MIN,
                    final_results: final_only.then(|| FinalResults::new(&st)),
                },
                &[&parent],
            ),
        }
        .and_then(|t| t.add_state_store(sb, &[&proc]))
        .map(|_| ());
        s.record(r);
        drop(s);
        let mut t = KTable::new(
            b,
            proc,
            Some(time_windowed_serde(ks, size)),
            Some(vas),
            None,
        );
        t.windowing = Some((Arc::new(|k: &Windowed<K>, _| k.window.end), grace));
        t
    }

    /// Counts records per key and window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.build(
            "KSTREAM-AGGREGATE-",
            Some(Arc::new(|| 0i64)),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            materialized,
        )
    }

    /// Combines the values of each key and window with `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        self.build(
            "KSTREAM-REDUCE-",
            None,
            Arc::new(move |_: &K, v: V, agg: V| reducer(agg, v)),
            materialized,
        )
    }

    /// Folds the values of each key and window into an aggregate starting from `init()`.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.build(
            "KSTREAM-AGGREGATE-",
            Some(Arc::new(init)),
            Arc::new(aggregator),
            materialized,
        )
    }
}

/// A grouped stream windowed by sessions, ready to aggregate.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream {
            grouped,
            windows,
            emit: EmitStrategy::OnWindowUpdate,
        }
    }

    /// When the aggregation emits: every update (the default) or, with
    /// [`EmitStrategy::OnWindowClose`], each session's final result once it closed (stream time
    /// past its end by the gap plus grace).
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    fn build<VA: Data>(
        &self,
        prefix: &str,
        init: Option<Init<VA>>,
        agg: Aggregator<K, V, VA>,
        merger: Merger<K, VA>,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.shared();
        let mut s = b.borrow_mut();
        let (store, proc, serdes) =
            self.grouped
                .setup(&mut s, &m, prefix, &format!("{prefix}STATE-STORE-"));
        let Some((ks, vas, parent)) = serdes else {
            drop(s);
            return KTable::new(b.clone(), proc, None, None, None);
        };
        let w = self.windows;
        let default_retention = w.gap_ms + w.grace_ms;
        let retention = m.retention().unwrap_or(default_retention);
        if retention < default_retention {
            s.fail(format!(
                "session aggregation `{store}`: retention {retention} ms is shorter than gap plus \
                 grace ({default_retention} ms); give at least that to `with_retention`"
            ));
        }
        let sb = m.configure(StoreBuilder::session(
            store.clone(),
            retention,
            ks.clone(),
            vas.clone(),
        ));
        let st = store.clone();
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let r = s
            .topology
            .add_processor(
                &proc,
                move || SessionWindowAggregate {
                    store: st.clone(),
                    windows: w,
                    init: init.clone(),
                    agg: agg.clone(),
                    merger: merger.clone(),
                    observed: i64::MIN,
                    final_results: final_only.then(|| FinalResults::new(&st)),
                },
                &[&parent],
            )
            .and_then(|t| t.add_state_store(sb, &[&proc]))
            .map(|_| ());
        s.record(r);
        drop(s);
        let mut t = KTable::new(b, proc, Some(session_windowed_serde(ks)), Some(vas), None);
        // A session closes `gap` after its last record; suppression waits for that plus grace.
        t.windowing = Some((
            Arc::new(|k: &Windowed<K>, _| k.window.end),
            w.gap_ms + w.grace_ms,
        ));
        t
    }

    /// Counts records per key and session.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.build(
            "KSTREAM-AGGREGATE-",
            Some(Arc::new(|| 0i64)),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            Arc::new(|_: &K, a: i64, b: i64| a + b),
            materialized,
        )
    }

    /// Combines the values of each session with `reducer(aggregate, value)` (merging sessions too).
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        let r2 = reducer.clone();
        self.build(
            "KSTREAM-REDUCE-",
            None,
            Arc::new(move |_: &K, v: V, agg: V| reducer(agg, v)),
            Arc::new(move |_: &K, a: V, b: V| r2(a, b)),
            materialized,
        )
    }

    /// Folds each session's values from `init()`; `merger(key, a, b)` combines two sessions
    /// that a record joins into one.
    pub fn aggregate<VA: Data>(
        &self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.build(
            "KSTREAM-AGGREGATE-",
            Some(Arc::new(init)),
            Arc::new(aggregator),
            Arc::new(merger),
            materialized,
        )
    }
}
