//! Interactive queries v2 (Kafka Streams' `org.apache.kafka.streams.query`, KIP-796): a typed
//! query against one named store, answered per local partition, with partition pinning, active
//! or also standby (stale) copies, and position bounds.
//!
//! ```no_run
//! # use streams_core::iq::{KeyQuery, StateQueryRequest};
//! # fn f(streams: &streams_core::KafkaStreams) -> streams_core::Result<()> {
//! let request = StateQueryRequest::in_store("counts")
//!     .with_query(KeyQuery::<String, i64>::with_key("kafka".to_string()))
//!     .require_active();
//! for (partition, result) in streams.query(request)?.partition_results() {
//!     println!("{partition}: {:?}", result.result());
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::query;
use crate::record::Data;
use crate::store::{RangePage, SessionWindow, ValueAndTimestamp, VersionedRecord};
use crate::task::StoreSlot;
use crate::{Result, StreamsError};

/// How many entries a [`KeyValueIterator`] reads from its store per visit.
const RANGE_PAGE: usize = 1000;

/// What a store reflects of its task's inputs: per topic and partition, the offset of the last
/// record processed (active copies) or the next changelog offset applied (standby copies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position(BTreeMap<String, BTreeMap<i32, i64>>);

impl Position {
    /// No offsets.
    pub fn empty() -> Self {
        Self::default()
    }

    /// This position with `offset` for `topic`-`partition`.
    pub fn with_component(mut self, topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        self.0
            .entry(topic.into())
            .or_default()
            .insert(partition, offset);
        self
    }

    /// A position of (topic, partition) -> offset pairs.
    pub(crate) fn of<'a, T: AsRef<str> + 'a>(
        offsets: impl IntoIterator<Item = (&'a (T, i32), &'a i64)>,
    ) -> Self {
        offsets
            .into_iter()
            .fold(Position::empty(), |p, ((topic, part), o)| {
                p.with_component(topic.as_ref().to_string(), *part, *o)
            })
    }

    /// The offset for `topic`-`partition`, if the position has one.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic).and_then(|p| p.get(&partition)).copied()
    }

    /// Whether this position (of a store of partition `partition`) has reached every offset
    /// `bound` gives for that partition number (as Kafka Streams compares them).
    fn reaches(&self, bound: &Position, partition: i32) -> bool {
        bound
            .0
            .iter()
            .all(|(topic, parts)| match parts.get(&partition) {
                None => true,
                Some(want) => self
                    .offset(topic, partition)
                    .is_some_and(|have| have >= *want),
            })
    }
}

/// How far one local copy of a store is behind its changelog (Kafka Streams' `LagInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagInfo {
    /// The next changelog offset the copy would apply (for a running active copy: the end).
    pub current_offset_position: i64,
    /// The changelog's end offset.
    pub end_offset_position: i64,
    /// `end - current`, at least 0.
    pub offset_lag: i64,
}

impl LagInfo {
    pub(crate) fn new(current: i64, end: i64) -> Self {
        LagInfo {
            current_offset_position: current,
            end_offset_position: end,
            offset_lag: (end - current).max(0),
        }
    }
}

/// How current an answer must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PositionBound {
    /// Any position.
    #[default]
    Unbounded,
    /// At least this position.
    At(Position),
}

/// Why a partition could not answer (Kafka Streams' `FailureReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// Only a standby copy is here and the request required the active one.
    NotActive,
    /// The store has not reached the request's position bound.
    NotUpToBound,
    /// The requested partition is not held by this instance.
    NotPresent,
    /// The store failed to answer (e.g. types that do not match the store).
    StoreException,
}

/// One partition's answer.
#[derive(Debug, Clone)]
pub struct QueryResult<R> {
    result: std::result::Result<R, (FailureReason, String)>,
    position: Position,
}

impl<R> QueryResult<R> {
    fn failure(reason: FailureReason, message: String, position: Position) -> Self {
        QueryResult {
            result: Err((reason, message)),
            position,
        }
    }

