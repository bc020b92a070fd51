//! [`AssignmentInfo`]: what the leader tells each stream thread's member besides its partitions,
//! in the assignment's user data (see [`super::versioned`] for the envelope): a shutdown
//! request, the standby and warm-up tasks of the member's instance, when to rebalance again,
//! and where every instance's tasks are (interactive queries).

use serde::{Deserialize, Serialize};

use super::versioned::{self, Envelope};
use crate::task::TaskId;

/// One instance as the assignment places it, for interactive queries (Kafka Streams'
/// `partitionsByHost` and `standbyPartitionsByHost`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostTasks {
    /// Its process id.
    pub process_id: String,
    /// Its `application.server`.
    pub endpoint: String,
    /// Its active tasks, as `(sub-topology, partition)`.
    pub active: Vec<(u32, i32)>,
    /// Its standby (and warm-up) tasks.
    pub standby: Vec<(u32, i32)>,
}

/// Version 2 (version 1 has `shutdown_requested` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssignmentInfo {
    /// An instance's uncaught-exception handler answered `SHUTDOWN_APPLICATION`: every instance
    /// stops (Kafka Streams' `AssignorError.SHUTDOWN_REQUESTED`).
    pub shutdown_requested: bool,
    /// The tasks the member's instance keeps standby copies of: its standby replicas and its
    /// warm-up replicas (copies of tasks that are to move to it once caught up). Every member of
    /// the instance gets the same list.
    pub standby_tasks: Vec<(u32, i32)>,
    /// Rebalance again after this many milliseconds: a probing rebalance (warm-up replicas may
    /// have caught up by then), given to one member of the group; or 0, given to every member,
    /// when tasks wait for their previous owners to give them up.
    pub probe_after_ms: Option<u64>,
    /// Every instance with an `application.server`, and its tasks.
    pub hosts: Vec<HostTasks>,
}

/// Version 1's fields.
#[derive(Serialize, Deserialize)]
struct AssignmentInfoV1 {
    shutdown_requested: bool,
}

/// `(sub-topology, partition)` pairs as task ids.
pub(crate) fn task_ids(pairs: &[(u32, i32)]) -> impl Iterator<Item = TaskId> + '_ {
    pairs.iter().map(|(subtopology, partition)| TaskId {
        subtopology: *subtopology,
        partition: *partition,
    })
}

/// Task ids as `(sub-topology, partition)` pairs.
pub(crate) fn task_pairs<'a>(tasks: impl IntoIterator<Item = &'a TaskId>) -> Vec<(u32, i32)> {
    tasks
        .into_iter()
        .map(|t| (t.subtopology, t.partition))
        .collect()
}

impl AssignmentInfo {
    /// The user data bytes in `version` (the latest every member reads).
    pub fn encode(&self, version: u32) -> Vec<u8> {
        if version <= 1 {
            return versioned::encode(
                1,
                &AssignmentInfoV1 {
                    shutdown_requested: self.shutdown_requested,
                },
            );
        }
        versioned::encode(version.min(versioned::LATEST_VERSION), self)
    }

    /// Reads user data of any version; the default (nothing to act on) for another writer's
    /// bytes or none.
    pub fn decode(bytes: &[u8]) -> AssignmentInfo {
        let Some(envelope) = Envelope::open(bytes) else {
            return AssignmentInfo::default();
        };
        match envelope.version {
            0 => None,
            1 => envelope
                .read::<AssignmentInfoV1>()
                .map(|v1| AssignmentInfo {
                    shutdown_requested: v1.shutdown_requested,
                    ..AssignmentInfo::default()
                }),
            _ => envelope.read::<AssignmentInfo>(),
        }
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::assignment::versioned::LATEST_VERSION;

    #[test]
    fn reads_back_what_it_writes_in_either_version_and_defaults_otherwise() {
        let info = AssignmentInfo {
            shutdown_requested: true,
            standby_tasks: vec![(0, 1)],
            probe_after_ms: Some(600_000),
            hosts: vec![HostTasks {
                process_id: "p".into(),
                endpoint: "a:1".into(),
                active: vec![(0, 0)],
                standby: vec![(0, 1)],
            }],
        };
        assert_eq!(AssignmentInfo::decode(&info.encode(LATEST_VERSION)), info);
        // For a member that reads version 1 only: what version 1 has.
        let v1 = info.encode(1);
        assert_eq!(Envelope::open(&v1).map(|e| e.version), Some(1));
        assert_eq!(
            AssignmentInfo::decode(&v1),
            AssignmentInfo {
                shutdown_requested: true,
                ..AssignmentInfo::default()
            }
        );
        assert_eq!(AssignmentInfo::decode(b""), AssignmentInfo::default());
        let mut newer = info.encode(LATEST_VERSION);
        newer[..4].copy_from_slice(&(LATEST_VERSION + 1).to_be_bytes());
        assert_eq!(AssignmentInfo::decode(&newer), info);
    }
}
