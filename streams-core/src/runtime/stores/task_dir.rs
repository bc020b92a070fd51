//! Opening a task's local state, for an active task or a standby copy: which changelog offset
//! each store reflects, and which local state cannot be trusted and is rebuilt from its changelog.
//!
//! Under exactly-once with transactional stores each persistent store records the offset in the
//! same atomic write as its contents, so it is trusted as found, even after a kill -9. Otherwise
//! the `.checkpoint` file says what the stores reflect; under exactly-once it exists only after
//! a clean close, and without it the stores may hold writes of a transaction that never
//! committed, so they are wiped.

use std::collections::BTreeMap;
use std::path::Path;

use state_stores::{CacheBudget, OffsetCheckpoint, StoreError};

use crate::runtime::env::ThreadEnv;
use crate::task::{RecordedOffset, StreamTask, TaskId};
use crate::{Result, StreamsError};

/// The file in a task directory recording the changelog offset each store reflects.
pub(crate) const CHECKPOINT_FILE: &str = ".checkpoint";

/// Next changelog offset to restore from, per changelog partition.
pub(crate) type ChangelogPositions = BTreeMap<(String, i32), i64>;

/// A task with its stores open, and where each changelog's restoration starts.
pub(crate) struct OpenedTask {
    pub task: StreamTask,
    pub positions: ChangelogPositions,
}

/// Opens the stores of task `id` in `dir`. `wipe_without_checkpoint`: stores without a recorded
/// offset and without a checkpoint entry may be ahead of the changelog (an active task under
/// exactly-once, or any standby copy, which may take over a crashed active task's directory).
pub(crate) fn open_task_state(
    env: &ThreadEnv,
    id: TaskId,
    dir: &Path,
    cache: Option<&CacheBudget>,
    wipe_without_checkpoint: bool,
) -> Result<OpenedTask> {
    let checkpoint = OffsetCheckpoint::new(dir.join(CHECKPOINT_FILE));
    let offsets = match checkpoint.read() {
        Ok(o) => o.unwrap_or_default(),
        Err(
            e
            @ (StoreError::CorruptCheckpoint { .. } | StoreError::UnknownCheckpointVersion { .. }),
        ) => {
            tracing::warn!(task = %id, error = %e, "discarding the checkpoint; stores that do not record their offset restore from the changelog");
            BTreeMap::new()
        }
        Err(e) => return Err(e.into()),
    };
    let transactional = env.transactional_stores();
    let stores_dir = dir.join("rocksdb");
    if !transactional && offsets.is_empty() && wipe_without_checkpoint && stores_dir.exists() {
        tracing::info!(task = %id, "no checkpoint: wiping local state, it is restored from the changelogs");
        remove_dir(&stores_dir)?;
    }
    // Which stores had files before opening: a store created just now holds nothing to distrust.
    let existed = |store: &str| stores_dir.join(store).exists();
    let build = || {
        StreamTask::build(
            &env.topology,
            id,
            &env.config.application_id,
            dir,
            &env.resources,
            cache,
            transactional,
            Some(&env.globals),
        )
        .map(|mut task| {
            task.set_default_timestamp_extractor(env.config.default_timestamp_extractor.clone());
            task
        })
    };
    let mut task = build()?;
    let mut positions = ChangelogPositions::new();
    let mut untrusted = Vec::new();
    for r in task.recorded_changelog_offsets()? {
        let RecordedOffset {
            store,
            topic,
            persistent,
            offset: recorded,
        } = r;
        let key = (topic, id.partition);
        let from = match (persistent, recorded, offsets.get(&key)) {
            // In-memory stores start empty whatever a checkpoint says.
            (false, _, _) => 0,
            (true, Some(recorded), _) => recorded,
            (true, None, Some(&checkpointed)) => {
                if transactional {
                    // Written without transactions and closed cleanly (e.g. before a switch
                    // from at_least_once): adopt the checkpoint as the recorded offset.
                    task.restore_up_to(&store, Vec::new(), checkpointed)?;
                }
                checkpointed
            }
            (true, None, None) => {
                if transactional && wipe_without_checkpoint && existed(&store) {
                    untrusted.push(store);
                }
                0
            }
        };
        positions.insert(key, from);
    }
    if !untrusted.is_empty() {
        tracing::info!(task = %id, stores = ?untrusted, "stores record no changelog offset and have no checkpoint: wiping them, they are restored from their changelogs");
        drop(task);
        for store in &untrusted {
            remove_dir(&stores_dir.join(store))?;
        }
        task = build()?;
    }
    Ok(OpenedTask { task, positions })
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StreamsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
