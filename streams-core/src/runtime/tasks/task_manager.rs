//! The tasks a stream thread owns: creating them from an assignment and closing them clean or
//! dirty on revocation, here; restoring them (`restoration`), processing (`processing`) and
//! committing under each processing guarantee (`commit`) in the submodules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use state_stores::OffsetCheckpoint;

use crate::config::{OnError, ProcessingGuarantee};
use crate::processor::PunctuationType;
use crate::runtime::clients::retry::RetryWindow;
use crate::runtime::clients::seam::GroupConsumer;
use crate::runtime::commit::counted_producer::CountedProducer;
use crate::runtime::commit::error::{classify, CollectorError};
use crate::runtime::commit::turns;
use crate::runtime::env::ThreadEnv;
use crate::runtime::metrics::{self, RecordingLevel, Sensor};
use crate::runtime::restore::changelog_reader::ChangelogReader;
use crate::runtime::stores::metered_store::MeteredKeyValueStore;
use crate::runtime::stores::task_dir::{open_task_state, OpenedTask, CHECKPOINT_FILE};
use crate::runtime::tasks::active_task::{
    acquire_lock, error_kind, now_ms, send_all, write_checkpoint, ActiveTask, TaskSensors,
};
use crate::runtime::tasks::partition_group::{BufferedRecord, PartitionGroup};
use crate::task::TaskId;
use crate::{Result, StreamsError};

/// Records processed between two looks at the uncommitted-writes limit: a look sums every
/// store's buffer, and the limit may be overshot by this many records' writes.
const UNCOMMITTED_CHECK_EVERY: u64 = 32;
/// One wait for stable committed offsets of new tasks: a previous owner's open transaction keeps
/// them unstable until it ends. Short, so the thread goes back to polling and retries (within
/// task.timeout.ms) instead of blocking its loop.
const OFFSET_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The stream thread's consumer default (Kafka's too).
pub(crate) const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;
/// A thread's `stream-thread-metrics` sensors.
struct ThreadSensors {
    process: Arc<Sensor>,
    commit: Arc<Sensor>,
    punctuate: Arc<Sensor>,
    task_created: Arc<Sensor>,
    task_closed: Arc<Sensor>,
}

/// Owns the active tasks of one stream thread.
pub(crate) struct TaskManager {
    env: Arc<ThreadEnv>,
    thread_name: String,
    tasks: BTreeMap<TaskId, ActiveTask>,
    /// Shared producer (at_least_once and exactly_once_v2).
    producer: Option<CountedProducer>,
    restorer: ChangelogReader,
    /// Retriable errors while new tasks register their changelogs, up to task.timeout.ms.
    init_stall: RetryWindow,
    /// Set by rebalance callbacks, which cannot return errors.
    pub pending_error: Option<CollectorError>,
    /// The thread has received at least one assignment since its last revocation.
    pub assigned: bool,
    last_commit: Instant,
    /// How far into the commit interval the thread's first commit after an assignment falls
    /// (`turns::phase`), so the instance's threads do not all commit at once.
    commit_phase: Duration,
    /// When the thread last polled its consumer (set by the thread).
    pub last_poll: Instant,
    max_poll_interval: Duration,
    /// The thread's share of `statestore.cache.max.bytes`.
    cache: state_stores::CacheBudget,
    interned: HashMap<String, Arc<str>>,
    /// `<application.id>-<process id>-StreamThread-<n>`, the `thread_id` of its metrics.
    thread_id: String,
    sensors: ThreadSensors,
    /// Part of the restorer's total already added to the instance's `restored` counter.
    restored_reported: u64,
    /// `KafkaStreams::pause`: inputs paused, nothing processed or punctuated.
    paused: bool,
}

fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::kafka(context.into(), source)
}

