//! Restores task stores from their changelog partitions before the tasks process anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Offset;
use state_stores::ChangelogRecord;

use crate::config::StreamsConfig;
use crate::runtime::clients::config::{
    fetch_watermarks_fresh, unjoined_consumer, ClientKind, TracingContext,
};
use crate::runtime::clients::manual_assignment::ManualAssignment;
use crate::runtime::clients::retry::RetryWindow;
use crate::runtime::state::StateRestoreListener;
use crate::task::TaskId;
use crate::{Result, StreamsError};

const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);

/// Changelog records as the stores restore them: key, value or tombstone, record timestamp.
pub(crate) type RestoreBatch = Vec<ChangelogRecord>;
/// Applies a batch of a store's changelog records; the last argument is the offset after them.
pub(crate) type ApplyBatch<'a> = dyn FnMut(TaskId, &str, RestoreBatch, i64) -> Result<()> + 'a;

/// The changelog record `m` (whose key is `key`) carries.
pub(crate) fn changelog_record(m: &BorrowedMessage<'_>, key: &[u8]) -> ChangelogRecord {
    ChangelogRecord {
        key: key.to_vec(),
        value: m.payload().map(<[u8]>::to_vec),
        // A record without a timestamp (-1 in Kafka) restores with -1, as in Kafka Streams.
        timestamp: m.timestamp().to_millis().unwrap_or(-1),
    }
}

/// One changelog partition being restored.
#[derive(Debug)]
struct Restoring {
    task: TaskId,
    store: String,
    /// Next offset to read.
    position: i64,
    /// Restore until the position reaches this (the end offset when restoration started).
    end: i64,
    restored: u64,
}

/// A changelog partition that finished restoring, with the offset to checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restored {
    pub task: TaskId,
    pub store: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset to read: everything before it is in the store.
    pub next_offset: i64,
}

/// Kafka Streams' `StoreChangelogReader`: one restore consumer per thread, no consumer group.
pub(crate) struct ChangelogReader {
    consumer: BaseConsumer<TracingContext>,
    restoring: BTreeMap<(String, i32), Restoring>,
    /// Follows `restoring`, given to the consumer once per [`ChangelogReader::restore_step`].
    assignment: ManualAssignment,
    listener: Option<Arc<dyn StateRestoreListener>>,
    /// Read errors a leader move or a broker restart causes are retried, up to task.timeout.ms.
    stall: RetryWindow,
    /// Records restored since the reader was created.
    pub total_restored: u64,
}

impl ChangelogReader {
    pub fn new(
        config: &StreamsConfig,
        client_id: &str,
        listener: Option<Arc<dyn StateRestoreListener>>,
    ) -> Result<Self> {
        let consumer = unjoined_consumer(
            config,
            ClientKind::RestoreConsumer,
            client_id,
            &[
                ("fetch.max.bytes", "52428800"),
                ("queued.max.messages.kbytes", "16384"),
                ("queued.min.messages", "10000"),
                // Past those thresholds librdkafka puts a partition's next fetch off by this
                // long, 1 s by default: a restore read a fetch's worth, then waited.
                ("fetch.queue.backoff.ms", "10"),
            ],
        )?;
        Ok(ChangelogReader {
            consumer,
            restoring: BTreeMap::new(),
            assignment: ManualAssignment::default(),
            listener,
            stall: RetryWindow::new(Duration::from_millis(config.task_timeout_ms)),
            total_restored: 0,
        })
    }

