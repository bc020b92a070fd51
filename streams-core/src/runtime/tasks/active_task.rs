//! [`ActiveTask`]: a task a stream thread runs, with what the thread tracks for it (buffered
//! input, consumed offsets, changelog positions, its producer under legacy exactly_once), and
//! the per-task helpers the task manager uses: sending output, checkpointing, locking the
//! directory, the dead-letter headers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_stores::{OffsetCheckpoint, StoreError, TaskDirLock};

use crate::runtime::commit::counted_producer::CountedProducer;
use crate::runtime::commit::error::CollectorError;
use crate::runtime::metrics::Sensor;
use crate::runtime::stores::task_dir::CHECKPOINT_FILE;
use crate::runtime::tasks::partition_group::PartitionGroup;
use crate::task::{ProducedRecord, StreamTask};
use crate::{Result, StreamsError};

/// How long a task waits at most for an input the broker holds records of (or that has not been
/// fetched yet). A safety net: a fetch normally lands well within it, but a failed fetch backs off
/// for `fetch.error.backoff.ms` (500 ms) before it is retried.
const LAG_WAIT_CAP: Duration = Duration::from_secs(2);

const LOCK_WAIT: Duration = Duration::from_secs(30);

/// How many changelog records a task's stores may run ahead of its checkpoint file before a
/// commit flushes them and writes it again (Kafka Streams' `OFFSET_DELTA_THRESHOLD_FOR_CHECKPOINT`).
/// Stores write without RocksDB's log, so a checkpoint costs a memtable flush per store: at every
/// commit (100 ms apart, say) that would be a stream of tiny files. A crash replays at most this
/// many records more; closing a task always checkpoints.
pub(crate) const CHECKPOINT_DELTA: i64 = 10_000;

/// Whether stores at changelog `positions` are more than [`CHECKPOINT_DELTA`] records ahead of
/// a checkpoint written when the positions summed to `checkpointed`.
pub(crate) fn checkpoint_due<'a>(
    positions: impl IntoIterator<Item = &'a i64>,
    checkpointed: i64,
) -> bool {
    positions.into_iter().sum::<i64>() - checkpointed > CHECKPOINT_DELTA
}

/// An active task with what the thread tracks for it.
pub(crate) struct ActiveTask {
    pub task: StreamTask,
    pub dir: PathBuf,
    pub inputs: BTreeSet<(String, i32)>,
    pub queue: PartitionGroup,
    /// Next offset to commit per input partition, for records processed since the last commit.
    pub consumed: BTreeMap<(Arc<str>, i32), i64>,
    /// The offset of the last record processed per input partition (interactive queries'
    /// position of the task's stores).
    pub processed: BTreeMap<(Arc<str>, i32), i64>,
    /// Next changelog offset reflected by the stores, per changelog partition.
    pub changelog_positions: BTreeMap<(String, i32), i64>,
    /// The sum of `changelog_positions` when the checkpoint file was last written (or read).
    pub checkpointed: i64,
    /// `None` until the committed input offsets are known to be stable (exactly-once) and the
    /// changelogs are registered for restoration.
    pub restore_registered: bool,
    pub initialized: bool,
    /// Since when the task waits for an input with nothing buffered (`max.task.idle.ms`).
    pub idle_since: Option<Instant>,
    /// The committed offset each input was fetched from: its position until the consumer
    /// delivers a record of it.
    pub fetch_from: HashMap<(String, i32), i64>,
    /// Inputs whose fetching the thread paused because they held more than
    /// `buffered.records.per.partition` records here.
    pub fetch_paused: BTreeSet<(Arc<str>, i32)>,
    /// exactly_once (legacy): the task's own transactional producer.
    pub producer: Option<CountedProducer>,
    /// The highest timestamp processed, for `record-lateness`.
    pub stream_time: i64,
    pub sensors: TaskSensors,
    // Dropped last: the directory stays locked until the stores are closed.
    pub _lock: TaskDirLock,
}

impl ActiveTask {
    /// Whether the stores are far enough ahead of the checkpoint file to write it again.
    pub fn checkpoint_due(&self) -> bool {
        checkpoint_due(self.changelog_positions.values(), self.checkpointed)
    }

