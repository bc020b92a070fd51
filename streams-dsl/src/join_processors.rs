//! The processors joins compile to: stream-stream (windowed), stream-table, table-table and
//! stream-global-table. Joiners are wrapped as `Fn(Option<&L>, Option<&R>) -> Option<Out>`,
//! returning `None` for the combinations the join variant does not produce.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use streams_core::serdes::SerdeRef;
use streams_core::{Data, Processor, ProcessorContext, Record, Result, StreamsError, TaskId};

use crate::change::Change;
use crate::windows::JoinWindows;

/// Maps a stream record to the key of the global table row it joins.
pub(crate) type KeyMapper<K, V, GK> = Arc<dyn Fn(&K, &V) -> GK + Send + Sync>;

/// A joiner for one join variant (inner, left, outer).
pub(crate) type JoinFn<L, R, O> = Arc<dyn Fn(Option<&L>, Option<&R>) -> Option<O> + Send + Sync>;

/// A joiner of a stream-side join, which also gets the stream record's key (Kafka Streams'
/// `ValueJoinerWithKey`; the key-less joiners ignore it).
pub(crate) type KeyedJoinFn<K, L, R, O> =
    Arc<dyn Fn(&K, Option<&L>, Option<&R>) -> Option<O> + Send + Sync>;

/// Puts every record into its side's window store, then forwards it to the join
/// (Kafka Streams' `KStreamJoinWindow`).
pub(crate) struct JoinWindowProcessor<K, V> {
    pub store: String,
    pub _t: PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor<K, V> for JoinWindowProcessor<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        ctx.window_store::<K, V>(&self.store)?
            .put(&r.key, Some(&r.value), r.timestamp)?;
        ctx.forward(r)
    }
}

/// What both sides of a stream-stream join share.
pub(crate) struct StreamJoinSpec<K, V1, V2, VR> {
    pub joiner: KeyedJoinFn<K, V1, V2, VR>,
    pub left_outer: bool,
    pub right_outer: bool,
    pub windows: JoinWindows,
    pub left_store: String,
    pub right_store: String,
    /// Records that found no partner yet, keyed by `[time][side][key]`; emitted with a null
    /// partner once their window closes (left and outer joins).
    pub outer_store: Option<String>,
    pub key_serde: SerdeRef<K>,
    pub left_serde: SerdeRef<V1>,
    pub right_serde: SerdeRef<V2>,
    /// Per task, both sides: when to scan the outer store and where to start.
    pub min_time: Mutex<HashMap<TaskId, ScanTracker>>,
}

/// When a join's outer store is scanned for records whose window closed, and from where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanTracker {
    /// Kafka Streams' `TimeTracker.minTime` (in memory only): the scan waits until stream time
    /// passes it by the window after and the grace. It decides when unmatched records come
    /// out, not just how fast.
    min_time: i64,
    /// No record older than this waits: the last scan emitted every record whose window had
    /// closed, and a record is stored only while its window is open. The scan seeks here, past
    /// the deleted entries (on RocksDB, tombstones every scan would otherwise step over).
    waiting_from: i64,
}

impl Default for ScanTracker {
    fn default() -> Self {
        ScanTracker {
            min_time: i64::MAX,
            waiting_from: i64::MIN,
        }
    }
}

fn flip(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

fn ser<T: 'static>(ctx: &ProcessorContext<'_>, s: &SerdeRef<T>, v: &T) -> Result<Vec<u8>> {
    s.serialize(v)
        .map_err(|e| StreamsError::processor_failed(ctx.node_name(), e))?
        .ok_or_else(|| StreamsError::processing(ctx.node_name().to_string(), "null in a join"))
}

fn de<T: 'static>(ctx: &ProcessorContext<'_>, s: &SerdeRef<T>, b: &[u8]) -> Result<T> {
    s.deserialize(Some(b))
        .map_err(|e| StreamsError::processor_failed(ctx.node_name(), e))
}

/// Length-prefixed values, appended as unmatched records of one key and time arrive.
fn push_value(list: Option<Vec<u8>>, v: &[u8]) -> Vec<u8> {
    let mut out = list.unwrap_or_default();
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
    out
}

fn values(list: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = list;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + n {
            break;
        }
        out.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    out
}

impl<K: Data, V1: Data, V2: Data, VR: Data> StreamJoinSpec<K, V1, V2, VR> {
    fn outer_key(
        &self,
        ctx: &ProcessorContext<'_>,
        ts: i64,
        left: bool,
        key: &K,
    ) -> Result<Vec<u8>> {
        let mut k = flip(ts).to_vec();
        k.push(u8::from(left));
        k.extend_from_slice(&ser(ctx, &self.key_serde, key)?);
        Ok(k)
    }

