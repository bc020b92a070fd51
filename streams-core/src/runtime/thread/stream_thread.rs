//! A stream thread: one consumer in the application's group, the tasks of its assignment, and the
//! poll -> process -> punctuate -> commit loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::config::GroupMembership;
use crate::runtime::assignment::high_availability::HighAvailability;
use crate::runtime::assignment::instance_assignment::InstanceAssignment;
use crate::runtime::assignment::streams_assignor::{AssignorSettings, StreamsAssignor};
use crate::runtime::clients::config::{
    client_config, creation_error, global_error, log_line, ClientKind,
};
use crate::runtime::clients::seam::GroupConsumer;
use crate::runtime::commit::error::CollectorError;
use crate::runtime::env::ThreadEnv;
use crate::runtime::group::Security;
use crate::runtime::metrics::{self, Sensor, StreamsMetrics};
use crate::runtime::tasks::task_manager::TaskManager;
use crate::runtime::thread::group_protocol::GroupProtocol;
use crate::runtime::thread::membership::ThreadMembership;
use crate::runtime::thread::stalled_partitions::{StableOffsetWatch, MAX_TRANSACTION_TIMEOUT};
use crate::runtime::thread::supervisor::{StreamThreadExceptionResponse, Supervisor, ThreadState};
use crate::{Result, StreamsError};

/// How long one restore step may run before the thread polls its consumer again.
const RESTORE_STEP: Duration = Duration::from_millis(200);
/// How long a failed thread waits for the group to pass its `SHUTDOWN_APPLICATION` on: one
/// rebalance, which waits for every member to join again (members heartbeat every few seconds).
const SHUTDOWN_SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing thread waits for a rebalance under way before its final commit (well
/// within the close timeouts applications give).
const CLOSE_COMMIT_WAIT: Duration = Duration::from_secs(10);
/// Records taken from the consumer per loop iteration before processing them.
const MAX_POLL_RECORDS: usize = 1000;

/// Whether the broker holds records of an input past its `position` (the consumer's), given
/// the offset its fetching started from and its `end` (from the statistics).
fn lags(position: Option<i64>, fetched_from: Option<i64>, end: Option<i64>) -> bool {
    // librdkafka reports no position before it delivers a record: an input caught up at its
    // committed offset would otherwise look lagging for good, and its task would wait for it
    // whenever its other inputs ran dry.
    match (position.or(fetched_from), end) {
        (Some(position), Some(end)) => end > position,
        // Not fetched or not in the statistics yet: the first fetch may bring records.
        _ => true,
    }
}

/// Consumer context of a stream thread: rebalance callbacks reach the task manager.
pub(crate) struct ThreadContext {
    tasks: Arc<Mutex<TaskManager>>,
    supervisor: Arc<Supervisor>,
    index: usize,
    /// The end offset per partition (last stable offset under read_committed) from librdkafka's
    /// statistics, to tell an input that is merely not fetched yet from one that is caught up.
    end_offsets: Arc<Mutex<HashMap<(String, i32), i64>>>,
    read_committed: bool,
    /// Under read_committed: inputs held by a hanging transaction, named in the log.
    stalls: Mutex<StableOffsetWatch>,
}

impl ThreadContext {
    fn lock(&self) -> MutexGuard<'_, TaskManager> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for ThreadContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        global_error(error, reason);
    }
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.end_offsets.lock().unwrap_or_else(|p| p.into_inner());
        for (name, topic) in &statistics.topics {
            for (p, part) in &topic.partitions {
                let end = if self.read_committed {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                if *p >= 0 && end >= 0 {
                    ends.insert((name.clone(), *p), end);
                }
            }
        }
        drop(ends);
        // Watched: partitions being fetched (a paused instance's or a revoked partition's
        // offsets stay where they were) whose reader has taken everything up to the last stable
        // offset (one still behind it, paused while its task restores say, is not held by it).
        // The others are left out, and their watch starts over.
        if self.read_committed {
            let paused = self.supervisor.paused.load(Ordering::Relaxed);
            let held = statistics.topics.iter().flat_map(|(name, topic)| {
                topic
                    .partitions
                    .iter()
                    .filter(move |(p, part)| {
                        !paused
                            && **p >= 0
                            && part.fetch_state == "active"
                            && part.app_offset >= part.ls_offset
                    })
                    .map(move |(p, part)| (name.as_str(), *p, part.ls_offset, part.hi_offset))
            });
            let mut stalls = self.stalls.lock().unwrap_or_else(|p| p.into_inner());
            for hanging in stalls.report(std::time::Instant::now(), held) {
                hanging.warn(MAX_TRANSACTION_TIMEOUT);
            }
        }
    }
}