impl TaskManager {
    /// The task manager of stream thread `index` (1-based), named `thread_name`.
    pub fn new(
        env: Arc<ThreadEnv>,
        index: usize,
        thread_name: String,
        restore_listener: Option<Arc<dyn crate::runtime::state::StateRestoreListener>>,
    ) -> Result<Self> {
        let client_prefix = format!(
            "{}-{}-{}",
            env.config.application_id, env.process_id, thread_name
        );
        let producer = thread_producer(&env, &thread_name)?;
        let restorer = ChangelogReader::new(
            &env.config,
            &format!("{client_prefix}-restore-consumer"),
            restore_listener,
        )?;
        let max_poll_interval = Duration::from_millis(
            env.config
                .client_settings("consumer.")
                .get("max.poll.interval.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_POLL_INTERVAL_MS),
        );
        let cache = state_stores::CacheBudget::new(
            (env.config.cache_max_bytes / env.config.num_stream_threads.max(1) as u64) as usize,
        );
        let thread_id = client_prefix;
        let m = &env.metrics;
        let sensors = ThreadSensors {
            process: m.sensor(metrics::THREAD_PROCESS, &[&thread_id]),
            commit: m.sensor(metrics::THREAD_COMMIT, &[&thread_id]),
            punctuate: m.sensor(metrics::THREAD_PUNCTUATE, &[&thread_id]),
            task_created: m.sensor(metrics::THREAD_TASK_CREATED, &[&thread_id]),
            task_closed: m.sensor(metrics::THREAD_TASK_CLOSED, &[&thread_id]),
        };
        let init_stall = RetryWindow::new(Duration::from_millis(env.config.task_timeout_ms));
        let commit_phase = turns::phase(
            index,
            env.config.num_stream_threads,
            Duration::from_millis(env.config.commit_interval_ms),
        );
        Ok(TaskManager {
            thread_id,
            sensors,
            restored_reported: 0,
            env,
            thread_name,
            tasks: BTreeMap::new(),
            producer,
            restorer,
            init_stall,
            pending_error: None,
            assigned: false,
            last_commit: Instant::now(),
            commit_phase,
            last_poll: Instant::now(),
            max_poll_interval,
            cache,
            interned: HashMap::new(),
            paused: false,
        })
    }

    /// Whether processing is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pauses (or resumes) the inputs of the running tasks; restoring tasks keep theirs paused
    /// until they run, and then stay paused while processing is.
    pub fn set_paused(&mut self, consumer: &dyn GroupConsumer, paused: bool) -> Result<()> {
        let mut inputs = TopicPartitionList::new();
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            for (topic, p) in &t.inputs {
                inputs.add_partition(topic, *p);
            }
            // Resumed with the rest below; paused again if still full.
            if !paused {
                t.fetch_paused.clear();
            }
        }
        if paused {
            consumer
                .pause(&inputs)
                .map_err(|e| kafka("pausing the inputs of running tasks", e))?;
        } else {
            consumer
                .resume(&inputs)
                .map_err(|e| kafka("resuming the inputs of running tasks", e))?;
            consumer.wake_fetchers(&inputs);
        }
        self.paused = paused;
        tracing::info!(thread = %self.thread_name, paused, "processing paused or resumed");
        Ok(())
    }

    /// The ids of the thread's tasks (restoring or running).
    pub fn task_ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// The input partitions of the thread's tasks, fetched already or not yet.
    pub fn input_partitions(&self) -> BTreeSet<(String, i32)> {
        self.tasks
            .values()
            .flat_map(|t| t.inputs.iter().cloned())
            .collect()
    }

    /// Per task, the sum of its stores' changelog positions: how far its state has come, for
    /// the assignor (Kafka Streams' task offset sums).
    pub fn active_offset_sums(&self) -> BTreeMap<TaskId, i64> {
        self.tasks
            .iter()
            .map(|(id, t)| (*id, t.changelog_positions.values().sum()))
            .collect()
    }

    /// Whether any task is still restoring.
    pub fn is_restoring(&self) -> bool {
        self.tasks.values().any(|t| !t.is_running())
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.env.config.app_state_dir().join(id.to_string())
    }

