//! The Kafka runtime: [`KafkaStreams`] and everything it runs to execute a
//! [`Topology`](crate::Topology) against a Kafka cluster.
//!
//! # Map
//!
//! Each folder is one concept; a concept calls only those listed below it, so there are no
//! cycles (`config` and the Processor API sit below the whole runtime).
//!
//! - [`instance`]: the [`KafkaStreams`] lifecycle: prepares internal topics, starts, replaces and
//!   stops threads, holds the state directory, publishes interactive-query endpoints.
//! - [`thread`]: a stream thread's consumer and its poll -> process -> punctuate -> commit loop,
//!   rebalance callbacks, the group protocol; the global stream thread; thread supervision.
//! - [`tasks`]: a thread's active tasks: created per assigned partition group, buffering
//!   polled records, processing them in timestamp order, committing and closing.
//! - [`restore`]: changelog restoration before a task runs, and standby copies.
//! - [`stores`]: a task's directory, checkpoint and metered stores.
//! - [`env`](mod@env): what every thread of an instance shares.
//! - [`commit`]: producers, transactions, what a failed commit means for the thread, and the
//!   turns an instance's threads take at committing.
//! - [`internal_topics`]: names, partition counts and creation of changelog and repartition topics.
//! - [`assignment`]: which thread runs which task, decided by the group's leader.
//! - [`group`]: the consumer group membership the runtime speaks itself (JoinGroup, SyncGroup,
//!   heartbeats, offsets) and the transactional group metadata built from it.
//! - [`clients`]: building librdkafka clients, retry rules, and the seam the task manager reaches
//!   Kafka through.
//! - [`metrics`]: sensors and the `/metrics` endpoint. [`state`]: lifecycle states and listeners.
//! - [`reset`]: the application reset tool, beside the rest: it uses only `clients`.
//!
//! # A record's path
//!
//! The stream thread polls its consumer and hands each record to the task manager, which
//! buffers it in the task's partition group (one queue per input partition). The thread then
//! asks the task manager to process: each running task pops its earliest record and pushes it
//! through the topology's processor nodes; what the sinks and the stores' changelogging emit is
//! sent by the thread's producer (inside a transaction under exactly_once_v2). Every
//! `commit.interval.ms` (once no other thread of the instance is committing) the task manager
//! flushes caches, then commits: under at_least_once it
//! flushes the producer, commits the consumed offsets and writes checkpoints; under
//! exactly_once_v2 it sends the offsets with the group's metadata into the transaction and
//! commits it, so outputs, changelog writes and offsets land together or not at all; then each
//! transactional store's batch (its writes and changelog offset) goes to the instance's store
//! writer thread, and the stream thread goes on while it reaches RocksDB.

pub mod assignment;
pub mod clients;
pub mod commit;
pub mod env;
pub mod group;
pub mod instance;
pub mod internal_topics;
pub mod metrics;
pub mod reset;
pub mod restore;
pub mod state;
pub mod stores;
pub mod tasks;
#[cfg(test)]
mod test_env;
pub mod thread;

pub use instance::endpoints;
pub use instance::kafka_streams::KafkaStreams;
pub use instance::thread_metadata::ThreadMetadata;
pub use metrics::RuntimeCounters;
pub use state::{
    StandbySuspendReason, StandbyUpdateListener, State, StateListener, StateRestoreListener,
};
pub use thread::close_options::{CloseOptions, GroupMembershipOperation};
pub use thread::supervisor::{StreamThreadExceptionResponse, UncaughtExceptionHandler};
