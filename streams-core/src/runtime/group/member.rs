//! [`GroupMember`]: one member of a classic consumer group (protocol type `consumer`), spoken by
//! this crate itself: JoinGroup, SyncGroup with an assignment its own [`Assignor`] computes when
//! it leads, heartbeats, cooperative revocation (KIP-429) and LeaveGroup.
//!
//! A membership thread does all the talking, so a long-running owner (a stream thread in the
//! middle of a commit or a restore) neither misses heartbeats nor holds up a rebalance. The
//! owner reads what changed with [`GroupMember::poll`] and answers a revocation with
//! [`GroupMember::revoked`] once it has committed and given up those partitions; only then does
//! the member join again, so the partitions reach their new owner after their last commit. As in
//! Java's consumer, an owner that has not polled for the rebalance timeout
//! (`max.poll.interval.ms`) is taken out of the group until it polls again. The member also
//! offers `range`, which the group chooses while some members are plain consumers; it then
//! behaves as they do (eager).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, MetadataRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::connection::Failure;
use super::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignment,
    Partition, Subscription,
};
use super::coordinator::{coordinator_moved, CoordinatorLink};
use super::range::{range_assign, RANGE};
use super::security::Security;
use crate::{Result, StreamsError};

/// Where and how a member joins, with Kafka's consumer defaults.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// `bootstrap.servers`: comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// The group (`application.id` for a streams application).
    pub group_id: String,
    /// `client.id` sent with every request.
    pub client_id: String,
    /// `group.instance.id` for static membership (KIP-345).
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: how long the coordinator waits for a heartbeat.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: how long a rebalance waits for members to join again, and how
    /// long the owner may go without polling.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `request.timeout.ms` for every request but JoinGroup (which waits for the rebalance).
    pub request_timeout: Duration,
    /// `retry.backoff.ms` after a failed request.
    pub retry_backoff: Duration,
    /// TLS and SASL for the member's connections (the consumer's `security.protocol`, `ssl.*`,
    /// `sasl.*`).
    pub security: Security,
}

impl MemberConfig {
    /// A member of `group_id` reached through `bootstrap_servers`, with the Java consumer's
    /// defaults (session 45 s, max poll interval 5 min, heartbeat 3 s, request 30 s).
    pub fn new(bootstrap_servers: &str, group_id: &str, client_id: &str) -> Self {
        MemberConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            security: Security::plaintext(),
        }
    }
}

/// A generation of the group as this member is in it: what offset commits must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The generation id.
    pub id: i32,
    /// This member's id in it.
    pub member_id: String,
    /// This member's static instance id, if any.
    pub group_instance_id: Option<String>,
    /// The assignor the group chose.
    pub protocol: String,
}

/// One member's subscription, as the leader's assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// Its static instance id, if any.
    pub group_instance_id: Option<String>,
    /// What it sent.
    pub subscription: Subscription,
}

/// The application's side of the protocol: what a member asks for, and, on the leader, who
/// gets what.
pub trait Assignor: Send + Sync + 'static {
    /// The protocol name the group agrees on (all members must offer it).
    fn name(&self) -> String;
    /// Topics and user data for the next join (owned partitions are filled in by the member).
    fn subscription(&self) -> Subscription;
    /// On the leader: every member's assignment, by member id, given the partition count of
    /// every topic in the cluster. Members left out get nothing.
    /// A partition given to a member other than the one that owns it is held back by the
    /// member until its owner has given it up (cooperative rebalancing), so an assignor
    /// need not care about ownership to be safe.
    fn assign(
        &self,
        generation: i32,
        members: &[MemberSubscription],
        topics: &BTreeMap<String, i32>,
    ) -> std::result::Result<BTreeMap<String, Assignment>, String>;
}

