//! [`ThreadMembership`]: a stream thread's place in the application's group when the runtime
//! speaks the group protocol itself: the [`GroupMember`] with the thread's
//! [`StreamsAssignor`], the offset client its at_least_once commits go through, and the step
//! that turns the member's events into task changes on the thread's consumer (manual, incremental
//! assignment).
//!
//! Chosen for the classic protocol, over plaintext, TLS or SASL PLAIN/SCRAM; KIP-848 groups
//! (`group.protocol=consumer`, assigned by the broker) and SASL GSSAPI or OAUTHBEARER keep
//! librdkafka's own membership (its `range` assignor, eager).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{GroupMembership, StreamsConfig};
use crate::runtime::assignment::assignment_info::AssignmentInfo;
use crate::runtime::assignment::instance_assignment::InstanceAssignment;
use crate::runtime::assignment::streams_assignor::StreamsAssignor;
use crate::runtime::clients::seam::GroupConsumer;
use crate::runtime::group::member::JoinHold;
use crate::runtime::group::{
    CommittedOffset, GenerationMetadata, GroupMember, MemberConfig, MemberEvent, OffsetClient,
    Partition, Security,
};
use crate::runtime::tasks::task_manager::TaskManager;
use crate::runtime::thread::group_protocol::GroupProtocol;
use crate::{Result, StreamsError};

/// What serving the member's events found.
pub(crate) struct Served {
    /// The assignment changed (or was lost).
    pub changed: bool,
    /// The group's leader told every instance to stop (another instance's
    /// `SHUTDOWN_APPLICATION`).
    pub shutdown: bool,
}

/// Whether the stream threads join through the runtime's own membership, and if so the security
/// of its connections (from the consumer's settings): unless `group.membership=librdkafka`, for
/// the classic protocol with security settings the member follows (see the module doc for the
/// others; settings that cannot be used at all are left to librdkafka to report).
pub(crate) fn own_membership(config: &StreamsConfig) -> Option<Security> {
    if config.group_membership != GroupMembership::Streams
        || !matches!(GroupProtocol::of(config), Ok(GroupProtocol::Classic))
    {
        return None;
    }
    match Security::from_settings(&config.client_settings("consumer.")) {
        Ok(security) => security,
        Err(e) => {
            tracing::warn!(error = %e, "the consumer's security settings cannot be used");
            None
        }
    }
}

fn millis(consumer: &ClientConfig, key: &str, default: u64) -> Result<Duration> {
    match consumer.get(key) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v.trim().parse().map(Duration::from_millis).map_err(|_| {
            StreamsError::Config(format!(
                "consumer `{key}` is `{v}`; give a number of milliseconds"
            ))
        }),
    }
}

/// A stream thread's group member and offset client.
pub(crate) struct ThreadMembership {
    pub member: GroupMember,
    offsets: Mutex<OffsetClient>,
    group_id: String,
    /// Where the thread's assignments tell the instance its standbys and the group's endpoints.
    instance: Arc<InstanceAssignment>,
    /// The thread's index in the instance.
    thread: usize,
    /// When the leader asked this member to rebalance again (a probing rebalance).
    probe_at: Mutex<Option<Instant>>,
    /// Committed offsets are read stable (KIP-447: no transaction pending on them), as the
    /// consumer's `isolation.level=read_committed` asks.
    require_stable: bool,
    /// Where a partition without a committed offset is fetched from (`auto.offset.reset`).
    reset: Offset,
}

impl ThreadMembership {
    /// Joins the group of `consumer`'s settings (`group.id`, timeouts, `group.instance.id`) as
    /// `client_id`, offering `assignor`, as thread `thread` of the instance whose share of the
    /// assignments is `instance`.
    pub fn start(
        consumer: &ClientConfig,
        client_id: &str,
        assignor: StreamsAssignor,
        instance: Arc<InstanceAssignment>,
        thread: usize,
        security: Security,
    ) -> Result<Self> {
        let setting = |key: &str| {
            consumer.get(key).map(str::to_string).ok_or_else(|| {
                StreamsError::IllegalState(format!("the stream thread's consumer has no `{key}`"))
            })
        };
        let group_id = setting("group.id")?;
        let mut config = MemberConfig::new(&setting("bootstrap.servers")?, &group_id, client_id);
        config.group_instance_id = consumer.get("group.instance.id").map(str::to_string);
        config.session_timeout = millis(consumer, "session.timeout.ms", 45_000)?;
        config.rebalance_timeout = millis(consumer, "max.poll.interval.ms", 300_000)?;
        config.heartbeat_interval = millis(consumer, "heartbeat.interval.ms", 3_000)?;
        config.request_timeout = millis(consumer, "request.timeout.ms", 30_000)?;
        config.retry_backoff = millis(consumer, "retry.backoff.ms", 100)?;
        config.security = security;
        let require_stable = consumer
            .get("isolation.level")
            .is_some_and(|l| l.eq_ignore_ascii_case("read_committed"));
        let reset = match consumer
            .get("auto.offset.reset")
            .map(str::to_ascii_lowercase)
        {
            Some(r) if ["earliest", "smallest", "beginning"].contains(&r.as_str()) => {
                Offset::Beginning
            }
            Some(r) if ["latest", "largest", "end"].contains(&r.as_str()) => Offset::End,
            // `error`: librdkafka looks for a committed offset itself and reports none.
            Some(_) => Offset::Invalid,
            None => Offset::End,
        };
        let offsets = Mutex::new(OffsetClient::new(&config));
        let member = GroupMember::start(config, Arc::new(assignor))?;
        Ok(ThreadMembership {
            member,
            offsets,
            group_id,
            instance,
            thread,
            probe_at: Mutex::new(None),
            require_stable,
            reset,
        })
    }

