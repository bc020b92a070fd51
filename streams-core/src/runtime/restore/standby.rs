//! Standby replicas (`num.standby.replicas`): copies of other instances' task stores, kept up to
//! date from the changelogs, so the instance taking a task over after a failure restores only
//! the tail written since the copy's last checkpoint instead of the whole changelog.
//!
//! One standby thread per instance takes the standby tasks it should hold from the assignments
//! (the runtime's own membership; warm-up replicas too) or from a description of the group
//! every few seconds (librdkafka's membership, see [`GroupView`]), opens them, and follows their
//! changelog partitions with its own consumer (read_committed under exactly-once, so a copy
//! never holds uncommitted writes). It
//! writes each copy's checkpoint every few seconds and when the copy closes; with transactional
//! stores (exactly-once) every applied batch also records its offset in the store itself. When a
//! stream thread of this instance is assigned the task as active, it first closes the copy, so
//! the active task opens the same directory and restores from where the copy stopped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use state_stores::{OffsetCheckpoint, StoreError, TaskDirLock};

use crate::runtime::clients::config::{unjoined_consumer, ClientKind, TracingContext};
use crate::runtime::clients::manual_assignment::ManualAssignment;
use crate::runtime::env::{StandbyHandover, ThreadEnv};
use crate::runtime::restore::changelog_reader::{changelog_record, RestoreBatch};
use crate::runtime::restore::group_view::GroupView;
use crate::runtime::state::{StandbySuspendReason, StandbyUpdateListener};
use crate::runtime::stores::task_dir::{open_task_state, OpenedTask, CHECKPOINT_FILE};
use crate::runtime::tasks::active_task::checkpoint_due;
use crate::task::{StreamTask, TaskId};
use crate::Result;

/// How often the group is described to find this instance's standby tasks.
const VIEW_INTERVAL: Duration = Duration::from_secs(2);
/// How often a copy checks whether its checkpoint is due while it follows its changelog.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// The longest the standby thread holds the shared lock while reading changelogs.
const POLL_SLICE: Duration = Duration::from_millis(100);
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The standby thread's handle, shared with the stream threads (which close a copy before they
/// make the task active here).
pub(crate) type SharedStandbys = Arc<Mutex<Option<StandbyTasks>>>;

pub(crate) fn lock(s: &SharedStandbys) -> MutexGuard<'_, Option<StandbyTasks>> {
    lock_copies(s)
}

/// The standby copies, or none once a panic interrupted a thread holding them: a copy's stores may
/// then hold a half-applied batch, so every copy is dropped with its checkpoint (an active task
/// taking such a directory over restores it from the changelog instead of trusting it).
fn lock_copies(m: &Mutex<Option<StandbyTasks>>) -> MutexGuard<'_, Option<StandbyTasks>> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => {
            let mut g = poisoned.into_inner();
            if let Some(copies) = g.take() {
                tracing::error!("a thread panicked while holding the standby copies: dropping them and their checkpoints");
                copies.abandon();
            }
            m.clear_poison();
            g
        }
    }
}

impl StandbyHandover for Mutex<Option<StandbyTasks>> {
    fn mark_active(&self, id: TaskId) {
        if let Some(s) = lock_copies(self).as_mut() {
            s.mark_active(id);
        }
    }

    fn mark_inactive(&self, id: TaskId) {
        if let Some(s) = lock_copies(self).as_mut() {
            s.mark_inactive(id);
        }
    }
}

struct StandbyTask {
    task: StreamTask,
    dir: PathBuf,
    /// Changelog partition -> store.
    stores: HashMap<(String, i32), String>,
    /// Next changelog offset to apply, per changelog partition.
    positions: BTreeMap<(String, i32), i64>,
    /// The sum of `positions` when the checkpoint file was last written (or read).
    checkpointed: i64,
    // Dropped last: the directory stays locked until the stores are closed.
    _lock: TaskDirLock,
}