/// What changed for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A generation completed: `assignment` is what the member consumes now. `added` are new to
    /// it; `revoked` were taken away and must be committed, given up and reported with
    /// [`GroupMember::revoked`].
    Assigned {
        /// The new generation, to commit with.
        generation: Generation,
        /// Everything assigned in it, with the assignor's data.
        assignment: Assignment,
        /// Partitions not owned before.
        added: BTreeSet<Partition>,
        /// Partitions owned before and not any more.
        revoked: BTreeSet<Partition>,
    },
    /// The group is rebalancing under the `range` protocol (other members are plain
    /// consumers, eager): everything is given up before the member joins again. Commit, give
    /// up and report with [`GroupMember::revoked`].
    Revoked {
        /// Everything the member owned.
        partitions: BTreeSet<Partition>,
    },
    /// The group no longer counts this member (session expired, fenced, poll timeout): its
    /// partitions may already be someone else's, so they are dropped without a commit.
    Lost {
        /// What it owned.
        partitions: BTreeSet<Partition>,
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
struct State {
    member_id: String,
    generation: Option<Generation>,
    owned: BTreeSet<Partition>,
    owned_generation: i32,
    awaiting_revocation: BTreeSet<Partition>,
    /// Why the member must join (again), if it must.
    rejoin: Option<String>,
    /// Rebalances the owner asked for ([`GroupMember::request_rejoin`]). One asked while a join
    /// is under way needs a join of its own: the subscription sent predates it (a shutdown
    /// request, a warm-up that caught up).
    asked_rejoins: u64,
    /// The owner is committing or applying events ([`JoinHold`]): the member does not start a
    /// join meanwhile, so the generation a commit carries stays current (in Java the join runs
    /// in the committing thread's own `poll`).
    held: bool,
    /// Out of the group after a poll timeout, until the owner polls.
    left_for_poll_timeout: bool,
    events: VecDeque<MemberEvent>,
    /// The generation of the last assignment the owner took from `poll` (`None` after a loss it
    /// took): what its commits carry.
    served_generation: Option<Generation>,
    /// The generation the last JoinGroup answer named: once past `served_generation`, the
    /// group has moved on and a commit with the served one would be refused.
    joined_generation: i32,
    /// JoinGroup sent, SyncGroup not answered yet: the group's generation may change at any
    /// moment (when its last member joins).
    joining: bool,
    last_poll: Instant,
    closing: bool,
    leave_on_close: bool,
    fatal: Option<String>,
}

impl State {
    /// Whether a commit must wait: an assignment waits to be served, or the group completed a
    /// join since the one the owner serves.
    fn commit_waits(&self) -> bool {
        !self.events.is_empty() || self.superseded()
    }

    /// Whether the group completed a join since the generation the owner serves, which it no
    /// longer accepts commits with.
    fn superseded(&self) -> bool {
        self.served_generation
            .as_ref()
            .is_some_and(|g| g.id < self.joined_generation)
    }

    fn lose(&mut self, reason: &str) {
        if !self.owned.is_empty() || self.generation.is_some() {
            tracing::warn!(
                reason,
                partitions = self.owned.len(),
                "group membership lost"
            );
            self.events.push_back(MemberEvent::Lost {
                partitions: std::mem::take(&mut self.owned),
                reason: reason.to_string(),
            });
        }
        self.awaiting_revocation.clear();
        self.generation = None;
        self.owned_generation = -1;

        self.rejoin.get_or_insert_with(|| reason.to_string());
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state once `waiting` no longer holds or `timeout` passed, whichever comes first.
    fn wait_while(
        &self,
        timeout: Duration,
        mut waiting: impl FnMut(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while waiting(&st) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st
    }
}

/// A running group member; dropping it leaves the group (dynamic members) and stops its thread.
pub struct GroupMember {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    group_id: String,
}

impl GroupMember {
    /// Starts the membership thread; the member joins at once.
    pub fn start(config: MemberConfig, assignor: Arc<dyn Assignor>) -> Result<GroupMember> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                member_id: String::new(),
                generation: None,
                owned: BTreeSet::new(),
                owned_generation: -1,
                awaiting_revocation: BTreeSet::new(),
                rejoin: Some("joining".into()),
                asked_rejoins: 0,
                held: false,
                left_for_poll_timeout: false,
                events: VecDeque::new(),
                served_generation: None,
                joined_generation: -1,
                joining: false,
                last_poll: Instant::now(),
                closing: false,
                leave_on_close: config.group_instance_id.is_none(),
                fatal: None,
            }),
            changed: Condvar::new(),
        });
        let group_id = config.group_id.clone();
        let runner = Membership {
            link: CoordinatorLink::new(
                &config.bootstrap_servers,
                &config.group_id,
                &config.client_id,
                config.request_timeout,
                config.security.clone(),
            ),
            shared: shared.clone(),
            assignor,
            config,
        };
        let thread = std::thread::Builder::new()
            .name(format!("group-member-{group_id}"))
            .spawn(move || runner.run())
            .map_err(|e| StreamsError::Group {
                context: format!("starting the membership thread of group `{group_id}`"),
                reason: e.to_string(),
                fenced: false,
            })?;
        Ok(GroupMember {
            shared,
            thread: Some(thread),
            group_id,
        })
    }

    /// What changed since the last call (the call also tells the member the owner is alive);
    /// an error when the member cannot go on (e.g. fenced by another static member).
    pub fn poll(&self) -> Result<Vec<MemberEvent>> {
        let mut st = self.shared.lock();
        st.last_poll = Instant::now();
        if st.left_for_poll_timeout {
            st.left_for_poll_timeout = false;
            st.rejoin = Some("polled again after a poll timeout".into());
            self.shared.changed.notify_all();
        }
        if let Some(reason) = &st.fatal {
            return Err(StreamsError::Group {
                context: format!("being a member of group `{}`", self.group_id),
                reason: reason.clone(),
                fenced: true,
            });
        }
        let events: Vec<MemberEvent> = st.events.drain(..).collect();
        for e in &events {
            match e {
                MemberEvent::Assigned { generation, .. } => {
                    st.served_generation = Some(generation.clone())
                }
                MemberEvent::Lost { .. } => st.served_generation = None,
                MemberEvent::Revoked { .. } => {}
            }
        }
        Ok(events)
    }

    /// Keeps the member from starting a join while the returned hold lives, once the owner has
    /// served every event and no join completed since (so it commits with the generation the
    /// group is in); waits up to `timeout` for that. `None`: an assignment is on its way or
    /// waits to be served, commit after it.
    ///
    /// A join already under way does not stop a commit, unlike Kafka Streams, which skips
    /// commits from the moment its consumer rejoins until the assignment arrives: the group
    /// keeps the last generation until every member has joined, up to a heartbeat interval
    /// later, and both the plain and the transactional offset commit are accepted with it
    /// meanwhile (the coordinator checks member id and generation, not the group's state), so
    /// tasks that do not move keep committing through a rebalance (issue 22: their output paused
    /// for about 3 s otherwise). Commits stop once the JoinGroup answer names the next
    /// generation, until its assignment is served. One reaching the coordinator between the last
    /// member's join and that answer is refused ILLEGAL_GENERATION and nothing of it lands: an
    /// at_least_once commit's offsets wait for the next ([`Self::rebalance_under_way`]); under
    /// exactly_once_v2 the transaction aborts and the thread takes its tasks up again from the
    /// committed offsets with the assignment that join brings. Under cooperative assignment
    /// this member still owns what it commits in the next generation too: the leader hands a
    /// partition on only once its owner has revoked it.
    pub fn hold(&self, timeout: Duration) -> Option<JoinHold<'_>> {
        let mut st = self.shared.wait_while(timeout, State::commit_waits);
        if st.commit_waits() {
            return None;
        }
        st.held = true;
        Some(JoinHold {
            shared: &self.shared,
        })
    }

    /// [`Self::poll`] and [`Self::hold`] in one step: the events, and a hold unless more came
    /// meanwhile, so applying them (revocations commit) cannot race with the start of a join.
    pub fn poll_and_hold(&self) -> Result<(Vec<MemberEvent>, Option<JoinHold<'_>>)> {
        let events = self.poll()?;
        let mut st = self.shared.lock();
        if st.commit_waits() {
            return Ok((events, None));
        }
        st.held = true;
        Ok((
            events,
            Some(JoinHold {
                shared: &self.shared,
            }),
        ))
    }

    /// Whether the owner has lost its assignment: it took a loss from `poll`, or one waits there.
    pub fn assignment_lost(&self) -> bool {
        let st = self.shared.lock();
        st.served_generation.is_none()
            || st
                .events
                .iter()
                .any(|e| matches!(e, MemberEvent::Lost { .. }))
    }

    /// The owner dropped the tasks it ran (its transaction aborted, its producer fenced) and
    /// takes its assignment up again from the committed offsets: the member joins again, still
    /// claiming what it owns, so the next assignment hands the same partitions back and no
    /// other member gets them meanwhile. (Clearing the claims was wrong: a generation synced
    /// while the owner was aborting leaves partitions the owner has yet to take up, which
    /// another member would then get while this one ran them: 105 results counted twice in a
    /// fault test.)
    ///
    /// No join is asked for while one is under way or its assignment waits to be served: that
    /// assignment hands the partitions back (the join carried the claims), and another join
    /// would make every member rebalance again, each learning of it only at its next heartbeat
    /// (a commit that met a join completing under it, `hold`, cost 2.7 s of output that way).
    pub fn rejoin_keeping_claims(&self, reason: &str) {
        let mut st = self.shared.lock();
        if st.joining || st.superseded() {
            tracing::debug!(
                reason,
                "taking the assignment up again with the generation being joined"
            );
            return;
        }
        st.rejoin.get_or_insert_with(|| reason.to_string());
        self.shared.changed.notify_all();
    }

    /// Like [`Self::poll`], but waits up to `timeout` for something to happen.
    pub fn poll_timeout(&self, timeout: Duration) -> Result<Vec<MemberEvent>> {
        drop(
            self.shared
                .wait_while(timeout, |st| st.events.is_empty() && st.fatal.is_none()),
        );
        self.poll()
    }

    /// The owner has committed and given up `partitions` (revoked by an assignment): the member
    /// joins again so they reach their new owner.
    pub fn revoked(&self, partitions: &BTreeSet<Partition>) {
        let mut st = self.shared.lock();
        let before = st.awaiting_revocation.len();
        st.awaiting_revocation.retain(|p| !partitions.contains(p));
        st.owned.retain(|p| !partitions.contains(p));
        if before > 0 && st.awaiting_revocation.is_empty() {
            st.rejoin
                .get_or_insert_with(|| "partitions revoked for another member".into());
        }
        self.shared.changed.notify_all();
    }

    /// The generation the owner commits with: that of the last assignment it took from
    /// [`Self::poll`]; `None` before the first and after a loss it took. The broker refuses the
    /// commit if the group has moved on since (the owner then gives its tasks up).
    pub fn generation(&self) -> Option<Generation> {
        self.shared.lock().served_generation.clone()
    }

    /// Whether the group completed a join since the generation of the assignment the owner
    /// serves: commits with it are refused from then on, until the owner serves the next.
    pub fn generation_superseded(&self) -> bool {
        self.shared.lock().superseded()
    }

    /// Whether a rebalance may change the generation under a commit, or has: a join is under
    /// way, or completed and its assignment is not served yet. A commit refused as an illegal
    /// generation meanwhile met the join completing, not a fence: the member is in the new
    /// generation, still claiming its partitions (or learns otherwise and reports a loss).
    pub fn rebalance_under_way(&self) -> bool {
        let st = self.shared.lock();
        st.joining || st.superseded()
    }

    /// Asks for a rebalance (e.g. to move a task whose state has caught up).
    pub fn request_rejoin(&self, reason: &str) {
        let mut st = self.shared.lock();
        st.rejoin.get_or_insert_with(|| reason.to_string());
        st.asked_rejoins += 1;
        self.shared.changed.notify_all();
    }

    /// Stops the member; `leave` sends LeaveGroup so the group rebalances at once (static
    /// members keep their place for the session timeout otherwise).
    pub fn close(mut self, leave: bool) {
        self.shared.lock().leave_on_close = leave;
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop();
    }
}

