//! [`SubscriptionInfo`]: what a stream thread's member tells the leader about itself, in the
//! subscription's user data (see [`super::versioned`] for the envelope and how versions roll).
//!
//! A leader that cannot read a member's user data (another writer's, or none) takes it for a
//! process of its own without state: it still gets tasks, so an upgrade never stops a group.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use state_stores::OffsetCheckpoint;

use super::versioned::{self, Envelope, LATEST_VERSION};
use crate::runtime::stores::task_dir::CHECKPOINT_FILE;
use crate::task::TaskId;

/// Version 2 (version 1 without `endpoint`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubscriptionInfo {
    /// The instance the member's thread belongs to (its members are placed as one process).
    pub process_id: String,
    /// Per task whose state this instance holds (on disk, in a standby copy, or running), the
    /// sum of its changelog offsets (Kafka Streams' task offset sums): how far that state has
    /// come. As `(sub-topology, partition, offset sum)`.
    pub task_offsets: Vec<(u32, i32, i64)>,
    /// This instance asks every instance to stop (`SHUTDOWN_APPLICATION`).
    pub shutdown_requested: bool,
    /// Its `application.server` (`host:port`), where it answers interactive queries.
    pub endpoint: Option<String>,
    /// The latest version the member reads (from the envelope; not part of the body).
    #[serde(skip)]
    pub latest_read: u32,
}

/// Version 1's fields.
#[derive(Serialize, Deserialize)]
struct SubscriptionInfoV1 {
    process_id: String,
    task_offsets: Vec<(u32, i32, i64)>,
    shutdown_requested: bool,
}

/// User data as the first release writes it (version 1, reading version 1).
#[cfg(test)]
pub(crate) fn version_1_bytes(process_id: &str, task_offsets: Vec<(u32, i32, i64)>) -> Vec<u8> {
    let mut bytes = versioned::encode(
        1,
        &SubscriptionInfoV1 {
            process_id: process_id.into(),
            task_offsets,
            shutdown_requested: false,
        },
    );
    bytes[4..8].copy_from_slice(&1u32.to_be_bytes());
    bytes
}

impl SubscriptionInfo {
    /// The user data bytes, in the latest version.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(LATEST_VERSION, self)
    }

    /// Reads user data of any version; `None` for another writer's bytes, or none.
    pub fn decode(bytes: &[u8]) -> Option<SubscriptionInfo> {
        let envelope = Envelope::open(bytes)?;
        let mut info = match envelope.version {
            0 => return None,
            1 => envelope
                .read::<SubscriptionInfoV1>()
                .map(|v1| SubscriptionInfo {
                    process_id: v1.process_id,
                    task_offsets: v1.task_offsets,
                    shutdown_requested: v1.shutdown_requested,
                    ..SubscriptionInfo::default()
                })?,
            _ => envelope.read::<SubscriptionInfo>()?,
        };
        info.latest_read = envelope.latest;
        Some(info)
    }

    /// The offset sums by task.
    pub fn offsets(&self) -> BTreeMap<TaskId, i64> {
        self.task_offsets
            .iter()
            .map(|(subtopology, partition, sum)| {
                (
                    TaskId {
                        subtopology: *subtopology,
                        partition: *partition,
                    },
                    *sum,
                )
            })
            .collect()
    }
}

/// The offset sum of every task directory under `app_dir` with a readable checkpoint (task
/// directories are named by task id; anything else there is skipped). A state directory that
/// cannot be read reports nothing: the assignment then ignores this instance's state.
pub(crate) fn task_offsets_on_disk(app_dir: &Path) -> Vec<(u32, i32, i64)> {
    let Ok(entries) = std::fs::read_dir(app_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.parse::<TaskId>().ok()) else {
            continue;
        };
        if let Ok(Some(offsets)) = OffsetCheckpoint::new(entry.path().join(CHECKPOINT_FILE)).read()
        {
            let sum = offsets.values().fold(0i64, |a, o| a.saturating_add(*o));
            out.push((id.subtopology, id.partition, sum));
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_nothing_else() {
        let info = SubscriptionInfo {
            process_id: "9f1c".into(),
            task_offsets: vec![(0, 1, 500), (2, 0, 7)],
            shutdown_requested: true,
            endpoint: Some("host-a:7070".into()),
            latest_read: LATEST_VERSION,
        };
        assert_eq!(SubscriptionInfo::decode(&info.encode()), Some(info.clone()));
        assert_eq!(
            info.offsets().get(&TaskId {
                subtopology: 0,
                partition: 1
            }),
            Some(&500)
        );
        // A newer version appends fields: the ones known here are read.
        let mut newer = info.encode();
        newer[..4].copy_from_slice(&(LATEST_VERSION + 1).to_be_bytes());
        newer.extend_from_slice(b"fields of a later version");
        assert_eq!(SubscriptionInfo::decode(&newer), Some(info.clone()));
        assert_eq!(SubscriptionInfo::decode(b""), None);
        assert_eq!(SubscriptionInfo::decode(b"\0\0\0\x01\0\0\0\x01\xff"), None);
    }

    #[test]
    fn reads_what_the_first_release_writes() {
        let bytes = version_1_bytes("old", vec![(0, 0, 9)]);
        let info = SubscriptionInfo::decode(&bytes).expect("version 1");
        assert_eq!(info.process_id, "old");
        assert_eq!(info.task_offsets, vec![(0, 0, 9)]);
        assert_eq!(info.endpoint, None);
        assert_eq!(info.latest_read, 1);
    }

    #[test]
    fn offsets_on_disk_are_summed_per_task_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |task: &str, offsets: &[(&str, i64)]| {
            let d = dir.path().join(task);
            std::fs::create_dir_all(&d).expect("task dir");
            let map = offsets
                .iter()
                .map(|(t, o)| ((t.to_string(), 0), *o))
                .collect();
            OffsetCheckpoint::new(d.join(CHECKPOINT_FILE))
                .write(&map)
                .expect("checkpoint");
        };
        write("0_1", &[("a-changelog", 100), ("b-changelog", 20)]);
        write("1_0", &[("c-changelog", 5)]);
        std::fs::create_dir_all(dir.path().join("0_2")).expect("no checkpoint");
        std::fs::create_dir_all(dir.path().join("global")).expect("not a task");
        assert_eq!(
            task_offsets_on_disk(dir.path()),
            vec![(0, 1, 120), (1, 0, 5)]
        );
        assert!(task_offsets_on_disk(&dir.path().join("missing")).is_empty());
    }
}