/// The standby copies of one instance.
pub(crate) struct StandbyTasks {
    env: Arc<ThreadEnv>,
    consumer: BaseConsumer<TracingContext>,
    tasks: BTreeMap<TaskId, StandbyTask>,
    /// Tasks a stream thread of this instance runs as active.
    active: BTreeSet<TaskId>,
    /// Follows the copies' changelog partitions, given to the consumer once per poll.
    assignment: ManualAssignment,
    last_checkpoint: Instant,
    listener: Option<Arc<dyn StandbyUpdateListener>>,
    /// With a listener: each followed partition's end offset, refreshed every
    /// [`CHECKPOINT_INTERVAL`].
    ends: HashMap<(String, i32), i64>,
}

impl StandbyTasks {
    pub fn new(
        env: Arc<ThreadEnv>,
        listener: Option<Arc<dyn StandbyUpdateListener>>,
    ) -> Result<Self> {
        let client_id = format!(
            "{}-{}-StandbyThread-consumer",
            env.config.application_id, env.process_id
        );
        let consumer =
            unjoined_consumer(&env.config, ClientKind::RestoreConsumer, &client_id, &[])?;
        Ok(StandbyTasks {
            env,
            consumer,
            tasks: BTreeMap::new(),
            active: BTreeSet::new(),
            assignment: ManualAssignment::default(),
            last_checkpoint: Instant::now(),
            listener,
            ends: HashMap::new(),
        })
    }

    /// The changelog's end as last looked up (-1 when not known yet).
    fn current_end(&self, topic: &str, partition: i32) -> i64 {
        self.ends
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(-1)
    }