    /// The consumer seam the task manager commits and pauses through.
    pub fn seam<'a, C: ConsumerContext + 'static>(
        &'a self,
        consumer: &'a BaseConsumer<C>,
    ) -> MemberConsumer<'a, C> {
        MemberConsumer {
            consumer,
            membership: self,
        }
    }

    /// Applies what the member reports: revoked tasks committed and closed (then the member is
    /// told, so they can move), new tasks created, lost tasks dropped without a commit.
    pub fn serve<C: ConsumerContext + 'static>(
        &self,
        consumer: &BaseConsumer<C>,
        tm: &mut TaskManager,
    ) -> Result<Served> {
        // Held while the events are applied: a revocation commits, and no join may change the
        // generation under it.
        let (events, _hold) = self.member.poll_and_hold()?;
        let seam = self.seam(consumer);
        let mut served = Served {
            changed: !events.is_empty(),
            shutdown: false,
        };
        for event in &events {
            match event {
                MemberEvent::Assigned {
                    revoked,
                    assignment,
                    ..
                } => {
                    // Reconciled against what the thread owns now (what the consumer fetches,
                    // and the inputs of new tasks whose fetch waits for their committed offsets)
                    // rather than the event's difference, which is relative to what the member
                    // thought it owned: after the thread gave everything up, or with an earlier
                    // event still queued, the two differ.
                    let mut current = assigned(consumer)?;
                    current.extend(tm.input_partitions());
                    let target = &assignment.partitions;
                    let give_up: BTreeSet<Partition> =
                        current.difference(target).cloned().collect();
                    if !give_up.is_empty() {
                        tm.on_revoke(&seam, &partition_list(&give_up), false);
                        unassign(consumer, &give_up)?;
                    }
                    if !revoked.is_empty() {
                        self.member.revoked(revoked);
                    }
                    let info = AssignmentInfo::decode(&assignment.user_data);
                    if info.shutdown_requested {
                        served.shutdown = true;
                        return Ok(served);
                    }
                    self.instance.apply(self.thread, &info);
                    *self.probe_at.lock().unwrap_or_else(|p| p.into_inner()) = info
                        .probe_after_ms
                        .map(|ms| Instant::now() + Duration::from_millis(ms));
                    let added: BTreeSet<Partition> = target.difference(&current).cloned().collect();
                    if !added.is_empty() {
                        // Not fetched yet: the task manager reads the committed offsets through
                        // the member and starts the fetch from them (`start_fetching`).
                        tm.on_assign(&seam, &partition_list(&added))?;
                    }
                    tm.assigned = true;
                }
                MemberEvent::Revoked { partitions } => {
                    tm.on_revoke(&seam, &partition_list(partitions), false);
                    unassign(consumer, partitions)?;
                    self.member.revoked(partitions);
                }
                MemberEvent::Lost { partitions, reason } => {
                    tracing::warn!(%reason, partitions = partitions.len(), "tasks lost with the group membership: closing them without a commit");
                    tm.on_revoke(&seam, &partition_list(partitions), true);
                    unassign(consumer, partitions)?;
                }
            }
        }
        let due = {
            let mut probe_at = self.probe_at.lock().unwrap_or_else(|p| p.into_inner());
            let due = probe_at.is_some_and(|at| Instant::now() >= at);
            if due {
                *probe_at = None;
            }
            due
        };
        if due {
            // Warm-up replicas may have caught up: the leader moves the tasks that have.
            self.member
                .request_rejoin("probing rebalance: warm-up replicas may have caught up");
        }
        Ok(served)
    }

    /// A hold for the closing thread's final commit: waits up to `timeout` for a rebalance
    /// under way, serving what it brings (the thread is the one to serve it: waiting for the
    /// events to be taken would wait for itself). `None` when no hold came in time; the commit
    /// then goes ahead with the generation it has.
    pub fn hold_for_close<C: ConsumerContext + 'static>(
        &self,
        consumer: &BaseConsumer<C>,
        tm: &mut TaskManager,
        timeout: Duration,
    ) -> Option<JoinHold<'_>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(hold) = self.member.hold(Duration::from_millis(100)) {
                return Some(hold);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            if let Err(e) = self.serve(consumer, tm) {
                tracing::warn!(error = %e, "serving the group's last assignment while closing");
                return None;
            }
        }
    }

    /// Asks the group to stop every instance (`SHUTDOWN_APPLICATION`; the instance's flag is
    /// set, so this member's next subscription carries the request) and waits up to `timeout`
    /// for the leader's answer. The thread holds no tasks any more: whatever the member reports
    /// meanwhile is given up at once. Returns whether the request went through.
    pub fn signal_shutdown(&self, timeout: Duration) -> bool {
        self.member
            .request_rejoin("this instance asks the application to shut down");
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let Ok(events) = self.member.poll_timeout(Duration::from_millis(200)) else {
                return false;
            };
            for event in events {
                match event {
                    MemberEvent::Assigned {
                        assignment,
                        revoked,
                        ..
                    } => {
                        self.member.revoked(&revoked);
                        if AssignmentInfo::decode(&assignment.user_data).shutdown_requested {
                            return true;
                        }
                    }
                    MemberEvent::Revoked { partitions } => self.member.revoked(&partitions),
                    MemberEvent::Lost { .. } => {}
                }
            }
        }
        false
    }

    /// The thread gave every task up (fenced, or its transaction aborted): nothing is read
    /// until the member's next assignment, which hands the same partitions back (the member
    /// still claims them) and recreates their tasks from the committed offsets.
    pub fn take_up_again<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        reason: &str,
    ) -> Result<()> {
        // Incrementally, as every other change of this consumer's assignment.
        unassign(consumer, &assigned(consumer)?)?;
        self.member.rejoin_keeping_claims(reason);
        Ok(())
    }
}

