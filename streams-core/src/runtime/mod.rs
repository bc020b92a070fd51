//! The Kafka runtime: [`KafkaStreams`], its stream threads, tasks per partition, restoration from
//! changelogs, and commits under at_least_once, exactly_once_v2 and legacy exactly_once.

mod changelog_reader;
pub mod client;
pub mod endpoints;
mod global_thread;
mod group_view;
pub mod internal_topics;
mod kafka_streams;
mod manual_assignment;
mod metered_store;
pub mod metrics;
mod metrics_server;
mod partition_group;
mod process_identity;
mod record_collector;
pub mod reset;
mod retry;
mod standby;
mod state;
mod stream_thread;
mod supervisor;
mod task_manager;
mod task_state;

pub use kafka_streams::KafkaStreams;
pub use state::{State, StateListener, StateRestoreListener};
pub use task_manager::RuntimeCounters;
