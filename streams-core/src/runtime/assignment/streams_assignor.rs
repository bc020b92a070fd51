//! [`StreamsAssignor`]: the assignor a stream thread's group member offers. On the leader it
//! turns the cluster's topics into tasks (partition `p` of every source topic of a
//! sub-topology is task `<sub-topology>_p`, so co-partitioning holds by construction), places
//! them with [`assign_active_tasks`], and hands each member the partitions of its tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::runtime::assignment::assignment_info::AssignmentInfo;
use crate::runtime::assignment::sticky_tasks::{assign_active_tasks, TaskOwner};
use crate::runtime::assignment::subscription_info::{task_offsets_on_disk, SubscriptionInfo};
use crate::runtime::group::{Assignment, Assignor, MemberSubscription, Partition, Subscription};
use crate::runtime::internal_topics::TopicLayout;
use crate::task::TaskId;

/// The protocol name every instance of this runtime offers; the user data carries its version.
pub(crate) const PROTOCOL_NAME: &str = "rstreams";

/// A stream thread's assignor.
pub(crate) struct StreamsAssignor {
    layout: Arc<TopicLayout>,
    process_id: String,
    /// The instance's application state directory, whose task checkpoints say what state it
    /// holds.
    state_dir: PathBuf,
    /// Set when this instance asks the whole application to stop (`SHUTDOWN_APPLICATION`).
    shutdown_requested: Arc<AtomicBool>,
    /// Sub-topologies with state stores: their tasks are balanced apart from stateless ones,
    /// as Kafka Streams does, so a move for balance costs a restore only where it must.
    stateful: BTreeSet<u32>,
    /// The changelog offset sums of the tasks this thread runs, kept current by the thread
    /// (the checkpoints on disk lag behind them, and under exactly-once there are none).
    live: Arc<Mutex<BTreeMap<TaskId, i64>>>,
}

impl StreamsAssignor {
    /// The assignor of a thread of process `process_id`, reading `layout`'s topics, with its
    /// instance's task state under `state_dir`; `shutdown_requested` is the instance's flag for
    /// asking every instance to stop.
    pub fn new(
        layout: Arc<TopicLayout>,
        process_id: String,
        state_dir: PathBuf,
        shutdown_requested: Arc<AtomicBool>,
        stateful: BTreeSet<u32>,
    ) -> Self {
        StreamsAssignor {
            layout,
            process_id,
            state_dir,
            shutdown_requested,
            stateful,
            live: Arc::default(),
        }
    }

    /// Where the thread keeps the offset sums of its running tasks current.
    pub fn live_offsets(&self) -> Arc<Mutex<BTreeMap<TaskId, i64>>> {
        self.live.clone()
    }

    /// The offset sums this instance reports: its checkpoints, and this thread's live tasks.
    fn task_offsets(&self) -> Vec<(u32, i32, i64)> {
        let mut sums: BTreeMap<TaskId, i64> = task_offsets_on_disk(&self.state_dir)
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
        for (task, sum) in self.live.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let e = sums.entry(*task).or_insert(*sum);
            *e = (*e).max(*sum);
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
                    process_id: self.process_id.clone(),
                    task_offsets: self.task_offsets(),
                    shutdown_requested: self.shutdown_requested.load(Ordering::SeqCst),
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
        if let Some(info) = decoded.iter().flatten().find(|i| i.shutdown_requested) {
            // As Kafka Streams: no tasks, and every member told to stop.
            tracing::warn!(generation, process = %info.process_id, "an instance asked the application to shut down");
            let stop = Bytes::from(
                AssignmentInfo {
                    shutdown_requested: true,
                }
                .encode(),
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
        let infos: Vec<(String, BTreeMap<TaskId, i64>)> = members
            .iter()
            .zip(decoded)
            .map(|(m, info)| match info {
                Some(info) => {
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
            .partition(|t| self.stateful.contains(&t.subtopology));
        let mut placed = assign_active_tasks(&stateful, &owners);
        for (member, more) in assign_active_tasks(&stateless, &owners) {
            placed.entry(member).or_default().extend(more);
        }
        let tasks = stateful.len() + stateless.len();
        for o in &owners {
            tracing::debug!(
                member = %o.member,
                process = %o.process,
                owned = ?o.owned,
                state = ?o.state,
                assigned = ?placed.get(&o.member),
                "task placement"
            );
        }
        tracing::info!(generation, members = members.len(), tasks, "tasks assigned");
        Ok(placed
            .into_iter()
            .map(|(member, tasks)| {
                let partitions = tasks
                    .iter()
                    .flat_map(|t| partitions_of.get(t).into_iter().flatten().cloned())
                    .collect();
                (
                    member,
                    Assignment {
                        partitions,
                        user_data: Bytes::from(AssignmentInfo::default().encode()),
                    },
                )
            })
            .collect())
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
            "p".into(),
            PathBuf::from("/nonexistent"),
            Arc::default(),
            BTreeSet::from([1]),
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
                        task_offsets: Vec::new(),
                        shutdown_requested: false,
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
    }
}