fn partition_list(partitions: &BTreeSet<Partition>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    tpl
}

/// The partitions the consumer reads now.
fn assigned<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<BTreeSet<Partition>> {
    let tpl = consumer
        .assignment()
        .map_err(|e| StreamsError::kafka("reading the assignment", e))?;
    Ok(tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect())
}

/// Stops fetching those of `partitions` the consumer is assigned.
fn unassign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &BTreeSet<Partition>,
) -> Result<()> {
    let current = assigned(consumer)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions.intersection(&current) {
        tpl.add_partition(t, *p);
    }
    if tpl.count() > 0 {
        consumer
            .incremental_unassign(&tpl)
            .map_err(|e| StreamsError::kafka("unassigning revoked partitions", e))?;
    }
    Ok(())
}

/// The task manager's consumer when the runtime holds the membership: fetching through
/// librdkafka, commits with the member's generation.
pub(crate) struct MemberConsumer<'a, C: ConsumerContext + 'static> {
    consumer: &'a BaseConsumer<C>,
    membership: &'a ThreadMembership,
}

/// How long an assignment waits for the start offsets of partitions without a committed
/// offset; past it, librdkafka looks them up itself.
const RESET_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl<C: ConsumerContext + 'static> MemberConsumer<'_, C> {
    /// Turns the logical start offsets of `starting` (`auto.offset.reset`: earliest or latest,
    /// for partitions without a committed offset) into the offsets they stand for, with one
    /// ListOffsets per leader. Left to librdkafka, the lookup of a new partition is lost to the
    /// pause that follows its assignment (the pause bumps the partition's version and the
    /// answer is dropped as stale) and waits for its 500 ms retry timer, and for a topic the
    /// consumer has no metadata for yet, a second one: 0.5-1 s without a record after every
    /// start of an application. A partition whose lookup fails keeps its logical offset.
    fn resolve_reset_offsets(&self, starting: &mut TopicPartitionList) {
        let mut query = TopicPartitionList::new();
        for e in starting.elements() {
            // As a timestamp, -2 (`Beginning`) asks for the earliest offset, -1 (`End`) the latest.
            if matches!(e.offset(), Offset::Beginning | Offset::End)
                && query
                    .add_partition_offset(e.topic(), e.partition(), e.offset())
                    .is_err()
            {
                return;
            }
        }
        if query.count() == 0 {
            return;
        }
        let found = match self.consumer.offsets_for_times(query, RESET_LOOKUP_TIMEOUT) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "looking up the start offsets failed; librdkafka will");
                return;
            }
        };
        for e in found.elements() {
            if let (Offset::Offset(o), None) = (e.offset(), e.error().err()) {
                // The partition is in `starting`: its offset is set, not added.
                let _ = starting.set_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
            }
        }
    }
}

