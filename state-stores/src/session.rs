use crate::changelog_layout::{session_changelog_key, split_session_changelog_key};
use crate::window::{decode_ts, encode_key_prefix, encode_ts, split_key};
use crate::{Result, SegmentStorage, StateStore};

/// The time span of a session: both ends inclusive, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionWindow {
    /// First record time of the session.
    pub start: i64,
    /// Last record time of the session.
    pub end: i64,
}

/// One stored session: (key, window, value).
pub type KeyedSession = (Vec<u8>, SessionWindow, Vec<u8>);
/// The merged window and the sessions that merge into it.
pub type MergeCandidates = (SessionWindow, Vec<(SessionWindow, Vec<u8>)>);

/// A store of one aggregate per (key, session), with retention by session end.
pub trait SessionStore: StateStore {
    /// Sessions of `key` with `end >= earliest_session_end` and `start <= latest_session_start`, ordered by end.
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(SessionWindow, Vec<u8>)>>;
    /// The value of one exact session.
    fn fetch_session(&self, key: &[u8], window: SessionWindow) -> Result<Option<Vec<u8>>>;
    /// Writes (`Some`) or removes (`None`) a session; returns its changelog key (Kafka Streams'
    /// layout, see [`session_changelog_key`](crate::session_changelog_key)), or `None` when the
    /// session is past retention and was dropped.
    fn put(
        &mut self,
        key: &[u8],
        window: SessionWindow,
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>>;
    /// Every live session of every key, as (key, window, value).
    fn all(&self) -> Result<Vec<KeyedSession>>;
    /// Every key's sessions ending in `[earliest_end, latest_end]` still held (their segment not
    /// yet dropped), as (key, window, value).
    fn sessions_ending_between(
        &self,
        earliest_end: i64,
        latest_end: i64,
    ) -> Result<Vec<KeyedSession>> {
        let mut all = self.all()?;
        all.retain(|(_, w, _)| (earliest_end..=latest_end).contains(&w.end));
        Ok(all)
    }
    /// Applies changelog records (changelog key as `put` returns it, value or tombstone) without
    /// logging them.
    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()>;

    /// The sessions a record of `key` at `timestamp` merges with under inactivity `gap`, and the
    /// window covering the record and all of them. The caller combines their values, removes them
    /// and puts the merged session (this is how session aggregation grows and joins sessions).
    fn merge_candidates(&self, key: &[u8], timestamp: i64, gap: i64) -> Result<MergeCandidates> {
        let found = self.find_sessions(
            key,
            timestamp.saturating_sub(gap),
            timestamp.saturating_add(gap),
        )?;
        let mut merged = SessionWindow {
            start: timestamp,
            end: timestamp,
        };
        for (w, _) in &found {
            merged.start = merged.start.min(w.start);
            merged.end = merged.end.max(w.end);
        }
        Ok((merged, found))
    }
}

fn session_key(key: &[u8], w: SessionWindow) -> Vec<u8> {
    let mut k = encode_key_prefix(key, 16);
    k.extend_from_slice(&encode_ts(w.end));
    k.extend_from_slice(&encode_ts(w.start));
    k
}

/// A session store over any [`SegmentStorage`], segmented by session end.
pub struct SegmentedSessionStore<S: SegmentStorage> {
    name: String,
    storage: S,
    retention_ms: i64,
    segment_interval_ms: i64,
    observed_stream_time: i64,
}

impl<S: SegmentStorage> SegmentedSessionStore<S> {
    /// Wraps `storage`; sessions ending more than `retention_ms` before the newest end seen expire.
    pub fn new(name: impl Into<String>, storage: S, retention_ms: i64) -> Result<Self> {
        let name = name.into();
        let mut observed = i64::MIN;
        // The newest segment with data: a rolled-back transaction can leave an empty one.
        for id in storage.segment_ids().iter().rev() {
            if let Some(seg) = storage.segment(*id) {
                for entry in seg.all()? {
                    let (k, _) = entry?;
                    let (_, rest) = split_key(&name, &k, 16)?;
                    observed = observed.max(decode_ts(rest));
                }
            }
            if observed != i64::MIN {
                break;
            }
        }
        Ok(SegmentedSessionStore {
            name,
            storage,
            retention_ms,
            segment_interval_ms: (retention_ms / 2).max(60_000),
            observed_stream_time: observed,
        })
    }

    fn segment_id(&self, ts: i64) -> i64 {
        ts.div_euclid(self.segment_interval_ms)
    }

    fn min_live_time(&self) -> i64 {
        if self.observed_stream_time == i64::MIN {
            i64::MIN
        } else {
            self.observed_stream_time
                .saturating_sub(self.retention_ms)
                .saturating_add(1)
        }
    }