/// While it lives, the member starts no join ([`GroupMember::hold`]).
pub struct JoinHold<'a> {
    shared: &'a Shared,
}

impl Drop for JoinHold<'_> {
    fn drop(&mut self) {
        self.shared.lock().held = false;
        self.shared.changed.notify_all();
    }
}

/// What the membership thread does after a failed step.
enum Next {
    /// Retry after the backoff.
    Backoff,
    /// Retry at once.
    Now,
}

/// The membership thread's own state.
struct Membership {
    link: CoordinatorLink,
    shared: Arc<Shared>,
    assignor: Arc<dyn Assignor>,
    config: MemberConfig,
}

impl Membership {
    fn run(mut self) {
        let mut next_heartbeat = Instant::now();
        loop {
            self.revoke_all_if_eager();
            let (closing, join_now, joined, poll_expired) = {
                let mut st = self.shared.lock();
                // A join waits for revocations, for the owner to serve what the last one
                // brought, and for a commit under way.
                let join_now = st.rejoin.is_some()
                    && st.awaiting_revocation.is_empty()
                    && !st.left_for_poll_timeout
                    && st.events.is_empty()
                    && !st.held
                    && !st.closing;
                st.joining = join_now;
                (
                    st.closing,
                    join_now,
                    st.generation.is_some(),
                    st.generation.is_some()
                        && st.last_poll.elapsed() > self.config.rebalance_timeout,
                )
            };
            if closing {
                break;
            }
            if poll_expired {
                self.leave_for_poll_timeout();
                continue;
            }
            let wait = if join_now {
                let joined = self.join_and_sync();
                self.shared.lock().joining = false;
                match joined {
                    Ok(()) => {
                        next_heartbeat = Instant::now() + self.config.heartbeat_interval;
                        continue;
                    }
                    Err(Next::Now) => continue,
                    Err(Next::Backoff) => self.config.retry_backoff,
                }
            } else if joined && Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + self.config.heartbeat_interval;
                match self.heartbeat() {
                    Ok(()) | Err(Next::Now) => continue,
                    // A failed heartbeat is retried after the backoff, not a whole interval.
                    Err(Next::Backoff) => {
                        next_heartbeat = Instant::now() + self.config.retry_backoff;
                        continue;
                    }
                }
            } else if joined {
                next_heartbeat.saturating_duration_since(Instant::now())
            } else {
                self.config.heartbeat_interval
            };
            let st = self.shared.lock();
            if !st.closing {
                drop(
                    self.shared
                        .changed
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner()),
                );
            }
        }
        let (leave, member_id) = {
            let st = self.shared.lock();
            (
                st.leave_on_close && !st.member_id.is_empty(),
                st.member_id.clone(),
            )
        };
        if leave {
            self.leave(&member_id, "the member is closing");
        }
    }

    /// Under the `range` protocol the other members are eager: they give everything up before
    /// joining and may be handed any partition at once, so this member does the same (it asks
    /// the owner to revoke all and joins once it has).
    fn revoke_all_if_eager(&self) {
        let mut st = self.shared.lock();
        let eager = st.generation.as_ref().is_some_and(|g| g.protocol == RANGE);
        if st.rejoin.is_some() && eager && !st.owned.is_empty() && st.awaiting_revocation.is_empty()
        {
            st.awaiting_revocation = st.owned.clone();
            let partitions = st.owned.clone();
            st.events.push_back(MemberEvent::Revoked { partitions });
            self.shared.changed.notify_all();
        }
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group_id.clone()))
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.config
            .group_instance_id
            .clone()
            .map(StrBytes::from_string)
    }

    /// Classifies a failed request: coordinator moves and network trouble are retried after a
    /// backoff, fencing loses the assignment, anything else stops the member.
    fn failed(&mut self, during: &str, failure: Failure) -> Next {
        let mut st = self.shared.lock();
        match &failure {
            f if coordinator_moved(f) => {
                self.link.reset();
                tracing::debug!(during, failure = %f, "group coordinator unavailable");
                Next::Backoff
            }
            Failure::Broker(ResponseError::RebalanceInProgress) => {
                st.rejoin
                    .get_or_insert_with(|| "the group is rebalancing".into());
                Next::Now
            }
            Failure::Broker(ResponseError::UnknownMemberId) => {
                st.member_id.clear();
                st.lose(&format!("{during}: unknown member id"));
                Next::Now
            }
            Failure::Broker(ResponseError::IllegalGeneration) => {
                st.lose(&format!("{during}: illegal generation"));
                Next::Now
            }
            Failure::Broker(ResponseError::FencedInstanceId) => {
                st.lose(&format!(
                    "{during}: fenced by another member with the same group.instance.id"
                ));
                st.fatal = Some(format!(
                    "another member joined with group.instance.id `{}`; give each instance its own",
                    self.config.group_instance_id.as_deref().unwrap_or("")
                ));
                self.shared.changed.notify_all();
                Next::Backoff
            }
            other => {
                st.fatal = Some(format!("{during}: {other}"));
                self.shared.changed.notify_all();
                Next::Backoff
            }
        }
    }

    fn join_and_sync(&mut self) -> std::result::Result<(), Next> {
        let (member_id, subscription, reason, asked_rejoins) = {
            let st = self.shared.lock();
            if st.fatal.is_some() {
                return Err(Next::Backoff);
            }
            let mut s = self.assignor.subscription();
            s.owned = st.owned.clone();
            s.generation = st.owned_generation;
            (
                st.member_id.clone(),
                s,
                st.rejoin.clone().unwrap_or_default(),
                st.asked_rejoins,
            )
        };
        let metadata = match encode_subscription(&subscription) {
            Ok(m) => m,
            Err(e) => return Err(self.failed("encoding the subscription", e)),
        };
        let join = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(member_id.clone()))
            .with_group_instance_id(self.instance_id())
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            // The own assignor first (preferred), `range` second: a group whose other members
            // are plain consumers (an earlier version mid-upgrade) agrees on `range`.
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_string(self.assignor.name()))
                    .with_metadata(metadata.clone()),
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(RANGE))
                    .with_metadata(metadata),
            ]);
        tracing::debug!(group = %self.config.group_id, %reason, "joining the group");
        // The coordinator answers once every member joined or the rebalance timeout passed.
        let timeout = self.config.rebalance_timeout + self.config.request_timeout;
        let answer = match self.link.send(&join, timeout) {
            Ok(a) => a,
            Err(e) => return Err(self.failed("joining", e)),
        };
        match Failure::check(answer.error_code) {
            Ok(()) => {}
            Err(Failure::Broker(ResponseError::MemberIdRequired)) => {
                // KIP-394: the first join only learns the member id.
                self.shared.lock().member_id = answer.member_id.to_string();
                return Err(Next::Now);
            }
            Err(e) => return Err(self.failed("joining", e)),
        }
        let generation = Generation {
            id: answer.generation_id,
            member_id: answer.member_id.to_string(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol: answer
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| self.assignor.name()),
        };
        {
            // From here the group has a new generation: commits wait for its assignment.
            let mut st = self.shared.lock();
            st.member_id = generation.member_id.clone();
            st.joined_generation = generation.id;
        }
        let assignments = if answer.leader == answer.member_id && !answer.skip_assignment {
            match self.lead(&generation, &answer.members) {
                Ok(a) => a,
                Err(e) => {
                    return Err(self.failed("assigning as the group leader", e));
                }
            }
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation.id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_group_instance_id(self.instance_id())
            .with_assignments(assignments);
        let answer = self
            .link
            .send(&sync, self.config.request_timeout)
            .and_then(|a| Failure::check(a.error_code).map(|()| a.assignment))
            .and_then(decode_assignment);
        let assignment = match answer {
            Ok(a) => a,
            Err(e) => {
                return Err(self.failed("syncing", e));
            }
        };
        let mut st = self.shared.lock();
        let revoked: BTreeSet<Partition> = st
            .owned
            .difference(&assignment.partitions)
            .cloned()
            .collect();
        let added: BTreeSet<Partition> = assignment
            .partitions
            .difference(&st.owned)
            .cloned()
            .collect();
        tracing::info!(
            group = %self.config.group_id,
            generation = generation.id,
            assigned = assignment.partitions.len(),
            added = added.len(),
            revoked = revoked.len(),
            "group generation joined"
        );
        st.owned = assignment.partitions.clone();
        st.owned_generation = generation.id;
        st.awaiting_revocation = revoked.clone();
        st.generation = Some(generation.clone());
        // The event and the end of the join become visible together.
        st.joining = false;
        if st.asked_rejoins == asked_rejoins {
            st.rejoin = None;
        }
        st.events.push_back(MemberEvent::Assigned {
            generation,
            assignment,
            added,
            revoked,
        });
        self.shared.changed.notify_all();
        Ok(())
    }

    /// The leader's step: decode every subscription, let the assignor decide, hold back what
    /// another member still owns, encode.
    fn lead(
        &mut self,
        generation: &Generation,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> std::result::Result<Vec<SyncGroupRequestAssignment>, Failure> {
        let subscriptions = members
            .iter()
            .map(|m| {
                Ok(MemberSubscription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    subscription: decode_subscription(m.metadata.clone())?,
                })
            })
            .collect::<std::result::Result<Vec<_>, Failure>>()?;
        let topics = self.topics()?;
        let mut assignments = if generation.protocol == RANGE {
            tracing::info!(
                generation = generation.id,
                "the group agreed on `range`: some members are plain consumers"
            );
            range_assign(&subscriptions, &topics)
        } else {
            self.assignor
                .assign(generation.id, &subscriptions, &topics)
                .map_err(|e| Failure::Protocol(format!("the assignor failed: {e}")))?
        };
        let held_back = hold_back_owned(&subscriptions, &mut assignments);
        if held_back > 0 {
            tracing::info!(
                held_back,
                "partitions wait for their owners to give them up (cooperative rebalance)"
            );
        }
        subscriptions
            .iter()
            .map(|m| {
                let a = assignments.remove(&m.member_id).unwrap_or_default();
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_assignment(encode_assignment(&a)?))
            })
            .collect()
    }

    /// Every topic's partition count (Metadata for all topics: subscriptions may be patterns).
    fn topics(&mut self) -> std::result::Result<BTreeMap<String, i32>, Failure> {
        let version = self.link.version::<MetadataRequest>()?;
        // "All topics" is a null list from v1; v0 has no way to say it (and Kafka >= 2.5 speaks
        // v1 and up).
        if version < 1 {
            return Err(Failure::Protocol(
                "the broker speaks Metadata v0 only".into(),
            ));
        }
        let answer = self.link.send(
            &MetadataRequest::default().with_topics(None),
            self.config.request_timeout,
        )?;
        Ok(answer
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| Some((t.name?.0.to_string(), t.partitions.len() as i32)))
            .collect())
    }

    fn heartbeat(&mut self) -> std::result::Result<(), Next> {
        let Some(generation) = self.shared.lock().generation.clone() else {
            return Ok(());
        };
        let request = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation.id)
            .with_member_id(StrBytes::from_string(generation.member_id))
            .with_group_instance_id(self.instance_id());
        // A heartbeat waits no longer than the session: a coordinator that stopped answering
        // (a frozen broker) is given up and found again while the session may still be saved.
        let timeout = self.config.request_timeout.min(self.config.session_timeout);
        match self
            .link
            .send(&request, timeout)
            .and_then(|a| Failure::check(a.error_code))
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed("heartbeating", e)),
        }
    }

    fn leave_for_poll_timeout(&mut self) {
        let reason = format!(
            "the owner did not poll within max.poll.interval.ms ({:?})",
            self.config.rebalance_timeout
        );
        tracing::warn!(group = %self.config.group_id, %reason, "leaving the group");
        let member_id = self.shared.lock().member_id.clone();
        // A static member keeps its place and is taken out by its session timeout (as Java).
        if self.config.group_instance_id.is_none() {
            self.leave(&member_id, &reason);
        }
        let mut st = self.shared.lock();
        st.member_id.clear();
        st.lose(&reason);
        st.left_for_poll_timeout = true;
        self.shared.changed.notify_all();
    }

    fn leave(&mut self, member_id: &str, reason: &str) {
        let member = MemberIdentity::default()
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_group_instance_id(self.instance_id());
        tracing::debug!(group = %self.config.group_id, reason, "leaving the group");
        let request = match self.link.version::<LeaveGroupRequest>() {
            Ok(v) if v >= 3 => LeaveGroupRequest::default()
                .with_group_id(self.group_id())
                .with_members(vec![member]),
            Ok(_) => LeaveGroupRequest::default()
                .with_group_id(self.group_id())
                .with_member_id(StrBytes::from_string(member_id.to_string())),
            Err(e) => {
                tracing::debug!(failure = %e, "cannot leave the group");
                return;
            }
        };
        if let Err(e) = self
            .link
            .send(&request, self.config.request_timeout)
            .and_then(|a| Failure::check(a.error_code))
        {
            tracing::debug!(failure = %e, "leaving the group failed; the session timeout will");
        }
    }
}

