//! The active tasks of one stream thread: created from an assignment, fed polled records, run in
//! timestamp order, committed and closed.
//!
//! [`TaskManager`](task_manager::TaskManager) owns the thread's [`ActiveTask`](active_task::ActiveTask)s;
//! each buffers its input in a [`PartitionGroup`](partition_group::PartitionGroup). Restoration is
//! delegated to [`restore`](crate::runtime::restore), producing and committing to
//! [`commit`](crate::runtime::commit). Reaches Kafka only through the
//! [`clients`](crate::runtime::clients) seam, so it is unit-tested without a broker.

pub(crate) mod active_task;
pub(crate) mod partition_group;
pub(crate) mod task_manager;
