//! [`ThreadMetadata`]: what a stream thread of this instance runs, as
//! [`KafkaStreams::metadata_for_local_threads`](crate::KafkaStreams::metadata_for_local_threads)
//! reports it.

use crate::TaskId;

/// A live stream thread of this instance and the tasks it owns (Kafka Streams'
/// `ThreadMetadata`, without the client ids: librdkafka names its clients itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadMetadata {
    /// The thread's name, `<application.id>-StreamThread-<n>`.
    pub thread_name: String,
    /// Its active tasks, restoring ones included, in order.
    pub active_tasks: Vec<TaskId>,
}
