use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

const VERSION: &str = "1";

/// The `.checkpoint` file of a task directory: for each changelog partition, the offset up to which
/// the local stores reflect it. Format (text): version line, entry count line, then one
/// `topic partition offset` line per entry.
#[derive(Debug, Clone)]
pub struct OffsetCheckpoint {
    path: PathBuf,
}

impl OffsetCheckpoint {
    /// The checkpoint at `path` (usually `<task dir>/.checkpoint`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OffsetCheckpoint { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `offsets` atomically: to a temp file, fsync, rename over the old file, fsync the directory.
    pub fn write(&self, offsets: &BTreeMap<(String, i32), i64>) -> Result<()> {
        let mut body = format!("{VERSION}\n{}\n", offsets.len());
        for ((topic, partition), offset) in offsets {
            if topic.contains(char::is_whitespace) {
                return Err(StoreError::CorruptCheckpoint {
                    path: self.path.clone(),
                    reason: format!("topic name `{topic}` contains whitespace"),
                });
            }
            body.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let io = |e| StoreError::io(&tmp, e);
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(body.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                // Best effort: some filesystems refuse fsync on a directory.
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Reads the offsets; `Ok(None)` when there is no checkpoint. Any malformed content is
    /// [`StoreError::CorruptCheckpoint`], an unknown version [`StoreError::UnknownCheckpointVersion`].
    pub fn read(&self) -> Result<Option<BTreeMap<(String, i32), i64>>> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        let corrupt = |reason: String| StoreError::CorruptCheckpoint {
            path: self.path.clone(),
            reason,
        };
        let text = String::from_utf8(text).map_err(|_| corrupt("not UTF-8".into()))?;
        let mut lines = text.lines();
        let version = lines.next().ok_or_else(|| corrupt("empty file".into()))?;
        if version != VERSION {
            if version.trim().parse::<u32>().is_ok() {
                return Err(StoreError::UnknownCheckpointVersion {
                    path: self.path.clone(),
                    version: version.to_string(),
                });
            }
            return Err(corrupt(format!("bad version line `{version}`")));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| corrupt("missing or bad entry count".into()))?;
        let mut offsets = BTreeMap::new();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| corrupt(format!("{count} entries announced, {i} found")))?;
            let mut parts = line.split(' ');
            let (Some(topic), Some(p), Some(o), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(format!("bad entry line `{line}`")));
            };
            let p: i32 = p
                .parse()
                .map_err(|_| corrupt(format!("bad partition in `{line}`")))?;
            let o: i64 = o
                .parse()
                .map_err(|_| corrupt(format!("bad offset in `{line}`")))?;
            if topic.is_empty() || o < 0 {
                return Err(corrupt(format!("bad entry line `{line}`")));
            }
            offsets.insert((topic.to_string(), p), o);
        }
        if lines.any(|l| !l.is_empty()) {
            return Err(corrupt("trailing data after the announced entries".into()));
        }
        Ok(Some(offsets))
    }

    /// Removes the file (e.g. before processing under exactly-once, so a crash leaves no stale checkpoint).
    pub fn delete(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<(String, i32), i64> {
        let mut m = BTreeMap::new();
        m.insert(("app-counts-changelog".to_string(), 3), 42);
        m.insert(("app-other-changelog".to_string(), 0), 0);
        m
    }

    #[test]
    fn round_trip_and_missing() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let cp = OffsetCheckpoint::new(dir.path().join(".checkpoint"));
        assert_eq!(cp.read()?, None);
        cp.write(&sample())?;
        assert_eq!(cp.read()?, Some(sample()));
        cp.delete()?;
        assert_eq!(cp.read()?, None);
        Ok(())
    }

    #[test]
    fn corruption_is_a_typed_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join(".checkpoint");
        let cp = OffsetCheckpoint::new(&path);
        for bad in [
            "",
            "1\n",
            "1\n2\nt 0 5\n",
            "1\n1\nt x 5\n",
            "1\n1\nt 0 -3\n",
            "garbage",
            "1\n1\nt 0 5\nextra 1 2\n",
        ] {
            fs::write(&path, bad).map_err(|e| StoreError::io(&path, e))?;
            assert!(
                matches!(cp.read(), Err(StoreError::CorruptCheckpoint { .. })),
                "{bad:?} must be corrupt"
            );
        }
        fs::write(&path, [0xff, 0xfe]).map_err(|e| StoreError::io(&path, e))?;
        assert!(matches!(
            cp.read(),
            Err(StoreError::CorruptCheckpoint { .. })
        ));
        fs::write(&path, "7\n0\n").map_err(|e| StoreError::io(&path, e))?;
        let err = cp.read().expect_err("unknown version");
        assert!(matches!(err, StoreError::UnknownCheckpointVersion { .. }));
        assert!(err.to_string().contains("unknown version 7"), "{err}");
        Ok(())
    }
}