    /// Whether the partition answered.
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }

    /// The answer, if the partition answered.
    pub fn result(&self) -> Option<&R> {
        self.result.as_ref().ok()
    }

    /// The answer, or why there is none.
    pub fn into_result(self) -> std::result::Result<R, (FailureReason, String)> {
        self.result
    }

    /// Why the partition did not answer, and a message.
    pub fn failure_reason(&self) -> Option<(FailureReason, &str)> {
        self.result.as_ref().err().map(|(r, m)| (*r, m.as_str()))
    }

    /// The position of the store that answered (or failed).
    pub fn position(&self) -> &Position {
        &self.position
    }
}

/// The answers of every queried partition (or of the global store).
#[derive(Debug, Clone)]
pub struct StateQueryResult<R> {
    partitions: BTreeMap<i32, QueryResult<R>>,
    global: Option<QueryResult<R>>,
}

impl<R> StateQueryResult<R> {
    /// Per partition, its answer.
    pub fn partition_results(&self) -> &BTreeMap<i32, QueryResult<R>> {
        &self.partitions
    }

    /// The one partition's answer, when exactly one answered (e.g. a request pinned to the
    /// partition of its key).
    pub fn only_partition_result(&self) -> Option<&QueryResult<R>> {
        (self.partitions.len() == 1)
            .then(|| self.partitions.values().next())
            .flatten()
    }

    /// The answer of a global store.
    pub fn global_result(&self) -> Option<&QueryResult<R>> {
        self.global.as_ref()
    }

    /// Per partition, its answer, owned: iterators ([`RangeQuery`]) are consumed from here.
    pub fn into_partition_results(self) -> BTreeMap<i32, QueryResult<R>> {
        self.partitions
    }

    /// The answer of a global store, owned.
    pub fn into_global_result(self) -> Option<QueryResult<R>> {
        self.global
    }
}

/// Finds the queried copy of a store again (the same partition, the active or the standby
/// copy as when it answered) and runs a function on it; an error once that copy is gone.
pub(crate) type Reopen =
    Arc<dyn Fn(&mut dyn FnMut(&mut StoreSlot) -> Result<()>) -> Result<()> + Send + Sync>;

/// The store a query runs against, handed to [`StateQuery::run`].
pub struct QueryTarget<'a> {
    pub(crate) slot: &'a mut StoreSlot,
    pub(crate) reopen: Reopen,
}

/// Reads the page of a range past a serialized key.
type NextPage<K, V> = Box<dyn FnMut(&[u8]) -> Result<RangePage<K, V>> + Send>;

/// The entries of a [`RangeQuery`], ascending by serialized key, read from the store a page of
/// 1,000 at a time as the iterator advances (Kafka Streams' `KeyValueIterator`): a range of
/// any size costs a page of memory, and no lock is held between pages, so the stream thread
/// goes on processing. Each page reads the store as it is then: an entry written past the last
/// key returned shows up, as in Kafka Streams, whose iterator reads the record cache as it
/// goes. Once the task moves to another instance or thread, the next page is an error
/// (Kafka Streams' `InvalidStateStoreException`) and the iteration ends.
pub struct KeyValueIterator<K, V> {
    page: std::vec::IntoIter<(K, V)>,
    /// The serialized key of the last entry read, while more entries follow.
    resume_after: Option<Vec<u8>>,
    next_page: NextPage<K, V>,
}

impl<K, V> Iterator for KeyValueIterator<K, V> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.page.next() {
            return Some(Ok(e));
        }
        let after = self.resume_after.take()?;
        match (self.next_page)(&after) {
            Ok((entries, resume_after)) => {
                self.page = entries.into_iter();
                self.resume_after = resume_after;
                self.page.next().map(Ok)
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl<K, V> std::fmt::Debug for KeyValueIterator<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueIterator")
            .field("buffered", &self.page.len())
            .field("more", &self.resume_after.is_some())
            .finish()
    }
}

/// A query one store answers (Kafka Streams' `Query<R>`).
pub trait StateQuery: Send + Sync {
    /// The answer's type.
    type Output;
    /// Answers from `target`.
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output>;
}

