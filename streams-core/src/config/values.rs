//! Configuration values that are more than a string or a number: parsed once, with an error
//! naming the key and a valid example.

use serde::{Deserialize, Serialize};

use crate::{Result, StreamsError};

/// A `host:port` endpoint (Kafka Streams' `HostInfo`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// Parses `host:port`.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = || {
            StreamsError::Config(format!(
                "`application.server` = `{value}` is not host:port (e.g. app-1.internal:7070)"
            ))
        };
        let (host, port) = value.trim().rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(HostInfo {
            host: host.to_string(),
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `metrics.recording.level`: which sensors record. State store latencies are `DEBUG`, as in
/// Kafka Streams, because they time every store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordingLevel {
    /// The default: thread, task, client and producer metrics.
    #[default]
    Info,
    /// Adds the state store metrics (put/get/range/... latencies).
    Debug,
}

impl RecordingLevel {
    /// Parses `INFO`, `DEBUG` or `TRACE` (which records what `DEBUG` does).
    pub fn parse(value: &str) -> Result<Self> {
        match value.to_ascii_uppercase().as_str() {
            "INFO" => Ok(RecordingLevel::Info),
            "DEBUG" | "TRACE" => Ok(RecordingLevel::Debug),
            _ => Err(StreamsError::Config(format!(
                "`metrics.recording.level` = `{value}` is not valid; choose INFO, DEBUG or TRACE"
            ))),
        }
    }
}