impl<C: ConsumerContext + 'static> GroupConsumer for MemberConsumer<'_, C> {
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::pause(self.consumer, partitions)
    }

    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::resume(self.consumer, partitions)
    }

    fn wake_fetchers(&self, partitions: &TopicPartitionList) {
        crate::runtime::clients::seam::wake_fetchers(self.consumer, partitions);
    }

    /// Read through the member's own offset client rather than librdkafka's consumer: that
    /// consumer never joins, and after a broker restart its group coordinator state was seen
    /// wedged, every read timing out for minutes while the cluster served everyone else (a
    /// stream thread then failed past task.timeout.ms with its new tasks never started). A
    /// partition without a committed offset comes back as `Offset::Invalid`, as from librdkafka.
    fn committed_offsets(
        &self,
        partitions: TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<TopicPartitionList> {
        let wanted: BTreeSet<Partition> = partitions
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let committed = self
            .membership
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fetch(&wanted, self.membership.require_stable, timeout)
            .map_err(|e| {
                // Transient (a coordinator moving, offsets of a transaction still pending) by
                // the time the member is in the group: the caller retries within
                // task.timeout.ms.
                tracing::debug!(error = %e, "reading committed offsets failed");
                KafkaError::OffsetFetch(RDKafkaErrorCode::OperationTimedOut)
            })?;
        let mut out = TopicPartitionList::new();
        for (topic, partition) in &wanted {
            let mut element = out.add_partition(topic, *partition);
            match committed.get(&(topic.clone(), *partition)) {
                Some(c) => {
                    element.set_offset(Offset::Offset(c.offset))?;
                    element.set_metadata(c.metadata.clone().unwrap_or_default());
                }
                None => element.set_offset(Offset::Invalid)?,
            }
        }
        Ok(out)
    }

    /// librdkafka's consumer gets explicit offsets, so it never asks the group coordinator
    /// itself (see `committed_offsets`): a partition assigned without one waited for that read.
    fn start_fetching(&self, from: &TopicPartitionList) -> KafkaResult<()> {
        let fetching = self.consumer.assignment()?;
        let mut tpl = TopicPartitionList::new();
        for e in from.elements() {
            if fetching.find_partition(e.topic(), e.partition()).is_some() {
                continue;
            }
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => self.membership.reset,
            };
            tpl.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.resolve_reset_offsets(&mut tpl);
        self.consumer.incremental_assign(&tpl)?;
        Consumer::pause(self.consumer, &tpl)
    }

    fn commit_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        let generation = self
            .membership
            .member
            .generation()
            .ok_or(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::UnknownMemberId,
            ))?;
        let mut map = std::collections::BTreeMap::new();
        for e in offsets.elements() {
            if let Offset::Offset(o) = e.offset() {
                map.insert(
                    (e.topic().to_string(), e.partition()),
                    CommittedOffset {
                        offset: o,
                        metadata: Some(e.metadata().to_string()),
                    },
                );
            }
        }
        let mut client = self
            .membership
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        client
            .commit(&generation, &map, Duration::from_secs(60))
            .map_err(|e| {
                let code = match &e {
                    // The join completing under the commit (the group has a new generation,
                    // this member in it): the offsets wait for the next commit.
                    StreamsError::Group { fenced: true, .. }
                        if self.membership.member.rebalance_under_way() =>
                    {
                        RDKafkaErrorCode::RebalanceInProgress
                    }
                    StreamsError::Group { fenced: true, .. } => RDKafkaErrorCode::IllegalGeneration,
                    _ => RDKafkaErrorCode::RequestTimedOut,
                };
                if code == RDKafkaErrorCode::RebalanceInProgress {
                    tracing::debug!(error = %e, "offset commit refused by a rebalance");
                } else {
                    tracing::warn!(error = %e, "offset commit failed");
                }
                KafkaError::ConsumerCommit(code)
            })
    }

    fn group_metadata(&self) -> Option<GenerationMetadata> {
        let g = self.membership.member.generation()?;
        GenerationMetadata::new(
            &self.membership.group_id,
            g.id,
            &g.member_id,
            g.group_instance_id.as_deref(),
        )
    }

    fn assignment_lost(&self) -> bool {
        self.membership.member.assignment_lost()
    }

    fn generation_superseded(&self) -> bool {
        self.membership.member.generation_superseded()
    }
}
