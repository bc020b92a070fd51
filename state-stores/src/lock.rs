use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// An exclusive lock on a task directory (`<dir>/.lock`), so two processes (or two task instances in
/// one process) can never open the same stores. The holder's pid is written into the file so a
/// refused opener can name it. Released on drop; the OS releases it if the process dies.
#[derive(Debug)]
pub struct TaskDirLock {
    dir: PathBuf,
    _file: File,
}

impl TaskDirLock {
    /// Takes the lock, creating `dir` if needed; fails at once with [`StoreError::DirectoryLocked`]
    /// if someone else holds it.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = dir.join(".lock");
        let io = |e| StoreError::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process (pid unknown)".to_string(),
                    pid => format!("pid {pid}"),
                };
                return Err(StoreError::DirectoryLocked { path: dir, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(TaskDirLock { dir, _file: file })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_with_the_holder_pid() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let task = dir.path().join("0_1");
        let first = TaskDirLock::acquire(&task)?;
        let err = TaskDirLock::acquire(&task).expect_err("second lock must fail");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::DirectoryLocked { .. }));
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        let again = TaskDirLock::acquire(&task)?;
        assert_eq!(again.dir(), task.as_path());
        Ok(())
    }
}
