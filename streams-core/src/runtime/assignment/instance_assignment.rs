//! [`InstanceAssignment`]: what the group's assignments give an instance beyond each stream
//! thread's active tasks, shared by its threads: the standby and warm-up tasks its standby
//! thread keeps, where every instance's tasks are (interactive queries), and the positions of
//! its standby copies, which its threads report back to the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::runtime::assignment::assignment_info::{task_ids, AssignmentInfo};
use crate::runtime::instance::endpoints::Directory;
use crate::task::TaskId;

/// One instance's share of the group's assignments.
#[derive(Debug, Default)]
pub(crate) struct InstanceAssignment {
    /// Per stream thread, the standby tasks its latest assignment named for this instance
    /// (every thread gets the same list from one generation; their union covers a thread that
    /// has not served the latest one yet).
    standbys: Mutex<BTreeMap<usize, BTreeSet<TaskId>>>,
    /// The changelog offset sums the standby copies have reached.
    standby_offsets: Mutex<BTreeMap<TaskId, i64>>,
    /// Every instance's endpoint and tasks.
    pub directory: Arc<Directory>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InstanceAssignment {
    /// Thread `thread` got `info` with its new assignment.
    pub fn apply(&self, thread: usize, info: &AssignmentInfo) {
        lock(&self.standbys).insert(thread, task_ids(&info.standby_tasks).collect());
        self.directory.replace(&info.hosts);
    }

    /// Thread `thread` is gone: its last assignment no longer counts.
    pub fn forget_thread(&self, thread: usize) {
        lock(&self.standbys).remove(&thread);
    }

    /// The standby (and warm-up) tasks the instance should keep.
    pub fn standby_tasks(&self) -> BTreeSet<TaskId> {
        lock(&self.standbys).values().flatten().copied().collect()
    }

    /// The standby thread's copies have reached `sums`.
    pub fn set_standby_offsets(&self, sums: BTreeMap<TaskId, i64>) {
        *lock(&self.standby_offsets) = sums;
    }

    /// The changelog offset sums of the standby copies.
    pub fn standby_offsets(&self) -> BTreeMap<TaskId, i64> {
        lock(&self.standby_offsets).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_keeps_the_union_of_its_threads_latest_standbys() {
        let shared = InstanceAssignment::default();
        let info = |tasks: &[(u32, i32)]| AssignmentInfo {
            standby_tasks: tasks.to_vec(),
            ..AssignmentInfo::default()
        };
        shared.apply(0, &info(&[(0, 1)]));
        shared.apply(1, &info(&[(0, 1), (1, 2)]));
        let t = |subtopology, partition| TaskId {
            subtopology,
            partition,
        };
        assert_eq!(shared.standby_tasks(), BTreeSet::from([t(0, 1), t(1, 2)]));
        shared.apply(1, &info(&[]));
        assert_eq!(shared.standby_tasks(), BTreeSet::from([t(0, 1)]));
        shared.forget_thread(0);
        assert!(shared.standby_tasks().is_empty());
    }
}