    fn min_times(&self) -> MutexGuard<'_, HashMap<TaskId, ScanTracker>> {
        // Only ever holds plain numbers: a panic elsewhere cannot leave one half written.
        self.min_time.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A record of `task` at `ts` waits in the outer store.
    fn waiting_since(&self, task: TaskId, ts: i64) {
        let mut m = self.min_times();
        let t = m.entry(task).or_default();
        t.min_time = t.min_time.min(ts);
    }

    /// The task closed: its tracker goes (a new one starts from scratch, as after a restart).
    fn forget(&self, task: TaskId) {
        self.min_times().remove(&task);
    }

    /// The waiting records whose window closed by `now`, oldest first, and the minimum time the
    /// scan leaves behind, as Kafka's scan over the same store would: it visits records in time
    /// order, skips a side once one of its records is still in its window (every later one is
    /// too), and stops at the record after both sides were found open, leaving the minimum there;
    /// a scan that does not stop leaves it at the last record. Only what the scan emits is read
    /// (collected, since forwarding needs the context the store handle borrows): a join whose
    /// store holds one side stops at that side's first open record and takes the last record's
    /// time from the store's end, so the cost follows the records emitted, not those waiting.
    #[allow(clippy::type_complexity)]
    fn scan_expired(
        &self,
        ctx: &mut ProcessorContext<'_>,
        outer: &str,
        now: i64,
        waiting_from: i64,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, i64)> {
        let store = ctx.key_value_store::<Vec<u8>, Vec<u8>>(outer)?;
        let one_sided = !(self.left_outer && self.right_outer);
        let mut expired = Vec::new();
        // Per side (left, right): a record of it was still in its window.
        let mut open = [false, false];
        let from = flip(waiting_from).to_vec();
        for entry in store.range(Some(&from), None)? {
            let (k, v) = entry?;
            if k.len() < 9 {
                continue;
            }
            let ts = unflip(&k);
            if open == [true, true] {
                return Ok((expired, ts));
            }
            let left = k[8] == 1;
            let side = usize::from(!left);
            if open[side] {
                continue;
            }
            let look = if left {
                self.windows.after_ms
            } else {
                self.windows.before_ms
            };
            if ts + look + self.windows.grace_ms >= now {
                open[side] = true;
                if one_sided {
                    break;
                }
                // Kafka's iterator yields each value of a key's list on its own: a second value
                // of the record that opened both sides is where its scan stops.
                if open == [true, true] && values(&v).len() > 1 {
                    return Ok((expired, ts));
                }
                continue;
            }
            expired.push((k, v));
        }
        // Kafka's scan ran to the end: the minimum is the last record's time (none: nothing
        // waits).
        let last = match store.reverse_all()?.next() {
            Some(entry) => {
                let (k, _) = entry?;
                if k.len() < 9 {
                    i64::MAX
                } else {
                    unflip(&k)
                }
            }
            None => i64::MAX,
        };
        Ok((expired, last))
    }

    /// Emits the unmatched records whose join window closed (stream time past their time plus
    /// the window on the other side plus grace), oldest first, and forgets them. As Kafka
    /// Streams, it looks only once stream time passes the tracked minimum time by the window
    /// after and the grace, and the scan leaves that minimum at the last record it visited.
    fn emit_expired(&self, ctx: &mut ProcessorContext<'_>, now: i64, left: bool) -> Result<()> {
        let Some(outer) = &self.outer_store else {
            return Ok(());
        };
        let task = ctx.task_id();
        let tracker = self.min_times().get(&task).copied().unwrap_or_default();
        let min_time = tracker.min_time;
        // The window after a record of the processing side (the left's after is the right's
        // before).
        let after = if left {
            self.windows.after_ms
        } else {
            self.windows.before_ms
        };
        let after_and_grace = after + self.windows.grace_ms;
        // No minimum known (a fresh tracker, as after a restart, or an empty scan): Kafka's sum
        // overflows and it scans, which finds what a previous run left waiting.
        if min_time != i64::MAX && min_time + after_and_grace >= now {
            return Ok(());
        }
        let (expired, last_visited) = self.scan_expired(ctx, outer, now, tracker.waiting_from)?;
        let mut done = Vec::with_capacity(expired.len());
        for (k, v) in expired {
            let ts = unflip(&k);
            let left = k[8] == 1;
            let key = de(ctx, &self.key_serde, &k[9..])?;
            for raw in values(&v) {
                let out = if left {
                    let v1 = de(ctx, &self.left_serde, raw)?;
                    (self.joiner)(&key, Some(&v1), None)
                } else {
                    let v2 = de(ctx, &self.right_serde, raw)?;
                    (self.joiner)(&key, None, Some(&v2))
                };
                if let Some(out) = out {
                    ctx.forward(Record::new(key.clone(), out, ts))?;
                }
            }
            done.push(k);
        }
        // Every record due by `now` is emitted: what still waits is open for its side.
        let longest = self.windows.after_ms.max(self.windows.before_ms);
        self.min_times().insert(
            task,
            ScanTracker {
                min_time: last_visited,
                waiting_from: now.saturating_sub(longest.saturating_add(self.windows.grace_ms)),
            },
        );
        let mut store = ctx.key_value_store::<Vec<u8>, Vec<u8>>(outer)?;
        for k in done {
            store.remove(&k)?;
        }
        Ok(())
    }
}

