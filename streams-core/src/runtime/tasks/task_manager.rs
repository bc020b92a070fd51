//! The tasks a stream thread owns: creating them from an assignment, restoring, processing,
//! committing under each processing guarantee, and closing them clean or dirty.

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
}

fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::kafka(context.into(), source)
}

impl TaskManager {
    pub fn new(
        env: Arc<ThreadEnv>,
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
            last_poll: Instant::now(),
            max_poll_interval,
            cache,
            interned: HashMap::new(),
        })
    }

    /// The ids of the thread's tasks (restoring or running).
    pub fn task_ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
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
        self.last_commit = Instant::now();
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
                for (_, t) in task.changelogs() {
                    p.track_changelog(&t);
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
            changelog_positions,
            restore_registered: false,
            initialized: false,
            idle_since: None,
            producer,
            stream_time: i64::MIN,
            sensors,
            _lock: lock,
        })
    }

    /// Registers changelogs of new tasks for restoration. Under exactly-once it first waits until
    /// the committed offsets of the task's inputs are stable (no transaction of a previous owner
    /// pending), so the changelog end it restores to includes everything that owner committed.
    /// A retriable error (a leader moving, a broker restarting) leaves the tasks for the next
    /// round, within task.timeout.ms.
    fn register_restorations(&mut self, consumer: &dyn GroupConsumer) -> Result<()> {
        let pending: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.restore_registered)
            .map(|(id, _)| *id)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if self.env.guarantee().is_exactly_once() {
            let mut tpl = TopicPartitionList::new();
            for id in &pending {
                for (topic, p) in &self.tasks[id].inputs {
                    tpl.add_partition(topic, *p);
                }
            }
            if let Err(e) = consumer.committed_offsets(tpl, OFFSET_FETCH_TIMEOUT) {
                return self
                    .init_stall
                    .retry("waiting for stable committed offsets of new tasks", e);
            }
        }
        let mut all_registered = true;
        'tasks: for id in pending {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            // Every changelog's end first, so a task registers all its stores or none.
            let mut ends = Vec::new();
            for (store, topic) in t.task.changelogs() {
                match self.restorer.watermarks(&topic, id.partition) {
                    Ok(w) => ends.push((store, topic, w)),
                    Err(e) => {
                        let context = format!(
                            "reading the end offset of changelog `{topic}`-{}",
                            id.partition
                        );
                        self.init_stall.retry(&context, e)?;
                        all_registered = false;
                        continue 'tasks;
                    }
                }
            }
            t.restore_registered = true;
            for (store, topic, (low, high)) in ends {
                let key = (topic.clone(), id.partition);
                let mut from = t.changelog_positions.get(&key).copied().unwrap_or(0);
                if from > high {
                    // The changelog is behind the local state (e.g. it was recreated): the local
                    // state cannot be trusted.
                    return Err(StreamsError::IllegalState(format!(
                        "task {id}: checkpointed offset {from} of `{topic}` is past its end {high}; delete {} to restore from scratch",
                        t.dir.display()
                    )));
                }
                from = from.max(low);
                let restoring =
                    self.restorer
                        .register(id, &store, &topic, id.partition, from, high)?;
                if !restoring {
                    t.changelog_positions.insert(key, from);
                }
            }
        }
        if all_registered {
            self.init_stall.progressed();
        }
        Ok(())
    }

    /// Restores for up to `budget`; tasks whose changelogs are complete get initialized and their
    /// input resumed. Returns whether every task is running.
    pub fn restore(&mut self, consumer: &dyn GroupConsumer, budget: Duration) -> Result<bool> {
        let _span = tracing::info_span!("restore", thread = %self.thread_name).entered();
        self.register_restorations(consumer)?;
        let tasks = &mut self.tasks;
        let done =
            self.restorer.restore_step(
                budget,
                &mut |id, store, records, next_offset| match tasks.get_mut(&id) {
                    Some(t) => {
                        if let Some(s) = t.sensors.restore.get(store) {
                            s.record_events(records.len() as u64);
                        }
                        t.task.restore_up_to(store, records, next_offset)
                    }
                    None => Ok(()),
                },
            )?;
        for (task, store, remaining) in self.restorer.remaining() {
            self.env.metrics.set_gauge(
                metrics::RESTORE_REMAINING,
                &[&self.thread_id, &task.to_string(), &store],
                remaining as f64,
            );
        }
        for r in &done {
            self.env.metrics.set_gauge(
                metrics::RESTORE_REMAINING,
                &[&self.thread_id, &r.task.to_string(), &r.store],
                0.0,
            );
        }
        // The counter is the instance's: add this thread's new records, not its total.
        let total = self.restorer.total_restored;
        self.env
            .counters
            .restored
            .fetch_add(total - self.restored_reported, Ordering::Relaxed);
        self.restored_reported = total;
        for r in done {
            if let Some(t) = self.tasks.get_mut(&r.task) {
                t.changelog_positions
                    .insert((r.topic, r.partition), r.next_offset);
            }
        }
        let ready: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| {
                !t.initialized && t.restore_registered && !self.restorer.is_restoring_task(**id)
            })
            .map(|(id, _)| *id)
            .collect();
        if !ready.is_empty() {
            let mut resume = TopicPartitionList::new();
            for id in ready {
                let Some(t) = self.tasks.get_mut(&id) else {
                    continue;
                };
                t.task.set_wall_clock(now_ms());
                t.task.init()?;
                let out = t.task.drain_output();
                t.initialized = true;
                send_all(&mut self.producer, t, out)?;
                for (topic, p) in &t.inputs {
                    resume.add_partition(topic, *p);
                }
                tracing::info!(thread = %self.thread_name, task = %id, "task running");
            }
            consumer
                .resume(&resume)
                .map_err(|e| kafka("resuming partitions of restored tasks", e))?;
        }
        Ok(!self.is_restoring())
    }

    // ---- processing -------------------------------------------------------------------------

    /// Buffers a polled record for its task.
    pub fn buffer<M: Message>(&mut self, m: &M) {
        let Some(sub) = self.env.layout.subtopology_of(m.topic()) else {
            return;
        };
        let id = TaskId {
            subtopology: sub,
            partition: m.partition(),
        };
        let Some(t) = self.tasks.get_mut(&id) else {
            tracing::debug!(
                topic = m.topic(),
                partition = m.partition(),
                "record for a task this thread does not own"
            );
            return;
        };
        let topic = match self.interned.get(m.topic()) {
            Some(t) => t.clone(),
            None => {
                let a: Arc<str> = Arc::from(m.topic());
                self.interned.insert(m.topic().to_string(), a.clone());
                a
            }
        };
        let mut headers = crate::record::Headers::new();
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                headers.add(hd.key, hd.value.map(<[u8]>::to_vec));
            }
        }
        t.queue.push(BufferedRecord {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            headers,
        });
    }

    /// Runs `f` on the store `name` of every running task that has it; returns how many did.
    pub(crate) fn with_stores(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&mut crate::task::StoreSlot) -> Result<()>,
    ) -> Result<usize> {
        let mut n = 0;
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            if t.task.store_names().iter().any(|s| s == name) {
                t.task.with_store(name, |slot| f(slot))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Processes the buffered records of running tasks (see [`TaskManager::ready`]); `lag` tells
    /// whether the broker holds records of a partition beyond what was fetched. Returns how many
    /// records were processed.
    pub fn process(&mut self, lag: &dyn Fn(&str, i32) -> bool) -> Result<usize, CollectorError> {
        let mut n = 0;
        let idle_ms = self.env.config.max_task_idle_ms;
        // Stop at the uncommitted-writes limit, so the thread commits before going on.
        let limit = self.uncommitted_limit();
        let mut held_by_others = 0;
        let mut over_limit = false;
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            if over_limit {
                break;
            }
            if !t.ready(idle_ms, lag) {
                continue;
            }
            let started = Instant::now();
            let (mut done, mut dropped, mut late_sum, mut late_max) = (0u64, 0u64, 0.0, 0.0f64);
            while let Some(r) = t.queue.pop_earliest() {
                if r.timestamp < 0 {
                    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, "skipping a record with an invalid timestamp");
                    dropped += 1;
                } else {
                    let late = t.stream_time.saturating_sub(r.timestamp).max(0) as f64;
                    t.stream_time = t.stream_time.max(r.timestamp);
                    late_sum += late;
                    late_max = late_max.max(late);
                    let dlq = self.env.config.dead_letter_topic.as_ref();
                    let headers = dlq.map(|_| r.headers.clone());
                    let result = t.task.process(
                        &r.topic,
                        r.partition,
                        r.offset,
                        r.key.as_deref(),
                        r.value.as_deref(),
                        r.timestamp,
                        r.headers,
                    );
                    let mut out = t.task.drain_output();
                    dropped += t.task.take_dropped_records();
                    if let Err(e) = result {
                        let policy = match &e {
                            StreamsError::Deserialization { .. } => {
                                self.env.config.on_deserialization_error
                            }
                            _ => self.env.config.on_processing_error,
                        };
                        if policy == OnError::LogAndFail {
                            return Err(CollectorError::Fatal(e));
                        }
                        tracing::warn!(task = %t.task.id(), topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "skipping a record (log_and_continue)");
                        dropped += 1;
                        if let (Some(topic), Some(mut headers)) = (dlq, headers) {
                            headers
                                .add("__streams.errors.exception", Some(error_kind(&e).into()))
                                .add("__streams.errors.message", Some(e.to_string().into_bytes()))
                                .add("__streams.errors.topic", Some(r.topic.as_bytes().to_vec()))
                                .add(
                                    "__streams.errors.partition",
                                    Some(r.partition.to_string().into_bytes()),
                                )
                                .add(
                                    "__streams.errors.offset",
                                    Some(r.offset.to_string().into_bytes()),
                                );
                            out.push(crate::task::ProducedRecord {
                                topic: topic.clone(),
                                partition: None,
                                key: r.key.clone(),
                                value: r.value.clone(),
                                timestamp: r.timestamp,
                                headers,
                            });
                        }
                    }
                    send_all(&mut self.producer, t, out).map_err(CollectorError::Fatal)?;
                }
                t.consumed
                    .insert((r.topic.to_string(), r.partition), r.offset + 1);
                n += 1;
                done += 1;
                if t.queue.is_empty_for(&r.topic, r.partition) && !t.ready(idle_ms, lag) {
                    break;
                }
                if limit.is_some_and(|l| {
                    done % UNCOMMITTED_CHECK_EVERY == 0
                        && held_by_others + t.task.uncommitted_bytes() > l
                }) {
                    over_limit = true;
                    break;
                }
            }
            if limit.is_some() {
                held_by_others += t.task.uncommitted_bytes();
            }
            self.env
                .counters
                .dropped_records
                .fetch_add(dropped, Ordering::Relaxed);
            t.sensors.dropped.record_events(dropped);
            t.sensors.process.record_events(done);
            t.sensors.lateness.record_many(done, late_sum, late_max);
            if done > 0 {
                // Per record: the batch's time spread over its records.
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                self.sensors.process.record_many(done, ms, ms / done as f64);
            }
        }
        self.env
            .counters
            .processed
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = &self.producer {
            p.poll();
        }
        for t in self.tasks.values() {
            if let Some(p) = &t.producer {
                p.poll();
            }
        }
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        Ok(n)
    }

    /// Fires due wall-clock punctuations.
    pub fn punctuate(&mut self) -> Result<(), CollectorError> {
        let now = now_ms();
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            let started = Instant::now();
            if t.task
                .punctuate(PunctuationType::WallClockTime, now)
                .map_err(CollectorError::Fatal)?
            {
                self.sensors.punctuate.record_elapsed(started);
                let out = t.task.drain_output();
                send_all(&mut self.producer, t, out).map_err(CollectorError::Fatal)?;
            }
        }
        Ok(())
    }

    /// Whether `commit.interval.ms` has passed since the last commit.
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= Duration::from_millis(self.env.config.commit_interval_ms)
    }

    // ---- commit -----------------------------------------------------------------------------

    fn offsets_of(t: &ActiveTask, tpl: &mut TopicPartitionList) -> Result<(), CollectorError> {
        for ((topic, p), o) in &t.consumed {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
                .map_err(|e| CollectorError::Fatal(kafka("building the offsets to commit", e)))?;
        }
        Ok(())
    }

    /// Commits everything processed so far: outputs, changelog writes and input offsets.
    pub fn commit(&mut self, consumer: &dyn GroupConsumer) -> Result<(), CollectorError> {
        let started = Instant::now();
        self.last_commit = Instant::now();
        let _span = tracing::debug_span!("commit", thread = %self.thread_name).entered();
        // Past max.poll.interval.ms without a poll the consumer has left the group and another
        // member may own these tasks already. Under exactly-once the broker would fence the
        // commit (KIP-447: the offsets carry our stale generation); under at_least_once nothing
        // fences a plain offset commit, which could move the new owner's committed position. As
        // Kafka Streams (TaskMigratedException), give the tasks up without committing.
        if self.last_poll.elapsed() > self.max_poll_interval
            && self.tasks.values().any(|t| !t.consumed.is_empty())
        {
            return Err(CollectorError::Fenced(StreamsError::IllegalState(format!(
                "{} did not poll for {:?} (max.poll.interval.ms {:?}); its tasks may have migrated",
                self.thread_name,
                self.last_poll.elapsed(),
                self.max_poll_interval
            ))));
        }
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            t.task.flush_caches().map_err(CollectorError::Fatal)?;
            let out = t.task.drain_output();
            send_all(&mut self.producer, t, out).map_err(CollectorError::Fatal)?;
        }
        let dirty = self.tasks.values().any(|t| !t.consumed.is_empty())
            || self.producer.as_ref().is_some_and(|p| p.in_transaction())
            || self
                .tasks
                .values()
                .any(|t| t.producer.as_ref().is_some_and(|p| p.in_transaction()));
        if !dirty {
            // Nothing for Kafka to commit, but stores may hold writes of punctuations that
            // produced nothing: they reflect no new changelog record either.
            return self.commit_stores();
        }
        match self.env.guarantee() {
            ProcessingGuarantee::AtLeastOnce => {
                for t in self.tasks.values_mut().filter(|t| t.initialized) {
                    t.task.flush().map_err(CollectorError::Fatal)?;
                }
                if let Some(p) = &mut self.producer {
                    p.flush()?;
                }
                let mut tpl = TopicPartitionList::new();
                for t in self.tasks.values() {
                    Self::offsets_of(t, &mut tpl)?;
                }
                if tpl.count() > 0 {
                    consumer
                        .commit_offsets(&tpl)
                        .map_err(|e| classify("committing consumer offsets", e))?;
                }
                self.update_changelog_positions();
                for t in self.tasks.values_mut().filter(|t| t.initialized) {
                    write_checkpoint(t).map_err(CollectorError::Fatal)?;
                }
            }
            ProcessingGuarantee::ExactlyOnceV2 => {
                let mut tpl = TopicPartitionList::new();
                for t in self.tasks.values() {
                    Self::offsets_of(t, &mut tpl)?;
                }
                let group = consumer.group_metadata().map(Arc::new).ok_or_else(|| {
                    CollectorError::Fatal(StreamsError::IllegalState(
                        "the consumer has no group metadata".into(),
                    ))
                })?;
                if let Some(p) = &mut self.producer {
                    tracing::debug!(offsets = ?tpl, "committing transaction");
                    p.commit_transaction(&tpl, &group)?;
                }
                self.update_changelog_positions();
            }
            ProcessingGuarantee::ExactlyOnceLegacy => {
                let group = consumer.group_metadata().map(Arc::new).ok_or_else(|| {
                    CollectorError::Fatal(StreamsError::IllegalState(
                        "the consumer has no group metadata".into(),
                    ))
                })?;
                for t in self.tasks.values_mut() {
                    let mut tpl = TopicPartitionList::new();
                    Self::offsets_of(t, &mut tpl)?;
                    if let Some(p) = &mut t.producer {
                        p.commit_transaction(&tpl, &group)?;
                    }
                }
                self.update_changelog_positions();
            }
        }
        for t in self.tasks.values_mut() {
            t.consumed.clear();
        }
        // Only after Kafka has committed: a crash before this point leaves the stores at the
        // previous commit, and restoration replays the committed changelog tail.
        self.commit_stores()?;
        self.env.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.sensors.commit.record_elapsed(started);
        tracing::debug!(thread = %self.thread_name, took_ms = started.elapsed().as_millis() as u64, "committed");
        Ok(())
    }

    /// Writes what transactional stores hold, each with the changelog offset it reflects.
    fn commit_stores(&mut self) -> Result<(), CollectorError> {
        if !self.env.transactional_stores() {
            return Ok(());
        }
        for t in self.tasks.values_mut().filter(|t| t.initialized) {
            let positions: HashMap<&str, i64> = t
                .changelog_positions
                .iter()
                .map(|((topic, _), o)| (topic.as_str(), *o))
                .collect();
            t.task
                .commit_stores(&positions)
                .map_err(CollectorError::Fatal)?;
        }
        Ok(())
    }

    /// The thread's share of `statestore.uncommitted.max.bytes`, with transactional stores.
    fn uncommitted_limit(&self) -> Option<usize> {
        self.env.transactional_stores().then(|| {
            (self.env.config.uncommitted_max_bytes
                / self.env.config.num_stream_threads.max(1) as u64) as usize
        })
    }

    /// Whether the stores hold more uncommitted writes than the thread's share of
    /// `statestore.uncommitted.max.bytes`: time to commit before the interval is up.
    pub fn uncommitted_over_limit(&mut self) -> bool {
        let Some(limit) = self.uncommitted_limit() else {
            return false;
        };
        let held: usize = self
            .tasks
            .values_mut()
            .map(|t| t.task.uncommitted_bytes())
            .sum();
        if held > limit {
            tracing::debug!(thread = %self.thread_name, held, limit, "uncommitted store writes over the limit: committing early");
            return true;
        }
        false
    }

    fn update_changelog_positions(&mut self) {
        let shared = self.producer.as_ref().map(|p| p.changelog_offsets());
        for t in self.tasks.values_mut() {
            let acked = match (&t.producer, &shared) {
                (Some(p), _) => p.changelog_offsets(),
                (None, Some(s)) => s.clone(),
                (None, None) => continue,
            };
            for (key, pos) in t.changelog_positions.iter_mut() {
                if let Some(o) = acked.get(key) {
                    *pos = (*pos).max(o + 1);
                }
            }
        }
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
        let clean = if lost {
            false
        } else {
            match self.commit(consumer) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(thread = %self.thread_name, error = %e.into_inner(), "commit on revocation failed; closing the tasks dirty");
                    false
                }
            }
        };
        if !clean {
            self.abort();
        }
        for id in ids {
            if let Some(t) = self.tasks.remove(&id) {
                self.close_task(t, clean);
            }
        }
    }

    fn abort(&mut self) {
        if let Some(p) = &mut self.producer {
            p.abort_transaction();
        }
        for t in self.tasks.values_mut() {
            if let Some(p) = &mut t.producer {
                p.abort_transaction();
            }
        }
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
        if let Err(e) = t.task.close() {
            tracing::warn!(task = %id, error = %e, "closing the task failed");
        }
        // Anything produced while closing cannot be committed any more.
        let _ = t.task.drain_output();
        if clean && t.restore_registered && !self.restorer.is_restoring_task(id) {
            if let Err(e) = write_checkpoint(&t) {
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
        if !clean {
            self.abort();
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

#[cfg(test)]
mod tests;
