//! [`StreamsAssignor`]: the assignor a stream thread's group member offers. On the leader it
//! turns the cluster's topics into tasks (partition `p` of every source topic of a
//! sub-topology is task `<sub-topology>_p`, so co-partitioning holds by construction), places
//! stateful ones with [`place_stateful_tasks`] (caught-up owners, warm-ups, standbys) and
//! stateless ones with [`assign_active_tasks`], and hands each member the partitions of its
//! tasks with an [`AssignmentInfo`] in the latest version every member reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::runtime::assignment::assignment_info::{task_pairs, AssignmentInfo, HostTasks};
use crate::runtime::assignment::high_availability::{place_stateful_tasks, HighAvailability};
use crate::runtime::assignment::instance_assignment::InstanceAssignment;
use crate::runtime::assignment::sticky_tasks::{assign_active_tasks, TaskOwner};
use crate::runtime::assignment::subscription_info::{task_offsets_on_disk, SubscriptionInfo};
use crate::runtime::assignment::versioned::LATEST_VERSION;
use crate::runtime::group::member::hold_back_owned;
use crate::runtime::group::{Assignment, Assignor, MemberSubscription, Partition, Subscription};
use crate::runtime::internal_topics::TopicLayout;
use crate::task::TaskId;

/// The protocol name every instance of this runtime offers; the user data carries its version.
pub(crate) const PROTOCOL_NAME: &str = "rstreams";

/// What a stream thread's assignor knows of its instance and the application's settings.
#[derive(Debug, Clone)]
pub(crate) struct AssignorSettings {
    /// The instance's process id (its members are placed as one process).
    pub process_id: String,
    /// Its `application.server`.
    pub endpoint: Option<String>,
    /// The instance's application state directory, whose task checkpoints say what state it
    /// holds.
    pub state_dir: PathBuf,
    /// Sub-topologies with state stores: their tasks are placed with their state in mind and
    /// balanced apart from stateless ones, as Kafka Streams does, so a move for balance costs a
    /// restore only where it must.
    pub stateful: BTreeSet<u32>,
    /// Warm-ups and standbys.
    pub high_availability: HighAvailability,
    /// `probing.rebalance.interval.ms`.
    pub probing_interval: Duration,
}

/// A stream thread's assignor.
pub(crate) struct StreamsAssignor {
    layout: Arc<TopicLayout>,
    settings: AssignorSettings,
    /// Set when this instance asks the whole application to stop (`SHUTDOWN_APPLICATION`).
    shutdown_requested: Arc<AtomicBool>,
    /// The instance's standby copies, whose positions count as state it holds.
    instance: Arc<InstanceAssignment>,
    /// The changelog offset sums of the tasks this thread runs, kept current by the thread
    /// (the checkpoints on disk lag behind them, and under exactly-once there are none).
    live: Arc<Mutex<BTreeMap<TaskId, i64>>>,
}

impl StreamsAssignor {
    /// The assignor of a thread reading `layout`'s topics; `shutdown_requested` is the
    /// instance's flag for asking every instance to stop.
    pub fn new(
        layout: Arc<TopicLayout>,
        settings: AssignorSettings,
        shutdown_requested: Arc<AtomicBool>,
        instance: Arc<InstanceAssignment>,
    ) -> Self {
        StreamsAssignor {
            layout,
            settings,
            shutdown_requested,
            instance,
            live: Arc::default(),
        }
    }

    /// Where the thread keeps the offset sums of its running tasks current.
    pub fn live_offsets(&self) -> Arc<Mutex<BTreeMap<TaskId, i64>>> {
        self.live.clone()
    }

    /// The offset sums this instance reports: its checkpoints, its standby copies and this
    /// thread's live tasks, the furthest of them per task.
    fn task_offsets(&self) -> Vec<(u32, i32, i64)> {
        let mut sums: BTreeMap<TaskId, i64> = task_offsets_on_disk(&self.settings.state_dir)
            .into_iter()
            .map(|(subtopology, partition, sum)| {
                (
                    TaskId {
                        subtopology,
                        partition,
                    },
                    sum,
                )
            })
            .collect();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (task, sum) in live.into_iter().chain(self.instance.standby_offsets()) {
            let e = sums.entry(task).or_insert(sum);
            *e = (*e).max(sum);
        }
        sums.into_iter()
            .map(|(t, sum)| (t.subtopology, t.partition, sum))
            .collect()
    }

    fn task_of(&self, (topic, partition): &Partition) -> Option<TaskId> {
        self.layout.subtopology_of(topic).map(|subtopology| TaskId {
            subtopology,
            partition: *partition,
        })
    }
}