/// The value of a key in a key-value store (Kafka Streams' `KeyQuery`).
pub struct KeyQuery<K, V> {
    key: K,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> KeyQuery<K, V> {
    /// The value of `key`.
    pub fn with_key(key: K) -> Self {
        KeyQuery {
            key,
            _v: PhantomData,
        }
    }
}

impl<K: Data, V: Data> StateQuery for KeyQuery<K, V> {
    type Output = Option<V>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Option<V>> {
        Ok(query::kv_get::<K, V>(target.slot, &self.key)?.map(|v| v.value))
    }
}

/// The value and timestamp of a key in a timestamped key-value store (Kafka Streams'
/// `TimestampedKeyQuery`).
pub struct TimestampedKeyQuery<K, V> {
    key: K,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> TimestampedKeyQuery<K, V> {
    /// The value and timestamp of `key`.
    pub fn with_key(key: K) -> Self {
        TimestampedKeyQuery {
            key,
            _v: PhantomData,
        }
    }
}

impl<K: Data, V: Data> StateQuery for TimestampedKeyQuery<K, V> {
    type Output = Option<ValueAndTimestamp<V>>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        query::kv_get::<K, V>(target.slot, &self.key)
    }
}

/// Entries of a key range of a key-value store, by serialized key (Kafka Streams' `RangeQuery`).
pub struct RangeQuery<K, V> {
    from: Option<K>,
    to: Option<K>,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> RangeQuery<K, V> {
    /// Keys in `[from, to]`.
    pub fn with_range(from: K, to: K) -> Self {
        RangeQuery {
            from: Some(from),
            to: Some(to),
            _v: PhantomData,
        }
    }
    /// Keys from `from` on.
    pub fn with_lower_bound(from: K) -> Self {
        RangeQuery {
            from: Some(from),
            to: None,
            _v: PhantomData,
        }
    }
    /// Keys up to `to`.
    pub fn with_upper_bound(to: K) -> Self {
        RangeQuery {
            from: None,
            to: Some(to),
            _v: PhantomData,
        }
    }
    /// Every key.
    pub fn with_no_bounds() -> Self {
        RangeQuery {
            from: None,
            to: None,
            _v: PhantomData,
        }
    }
}

impl<K: Data, V: Data> StateQuery for RangeQuery<K, V> {
    type Output = KeyValueIterator<K, V>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        let (from, to) = (self.from.clone(), self.to.clone());
        let (first, resume_after) = query::kv_range_page::<K, V>(
            target.slot,
            from.as_ref(),
            to.as_ref(),
            None,
            RANGE_PAGE,
        )?;
        let reopen = target.reopen.clone();
        let next_page = move |after: &[u8]| {
            let mut page = None;
            reopen(&mut |slot| {
                page = Some(query::kv_range_page::<K, V>(
                    slot,
                    from.as_ref(),
                    to.as_ref(),
                    Some(after),
                    RANGE_PAGE,
                )?);
                Ok(())
            })?;
            page.ok_or_else(|| StreamsError::IllegalState("the store read no page".into()))
        };
        Ok(KeyValueIterator {
            page: first.into_iter(),
            resume_after,
            next_page: Box::new(next_page),
        })
    }
}

/// The values of one key in windows starting in a time range (Kafka Streams'
/// `WindowKeyQuery`): (window start, value).
pub struct WindowKeyQuery<K, V> {
    key: K,
    from: i64,
    to: i64,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> WindowKeyQuery<K, V> {
    /// The windows of `key` starting in `[from, to]`.
    pub fn with_key_and_window_start_range(key: K, from: i64, to: i64) -> Self {
        WindowKeyQuery {
            key,
            from,
            to,
            _v: PhantomData,
        }
    }
}

impl<K: Data, V: Data> StateQuery for WindowKeyQuery<K, V> {
    type Output = Vec<(i64, V)>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        Ok(
            query::window_fetch::<K, V>(target.slot, Some(&self.key), self.from, self.to)?
                .into_iter()
                .map(|(_, start, v)| (start, v.value))
                .collect(),
        )
    }
}

/// Every key's values in windows starting in a time range (Kafka Streams' `WindowRangeQuery`
/// over a window store): (key, window start, value).
pub struct WindowRangeQuery<K, V> {
    from: i64,
    to: i64,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> WindowRangeQuery<K, V> {
    /// Windows starting in `[from, to]`.
    pub fn with_window_start_range(from: i64, to: i64) -> Self {
        WindowRangeQuery {
            from,
            to,
            _t: PhantomData,
        }
    }
}

impl<K: Data, V: Data> StateQuery for WindowRangeQuery<K, V> {
    type Output = Vec<(K, i64, V)>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        Ok(
            query::window_fetch::<K, V>(target.slot, None, self.from, self.to)?
                .into_iter()
                .map(|(k, start, v)| (k, start, v.value))
                .collect(),
        )
    }
}

/// The sessions of one key in a session store (Kafka Streams' `WindowRangeQuery.withKey` over a
/// session store): (session window, value).
pub struct SessionQuery<K, V> {
    key: K,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> SessionQuery<K, V> {
    /// The sessions of `key`.
    pub fn with_key(key: K) -> Self {
        SessionQuery {
            key,
            _v: PhantomData,
        }
    }
}

impl<K: Data + PartialEq, V: Data> StateQuery for SessionQuery<K, V> {
    type Output = Vec<(SessionWindow, V)>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        Ok(query::sessions::<K, V>(target.slot)?
            .into_iter()
            .filter(|(k, _, _)| *k == self.key)
            .map(|(_, w, v)| (w, v))
            .collect())
    }
}

/// The value of a key in a versioned store, latest or as of a time (Kafka Streams'
/// `VersionedKeyQuery`).
pub struct VersionedKeyQuery<K, V> {
    key: K,
    as_of: Option<i64>,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> VersionedKeyQuery<K, V> {
    /// The latest value of `key`.
    pub fn with_key(key: K) -> Self {
        VersionedKeyQuery {
            key,
            as_of: None,
            _v: PhantomData,
        }
    }
    /// The value the key had at `timestamp` instead.
    pub fn as_of(mut self, timestamp: i64) -> Self {
        self.as_of = Some(timestamp);
        self
    }
}

impl<K: Data, V: Data> StateQuery for VersionedKeyQuery<K, V> {
    type Output = Option<VersionedRecord<V>>;
    fn run(&self, target: &mut QueryTarget<'_>) -> Result<Self::Output> {
        query::versioned_get::<K, V>(target.slot, &self.key, self.as_of)
    }
}

/// A query against the store `store` (Kafka Streams' `StateQueryRequest`).
pub struct StateQueryRequest<Q> {
    pub(crate) store: String,
    pub(crate) query: Q,
    pub(crate) partitions: Option<BTreeSet<i32>>,
    pub(crate) require_active: bool,
    pub(crate) bound: PositionBound,
}

/// A request naming its store, waiting for its query.
pub struct InStore(String);

impl StateQueryRequest<()> {
    /// A request against the store `store`.
    pub fn in_store(store: impl Into<String>) -> InStore {
        InStore(store.into())
    }
}

impl InStore {
    /// The query to run: every local partition, active or standby, any position.
    pub fn with_query<Q: StateQuery>(self, query: Q) -> StateQueryRequest<Q> {
        StateQueryRequest {
            store: self.0,
            query,
            partitions: None,
            require_active: false,
            bound: PositionBound::Unbounded,
        }
    }
}

impl<Q: StateQuery> StateQueryRequest<Q> {
    /// Only these partitions (e.g. the one of a key, from `query_metadata_for_key`); a pinned
    /// partition this instance does not hold answers [`FailureReason::NotPresent`].
    pub fn with_partitions(mut self, partitions: impl IntoIterator<Item = i32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// Every local partition (the default).
    pub fn with_all_partitions(mut self) -> Self {
        self.partitions = None;
        self
    }

    /// Only active copies answer; a partition held here as a standby copy answers
    /// [`FailureReason::NotActive`].
    pub fn require_active(mut self) -> Self {
        self.require_active = true;
        self
    }

    /// Only stores at least at `bound` answer; the others answer
    /// [`FailureReason::NotUpToBound`].
    pub fn with_position_bound(mut self, bound: PositionBound) -> Self {
        self.bound = bound;
        self
    }

    /// The store's name.
    pub fn store(&self) -> &str {
        &self.store
    }
}

/// One local copy of the queried store.
pub(crate) struct LocalCopy<'a> {
    pub partition: i32,
    pub active: bool,
    pub position: Position,
    pub slot: &'a mut StoreSlot,
    /// Finds this copy again, for the next page of an iterator.
    pub reopen: Reopen,
}

/// Collects the answers of the local copies of a request's store.
pub(crate) struct Answers<'q, Q: StateQuery> {
    request: &'q StateQueryRequest<Q>,
    partitions: BTreeMap<i32, QueryResult<Q::Output>>,
}

impl<'q, Q: StateQuery> Answers<'q, Q> {
    pub fn new(request: &'q StateQueryRequest<Q>) -> Self {
        Answers {
            request,
            partitions: BTreeMap::new(),
        }
    }