    /// Whether the task finished restoring and initialized its processors.
    pub fn is_running(&self) -> bool {
        self.initialized
    }

    /// Whether the task may process now. Records are processed in timestamp order across a task's
    /// inputs, which only works when every input has something buffered: a task with an empty
    /// input waits for it while the broker is known to hold more of it (its fetch is under way),
    /// up to [`LAG_WAIT_CAP`], and besides for `max.task.idle.ms` (Kafka Streams' semantics).
    /// `lag(topic, partition, fetched_from)` tells whether the broker holds records of an input
    /// beyond its position, `fetched_from` standing in for a position the consumer has not
    /// reported yet (nothing delivered since the assignment).
    pub fn ready(&mut self, idle_ms: i64, lag: &dyn Fn(&str, i32, Option<i64>) -> bool) -> bool {
        let t = self;
        if t.queue.is_empty() {
            t.idle_since = None;
            return false;
        }
        if t.inputs.len() < 2 || idle_ms < 0 {
            return true;
        }
        let mut lagging = false;
        let mut empty = false;
        for (topic, p) in &t.inputs {
            if t.queue.is_empty_for(topic, *p) {
                empty = true;
                let from = t.fetch_from.get(&(topic.clone(), *p)).copied();
                lagging |= lag(topic, *p, from);
            }
        }
        if !empty {
            t.idle_since = None;
            return true;
        }
        let since = *t.idle_since.get_or_insert_with(Instant::now);
        let waited = since.elapsed();
        let limit = Duration::from_millis(idle_ms as u64);
        // Once the wait is over the task goes on without waiting again until every input had
        // records buffered (Kafka Streams' enforced processing).
        let wait = waited < limit || (lagging && waited < LAG_WAIT_CAP.max(limit));
        tracing::debug!(task = %t.task.id(), lagging, waited_ms = waited.as_millis() as u64, wait, "an input of the task has nothing buffered");
        !wait
    }
}

/// A task's `stream-task-metrics` sensors, and the restore sensor of each logged store. Dropped
/// with the task, which removes their series.
pub(crate) struct TaskSensors {
    pub process: Arc<Sensor>,
    pub dropped: Arc<Sensor>,
    pub lateness: Arc<Sensor>,
    pub restore: HashMap<String, Arc<Sensor>>,
}

/// Sends `out` through the task's own producer (legacy exactly_once) or the thread's. A refused
/// send keeps its meaning (fenced, aborted, fatal): it decides what the thread does next.
pub(crate) fn send_all(
    shared: &mut Option<CountedProducer>,
    t: &mut ActiveTask,
    out: Vec<ProducedRecord>,
) -> Result<(), CollectorError> {
    if out.is_empty() {
        return Ok(());
    }
    let p = match (&mut t.producer, shared) {
        (Some(p), _) => p,
        (None, Some(p)) => p,
        (None, None) => {
            return Err(CollectorError::Fatal(StreamsError::IllegalState(
                "no producer for the task's output".into(),
            )))
        }
    };
    for r in &out {
        p.send(r)?;
    }
    Ok(())
}

/// Records the changelog offsets the task's stores reflect.
pub(crate) fn write_checkpoint(t: &mut ActiveTask) -> Result<()> {
    let cp = OffsetCheckpoint::new(t.dir.join(CHECKPOINT_FILE));
    cp.write(&t.changelog_positions)?;
    t.checkpointed = t.changelog_positions.values().sum();
    Ok(())
}

/// Locks a task directory, waiting up to [`LOCK_WAIT`] for a previous owner to let go.
pub(crate) fn acquire_lock(dir: &Path) -> Result<TaskDirLock> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match TaskDirLock::acquire(dir) {
            Ok(l) => return Ok(l),
            // The previous owner (another thread of this process, mid-close) will let go shortly.
            Err(StoreError::DirectoryLocked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A short name for the kind of failure, for dead-letter headers.
pub(crate) fn error_kind(e: &StreamsError) -> &'static str {
    match e {
        StreamsError::Deserialization { .. } => "DeserializationException",
        StreamsError::Processing { .. } => "ProcessingException",
        StreamsError::TypeMismatch { .. } => "TypeMismatchException",
        StreamsError::Serialization { .. } => "SerializationException",
        _ => "StreamsException",
    }
}