impl ConsumerContext for ThreadContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let _span = tracing::info_span!("rebalance", thread = self.index, phase = "revoke")
                    .entered();
                self.supervisor
                    .set_thread_state(self.index, ThreadState::Rebalancing);
                let lost = Consumer::assignment_lost(consumer);
                self.lock().on_revoke(consumer, tpl, lost);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let _span =
                tracing::info_span!("rebalance", thread = self.index, phase = "assign").entered();
            self.supervisor
                .set_thread_state(self.index, ThreadState::Rebalancing);
            let mut tm = self.lock();
            if let Err(e) = tm.on_assign(consumer, tpl) {
                tm.pending_error = Some(CollectorError::Fatal(e));
            }
        }
    }
}

/// A running stream thread.
pub(crate) struct StreamThread {
    name: String,
    index: usize,
    consumer: BaseConsumer<ThreadContext>,
    tasks: Arc<Mutex<TaskManager>>,
    supervisor: Arc<Supervisor>,
    shutdown: Arc<AtomicBool>,
    subscription: Vec<String>,
    client_id: String,
    metrics: Arc<StreamsMetrics>,
    /// `<application.id>-<process id>`, the instance's `client_id` label.
    instance_id: String,
    poll: Arc<Sensor>,
    poll_records: Arc<Sensor>,
    /// The consumer's settings and the assignor, when the runtime holds the membership itself
    /// (taken by `run`, which joins).
    own_membership: Option<(ClientConfig, StreamsAssignor, Security)>,
    /// The consumer's `client.id`, which the member sends too (the group view reads the
    /// process id from it).
    consumer_client_id: String,
    /// `group.instance.id` is set (static membership).
    static_member: bool,
    /// Where the thread publishes its running tasks' changelog offset sums for its assignor.
    live_offsets: Option<Arc<Mutex<std::collections::BTreeMap<crate::TaskId, i64>>>>,
    /// The instance's share of the group's assignments, which the thread's member updates.
    instance: Arc<InstanceAssignment>,
}

impl StreamThread {
    /// The thread's tasks, for interactive queries.
    pub(crate) fn task_manager(&self) -> Arc<Mutex<TaskManager>> {
        self.tasks.clone()
    }