    fn wanted(&self, partition: i32) -> bool {
        self.request
            .partitions
            .as_ref()
            .is_none_or(|p| p.contains(&partition))
    }

    /// Answers from one local copy (an active copy's answer replaces a standby's).
    pub fn answer(&mut self, copy: LocalCopy<'_>) {
        let partition = copy.partition;
        if !self.wanted(partition) {
            return;
        }
        if !copy.active
            && self
                .partitions
                .get(&partition)
                .is_some_and(|r| r.is_success())
        {
            return;
        }
        let result = if !copy.active && self.request.require_active {
            QueryResult::failure(
                FailureReason::NotActive,
                format!(
                    "partition {} of `{}` is a standby copy here; the request requires the active one",
                    copy.partition, self.request.store
                ),
                copy.position,
            )
        } else if let PositionBound::At(bound) = &self.request.bound {
            if copy.position.reaches(bound, copy.partition) {
                self.run(copy)
            } else {
                QueryResult::failure(
                    FailureReason::NotUpToBound,
                    format!(
                        "partition {} of `{}` is at {:?}, short of the bound {bound:?}",
                        copy.partition, self.request.store, copy.position
                    ),
                    copy.position,
                )
            }
        } else {
            self.run(copy)
        };
        self.partitions.insert(partition, result);
    }

