//! The active tasks of one stream thread: created from an assignment, fed polled records, run in
//! timestamp order, committed and closed.
//!
//! `TaskManager` owns the thread's `ActiveTask`s;
//! each buffers its input in a `PartitionGroup`. Restoration is
//! delegated to `restore`, producing and committing to
//! `commit`. Reaches Kafka only through the
//! `clients` seam, so it is unit-tested without a broker.

pub(crate) mod active_task;
pub(crate) mod partition_group;
pub(crate) mod task_manager;
