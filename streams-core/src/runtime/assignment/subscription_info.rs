//! [`SubscriptionInfo`]: what a stream thread's member tells the leader about itself, in the
//! subscription's user data, versioned as Kafka Streams' own: the version it is written in and
//! the latest version its writer reads, then the fields of that version (bincode).
//!
//! A leader that meets a version newer than its own reads the member as one without user data
//! (it still gets tasks), so a rolling upgrade to a newer version never stops a group.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use state_stores::OffsetCheckpoint;

use crate::runtime::stores::task_dir::CHECKPOINT_FILE;
use crate::task::TaskId;

/// The version written.
pub(crate) const LATEST_VERSION: u32 = 1;

/// Version 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubscriptionInfo {
    /// The instance the member's thread belongs to (its members are placed as one process).
    pub process_id: String,
    /// Per task whose state this instance holds on disk, the sum of its checkpointed changelog
    /// offsets (Kafka Streams' task offset sums): how far that state has come. As
    /// `(sub-topology, partition, offset sum)`.
    pub task_offsets: Vec<(u32, i32, i64)>,
    /// This instance asks every instance to stop (`SHUTDOWN_APPLICATION`).
    pub shutdown_requested: bool,
}

impl SubscriptionInfo {
    /// The user data bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    /// Reads user data; `None` for a newer version, another writer's bytes, or none.
    pub fn decode(bytes: &[u8]) -> Option<SubscriptionInfo> {
        decode_versioned(bytes)
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

/// The envelope of both user data kinds: the version written and the latest this writer reads
/// (both `LATEST_VERSION`, big-endian `u32`), then the fields (bincode). Plain structs of
/// strings and integers always encode.
pub(crate) fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&LATEST_VERSION.to_be_bytes());
    out.extend_from_slice(&LATEST_VERSION.to_be_bytes());
    if let Ok(body) = bincode::serde::encode_to_vec(value, bincode::config::standard()) {
        out.extend_from_slice(&body);
    }
    out
}

/// Reads [`encode_versioned`] bytes; `None` for another version, another writer's bytes, or
/// none.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let version = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    if version != LATEST_VERSION {
        return None;
    }
    bincode::serde::decode_from_slice(bytes.get(8..)?, bincode::config::standard())
        .ok()
        .map(|(value, _)| value)
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
        };
        assert_eq!(SubscriptionInfo::decode(&info.encode()), Some(info.clone()));
        assert_eq!(
            info.offsets().get(&TaskId {
                subtopology: 0,
                partition: 1
            }),
            Some(&500)
        );
        let mut newer = info.encode();
        newer[..4].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(SubscriptionInfo::decode(&newer), None);
        assert_eq!(SubscriptionInfo::decode(b""), None);
        assert_eq!(SubscriptionInfo::decode(b"\0\0\0\x01\0\0\0\x01\xff"), None);
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