impl Assignor for StreamsAssignor {
    fn name(&self) -> String {
        PROTOCOL_NAME.into()
    }

    fn subscription(&self) -> Subscription {
        let mut topics: Vec<String> = self.layout.source_topics.keys().cloned().collect();
        topics.sort();
        Subscription {
            topics,
            user_data: Bytes::from(
                SubscriptionInfo {
                    process_id: self.settings.process_id.clone(),
                    task_offsets: self.task_offsets(),
                    shutdown_requested: self.shutdown_requested.load(Ordering::SeqCst),
                    endpoint: self.settings.endpoint.clone(),
                    latest_read: LATEST_VERSION,
                }
                .encode(),
            ),
            ..Subscription::default()
        }
    }

    fn assign(
        &self,
        generation: i32,
        members: &[MemberSubscription],
        topics: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<String, Assignment>, String> {
        let mut partitions_of: BTreeMap<TaskId, BTreeSet<Partition>> = BTreeMap::new();
        for (topic, count) in topics {
            for p in 0..*count {
                let partition = (topic.clone(), p);
                if let Some(task) = self.task_of(&partition) {
                    partitions_of.entry(task).or_default().insert(partition);
                }
            }
        }
        let decoded: Vec<Option<SubscriptionInfo>> = members
            .iter()
            .map(|m| SubscriptionInfo::decode(&m.subscription.user_data))
            .collect();
        // Every member reads its assignment: written in the latest version all of them read.
        let version = decoded
            .iter()
            .flatten()
            .map(|i| i.latest_read)
            .min()
            .unwrap_or(LATEST_VERSION)
            .min(LATEST_VERSION);
        if let Some(info) = decoded.iter().flatten().find(|i| i.shutdown_requested) {
            // As Kafka Streams: no tasks, and every member told to stop.
            tracing::warn!(generation, process = %info.process_id, "an instance asked the application to shut down");
            let stop = Bytes::from(
                AssignmentInfo {
                    shutdown_requested: true,
                    ..AssignmentInfo::default()
                }
                .encode(version),
            );
            return Ok(members
                .iter()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        Assignment {
                            partitions: BTreeSet::new(),
                            user_data: stop.clone(),
                        },
                    )
                })
                .collect());
        }
        // A member whose user data this version cannot read is a process of its own, without
        // state. The threads of a process report the same directory; the most state counts.
        let mut endpoints: BTreeMap<String, String> = BTreeMap::new();
        let infos: Vec<(String, BTreeMap<TaskId, i64>)> = members
            .iter()
            .zip(decoded)
            .map(|(m, info)| match info {
                Some(info) => {
                    if let Some(endpoint) = &info.endpoint {
                        endpoints.insert(info.process_id.clone(), endpoint.clone());
                    }
                    let offsets = info.offsets();
                    (info.process_id, offsets)
                }
                None => (m.member_id.clone(), BTreeMap::new()),
            })
            .collect();
        let mut state: HashMap<&str, BTreeMap<TaskId, i64>> = HashMap::new();
        for (process, offsets) in &infos {
            let merged = state.entry(process.as_str()).or_default();
            for (task, sum) in offsets {
                let e = merged.entry(*task).or_insert(*sum);
                *e = (*e).max(*sum);
            }
        }
        let owners: Vec<TaskOwner> = members
            .iter()
            .zip(&infos)
            .map(|(m, (process, _))| TaskOwner {
                member: m.member_id.clone(),
                process: process.clone(),
                owned: m
                    .subscription
                    .owned
                    .iter()
                    .filter_map(|p| self.task_of(p))
                    .collect(),
                state: state.get(process.as_str()).cloned().unwrap_or_default(),
            })
            .collect();
        // Stateful and stateless tasks are each balanced on their own (as Kafka Streams):
        // otherwise a thread could end up with every stateless task and another with all state.
        let (stateful, stateless): (BTreeSet<TaskId>, BTreeSet<TaskId>) = partitions_of
            .keys()
            .copied()
            .partition(|t| self.settings.stateful.contains(&t.subtopology));
        let placement = place_stateful_tasks(&stateful, &owners, &self.settings.high_availability);
        let mut placed = placement.active.clone();
        for (member, more) in assign_active_tasks(&stateless, &owners) {
            placed.entry(member).or_default().extend(more);
        }
        for o in &owners {
            tracing::debug!(
                member = %o.member,
                process = %o.process,
                owned = ?o.owned,
                state = ?o.state,
                assigned = ?placed.get(&o.member),
                standby = ?placement.standby.get(&o.process),
                "task placement"
            );
        }
        tracing::info!(
            generation,
            members = members.len(),
            tasks = partitions_of.len(),
            warmups = placement.warmups.len(),
            waiting_moves = placement.waiting_moves,
            "tasks assigned"
        );
        let hosts: Vec<HostTasks> = endpoints
            .iter()
            .map(|(process, endpoint)| HostTasks {
                process_id: process.clone(),
                endpoint: endpoint.clone(),
                active: task_pairs(
                    owners
                        .iter()
                        .filter(|o| &o.process == process)
                        .flat_map(|o| placed.get(&o.member).into_iter().flatten()),
                ),
                standby: task_pairs(placement.standby.get(process).into_iter().flatten()),
            })
            .collect();
        // One member schedules the probing rebalance that moves warmed-up tasks.
        let probe_after_ms =
            u64::try_from(self.settings.probing_interval.as_millis()).unwrap_or(u64::MAX);
        let prober = (placement.waiting_moves > 0)
            .then(|| owners.iter().map(|o| o.member.as_str()).min())
            .flatten();
        let mut assignments: BTreeMap<String, Assignment> = owners
            .iter()
            .map(|o| {
                let partitions = placed
                    .get(&o.member)
                    .into_iter()
                    .flatten()
                    .flat_map(|t| partitions_of.get(t).into_iter().flatten().cloned())
                    .collect();
                let assignment = Assignment {
                    partitions,
                    user_data: Bytes::new(),
                };
                (o.member.clone(), assignment)
            })
            .collect();
        // A partition that moves waits for its owner to give it up (the member holds it back);
        // the follow-up rebalance that hands it over needs every member to join again, and a
        // member that gave nothing up would otherwise hear of it only at its next heartbeat
        // (3 s by default, meanwhile the partitions' new owner idles). So, as Kafka Streams
        // does, every member is asked to rebalance again at once.
        let moves_wait = hold_back_owned(members, &mut assignments.clone()) > 0;
        if moves_wait {
            tracing::info!(
                generation,
                "tasks change owners: the group rebalances again at once"
            );
        }
        for o in &owners {
            let info = AssignmentInfo {
                shutdown_requested: false,
                standby_tasks: task_pairs(placement.standby.get(&o.process).into_iter().flatten()),
                probe_after_ms: if moves_wait {
                    Some(0)
                } else {
                    (prober == Some(o.member.as_str())).then_some(probe_after_ms)
                },
                hosts: hosts.clone(),
            };
            if let Some(a) = assignments.get_mut(&o.member) {
                a.user_data = Bytes::from(info.encode(version));
            }
        }
        Ok(assignments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn layout() -> Arc<TopicLayout> {
        Arc::new(TopicLayout {
            source_topics: HashMap::from([
                ("left".to_string(), 0),
                ("right".to_string(), 0),
                ("app-repartition".to_string(), 1),
            ]),
            source_patterns: vec![(regex::Regex::new("^logs-.*").expect("regex"), 2)],
            ..TopicLayout::default()
        })
    }

    /// An assignor without state on disk; sub-topology 1 has stores.
    fn assignor() -> StreamsAssignor {
        StreamsAssignor::new(
            layout(),
            AssignorSettings {
                process_id: "p".into(),
                endpoint: None,
                state_dir: PathBuf::from("/nonexistent"),
                stateful: BTreeSet::from([1]),
                high_availability: HighAvailability {
                    acceptable_recovery_lag: 10_000,
                    max_warmup_replicas: 2,
                    num_standby_replicas: 1,
                },
                probing_interval: Duration::from_secs(600),
            },
            Arc::default(),
            Arc::default(),
        )
    }

    fn member(id: &str, process: &str, owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                user_data: Bytes::from(
                    SubscriptionInfo {
                        process_id: process.into(),
                        endpoint: Some(format!("{process}:7070")),
                        ..SubscriptionInfo::default()
                    }
                    .encode(),
                ),
                owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
                ..Subscription::default()
            },
        }
    }

    #[test]
    fn co_partitioned_sources_go_together_and_every_partition_is_assigned_once() {
        let assignor = assignor();
        let topics = BTreeMap::from([
            ("left".to_string(), 4),
            ("right".to_string(), 4),
            ("app-repartition".to_string(), 4),
            ("logs-a".to_string(), 2),
            ("unrelated".to_string(), 8),
        ]);
        let members = [
            member("m1", "A", &[]),
            member("m2", "A", &[]),
            member("m3", "B", &[]),
        ];
        let out = assignor.assign(1, &members, &topics).expect("assign");
        let mut seen: BTreeSet<Partition> = BTreeSet::new();
        for a in out.values() {
            for p in &a.partitions {
                assert!(seen.insert(p.clone()), "{p:?} twice");
            }
            // left-p and right-p are one task: whoever has one has the other.
            for (t, p) in &a.partitions {
                if t == "left" {
                    assert!(a.partitions.contains(&("right".to_string(), *p)), "{a:?}");
                }
            }
        }
        assert_eq!(seen.len(), 4 + 4 + 4 + 2);
        assert!(!seen.iter().any(|(t, _)| t == "unrelated"));
    }

    #[test]
    fn owners_keep_their_tasks() {
        let assignor = assignor();
        let topics = BTreeMap::from([("left".to_string(), 2), ("right".to_string(), 2)]);
        let members = [
            member("m1", "A", &[("left", 1), ("right", 1)]),
            member("m2", "B", &[("left", 0), ("right", 0)]),
        ];
        let out = assignor.assign(5, &members, &topics).expect("assign");
        assert_eq!(out["m1"].partitions, members[0].subscription.owned);
        assert_eq!(out["m2"].partitions, members[1].subscription.owned);
        // Nothing moves: no rebalance follows.
        for a in out.values() {
            assert_eq!(AssignmentInfo::decode(&a.user_data).probe_after_ms, None);
        }
    }

    #[test]
    fn a_task_that_moves_has_every_member_rebalance_again_at_once() {
        let assignor = assignor();
        let topics = BTreeMap::from([("left".to_string(), 2), ("right".to_string(), 2)]);
        let owned = [("left", 0), ("right", 0), ("left", 1), ("right", 1)];
        // A second thread of the same instance joins the member that owns both tasks.
        let members = [member("m1", "A", &owned), member("m2", "A", &[])];
        let out = assignor.assign(2, &members, &topics).expect("assign");
        assert_eq!(out["m1"].partitions.len(), 2, "{out:?}");
        assert_eq!(out["m2"].partitions.len(), 2, "{out:?}");
        // m2's task waits for m1 to give it up; the rebalance that hands it over needs both to
        // join, at once rather than at their next heartbeat.
        for a in out.values() {
            assert_eq!(AssignmentInfo::decode(&a.user_data).probe_after_ms, Some(0));
        }
    }

    #[test]
    fn an_instance_without_the_state_keeps_copies_and_one_member_probes() {
        let assignor = assignor();
        let topics = BTreeMap::from([("app-repartition".to_string(), 2)]);
        let mut a = member("m1", "A", &[("app-repartition", 0), ("app-repartition", 1)]);
        a.subscription.user_data = Bytes::from(
            SubscriptionInfo {
                process_id: "A".into(),
                task_offsets: vec![(1, 0, 50_000), (1, 1, 50_000)],
                endpoint: Some("A:7070".into()),
                ..SubscriptionInfo::default()
            }
            .encode(),
        );
        let b = member("m2", "B", &[]);
        let out = assignor
            .assign(3, &[a.clone(), b.clone()], &topics)
            .expect("assign");
        // Balance wants a task on B, which has no state of it: A keeps both, B copies them.
        assert_eq!(out["m1"].partitions, a.subscription.owned);
        assert!(out["m2"].partitions.is_empty());
        let info = |m: &str| AssignmentInfo::decode(&out[m].user_data);
        assert_eq!(info("m2").standby_tasks, vec![(1, 0), (1, 1)]);
        assert!(info("m1").standby_tasks.is_empty());
        assert_eq!(info("m1").probe_after_ms, Some(600_000));
        assert_eq!(info("m2").probe_after_ms, None);
        let hosts = info("m2").hosts;
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].endpoint, "A:7070");
        assert_eq!(hosts[0].active, vec![(1, 0), (1, 1)]);
        assert_eq!(hosts[1].standby, vec![(1, 0), (1, 1)]);

        // A member of the first release in the group: every assignment in version 1.
        let mut old = b;
        old.subscription.user_data = Bytes::from(
            crate::runtime::assignment::subscription_info::version_1_bytes("B", Vec::new()),
        );
        let out = assignor.assign(4, &[a, old], &topics).expect("assign");
        for assignment in out.values() {
            let envelope =
                crate::runtime::assignment::versioned::Envelope::open(&assignment.user_data);
            assert_eq!(envelope.map(|e| e.version), Some(1));
        }
    }
}