    /// Looks the end offsets of the followed partitions up again (for the listener only).
    fn refresh_ends(&mut self) {
        if self.listener.is_none() {
            return;
        }
        let followed: Vec<(String, i32)> = self
            .tasks
            .values()
            .flat_map(|t| t.positions.keys().cloned())
            .collect();
        for (topic, p) in followed {
            if let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&topic, p, Duration::from_millis(200))
            {
                self.ends.insert((topic, p), high);
            }
        }
    }

    /// Runs `f` on the store `name` of every copy that has it, with the task's partition and
    /// the copy's position (the next changelog offset it would apply, per changelog partition).
    pub(crate) fn with_positioned_stores(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(i32, crate::iq::Position, &mut crate::task::StoreSlot),
    ) -> Result<()> {
        for (id, t) in self.tasks.iter_mut() {
            if t.task.store_names().iter().any(|s| s == name) {
                let position = crate::iq::Position::of(&t.positions);
                t.task.with_store(name, |slot| {
                    f(id.partition, position, slot);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Per store of every copy: (store, changelog topic, partition, next offset to apply). Past
    /// the last record the consumer's own position counts: under exactly-once it has also
    /// stepped over the transaction markers, which hold no records to apply.
    pub(crate) fn changelog_positions(&self) -> Vec<(String, String, i32, i64)> {
        let consumed: HashMap<(String, i32), i64> = self
            .consumer
            .position()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        rdkafka::Offset::Offset(o) => {
                            Some(((e.topic().to_string(), e.partition()), o))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.tasks
            .values()
            .flat_map(|t| {
                t.positions.iter().filter_map(|((topic, p), pos)| {
                    let key = (topic.clone(), *p);
                    let at = match consumed.get(&key) {
                        Some(c) if !self.assignment.is_pending_for(topic, *p) => (*pos).max(*c),
                        _ => *pos,
                    };
                    t.stores
                        .get(&key)
                        .map(|store| (store.clone(), topic.clone(), *p, at))
                })
            })
            .collect()
    }

    /// Per copy, the sum of the changelog offsets it has reached (what the assignor compares
    /// with other instances' state).
    pub fn offset_sums(&self) -> BTreeMap<TaskId, i64> {
        self.tasks
            .iter()
            .map(|(id, t)| (*id, t.positions.values().sum()))
            .collect()
    }

    /// The standby tasks held now.
    pub fn task_ids(&self) -> BTreeSet<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// A stream thread makes `id` active here: the copy (if any) is checkpointed and closed, so
    /// the active task restores only what the copy had not applied yet.
    pub fn mark_active(&mut self, id: TaskId) {
        self.active.insert(id);
        if let Some(t) = self.tasks.remove(&id) {
            tracing::info!(task = %id, "standby task handed over to an active task");
            self.close_task(id, t, StandbySuspendReason::Promoted);
        }
    }

    /// `id` is no longer active here.
    pub fn mark_inactive(&mut self, id: TaskId) {
        self.active.remove(&id);
    }

    /// Opens the copies in `desired` (unless active here) and closes the others.
    fn reconcile(&mut self, desired: &BTreeSet<TaskId>) {
        let gone: Vec<TaskId> = self
            .tasks
            .keys()
            .filter(|id| !desired.contains(id) || self.active.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(t) = self.tasks.remove(&id) {
                tracing::info!(task = %id, "closing standby task");
                self.close_task(id, t, StandbySuspendReason::Migrated);
            }
        }
        for id in desired {
            if self.tasks.contains_key(id) || self.active.contains(id) {
                continue;
            }
            match self.open_task(*id) {
                Ok(Some(t)) => {
                    tracing::info!(task = %id, from = ?t.positions, "standby task opened");
                    for ((topic, p), pos) in &t.positions {
                        self.assignment.start(topic, *p, *pos);
                        if let (Some(l), Some(store)) =
                            (&self.listener, t.stores.get(&(topic.clone(), *p)))
                        {
                            l.on_update_start(topic, *p, store, *pos);
                        }
                    }
                    self.tasks.insert(*id, t);
                }
                // Still locked by a closing active task: the next round tries again.
                Ok(None) => {}
                Err(e) => tracing::warn!(task = %id, error = %e, "cannot open standby task"),
            }
        }
    }

    fn open_task(&self, id: TaskId) -> Result<Option<StandbyTask>> {
        let env = &self.env;
        let dir = env.config.app_state_dir().join(id.to_string());
        let lock = match TaskDirLock::acquire(&dir) {
            Ok(l) => l,
            Err(StoreError::DirectoryLocked { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // A copy may take over the directory of an active task that crashed: without a
        // recorded offset or a checkpoint its stores are not trusted.
        let OpenedTask { task, positions } = open_task_state(env, id, &dir, None, true)?;
        let stores = task
            .changelogs()
            .into_iter()
            .map(|(store, topic)| ((topic, id.partition), store))
            .collect();
        Ok(Some(StandbyTask {
            task,
            dir,
            stores,
            checkpointed: positions.values().sum(),
            positions,
            _lock: lock,
        }))
    }

    fn close_task(&mut self, id: TaskId, mut t: StandbyTask, reason: StandbySuspendReason) {
        for ((topic, p), pos) in &t.positions {
            self.assignment.stop(topic, *p);
            if let (Some(l), Some(store)) = (&self.listener, t.stores.get(&(topic.clone(), *p))) {
                l.on_update_suspended(topic, *p, store, *pos, self.current_end(topic, *p), reason);
            }
        }
        if let Err(e) = write_checkpoint(&mut t) {
            tracing::warn!(task = %id, error = %e, "writing the standby checkpoint failed");
        }
        if let Err(e) = t.task.close() {
            tracing::warn!(task = %id, error = %e, "closing the standby task failed");
        }
    }

    /// Applies changelog records for up to `slice`; checkpoints every [`CHECKPOINT_INTERVAL`].
    fn poll(&mut self, slice: Duration) -> Result<u64> {
        if let Err(e) = self.assignment.apply(&self.consumer) {
            tracing::warn!(error = %e, "assigning standby changelog partitions failed");
        }
        if self.tasks.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + slice;
        let mut batches: HashMap<(String, i32), (RestoreBatch, i64)> = HashMap::new();
        let mut read = 0u64;
        while read < 10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(m) = self.consumer.poll(left) else {
                break;
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "standby consumer error");
                    continue;
                }
            };
            let Some(k) = m.key() else { continue };
            // A partition whose (re)start is pending still delivers its previous assignment's
            // records; a copy applies only records from its own position on.
            let current = self
                .tasks
                .values()
                .find_map(|t| t.positions.get(&(m.topic().to_string(), m.partition())))
                .is_some_and(|pos| {
                    m.offset() >= *pos && !self.assignment.is_pending_for(m.topic(), m.partition())
                });
            if !current {
                continue;
            }
            let e = batches
                .entry((m.topic().to_string(), m.partition()))
                .or_default();
            e.0.push(changelog_record(&m, k));
            e.1 = m.offset();
            read += 1;
        }
        for (key, (records, last)) in batches {
            let Some(t) = self
                .tasks
                .values_mut()
                .find(|t| t.positions.contains_key(&key))
            else {
                continue;
            };
            let Some(store) = t.stores.get(&key) else {
                continue;
            };
            let batch_size = records.len() as u64;
            t.task.restore_up_to(store, records, last + 1)?;
            if let Some(l) = &self.listener {
                let end = self.ends.get(&key).copied().unwrap_or(-1);
                l.on_batch_loaded(&key.0, key.1, store, t.task.id(), last, batch_size, end);
            }
            t.positions.insert(key, last + 1);
        }
        if self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            self.last_checkpoint = Instant::now();
            self.refresh_ends();
            // As an active task's: after `CHECKPOINT_DELTA` records, each checkpoint flushing the
            // stores' memtables.
            for (id, t) in self
                .tasks
                .iter_mut()
                .filter(|(_, t)| checkpoint_due(t.positions.values(), t.checkpointed))
            {
                if let Err(e) = write_checkpoint(t) {
                    tracing::warn!(task = %id, error = %e, "writing the standby checkpoint failed");
                }
            }
        }
        Ok(read)
    }

    fn close_all(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for (id, t) in tasks {
            self.close_task(id, t, StandbySuspendReason::Migrated);
        }
    }

    /// Drops every copy without flushing or checkpointing, deleting the checkpoints they had.
    fn abandon(self) {
        for (id, t) in self.tasks {
            if let Err(e) = OffsetCheckpoint::new(t.dir.join(CHECKPOINT_FILE)).delete() {
                tracing::warn!(task = %id, error = %e, "deleting the standby checkpoint failed");
            }
        }
    }
}

/// Flushes the stores, then records the positions they reflect.
fn write_checkpoint(t: &mut StandbyTask) -> Result<()> {
    t.task.flush()?;
    OffsetCheckpoint::new(t.dir.join(CHECKPOINT_FILE)).write(&t.positions)?;
    t.checkpointed = t.positions.values().sum();
    Ok(())
}

/// The standby thread: keeps this instance's standby tasks in line with the group and up to date
/// (their changelogs unread while `paused()`, as Kafka Streams' `pause` skips standby tasks).
///
/// With the runtime's own membership the assignments name the standby and warm-up tasks (see
/// [`crate::runtime::assignment::high_availability`]), and the thread reports how far its copies
/// have come for the next assignment; otherwise it derives them from the group description.
pub(crate) fn run_standby_thread(
    env: Arc<ThreadEnv>,
    standbys: SharedStandbys,
    shutdown: Arc<AtomicBool>,
    paused: impl Fn() -> bool,
) {
    let me = env.process_id.to_string();
    let replicas = env.config.num_standby_replicas;
    let mut describer = None;
    let mut next_view = Instant::now();
    let mut assigned = BTreeSet::new();
    while !shutdown.load(Ordering::SeqCst) {
        let by_group = env.own_membership.is_some();
        let latest = by_group.then(|| env.assignment.standby_tasks());
        // A new assignment applies at once; the same one again every view interval, to open
        // copies whose directories were still locked.
        let changed = latest.as_ref().is_some_and(|l| *l != assigned);
        if changed || Instant::now() >= next_view {
            next_view = Instant::now() + VIEW_INTERVAL;
            let desired = match latest {
                Some(tasks) => Some(tasks),
                None if replicas > 0 => describe_group(&env, &mut describer, &standbys, &me),
                None => None,
            };
            if let Some(desired) = desired {
                if let Some(s) = lock(&standbys).as_mut() {
                    tracing::debug!(?desired, "standby placement");
                    s.reconcile(&desired);
                }
                assigned = desired;
            }
        }
        if paused() {
            std::thread::sleep(POLL_SLICE);
            continue;
        }
        let read = match lock(&standbys).as_mut() {
            Some(s) => {
                let read = s.poll(POLL_SLICE);
                if by_group {
                    env.assignment.set_standby_offsets(s.offset_sums());
                }
                read
            }
            None => break,
        };
        match read {
            Ok(0) => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => {}
            Err(e) => {
                // A copy that cannot be updated is dropped; the next view reopens it from its
                // checkpoint.
                tracing::warn!(error = %e, "updating standby tasks failed; closing them");
                if let Some(s) = lock(&standbys).as_mut() {
                    s.close_all();
                }
            }
        }
    }
    if let Some(mut s) = lock(&standbys).take() {
        s.close_all();
    }
}

/// The standby tasks of this instance `me` as the group description places them (librdkafka's
/// membership, whose assignments carry nothing else); `None` when the group cannot be described
/// now. The describing client is made on first use.
fn describe_group(
    env: &ThreadEnv,
    describer: &mut Option<BaseConsumer<TracingContext>>,
    standbys: &SharedStandbys,
    me: &str,
) -> Option<BTreeSet<TaskId>> {
    if describer.is_none() {
        let client_id = format!(
            "{}-{}-StandbyThread-describer",
            env.config.application_id, env.process_id
        );
        match unjoined_consumer(&env.config, ClientKind::RestoreConsumer, &client_id, &[]) {
            Ok(c) => *describer = Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the client that describes the group");
                return None;
            }
        }
    }
    let client = describer.as_ref()?;
    match GroupView::describe(
        client,
        &env.config.application_id,
        &env.layout,
        DESCRIBE_TIMEOUT,
    ) {
        Ok(view) => {
            let active = lock(standbys).as_ref().map(|s| s.active.clone())?;
            tracing::debug!(?view, "group view");
            Some(view.standby_tasks(me, &active, env.config.num_standby_replicas))
        }
        Err(e) => {
            tracing::debug!(error = %e, "describing the group failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::commit::producer::KafkaProducers;
    use crate::runtime::metrics::RuntimeCounters;
    use crate::runtime::test_env::pass_through_env;

    /// A copy of task 0_0 holding a checkpoint, as the standby thread keeps it.
    fn copies_with_a_checkpoint(state: &std::path::Path) -> (StandbyTasks, PathBuf) {
        let env = Arc::new(pass_through_env(
            "at_least_once",
            state,
            Arc::new(KafkaProducers),
            Arc::new(RuntimeCounters::default()),
        ));
        let mut copies = StandbyTasks::new(env, None).expect("standby consumer");
        let id = TaskId {
            subtopology: 0,
            partition: 0,
        };
        let mut copy = copies.open_task(id).expect("opens").expect("not locked");
        copy.positions
            .insert(("tm-test-store-changelog".into(), 0), 42);
        write_checkpoint(&mut copy).expect("checkpoint");
        let checkpoint = copy.dir.join(CHECKPOINT_FILE);
        copies.tasks.insert(id, copy);
        (copies, checkpoint)
    }

    #[test]
    fn copies_a_panic_interrupted_are_dropped_with_their_checkpoints() {
        let state = tempfile::tempdir().expect("temp dir");
        let (copies, checkpoint) = copies_with_a_checkpoint(state.path());
        assert!(checkpoint.exists());
        let shared: SharedStandbys = Arc::new(Mutex::new(Some(copies)));
        let holder = shared.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = holder.lock();
            panic!("the standby thread panics while applying a batch");
        })
        .join();
        assert!(panicked.is_err() && shared.is_poisoned());
        // A stream thread takes the task over: it must not find a checkpoint vouching for the copy.
        shared.mark_active(TaskId {
            subtopology: 0,
            partition: 0,
        });
        assert!(!checkpoint.exists(), "the copy's checkpoint is gone");
        assert!(lock(&shared).is_none(), "the copies are dropped");
        assert!(!shared.is_poisoned());
    }

    #[test]
    fn a_copy_handed_over_cleanly_keeps_its_checkpoint() {
        let state = tempfile::tempdir().expect("temp dir");
        let (copies, checkpoint) = copies_with_a_checkpoint(state.path());
        let shared: SharedStandbys = Arc::new(Mutex::new(Some(copies)));
        shared.mark_active(TaskId {
            subtopology: 0,
            partition: 0,
        });
        assert!(checkpoint.exists());
        assert!(lock(&shared)
            .as_ref()
            .is_some_and(|s| s.task_ids().is_empty()));
    }
}
