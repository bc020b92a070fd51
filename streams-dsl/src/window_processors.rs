//! The processors of windowed aggregations: tumbling/hopping, sliding and session windows.
//! Each tracks its own observed stream time; a record whose windows all closed (end + grace at or
//! before stream time) is dropped and counted, as in Kafka Streams.

use std::collections::HashSet;
use std::sync::Arc;

use streams_core::store::SessionWindow;
use streams_core::{Data, Headers, Processor, ProcessorContext, Record, Result, ValueAndTimestamp};

use crate::change::Change;
use crate::final_results::FinalResults;
use crate::processors::{Aggregator, Init};
use crate::windows::{SessionWindows, SlidingWindows, TimeWindows, Windowed};

/// A merge of two session aggregates (session windows joining).
pub(crate) type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

/// The aggregate a first value starts: `init` applied, or for `reduce` the value itself.
pub(crate) fn start_aggregate<K, V: Data, VA: Data>(
    ctx: &ProcessorContext<'_>,
    init: &Option<Init<VA>>,
    agg: &Aggregator<K, V, VA>,
    key: &K,
    value: V,
) -> Result<VA> {
    match init {
        Some(i) => Ok(agg(key, value, i())),
        None => match (Arc::new(value) as Arc<dyn std::any::Any + Send + Sync>).downcast::<VA>() {
            Ok(v) => Ok(Arc::unwrap_or_clone(v)),
            Err(_) => Err(streams_core::StreamsError::processing(
                ctx.node_name().to_string(),
                "reduce needs equal value and aggregate types",
            )),
        },
    }
}

fn drop_late(ctx: &mut ProcessorContext<'_>, ts: i64, window: (i64, i64), close: i64) {
    tracing::debug!(
        node = ctx.node_name(),
        timestamp = ts,
        window_start = window.0,
        window_end = window.1,
        close_time = close,
        "skipping a record for an expired window"
    );
    ctx.record_dropped();
}

/// Adds `r` to the aggregate `current` of the window `[start, end]` of the timestamped window store
/// `store` (a new window when `None`), writes the result and forwards the change unless only
/// final results are emitted (`final_only`). The aggregate's timestamp is the latest of its
/// records'.
#[allow(clippy::too_many_arguments)]
fn add_to_window<K: Data, V: Data, VA: Data>(
    ctx: &mut ProcessorContext<'_>,
    (store, final_only): (&str, bool),
    init: &Option<Init<VA>>,
    agg: &Aggregator<K, V, VA>,
    r: &Record<K, V>,
    (start, end): (i64, i64),
    current: Option<ValueAndTimestamp<VA>>,
) -> Result<()> {
    let (new, ts) = match &current {
        Some(c) => (
            agg(&r.key, r.value.clone(), c.value.clone()),
            c.timestamp.max(r.timestamp),
        ),
        None => (
            start_aggregate(ctx, init, agg, &r.key, r.value.clone())?,
            r.timestamp,
        ),
    };
    let old = current.map(|c| c.value);
    write_window(ctx, (store, final_only), r, (start, end), new, old, ts)
}

/// Writes `new` (stamped `ts`) as the aggregate of `r`'s key in the window `[start, end]` and
/// forwards the change from `old` (unless `final_only`).
fn write_window<K: Data, V: Data, VA: Data>(
    ctx: &mut ProcessorContext<'_>,
    (store, final_only): (&str, bool),
    r: &Record<K, V>,
    (start, end): (i64, i64),
    new: VA,
    old: Option<VA>,
    ts: i64,
) -> Result<()> {
    ctx.timestamped_window_store::<K, VA>(store)?
        .put(&r.key, Some(&new), ts, start)?;
    if final_only {
        return Ok(());
    }
    ctx.forward(Record {
        key: Windowed::new(r.key.clone(), start, end),
        value: Change::new(Some(new), old),
        timestamp: ts,
        headers: r.headers.clone(),
    })
}

/// `windowed_by(TimeWindows)` aggregation into a timestamped window store.
pub(crate) struct TimeWindowAggregate<K, V, VA> {
    pub store: String,
    pub windows: TimeWindows,
    pub init: Option<Init<VA>>,
    pub agg: Aggregator<K, V, VA>,
    pub observed: i64,
    /// `Some` under [`EmitStrategy::OnWindowClose`](crate::EmitStrategy).
    pub final_results: Option<FinalResults>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V> for TimeWindowAggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace_ms;
        for start in self.windows.window_starts(ts) {
            let end = start + self.windows.size_ms;
            if end <= close {
                drop_late(ctx, ts, (start, end), close);
                continue;
            }
            let old = ctx
                .timestamped_window_store::<K, VA>(&self.store)?
                .fetch(&r.key, start)?;
            add_to_window(
                ctx,
                (&self.store, self.final_results.is_some()),
                &self.init,
                &self.agg,
                &r,
                (start, end),
                old,
            )?;
        }
        match &mut self.final_results {
            Some(f) => f.emit_time_windows::<K, VA>(ctx, &self.windows, close, &r.headers),
            None => Ok(()),
        }
    }
}