    // ---- assignment -------------------------------------------------------------------------

    /// Creates tasks for newly assigned partitions and pauses them until their state is restored.
    pub fn on_assign(
        &mut self,
        consumer: &dyn GroupConsumer,
        assigned: &TopicPartitionList,
    ) -> Result<()> {
        self.assigned = true;
        self.env
            .counters
            .assignments
            .fetch_add(1, Ordering::Relaxed);
        let mut wanted: BTreeMap<TaskId, BTreeSet<(String, i32)>> = BTreeMap::new();
        for e in assigned.elements() {
            let Some(sub) = self.env.layout.subtopology_of(e.topic()) else {
                tracing::warn!(
                    topic = e.topic(),
                    "assigned a partition no sub-topology reads"
                );
                continue;
            };
            wanted
                .entry(TaskId {
                    subtopology: sub,
                    partition: e.partition(),
                })
                .or_default()
                .insert((e.topic().to_string(), e.partition()));
        }
        tracing::info!(thread = %self.thread_name, tasks = ?wanted.keys().collect::<Vec<_>>(), "assigned");
        for (id, inputs) in wanted {
            if let Some(t) = self.tasks.get_mut(&id) {
                t.inputs.extend(inputs);
                continue;
            }
            let task = self.create_task(id, inputs)?;
            self.tasks.insert(id, task);
        }
        // Hold back input until state is restored.
        let mut paused = TopicPartitionList::new();
        for t in self.tasks.values().filter(|t| !t.is_running()) {
            for (topic, p) in &t.inputs {
                paused.add_partition(topic, *p);
            }
        }
        if paused.count() > 0 {
            consumer
                .pause(&paused)
                .map_err(|e| kafka("pausing partitions of restoring tasks", e))?;
        }
        self.last_commit = Instant::now()
            .checked_sub(self.commit_phase)
            .unwrap_or_else(Instant::now);
        Ok(())
    }

    fn create_task(&mut self, id: TaskId, inputs: BTreeSet<(String, i32)>) -> Result<ActiveTask> {
        let dir = self.task_dir(id);
        // A standby copy of the task hands its directory (and checkpoint) over first.
        self.env.standbys.mark_active(id);
        let lock = acquire_lock(&dir)?;
        let eos = self.env.guarantee().is_exactly_once();
        let OpenedTask {
            mut task,
            positions: changelog_positions,
        } = open_task_state(&self.env, id, &dir, Some(&self.cache), eos)?;
        if eos {
            // From now on the stores may run ahead of the last commit (unless transactional):
            // a crash must not find a checkpoint that vouches for them.
            OffsetCheckpoint::new(dir.join(CHECKPOINT_FILE)).delete()?;
        }
        task.set_wall_clock(now_ms());
        let task_id = id.to_string();
        let metrics = &self.env.metrics;
        if metrics.level() >= RecordingLevel::Debug {
            let thread_id = &self.thread_id;
            task.wrap_key_value_stores(|name, store| {
                MeteredKeyValueStore::wrap(store, metrics, &[thread_id, &task_id, name])
            });
        }
        let labels = [self.thread_id.as_str(), task_id.as_str()];
        let sensors = TaskSensors {
            process: metrics.sensor(metrics::TASK_PROCESS, &labels),
            dropped: metrics.sensor(metrics::TASK_DROPPED, &labels),
            lateness: metrics.sensor(metrics::TASK_LATENESS, &labels),
            restore: task
                .changelogs()
                .into_iter()
                .map(|(store, _)| {
                    let sensor = metrics
                        .sensor(metrics::STATE_RESTORE, &[&self.thread_id, &task_id, &store]);
                    (store, sensor)
                })
                .collect(),
        };
        self.sensors.task_created.record_events(1);
        let producer = if self.env.guarantee() == ProcessingGuarantee::ExactlyOnceLegacy {
            let txn_id = format!("{}-{id}", self.env.config.application_id);
            let client_id = format!(
                "{}-{}-{}-{id}-producer",
                self.env.config.application_id, self.env.process_id, self.thread_name
            );
            let changelogs: Vec<String> = task.changelogs().into_iter().map(|(_, t)| t).collect();
            Some(new_producer(
                &self.env,
                &client_id,
                Some(txn_id),
                &changelogs,
            )?)
        } else {
            if let Some(p) = &self.producer {
                let sources = task.source_changelogs();
                for (_, t) in task.changelogs() {
                    if !sources.contains(&t) {
                        p.track_changelog(&t);
                    }
                }
            }
            None
        };
        Ok(ActiveTask {
            task,
            dir,
            inputs,
            queue: PartitionGroup::default(),
            consumed: BTreeMap::new(),
            processed: BTreeMap::new(),
            checkpointed: changelog_positions.values().sum(),
            changelog_positions,
            restore_registered: false,
            initialized: false,
            idle_since: None,
            fetch_from: HashMap::new(),
            fetch_paused: BTreeSet::new(),
            producer,
            stream_time: i64::MIN,
            sensors,
            _lock: lock,
        })
    }

