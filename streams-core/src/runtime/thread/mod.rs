//! The threads of an instance: stream threads, the global stream thread, and their supervision.
//!
//! A `StreamThread` owns one consumer in the application's group
//! and runs the poll -> process -> punctuate -> commit loop over the tasks of its assignment,
//! which it hands to `tasks`. The
//! `GlobalStreamThread` keeps global stores equal to their
//! topics. The supervisor folds thread states into the instance state. Calls `tasks`, `commit`,
//! `env`, `clients`, `metrics` and `state`; never `instance`. A stream thread's group membership is
//! the runtime's own (`membership`, over `group` and `assignment`) or librdkafka's.

pub mod close_options;
pub(crate) mod global_thread;
pub(crate) mod group_protocol;
pub(crate) mod membership;
pub(crate) mod pool;
pub(crate) mod stalled_partitions;
pub(crate) mod stream_thread;
pub(crate) mod supervisor;
