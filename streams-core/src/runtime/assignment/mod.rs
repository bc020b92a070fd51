//! Task assignment through the group protocol: which stream thread runs which task, decided by
//! the group's leader in the runtime's own membership ([`crate::runtime::group`]).
//!
//! - [`streams_assignor`]: [`StreamsAssignor`](streams_assignor::StreamsAssignor), the
//!   assignor a stream thread's member offers: tasks from the cluster's topics, owners from the
//!   members' owned partitions, partitions from the tasks.
//! - [`sticky_tasks`]: the placement itself (balanced, sticky, spread over processes).
//! - [`subscription_info`]: the versioned user data each member sends;
//!   [`assignment_info`]: the one it gets back.

pub(crate) mod assignment_info;
pub(crate) mod sticky_tasks;
pub(crate) mod streams_assignor;
pub(crate) mod subscription_info;
