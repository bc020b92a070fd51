//! Final results of windowed aggregations (time, sliding and session windows) under
//! [`EmitStrategy::OnWindowClose`](crate::EmitStrategy) (KIP-825): updates are not forwarded;
//! when stream time closes windows, their aggregates are read from the aggregation's store
//! (window start, then serialized key order, as Kafka Streams' time-ordered store) and each is
//! forwarded once. The close time of the last emission is the task's processor metadata under
//! the store's name, as in Kafka Streams, so it commits with the input offsets: a restarted or
//! migrated task (or one taken over from a Java application) neither repeats nor skips a window.
//!
//! Kafka Streams also throttles these emissions by wall clock (an internal setting, 1 s by
//! default); here they happen on the record that closes a window, as with that interval at 0:
//! the same results, each as soon as it is final.

use streams_core::{Data, Headers, ProcessorContext, Record, Result};

use crate::change::Change;
use crate::windows::{SlidingWindows, TimeWindows, Windowed};

/// The emission state of one windowed aggregation.
pub(crate) struct FinalResults {
    store: String,
    /// The close time last emitted up to; `None` until read from the processor metadata.
    last_close: Option<Option<i64>>,
}

impl FinalResults {
    pub fn new(store: &str) -> Self {
        FinalResults {
            store: store.to_string(),
            last_close: None,
        }
    }

    fn last_close(&mut self, ctx: &ProcessorContext<'_>) -> Option<i64> {
        *self
            .last_close
            .get_or_insert_with(|| ctx.processor_metadata(&self.store))
    }

    /// Emits the time windows (`[start, start + size)`) that closed since the last emission:
    /// those starting at or before `close - size`.
    pub fn emit_time_windows<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        windows: &TimeWindows,
        close: i64,
        headers: &Headers,
    ) -> Result<()> {
        let last = self.last_close(ctx);
        if last.is_some_and(|l| l >= close) {
            return Ok(());
        }
        let upper = close - windows.size_ms;
        if upper < 0 {
            return Ok(());
        }
        let lower = last.map_or(0, |l| (l - windows.size_ms).max(0) + 1);
        // No window boundary crossed since the last emission: nothing new closed.
        if last.is_some() && windows.window_starts(upper) == windows.window_starts(lower - 1) {
            return Ok(());
        }
        self.emit::<K, VA>(ctx, close, (lower, upper), windows.size_ms, headers)
    }

    /// Emits the sliding windows (`[start, start + difference]`) that closed since the last
    /// emission: those ending before `close`.
    pub fn emit_sliding_windows<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        windows: &SlidingWindows,
        close: i64,
        headers: &Headers,
    ) -> Result<()> {
        let last = self.last_close(ctx);
        if last.is_some_and(|l| l >= close) {
            return Ok(());
        }
        let d = windows.time_difference_ms;
        let upper = close - d - 1;
        if upper < 0 {
            return Ok(());
        }
        let lower = last.map_or(0, |l| (l - d).max(0));
        self.emit::<K, VA>(ctx, close, (lower, upper), d, headers)
    }

    /// Emits the sessions that closed since the last emission: those ending before `close`
    /// (stream time minus gap and grace), each stamped with its end.
    pub fn emit_sessions<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        close: i64,
        headers: &Headers,
    ) -> Result<()> {
        let last = self.last_close(ctx);
        if last.is_some_and(|l| l >= close) {
            return Ok(());
        }
        let upper = close - 1;
        if upper < 0 {
            return Ok(());
        }
        let lower = last.map_or(0, |l| l.max(0));
        let closed = ctx
            .session_store::<K, VA>(&self.store)?
            .sessions_ending_between(lower, upper)?;
        for (key, w, agg) in closed {
            ctx.forward(Record {
                key: Windowed::new(key, w.start, w.end),
                value: Change::new(Some(agg), None::<VA>),
                timestamp: w.end,
                headers: headers.clone(),
            })?;
        }
        self.emitted(ctx, close);
        Ok(())
    }

    fn emitted(&mut self, ctx: &mut ProcessorContext<'_>, close: i64) {
        self.last_close = Some(Some(close));
        ctx.set_processor_metadata(&self.store, close);
    }

    /// Forwards every window starting in `[lower, upper]` and records `close` as emitted.
    fn emit<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        close: i64,
        (lower, upper): (i64, i64),
        size: i64,
        headers: &Headers,
    ) -> Result<()> {
        let closed = ctx
            .timestamped_window_store::<K, VA>(&self.store)?
            .fetch_all_by_time(lower, upper)?;
        for (key, start, agg) in closed {
            ctx.forward(Record {
                key: Windowed::new(key, start, start + size),
                value: Change::new(Some(agg.value), None::<VA>),
                timestamp: agg.timestamp,
                headers: headers.clone(),
            })?;
        }
        self.emitted(ctx, close);
        Ok(())
    }
}