/// Removes from `assignments` every partition that a member other than its new one still owns,
/// and returns how many: cooperative rebalancing (KIP-429) moves a partition in two steps, so
/// the old owner commits it before anyone else reads it. When two members claim a partition,
/// the claim of the later generation wins (KIP-792).
pub(crate) fn hold_back_owned(
    members: &[MemberSubscription],
    assignments: &mut BTreeMap<String, Assignment>,
) -> usize {
    let mut owners: HashMap<&Partition, (&str, i32)> = HashMap::new();
    for m in members {
        for p in &m.subscription.owned {
            let claim = (m.member_id.as_str(), m.subscription.generation);
            owners
                .entry(p)
                .and_modify(|c| {
                    if claim.1 > c.1 {
                        *c = claim;
                    }
                })
                .or_insert(claim);
        }
    }
    let mut held = 0;
    for (member, a) in assignments.iter_mut() {
        a.partitions.retain(|p| match owners.get(p) {
            Some((owner, _)) if *owner != member => {
                held += 1;
                false
            }
            _ => true,
        });
    }
    held
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, generation: i32, owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
                generation,
                ..Subscription::default()
            },
        }
    }

    fn assignment(partitions: &[(&str, i32)]) -> Assignment {
        Assignment {
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            user_data: bytes::Bytes::new(),
        }
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_gave_it_up() {
        let members = [
            member("a", 3, &[("t", 0), ("t", 1)]),
            member("b", 3, &[("t", 2)]),
            member("c", -1, &[]),
        ];
        let mut assignments = BTreeMap::from([
            ("a".to_string(), assignment(&[("t", 0)])),
            ("b".to_string(), assignment(&[("t", 2)])),
            ("c".to_string(), assignment(&[("t", 1), ("t", 3)])),
        ]);
        assert_eq!(hold_back_owned(&members, &mut assignments), 1);
        assert_eq!(assignments["a"], assignment(&[("t", 0)]));
        assert_eq!(assignments["b"], assignment(&[("t", 2)]));
        // t-1 is still a's: c gets it in the next generation; t-3 was nobody's.
        assert_eq!(assignments["c"], assignment(&[("t", 3)]));
    }

    #[test]
    fn of_two_claims_the_later_generation_owns_the_partition() {
        let members = [member("old", 2, &[("t", 0)]), member("new", 5, &[("t", 0)])];
        let mut to_new = BTreeMap::from([("new".to_string(), assignment(&[("t", 0)]))]);
        assert_eq!(hold_back_owned(&members, &mut to_new), 0);
        let mut to_old = BTreeMap::from([("old".to_string(), assignment(&[("t", 0)]))]);
        assert_eq!(hold_back_owned(&members, &mut to_old), 1);
    }
}