/// One side of a stream-stream join: looks its record up in the other side's window store.
pub(crate) struct StreamJoinSide<K, V1, V2, VR, VT> {
    pub spec: Arc<StreamJoinSpec<K, V1, V2, VR>>,
    pub left: bool,
    pub _t: PhantomData<fn(VT)>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data, VT: Data> Processor<K, VT>
    for StreamJoinSide<K, V1, V2, VR, VT>
{
    fn close(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.spec.forget(ctx.task_id());
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, VT>) -> Result<()> {
        let spec = self.spec.clone();
        let ts = r.timestamp;
        // Stream time across both inputs (they share the task).
        let now = ctx.stream_time_ms();
        if ts == now {
            spec.emit_expired(ctx, now, self.left)?;
        }
        let (before, after, this_outer) = if self.left {
            (
                spec.windows.before_ms,
                spec.windows.after_ms,
                spec.left_outer,
            )
        } else {
            (
                spec.windows.after_ms,
                spec.windows.before_ms,
                spec.right_outer,
            )
        };
        let (from, to) = ((ts - before).max(0), (ts + after).max(0));
        // This record as the left or the right value (the other stays `None`, even when both
        // sides have the same type).
        let any: &dyn std::any::Any = &r.value;
        let (this1, this2) = if self.left {
            (any.downcast_ref::<V1>(), None)
        } else {
            (None, any.downcast_ref::<V2>())
        };
        if this1.is_none() && this2.is_none() {
            return Err(StreamsError::IllegalState("join side types".into()));
        }
        // The other side's records within the window, each joined with this one.
        let partners: Vec<(i64, Option<VR>)> = if self.left {
            ctx.window_store::<K, V2>(&spec.right_store)?
                .fetch_range(&r.key, from, to)?
                .into_iter()
                .map(|(t, v2)| (t, (spec.joiner)(&r.key, this1, Some(&v2))))
                .collect()
        } else {
            ctx.window_store::<K, V1>(&spec.left_store)?
                .fetch_range(&r.key, from, to)?
                .into_iter()
                .map(|(t, v1)| (t, (spec.joiner)(&r.key, Some(&v1), this2)))
                .collect()
        };
        let matched = !partners.is_empty();
        for (ots, out) in partners {
            if let Some(outer) = &spec.outer_store {
                // The partner found a match: it will not be emitted as unmatched.
                let k = spec.outer_key(ctx, ots, !self.left, &r.key)?;
                ctx.key_value_store::<Vec<u8>, Vec<u8>>(outer)?.remove(&k)?;
            }
            if let Some(out) = out {
                ctx.forward(Record {
                    key: r.key.clone(),
                    value: out,
                    timestamp: ts.max(ots),
                    headers: r.headers.clone(),
                })?;
            }
        }
        if matched || !this_outer {
            return Ok(());
        }
        match &spec.outer_store {
            // Not yet outside the window of every future partner: wait in the outer store.
            Some(outer) if to >= now => {
                spec.waiting_since(ctx.task_id(), ts);
                let k = spec.outer_key(ctx, ts, self.left, &r.key)?;
                let raw = match (this1, this2) {
                    (Some(v1), _) => ser(ctx, &spec.left_serde, v1)?,
                    (_, Some(v2)) => ser(ctx, &spec.right_serde, v2)?,
                    _ => return Err(StreamsError::IllegalState("join side types".into())),
                };
                let mut store = ctx.key_value_store::<Vec<u8>, Vec<u8>>(outer)?;
                let list = store.get(&k)?;
                store.put(&k, &push_value(list, &raw))?;
                Ok(())
            }
            _ => match (spec.joiner)(&r.key, this1, this2) {
                Some(out) => ctx.forward(Record {
                    key: r.key,
                    value: out,
                    timestamp: ts,
                    headers: r.headers,
                }),
                None => Ok(()),
            },
        }
    }
}

/// A stream record joined with a table row: KStream-KTable (the row of the record's key; table
/// updates produce nothing) and KStream-GlobalKTable (the row of a key mapped from the record).
pub(crate) struct StreamLookupJoin<K, V, GK, GV, VR> {
    pub store: String,
    pub key_mapper: KeyMapper<K, V, GK>,
    pub joiner: KeyedJoinFn<K, V, GV, VR>,
    /// The table is versioned: a record joins the value its key had at the record's time
    /// (KIP-914), not the latest.
    pub as_of: bool,
    pub _t: PhantomData<fn(GK, GV)>,
}

impl<K: Data, V: Data, GK: Data, GV: Data, VR: Data> StreamLookupJoin<K, V, GK, GV, VR> {
    /// Joins `r` with the table and forwards the result, if the join variant produces one.
    pub fn join(&self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let gk = (self.key_mapper)(&r.key, &r.value);
        let t = if self.as_of {
            ctx.versioned_key_value_store::<GK, GV>(&self.store)?
                .get_as_of(&gk, r.timestamp)?
                .map(|v| v.value)
        } else {
            ctx.timestamped_key_value_store::<GK, GV>(&self.store)?
                .get(&gk)?
                .map(|v| v.value)
        };
        match (self.joiner)(&r.key, Some(&r.value), t.as_ref()) {
            Some(out) => ctx.forward(Record {
                key: r.key,
                value: out,
                timestamp: r.timestamp,
                headers: r.headers,
            }),
            None => Ok(()),
        }
    }
}

impl<K: Data, V: Data, GK: Data, GV: Data, VR: Data> Processor<K, V>
    for StreamLookupJoin<K, V, GK, GV, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        self.join(ctx, r)
    }
}

