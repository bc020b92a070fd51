//! An instance's hold on its application state directory: a lock that keeps a second instance
//! off the same directory, and a process id that survives restarts.
//!
//! Under exactly_once_v2 the process id is part of every `transactional.id`. Kept across
//! restarts, it lets an instance restarted after a crash fence its predecessor at once:
//! initializing its producer aborts the transaction the crash left open. With a new id the
//! restarted instance would wait (for stable offsets) until the coordinator times that
//! transaction out. Kafka Streams keeps its process id the same way, in the same file name.

use std::path::Path;

use state_stores::TaskDirLock;

use crate::{Result, StreamsError};

const PROCESS_METADATA_FILE: &str = "kafka-streams-process-metadata";

/// The process id read from (or written to) the state directory, valid while the lock is held.
pub(crate) struct ProcessIdentity {
    pub id: uuid::Uuid,
    _lock: TaskDirLock,
}

/// Locks `app_dir` and reads its process id, making one if there is none (or it is unreadable).
pub(crate) fn claim(app_dir: &Path) -> Result<ProcessIdentity> {
    let lock = TaskDirLock::acquire(app_dir)?;
    let path = app_dir.join(PROCESS_METADATA_FILE);
    let io = |source| StreamsError::Io {
        path: path.clone(),
        source,
    };
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("processId")?.as_str().map(str::to_string))
                .and_then(|s| uuid::Uuid::parse_str(&s).ok());
            if id.is_none() {
                tracing::warn!(path = %path.display(), "unreadable process metadata: this instance takes a new process id");
            }
            id
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let id = match recorded {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4();
            let tmp = path.with_extension("tmp");
            let body = serde_json::json!({ "processId": id.to_string() }).to_string();
            std::fs::write(&tmp, body).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            id
        }
    };
    Ok(ProcessIdentity { id, _lock: lock })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_id_survives_a_restart_and_the_directory_admits_one_instance() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).unwrap();
        assert!(
            claim(dir.path()).is_err(),
            "a second instance on the same directory"
        );
        let id = first.id;
        drop(first);
        assert_eq!(claim(dir.path()).unwrap().id, id);
        std::fs::write(dir.path().join(PROCESS_METADATA_FILE), "not json").unwrap();
        assert_ne!(claim(dir.path()).unwrap().id, id);
    }
}