    fn write_raw(&mut self, store_key: &[u8], end: i64, value: Option<&[u8]>) -> Result<bool> {
        self.observed_stream_time = self.observed_stream_time.max(end);
        let min_live = self.min_live_time();
        let min_segment = self.segment_id(min_live);
        for id in self.storage.segment_ids() {
            if id < min_segment {
                self.storage.drop_segment(id)?;
            }
        }
        // Kafka Streams drops a write only when its whole segment expired; lookups by key skip
        // sessions past retention, but the final results of session aggregations still see
        // the write (see `sessions_ending_between`).
        if self.segment_id(end) < min_segment {
            return Ok(false);
        }
        let seg = self.storage.segment_mut(self.segment_id(end))?;
        match value {
            Some(v) => seg.put(store_key, v)?,
            None => {
                seg.delete(store_key)?;
            }
        }
        Ok(true)
    }
}

impl<S: SegmentStorage> StateStore for SegmentedSessionStore<S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> Result<()> {
        self.storage.flush()
    }
    fn close(&mut self) -> Result<()> {
        self.storage.close()
    }
    fn persistent(&self) -> bool {
        self.storage.persistent()
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        self.storage.commit(changelog_offset)
    }
    fn committed_offset(&self) -> Result<Option<i64>> {
        self.storage.committed_offset()
    }
    fn uncommitted_bytes(&self) -> usize {
        self.storage.uncommitted_bytes()
    }
}

impl<S: SegmentStorage> SessionStore for SegmentedSessionStore<S> {
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(SessionWindow, Vec<u8>)>> {
        let from_end = earliest_session_end.max(self.min_live_time());
        let lo = session_key(
            key,
            SessionWindow {
                start: i64::MIN,
                end: from_end,
            },
        );
        let hi = session_key(
            key,
            SessionWindow {
                start: i64::MAX,
                end: i64::MAX,
            },
        );
        let mut out = Vec::new();
        for id in self.storage.segment_ids() {
            if id < self.segment_id(from_end) {
                continue;
            }
            if let Some(seg) = self.storage.segment(id) {
                for entry in seg.range(Some(&lo), Some(&hi))? {
                    let (k, v) = entry?;
                    let (_, rest) = split_key(&self.name, &k, 16)?;
                    let w = SessionWindow {
                        end: decode_ts(rest),
                        start: decode_ts(&rest[8..]),
                    };
                    if w.start <= latest_session_start {
                        out.push((w, v));
                    }
                }
            }
        }
        Ok(out)
    }

    fn fetch_session(&self, key: &[u8], window: SessionWindow) -> Result<Option<Vec<u8>>> {
        if window.end < self.min_live_time() {
            return Ok(None);
        }
        match self.storage.segment(self.segment_id(window.end)) {
            Some(seg) => seg.get(&session_key(key, window)),
            None => Ok(None),
        }
    }

    fn put(
        &mut self,
        key: &[u8],
        window: SessionWindow,
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        let store_key = session_key(key, window);
        Ok(self
            .write_raw(&store_key, window.end, value)?
            .then(|| session_changelog_key(key, window)))
    }

    fn all(&self) -> Result<Vec<KeyedSession>> {
        let min_live = self.min_live_time();
        let mut out = Vec::new();
        for id in self.storage.segment_ids() {
            if let Some(seg) = self.storage.segment(id) {
                for entry in seg.all()? {
                    let (k, v) = entry?;
                    let (key, rest) = split_key(&self.name, &k, 16)?;
                    let w = SessionWindow {
                        end: decode_ts(rest),
                        start: decode_ts(&rest[8..]),
                    };
                    if w.end >= min_live {
                        out.push((key, w, v));
                    }
                }
            }
        }
        Ok(out)
    }

    fn sessions_ending_between(
        &self,
        earliest_end: i64,
        latest_end: i64,
    ) -> Result<Vec<KeyedSession>> {
        // Unlike key lookups, no cut at the retention limit: whatever the live segments hold is
        // returned, as Kafka Streams' time-ordered session store does for final results.
        let segments = self.segment_id(earliest_end)..=self.segment_id(latest_end);
        let mut out = Vec::new();
        for id in self.storage.segment_ids() {
            if !segments.contains(&id) {
                continue;
            }
            if let Some(seg) = self.storage.segment(id) {
                for entry in seg.all()? {
                    let (k, v) = entry?;
                    let (key, rest) = split_key(&self.name, &k, 16)?;
                    let w = SessionWindow {
                        end: decode_ts(rest),
                        start: decode_ts(&rest[8..]),
                    };
                    if (earliest_end..=latest_end).contains(&w.end) {
                        out.push((key, w, v));
                    }
                }
            }
        }
        Ok(out)
    }

    fn restore_batch(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (changelog_key, value) in records {
            let (key, window) = split_session_changelog_key(&self.name, changelog_key)?;
            self.write_raw(&session_key(key, window), window.end, value.as_deref())?;
        }
        Ok(())
    }
}