    fn run(&self, copy: LocalCopy<'_>) -> QueryResult<Q::Output> {
        self.execute(copy.slot, copy.reopen, copy.position)
    }

    /// Runs the query on `slot`; a store error fails this answer only.
    fn execute(
        &self,
        slot: &mut StoreSlot,
        reopen: Reopen,
        position: Position,
    ) -> QueryResult<Q::Output> {
        match self.request.query.run(&mut QueryTarget { slot, reopen }) {
            Ok(r) => QueryResult {
                result: Ok(r),
                position,
            },
            Err(e) => QueryResult::failure(FailureReason::StoreException, e.to_string(), position),
        }
    }

    /// The result: pinned partitions nobody here holds answer [`FailureReason::NotPresent`].
    pub fn finish(mut self) -> StateQueryResult<Q::Output> {
        if let Some(pinned) = &self.request.partitions {
            for p in pinned {
                self.partitions.entry(*p).or_insert_with(|| {
                    QueryResult::failure(
                        FailureReason::NotPresent,
                        format!(
                            "partition {p} of `{}` is not held by this instance",
                            self.request.store
                        ),
                        Position::empty(),
                    )
                });
            }
        }
        StateQueryResult {
            partitions: self.partitions,
            global: None,
        }
    }

    /// The result of a global store's query.
    pub fn global(self, slot: &mut StoreSlot, reopen: Reopen) -> StateQueryResult<Q::Output> {
        StateQueryResult {
            partitions: BTreeMap::new(),
            global: Some(self.execute(slot, reopen, Position::empty())),
        }
    }
}
