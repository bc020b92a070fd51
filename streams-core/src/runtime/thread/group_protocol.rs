//! [`GroupProtocol`]: which consumer group protocol the stream threads' consumers speak, and the
//! settings each one refuses.

use crate::{Result, StreamsError};

/// The consumer group protocol of the stream threads' consumers (`consumer.group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupProtocol {
    /// The classic protocol: JoinGroup/SyncGroup, assignment on the client.
    Classic,
    /// KIP-848 (Kafka >= 4.0): incremental assignment by the broker.
    Consumer,
}

impl GroupProtocol {
    /// Reads `consumer.group.protocol`, refusing settings librdkafka rejects under KIP-848.
    pub fn of(config: &crate::config::StreamsConfig) -> Result<Self> {
        let settings = config.client_settings("consumer.");
        match settings.get("group.protocol").map(String::as_str) {
            None | Some("classic") => Ok(GroupProtocol::Classic),
            Some("consumer") => {
                // librdkafka refuses these under KIP-848; say why and what to do instead.
                for key in ["session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"] {
                    if settings.contains_key(key) {
                        return Err(StreamsError::Config(format!(
                            "`{key}` cannot be set with group.protocol=consumer (KIP-848): the broker's group.consumer.* settings decide it; remove it or use group.protocol=classic"
                        )));
                    }
                }
                Ok(GroupProtocol::Consumer)
            }
            Some(other) => Err(StreamsError::Config(format!(
                "`group.protocol` is `{other}`; use `classic` (the default) or `consumer` (KIP-848, Kafka >= 4.0)"
            ))),
        }
    }
}