    /// Creates the thread's clients (index is 1-based, as in `StreamThread-1`).
    pub fn new(
        env: Arc<ThreadEnv>,
        index: usize,
        supervisor: Arc<Supervisor>,
        shutdown: Arc<AtomicBool>,
        restore_listener: Option<Arc<dyn crate::runtime::state::StateRestoreListener>>,
    ) -> Result<Self> {
        let name = format!("StreamThread-{index}");
        let tasks = Arc::new(Mutex::new(TaskManager::new(
            env.clone(),
            index,
            name.clone(),
            restore_listener,
        )?));
        let isolation = if env.config.processing_guarantee.is_exactly_once() {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        let client_id = format!(
            "{}-{}-{name}-consumer",
            env.config.application_id, env.process_id
        );
        // Static membership: one member per thread, so each thread has its own instance id.
        let static_id = env
            .config
            .group_instance_id
            .as_ref()
            .map(|id| format!("{id}-{index}"));
        let group_protocol = GroupProtocol::of(&env.config)?;
        let mut required = vec![
            ("group.id", env.config.application_id.as_str()),
            ("client.id", client_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", isolation),
            ("enable.partition.eof", "false"),
        ];
        let mut defaults = vec![
            ("auto.offset.reset", "earliest"),
            ("max.poll.interval.ms", "300000"), // = DEFAULT_MAX_POLL_INTERVAL_MS
            // End offsets for task idling (see ThreadContext::end_offsets).
            ("statistics.interval.ms", "1000"),
            // librdkafka prefetches up to 64 MiB / 100k records per partition by default;
            // tasks buffer what they need, so a smaller prefetch keeps the footprint small.
            ("queued.max.messages.kbytes", "16384"),
            ("queued.min.messages", "10000"),
            // Those limits only decide whether to fetch; what one fetch brings is bounded by
            // bytes, and librdkafka holds every fetched record as an operation of ~250 bytes
            // whatever its size. Kafka's 50 MiB fetch of 20-byte records was 200 MiB of them
            // (the benchmark's 1M-key store); 1 MiB (raised to `message.max.bytes` if larger)
            // is at most ~50k records.
            ("fetch.max.bytes", "1048576"),
            // A fetch fills up with partitions in one order, each up to this much: at a quarter
            // of the fetch, at least four partitions of the broker get records from each one
            // (at Kafka's 1 MiB the first one with a backlog took all of it).
            ("max.partition.fetch.bytes", "262144"),
            // With the queue this small it fills often, and librdkafka then puts the
            // partitions' next fetch off by this long (1 s by default): the thread drained
            // its queue and idled (word count 3x slower with the 1 MiB fetch above).
            ("fetch.queue.backoff.ms", "10"),
        ];
        // When librdkafka holds the membership, range keeps partition p of every co-partitioned
        // topic on one member: on the client in the classic protocol, on the broker under
        // KIP-848 (whose session and heartbeat timing are the broker's too). The runtime's own
        // membership assigns tasks, which are co-partitioned by construction.
        match group_protocol {
            GroupProtocol::Classic => {
                required.push(("partition.assignment.strategy", "range"));
                defaults.push(("session.timeout.ms", "45000"));
            }
            GroupProtocol::Consumer => required.push(("group.remote.assignor", "range")),
        }
        if let Some(id) = &static_id {
            required.push(("group.instance.id", id.as_str()));
        }
        let consumer_config =
            client_config(&env.config, ClientKind::Consumer, &defaults, &required)?;
        let own_membership = if let Some(security) = env.own_membership.clone() {
            let settings = AssignorSettings {
                process_id: env.process_id.to_string(),
                endpoint: env
                    .config
                    .application_server
                    .as_ref()
                    .map(|h| h.to_string()),
                state_dir: env.config.app_state_dir(),
                stateful: env
                    .topology
                    .subtopologies()
                    .into_iter()
                    .filter(|s| !s.stores.is_empty())
                    .map(|s| s.id)
                    .collect(),
                high_availability: HighAvailability {
                    acceptable_recovery_lag: i64::try_from(env.config.acceptable_recovery_lag)
                        .unwrap_or(i64::MAX),
                    max_warmup_replicas: env.config.max_warmup_replicas as usize,
                    num_standby_replicas: env.config.num_standby_replicas as usize,
                },
                probing_interval: Duration::from_millis(env.config.probing_rebalance_interval_ms),
            };
            let assignor = StreamsAssignor::new(
                Arc::new(env.layout.clone()),
                settings,
                supervisor.shutdown_requested.clone(),
                env.assignment.clone(),
            );
            Some((consumer_config.clone(), assignor, security))
        } else {
            if env.config.group_membership == GroupMembership::Streams {
                tracing::info!(
                    "the group is joined through librdkafka (range assignment): the runtime's own \
                     membership speaks the classic protocol, over plaintext, TLS or SASL \
                     PLAIN/SCRAM"
                );
            }
            None
        };
        let live_offsets = own_membership.as_ref().map(|(_, a, _)| a.live_offsets());
        let consumer: BaseConsumer<ThreadContext> = consumer_config
            .create_with_context(ThreadContext {
                tasks: tasks.clone(),
                supervisor: supervisor.clone(),
                index,
                end_offsets: Arc::default(),
                read_committed: isolation == "read_committed",
                stalls: Mutex::new(StableOffsetWatch::new(MAX_TRANSACTION_TIMEOUT)),
            })
            .map_err(|e| creation_error("consumer", e))?;
        let instance_id = format!("{}-{}", env.config.application_id, env.process_id);
        let thread_id = format!("{instance_id}-{name}");
        let poll = env.metrics.sensor(metrics::THREAD_POLL, &[&thread_id]);
        let poll_records = env
            .metrics
            .sensor(metrics::THREAD_POLL_RECORDS, &[&thread_id]);
        Ok(StreamThread {
            metrics: env.metrics.clone(),
            instance_id,
            poll,
            poll_records,
            name,
            index,
            consumer,
            tasks,
            supervisor,
            shutdown,
            subscription: env.layout.subscription.clone(),
            client_id: env.process_id.to_string()[..8].to_string(),
            own_membership,
            consumer_client_id: client_id,
            static_member: static_id.is_some(),
            live_offsets,
            instance: env.assignment.clone(),
        })
    }

    /// Joins the group: the runtime's own member, or librdkafka's subscription.
    fn join(&mut self) -> Result<Option<ThreadMembership>> {
        match self.own_membership.take() {
            Some((config, assignor, security)) => ThreadMembership::start(
                &config,
                &self.consumer_client_id,
                assignor,
                self.instance.clone(),
                self.index,
                security,
            )
            .map(Some),
            None => self.subscribe().map(|()| None),
        }
    }

    /// Publishes the running tasks' changelog offset sums to the thread's assignor.
    fn publish_offsets(&self, tm: &TaskManager) {
        if let Some(live) = &self.live_offsets {
            *live.lock().unwrap_or_else(|p| p.into_inner()) = tm.active_offset_sums();
        }
    }

    /// Runs `f` with the consumer seam of the thread's membership.
    fn with_seam<R>(
        &self,
        membership: Option<&ThreadMembership>,
        f: impl FnOnce(&dyn GroupConsumer) -> R,
    ) -> R {
        match membership {
            Some(m) => f(&m.seam(&self.consumer)),
            None => f(&self.consumer),
        }
    }

    fn subscribe(&self) -> Result<()> {
        let topics: Vec<&str> = self.subscription.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|e| StreamsError::kafka(format!("subscribing to {topics:?}"), e))
    }

    fn lock(&self) -> MutexGuard<'_, TaskManager> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until shutdown is requested or the thread fails.
    pub fn run(mut self) {
        let span =
            tracing::info_span!("stream_thread", client = %self.client_id, thread = %self.name);
        let _g = span.enter();
        self.metrics
            .add_gauge(metrics::ALIVE_THREADS, &[&self.instance_id], 1.0);
        self.supervisor
            .set_thread_state(self.index, ThreadState::Rebalancing);
        let (membership, result) = match self.join() {
            Ok(m) => {
                let r = self.run_loop(m.as_ref());
                (m, r)
            }
            Err(e) => (None, Err(e)),
        };
        let failed = result.is_err();
        // Close tasks before the consumer goes away (dropping it revokes with nothing left to do).
        // A clean close commits: after the rebalance under way, if any, within its bound.
        let hold = membership
            .as_ref()
            .filter(|_| !failed)
            .and_then(|m| m.hold_for_close(&self.consumer, &mut self.lock(), CLOSE_COMMIT_WAIT));
        let close = self.with_seam(membership.as_ref(), |seam| {
            self.lock().close_all(seam, !failed)
        });
        drop(hold);
        if let Err(e) = &close {
            tracing::warn!(error = %e.error(), "final commit failed");
        }
        // The handler is asked while the member is still in the group: SHUTDOWN_APPLICATION
        // goes to the other instances through it.
        let response = result.as_ref().err().map(|e| {
            tracing::error!(error = %e, "stream thread failed");
            self.supervisor.decide(e)
        });
        let mut group_told = false;
        if response == Some(StreamThreadExceptionResponse::ShutdownApplication) {
            self.supervisor
                .shutdown_requested
                .store(true, Ordering::SeqCst);
            if let Some(m) = &membership {
                group_told = m.signal_shutdown(SHUTDOWN_SIGNAL_TIMEOUT);
            }
        }
        // By default a dynamic member leaves so the group rebalances at once, and a static one
        // keeps its place for the session timeout, as Kafka Streams' threads do; close options
        // may say otherwise.
        if let Some(m) = membership {
            m.member
                .close(self.supervisor.leaves_group_on_close(self.static_member));
            self.instance.forget_thread(self.index);
        }
        match (result, response) {
            (Err(e), Some(response)) => self
                .supervisor
                .thread_failed_as(self.index, e, response, group_told),
            _ => self
                .supervisor
                .set_thread_state(self.index, ThreadState::Dead),
        }
        drop(self.consumer);
        self.metrics
            .add_gauge(metrics::ALIVE_THREADS, &[&self.instance_id], -1.0);
    }

    fn run_loop(&self, membership: Option<&ThreadMembership>) -> Result<()> {
        // `shutdown` stops this thread alone (removal); the supervisor's, the whole instance.
        while !self.shutdown.load(Ordering::SeqCst)
            && !self.supervisor.shutdown.load(Ordering::SeqCst)
        {
            if let Some(m) = membership {
                let mut tm = self.lock();
                let served = m.serve(&self.consumer, &mut tm)?;
                if served.shutdown {
                    self.supervisor.shutdown_by_group();
                    break;
                }
                if served.changed {
                    self.supervisor
                        .set_thread_state(self.index, ThreadState::Rebalancing);
                    self.publish_offsets(&tm);
                }
            }
            let pause = self.supervisor.paused.load(Ordering::SeqCst);
            {
                let mut tm = self.lock();
                if pause != tm.is_paused() {
                    tm.set_paused(&self.consumer, pause)?;
                }
            }
            let restoring = self.lock().is_restoring();
            let first_wait = if restoring {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            let mut polled = Vec::new();
            let mut wait = first_wait;
            let poll_started = std::time::Instant::now();
            while polled.len() < MAX_POLL_RECORDS {
                match self.consumer.poll(wait) {
                    None => break,
                    Some(Ok(m)) => polled.push(m),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                }
                wait = Duration::ZERO;
            }
            self.poll.record_elapsed(poll_started);
            self.poll_records.record(polled.len() as f64);
            let step = {
                let mut tm = self.lock();
                tm.last_poll = std::time::Instant::now();
                for m in &polled {
                    tm.buffer(m);
                }
                drop(polled);
                self.step(&mut tm, membership).and_then(|()| {
                    tm.pause_full_inputs(&self.consumer)
                        .map_err(CollectorError::Fatal)
                })
            };
            match step {
                Ok(()) => {}
                Err(CollectorError::Fenced(e)) | Err(CollectorError::Aborted(e)) => {
                    tracing::warn!(error = %e, "tasks lost (fenced or transaction aborted): closing them dirty and rejoining the group");
                    self.supervisor
                        .set_thread_state(self.index, ThreadState::Rebalancing);
                    let mut tm = self.lock();
                    self.with_seam(membership, |seam| tm.lose_all(seam))?;
                    drop(tm);
                    match membership {
                        Some(m) => {
                            m.take_up_again(&self.consumer, "tasks lost after a failed commit")?
                        }
                        None => {
                            self.consumer.unsubscribe();
                            self.subscribe()?;
                        }
                    }
                }
                Err(CollectorError::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn step(
        &self,
        tm: &mut TaskManager,
        membership: Option<&ThreadMembership>,
    ) -> Result<(), CollectorError> {
        if let Some(e) = tm.pending_error.take() {
            return Err(e);
        }
        if tm.is_restoring() {
            self.with_seam(membership, |seam| tm.restore(seam, RESTORE_STEP))
                .map_err(CollectorError::Fatal)?;
        }
        // Local calls: the position is the client's, the end offsets come from its statistics.
        // Only asked for when a task with several inputs has an empty one, so taken lazily.
        let positions = std::cell::OnceCell::new();
        let ends = std::cell::OnceCell::new();
        let lag = |topic: &str, partition: i32, fetched_from: Option<i64>| -> bool {
            let position = positions
                .get_or_init(|| self.consumer.position().ok())
                .as_ref()
                .and_then(|tpl| tpl.find_partition(topic, partition))
                .and_then(|e| match e.offset() {
                    rdkafka::Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let ends = ends.get_or_init(|| {
                self.consumer
                    .context()
                    .end_offsets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            });
            lags(
                position,
                fetched_from,
                ends.get(&(topic.to_string(), partition)).copied(),
            )
        };
        tm.process(&lag)?;
        tm.punctuate()?;
        if tm.commit_due() || tm.uncommitted_over_limit() {
            match membership {
                // Through a join under way (the group keeps the last generation until every
                // member joined: `GroupMember::hold`), but not from its end until the thread
                // served the assignment it brings; the hold keeps the member from starting a
                // join until the commit is done.
                Some(m) => match m.member.hold(Duration::ZERO) {
                    Some(_hold) => {
                        if tm.maybe_commit(&m.seam(&self.consumer))? {
                            self.publish_offsets(tm);
                        }
                    }
                    None => tracing::debug!(
                        "commit put off: the group's next assignment is not served yet"
                    ),
                },
                None => tm.commit(&self.consumer)?,
            }
        }
        if tm.assigned && !tm.is_restoring() {
            self.supervisor
                .set_thread_state(self.index, ThreadState::Running);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::lags;

    #[test]
    fn an_input_lags_while_the_broker_holds_records_past_its_position() {
        assert!(lags(Some(5), None, Some(9)));
        assert!(!lags(Some(9), None, Some(9)));
        // Nothing delivered since the assignment: the committed offset it is fetched from
        // stands in, so a caught-up input does not look lagging for good.
        assert!(!lags(None, Some(9), Some(9)));
        assert!(lags(None, Some(4), Some(9)));
        // The consumer's own position wins once it has one.
        assert!(!lags(Some(9), Some(4), Some(9)));
        // Unknown until the first fetch or statistics: it may bring records.
        assert!(lags(None, None, Some(9)));
        assert!(lags(Some(9), None, None));
    }
}