/// One side of a KTable-KTable join: on a change of this table, joins the old and the new value
/// with the other table's current value (Kafka Streams' `KTableKTable*Join` processors).
pub(crate) struct TableJoinSide<K, V1, V2, VR, VT> {
    pub other_store: String,
    pub joiner: JoinFn<V1, V2, VR>,
    pub left: bool,
    /// An update of this side yields a result only while the other side has a row (both sides
    /// of an inner join, the right side of a left join).
    pub needs_other: bool,
    /// This side is a versioned table: its out-of-order updates (not the key's latest) join
    /// nothing and count as dropped, as in Kafka Streams (KIP-914).
    pub versioned: bool,
    pub _t: PhantomData<fn(K, VT)>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data, VT: Data> Processor<K, Change<VT>>
    for TableJoinSide<K, V1, V2, VR, VT>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<VT>>) -> Result<()> {
        let is_latest = r.value.is_latest;
        if self.versioned && !is_latest {
            ctx.record_dropped();
            return Ok(());
        }
        let c: &dyn std::any::Any = &r.value;
        let (had_new, had_old) = (r.value.new.is_some(), r.value.old.is_some());
        let (new, old, other_ts) = if self.left {
            let c = c
                .downcast_ref::<Change<V1>>()
                .ok_or_else(|| StreamsError::IllegalState("table join side types".into()))?;
            let other = ctx
                .timestamped_key_value_store::<K, V2>(&self.other_store)?
                .get(&r.key)?;
            let o = other.as_ref().map(|o| &o.value);
            (
                (self.joiner)(c.new.as_ref(), o),
                (self.joiner)(c.old.as_ref(), o),
                other.map(|o| o.timestamp),
            )
        } else {
            let c = c
                .downcast_ref::<Change<V2>>()
                .ok_or_else(|| StreamsError::IllegalState("table join side types".into()))?;
            let other = ctx
                .timestamped_key_value_store::<K, V1>(&self.other_store)?
                .get(&r.key)?;
            let o = other.as_ref().map(|o| &o.value);
            (
                (self.joiner)(o, c.new.as_ref()),
                (self.joiner)(o, c.old.as_ref()),
                other.map(|o| o.timestamp),
            )
        };
        // As Kafka Streams: with the other side absent, nothing for a side that needs it, and
        // nothing for an update that carried no row; otherwise the result is forwarded, a
        // deletion included (the downstream table drops its row).
        if other_ts.is_none() && (self.needs_other || (!had_new && !had_old)) {
            return Ok(());
        }
        ctx.forward(Record {
            key: r.key,
            value: Change {
                new,
                old,
                is_latest,
            },
            timestamp: other_ts.map_or(r.timestamp, |t| t.max(r.timestamp)),
            headers: r.headers,
        })
    }
}

/// Writes a table's changes into a timestamped store (so joins can look it up) and forwards them.
pub(crate) struct TableMaterialize<K, V> {
    pub store: String,
    pub _t: PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor<K, Change<V>> for TableMaterialize<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        // The store mirrors the latest values: an out-of-order update of a versioned table
        // upstream passes by (the join below skips it) without changing it.
        if r.value.is_latest {
            let mut store = ctx.timestamped_key_value_store::<K, V>(&self.store)?;
            match &r.value.new {
                Some(v) => store.put(&r.key, v, r.timestamp)?,
                None => {
                    store.delete(&r.key)?;
                }
            }
        }
        ctx.forward(r)
    }
}