    // ---- closing ----------------------------------------------------------------------------

    /// Revocation: commit, then close the revoked tasks cleanly (checkpoint written). If the
    /// partitions were lost, or the commit fails, close them dirty.
    pub fn on_revoke(
        &mut self,
        consumer: &dyn GroupConsumer,
        revoked: &TopicPartitionList,
        lost: bool,
    ) {
        self.assigned = false;
        let revoked: BTreeSet<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let ids: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.inputs.iter().any(|i| revoked.contains(i)))
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        tracing::info!(thread = %self.thread_name, tasks = ?ids, lost, "revoking");
        let mut failed_commit = None;
        let clean = !lost
            && match self.commit(consumer) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(thread = %self.thread_name, error = %e.error(), "commit on revocation failed; closing the tasks dirty");
                    failed_commit = Some(e);
                    false
                }
            };
        let aborted = clean || self.abort();
        for id in ids {
            if let Some(t) = self.tasks.remove(&id) {
                self.close_task(t, clean);
            }
        }
        // Under exactly_once_v2 the thread's tasks share one transaction: the abort took the
        // uncommitted work of the tasks that stay too, so they cannot go on from where they
        // are; and a producer that could not abort must be replaced. The next step gives every
        // task up and replaces the producer, as Kafka Streams' `handleLostAll` does.
        if !clean
            && self.env.guarantee() == ProcessingGuarantee::ExactlyOnceV2
            && (!aborted || !self.tasks.is_empty())
            && self.pending_error.is_none()
        {
            let why = if aborted {
                "the aborted transaction held uncommitted work of the tasks that stay"
            } else {
                "the transaction of the revoked tasks could not be aborted"
            };
            self.pending_error = Some(failed_commit.unwrap_or_else(|| {
                CollectorError::Aborted(StreamsError::IllegalState(format!(
                    "{}: {why}",
                    self.thread_name
                )))
            }));
        }
    }

    /// Aborts the open transactions; `false` when one could not be (its producer must go).
    fn abort(&mut self) -> bool {
        let mut aborted = true;
        if let Some(p) = &mut self.producer {
            aborted &= p.abort_transaction();
        }
        for t in self.tasks.values_mut() {
            if let Some(p) = &mut t.producer {
                aborted &= p.abort_transaction();
            }
        }
        aborted
    }

    fn close_task(&mut self, mut t: ActiveTask, clean: bool) {
        let id = t.task.id();
        self.sensors.task_closed.record_events(1);
        let task_id = id.to_string();
        for store in t.sensors.restore.keys() {
            self.env.metrics.remove_gauge(
                metrics::RESTORE_REMAINING,
                &[&self.thread_id, &task_id, store],
            );
        }
        self.restorer.unregister_task(id);
        // Closing flushes the stores: a checkpoint may only follow a close that succeeded.
        let closed = t.task.close();
        if let Err(e) = &closed {
            tracing::warn!(task = %id, error = %e, "closing the task failed");
        }
        // Anything produced while closing cannot be committed any more.
        let _ = t.task.drain_output();
        if clean && closed.is_ok() && t.restore_registered && !self.restorer.is_restoring_task(id) {
            if let Err(e) = write_checkpoint(&mut t) {
                tracing::warn!(task = %id, error = %e, "writing the checkpoint failed");
            }
        }
        drop(t);
        self.env.standbys.mark_inactive(id);
        tracing::debug!(task = %id, clean, "closed task");
    }

    /// Closes every task. Clean: commit first and write checkpoints. Returns the commit error if
    /// the clean close could not commit.
    pub fn close_all(
        &mut self,
        consumer: &dyn GroupConsumer,
        clean: bool,
    ) -> Result<(), CollectorError> {
        let mut result = Ok(());
        let mut clean = clean;
        if clean {
            if let Err(e) = self.commit(consumer) {
                clean = false;
                result = Err(e);
            }
        }
        if !clean && !self.abort() {
            // Closed dirty anyway; the producer that could not abort is replaced by `lose_all`
            // or dropped with the closing thread.
            tracing::debug!(thread = %self.thread_name, "the transaction was not aborted");
        }
        let tasks = std::mem::take(&mut self.tasks);
        for (_, t) in tasks {
            self.close_task(t, clean);
        }
        result
    }

    /// The tasks were lost (the producer was fenced or the transaction aborted): close them all
    /// dirty and replace the producer; the thread then rejoins the group.
    pub fn lose_all(&mut self, consumer: &dyn GroupConsumer) -> Result<()> {
        let _ = self.close_all(consumer, false);
        self.recreate_producer()
    }

    /// After a fencing: the producer is unusable; make a new one (which fences our own zombie).
    fn recreate_producer(&mut self) -> Result<()> {
        // Legacy producers belong to tasks and are recreated with them.
        if self.env.guarantee() != ProcessingGuarantee::ExactlyOnceV2 {
            return Ok(());
        }
        self.producer = None;
        self.producer = thread_producer(&self.env, &self.thread_name)?;
        Ok(())
    }
}