/// `windowed_by(SlidingWindows)` aggregation: Kafka Streams' `KStreamSlidingWindowAggregate`
/// (each record creates its left window `[ts - d, ts]` and, when later records exist, its right
/// window `[ts + 1, ts + 1 + d]`; the windows it falls into are updated).
pub(crate) struct SlidingWindowAggregate<K, V, VA> {
    pub store: String,
    pub windows: SlidingWindows,
    pub init: Option<Init<VA>>,
    pub agg: Aggregator<K, V, VA>,
    pub observed: i64,
    /// `Some` under [`EmitStrategy::OnWindowClose`](crate::EmitStrategy).
    pub final_results: Option<FinalResults>,
}

impl<K: Data, V: Data, VA: Data> SlidingWindowAggregate<K, V, VA> {
    fn diff(&self) -> i64 {
        self.windows.time_difference_ms
    }

    /// Adds the record to the window at `start` holding `current` (`None`: a new, empty window).
    fn update(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &Record<K, V>,
        start: i64,
        current: Option<ValueAndTimestamp<VA>>,
        close: i64,
    ) -> Result<()> {
        let end = start + self.diff();
        if end < close {
            drop_late(ctx, r.timestamp, (start, end), close);
            return Ok(());
        }
        add_to_window(
            ctx,
            (&self.store, self.final_results.is_some()),
            &self.init,
            &self.agg,
            r,
            (start, end),
            current,
        )
    }

    /// A window whose aggregate is copied from another (the current record is not in it).
    fn put_copy(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &Record<K, V>,
        start: i64,
        agg: ValueAndTimestamp<VA>,
    ) -> Result<()> {
        let end = start + self.diff();
        write_window(
            ctx,
            (&self.store, self.final_results.is_some()),
            r,
            (start, end),
            agg.value,
            None,
            agg.timestamp,
        )
    }

    /// A record before the first full window: windows cannot start below 0, so `[0, d]` holds it.
    fn process_early(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &Record<K, V>,
        close: i64,
    ) -> Result<()> {
        let ts = r.timestamp;
        let found = ctx
            .timestamped_window_store::<K, VA>(&self.store)?
            .fetch_range(&r.key, 0, ts + 1)?;
        let mut combined = None;
        let mut right_agg = None;
        let mut right_created = false;
        let mut starts = HashSet::new();
        let mut previous = None;
        for (start, vt) in found {
            starts.insert(start);
            if start == 0 {
                if vt.timestamp < ts {
                    previous = Some(vt.timestamp);
                }
                combined = Some(vt);
            } else if start <= ts {
                right_agg = Some(vt.clone());
                self.update(ctx, r, start, Some(vt), close)?;
            } else if start == ts + 1 {
                right_created = true;
            }
        }
        if right_agg.is_none() {
            if let Some(c) = combined.as_ref().filter(|c| c.timestamp > ts) {
                right_agg = Some(c.clone());
            }
        }
        if let Some(ra) = right_agg.filter(|ra| !right_created && ra.timestamp > ts) {
            self.put_copy(ctx, r, ts + 1, ra)?;
        }
        if let Some(p) = previous {
            if !starts.contains(&(p + 1)) {
                self.update(ctx, r, p + 1, None, close)?;
            }
        }
        self.update(ctx, r, 0, combined, close)
    }