    /// The `[low, high)` offsets of a changelog partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> KafkaResult<(i64, i64)> {
        fetch_watermarks_fresh(&self.consumer, topic, partition, WATERMARK_TIMEOUT)
    }

    /// Starts restoring `store` of `task` from `topic`-`partition` at `from` up to `end` (from
    /// [`ChangelogReader::watermarks`]). Returns `false` when there is nothing to read.
    pub fn register(
        &mut self,
        task: TaskId,
        store: &str,
        topic: &str,
        partition: i32,
        from: i64,
        end: i64,
    ) -> Result<bool> {
        if from >= end {
            return Ok(false);
        }
        tracing::info!(%task, store, topic, partition, from, end, "restoring");
        if let Some(l) = &self.listener {
            l.on_restore_start(topic, partition, store, from, end);
        }
        self.restoring.insert(
            (topic.to_string(), partition),
            Restoring {
                task,
                store: store.to_string(),
                position: from,
                end,
                restored: 0,
            },
        );
        self.assignment.start(topic, partition, from);
        Ok(true)
    }

    /// Stops restoring everything of `task` (it was closed while restoring).
    pub fn unregister_task(&mut self, task: TaskId) {
        let assignment = &mut self.assignment;
        self.restoring.retain(|(t, p), r| {
            if r.task == task {
                assignment.stop(t, *p);
            }
            r.task != task
        });
    }

    fn apply_assignment(&mut self) -> Result<()> {
        self.assignment.apply(&self.consumer).map_err(|e| {
            StreamsError::kafka("assigning changelog partitions to the restore consumer", e)
        })
    }

    /// Whether `task` has partitions still restoring.
    pub fn is_restoring_task(&self, task: TaskId) -> bool {
        self.restoring.values().any(|r| r.task == task)
    }

    /// Records left to restore per task and store (an estimate: transaction markers count).
    pub fn remaining(&self) -> Vec<(TaskId, String, i64)> {
        self.restoring
            .values()
            .map(|r| (r.task, r.store.clone(), (r.end - r.position).max(0)))
            .collect()
    }

    /// Reads changelog records for up to `budget` and hands them, batched per store, to `apply`.
    /// Returns the partitions that finished.
    pub fn restore_step(
        &mut self,
        budget: Duration,
        apply: &mut ApplyBatch<'_>,
    ) -> Result<Vec<Restored>> {
        self.apply_assignment()?;
        if self.restoring.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + budget;
        let mut batches: HashMap<(String, i32), (RestoreBatch, i64)> = HashMap::new();
        let mut read = 0usize;
        while read < 100_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = self.consumer.poll(left.min(Duration::from_millis(50))) else {
                if Instant::now() >= deadline {
                    break;
                }
                // Nothing arrived: partitions whose position already passed the end (only
                // transaction markers were left) are done.
                if self.any_caught_up() {
                    break;
                }
                continue;
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka recovers from these by itself (new leader, broker back).
                    self.stall.retry("reading changelog records", e)?;
                    continue;
                }
            };
            self.stall.progressed();
            let key = (m.topic().to_string(), m.partition());
            // Records of a partition whose (re)start is still pending, or from before the
            // position it restores from, belong to an earlier assignment of it.
            let current = self.restoring.get(&key).is_some_and(|r| {
                m.offset() >= r.position && !self.assignment.is_pending_for(&key.0, key.1)
            });
            if !current {
                continue;
            }
            let Some(k) = m.key() else {
                tracing::warn!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "skipping a changelog record without a key"
                );
                continue;
            };
            let e = batches.entry(key).or_default();
            e.0.push(changelog_record(&m, k));
            e.1 = m.offset();
            read += 1;
        }
        for ((topic, partition), (records, last)) in batches {
            let Some(r) = self.restoring.get_mut(&(topic.clone(), partition)) else {
                continue;
            };
            let n = records.len() as u64;
            apply(r.task, &r.store, records, last + 1)?;
            r.position = r.position.max(last + 1);
            r.restored += n;
            self.total_restored += n;
            if let Some(l) = &self.listener {
                l.on_batch_restored(&topic, partition, &r.store, last, n);
            }
        }
        self.collect_done()
    }

    /// The consumer position also moves past transaction markers and aborted records, which
    /// never reach the application. Partitions with a pending (re)start report the position of
    /// their previous assignment and are left out.
    fn positions(&self) -> HashMap<(String, i32), i64> {
        let Ok(tpl) = self.consumer.position() else {
            return HashMap::new();
        };
        tpl.elements()
            .iter()
            .filter(|e| !self.assignment.is_pending_for(e.topic(), e.partition()))
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect()
    }

    fn any_caught_up(&self) -> bool {
        let pos = self.positions();
        self.restoring
            .iter()
            .any(|(k, r)| r.position.max(pos.get(k).copied().unwrap_or(-1)) >= r.end)
    }

    fn collect_done(&mut self) -> Result<Vec<Restored>> {
        let pos = self.positions();
        let done: Vec<(String, i32)> = self
            .restoring
            .iter_mut()
            .filter_map(|(k, r)| {
                r.position = r.position.max(pos.get(k).copied().unwrap_or(-1));
                (r.position >= r.end).then(|| k.clone())
            })
            .collect();
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for k in done {
            if let Some(r) = self.restoring.remove(&k) {
                self.assignment.stop(&k.0, k.1);
                tracing::info!(task = %r.task, store = %r.store, topic = %k.0, partition = k.1, restored = r.restored, "restored");
                if let Some(l) = &self.listener {
                    l.on_restore_end(&k.0, k.1, &r.store, r.restored);
                }
                out.push(Restored {
                    task: r.task,
                    store: r.store.clone(),
                    topic: k.0,
                    partition: k.1,
                    next_offset: r.position,
                });
            }
        }
        Ok(out)
    }
}