/// The thread's shared producer: plain under at_least_once, transactional with
/// `<application.id>-<process uuid>-<thread index>` under exactly_once_v2, none under legacy
/// exactly_once (whose producers belong to tasks).
fn thread_producer(env: &ThreadEnv, thread_name: &str) -> Result<Option<CountedProducer>> {
    let txn_id = match env.guarantee() {
        ProcessingGuarantee::ExactlyOnceLegacy => return Ok(None),
        ProcessingGuarantee::ExactlyOnceV2 => Some(format!(
            "{}-{}-{}",
            env.config.application_id,
            env.process_id,
            thread_index(thread_name)
        )),
        ProcessingGuarantee::AtLeastOnce => None,
    };
    let client_id = format!(
        "{}-{}-{thread_name}-producer",
        env.config.application_id, env.process_id
    );
    new_producer(env, &client_id, txn_id, &[]).map(Some)
}

fn new_producer(
    env: &ThreadEnv,
    client_id: &str,
    txn_id: Option<String>,
    changelogs: &[String],
) -> Result<CountedProducer> {
    let p = env
        .producers
        .producer(&env.config, client_id, txn_id, changelogs, &env.metrics)?;
    Ok(CountedProducer::new(p, env.counters.clone()))
}

/// `StreamThread-3` -> `3`.
fn thread_index(thread_name: &str) -> &str {
    thread_name.rsplit('-').next().unwrap_or(thread_name)
}

mod commit;
mod processing;
mod restoration;
#[cfg(test)]
mod tests;