    /// A record at or after the first full window. The windows near it are visited from the
    /// latest start down, as Kafka Streams does over its (reverse-iterable) window stores, which
    /// fixes both the order of the updates it emits and which earlier window seeds the new ones.
    fn process_in_order(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: &Record<K, V>,
        close: i64,
    ) -> Result<()> {
        let ts = r.timestamp;
        let d = self.diff();
        let found = ctx
            .timestamped_window_store::<K, VA>(&self.store)?
            .fetch_range(&r.key, (ts - 2 * d).max(0), ts + 1)?;
        let mut starts = HashSet::new();
        let (mut left_agg, mut right_agg) = (None, None);
        let (mut left_created, mut right_created) = (false, false);
        let mut previous: Option<i64> = None;
        for (start, vt) in found.into_iter().rev() {
            starts.insert(start);
            let end = start + d;
            if start == ts + 1 {
                right_created = true;
            } else if end > ts {
                if right_agg.is_none() {
                    right_agg = Some(vt.clone());
                }
                self.update(ctx, r, start, Some(vt), close)?;
            } else if end == ts {
                left_created = true;
                let max_ts = vt.timestamp;
                self.update(ctx, r, start, Some(vt), close)?;
                if max_ts < ts {
                    previous = Some(max_ts);
                } else {
                    // A record at this very timestamp made this window: its windows all exist.
                    return Ok(());
                }
            } else {
                previous = Some(vt.timestamp);
                left_agg = Some(vt);
                break;
            }
        }
        if let Some(p) = previous {
            let prev_right = p + 1;
            if !starts.contains(&prev_right) && prev_right + d >= ts {
                self.update(ctx, r, prev_right, None, close)?;
            }
        }
        if !left_created {
            let seed = match (previous, left_agg) {
                (Some(p), Some(l)) if ts - d <= p => Some(ValueAndTimestamp {
                    value: l.value,
                    timestamp: ts,
                }),
                _ => None,
            };
            self.update(ctx, r, ts - d, seed, close)?;
        }
        if let Some(ra) = right_agg.filter(|ra| !right_created && ra.timestamp > ts) {
            self.put_copy(ctx, r, ts + 1, ra)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V> for SlidingWindowAggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace_ms;
        if ts + 1 + self.diff() <= close {
            drop_late(ctx, ts, (ts - self.diff(), ts), close);
            return Ok(());
        }
        if ts < self.diff() {
            self.process_early(ctx, &r, close)?;
        } else {
            self.process_in_order(ctx, &r, close)?;
        }
        let windows = self.windows;
        match &mut self.final_results {
            Some(f) => f.emit_sliding_windows::<K, VA>(ctx, &windows, close, &r.headers),
            None => Ok(()),
        }
    }
}

/// `windowed_by(SessionWindows)` aggregation into a session store.
pub(crate) struct SessionWindowAggregate<K, V, VA> {
    pub store: String,
    pub windows: SessionWindows,
    pub init: Option<Init<VA>>,
    pub agg: Aggregator<K, V, VA>,
    pub merger: Merger<K, VA>,
    pub observed: i64,
    /// `Some` under [`EmitStrategy::OnWindowClose`](crate::EmitStrategy).
    pub final_results: Option<FinalResults>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V> for SessionWindowAggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        // A session closes once stream time passes its end by the gap and the grace: until then
        // a record may still extend it (Kafka Streams since KAFKA-12718).
        let close = self.observed - self.windows.grace_ms - self.windows.gap_ms;
        // Final results carry the headers of the record that closed their windows.
        let headers = match self.final_results {
            Some(_) => r.headers.clone(),
            None => Headers::new(),
        };
        let (merged, found) = ctx.session_store::<K, VA>(&self.store)?.merge_candidates(
            &r.key,
            ts,
            self.windows.gap_ms,
        )?;
        if merged.end < close {
            drop_late(ctx, ts, (merged.start, merged.end), close);
        } else {
            self.aggregate(ctx, r, merged, found)?;
        }
        match &mut self.final_results {
            Some(f) => f.emit_sessions::<K, VA>(ctx, close, &headers),
            None => Ok(()),
        }
    }
}

impl<K: Data, V: Data, VA: Data> SessionWindowAggregate<K, V, VA> {
    /// Adds `r` to the sessions it merges (`found`, removed) into the session `merged`,
    /// forwarding the removals and the new session unless only final results are emitted.
    fn aggregate(
        &self,
        ctx: &mut ProcessorContext<'_>,
        r: Record<K, V>,
        merged: SessionWindow,
        found: Vec<(SessionWindow, VA)>,
    ) -> Result<()> {
        let final_only = self.final_results.is_some();
        let ts = r.timestamp;
        let mut agg: Option<VA> = self.init.as_ref().map(|i| i());
        for (_, v) in &found {
            agg = Some(match agg {
                Some(a) => (self.merger)(&r.key, a, v.clone()),
                None => v.clone(),
            });
        }
        if merged.start != ts || merged.end != ts {
            for (w, v) in found {
                ctx.session_store::<K, VA>(&self.store)?
                    .put(&r.key, w, None)?;
                if final_only {
                    continue;
                }
                ctx.forward(Record {
                    key: Windowed::new(r.key.clone(), w.start, w.end),
                    value: Change::new(None, Some(v)),
                    timestamp: w.end,
                    headers: r.headers.clone(),
                })?;
            }
        }
        let new = match agg {
            Some(a) => (self.agg)(&r.key, r.value, a),
            None => start_aggregate(ctx, &None, &self.agg, &r.key, r.value)?,
        };
        ctx.session_store::<K, VA>(&self.store)?
            .put(&r.key, merged, Some(&new))?;
        if final_only {
            return Ok(());
        }
        ctx.forward(Record {
            key: Windowed::new(r.key, merged.start, merged.end),
            value: Change::new(Some(new), None),
            timestamp: merged.end,
            headers: r.headers,
        })
    }
}
