//! Task assignment through the group protocol: which stream thread runs which task, decided by
//! the group's leader in the runtime's own membership ([`crate::runtime::group`]).
//!
//! - `streams_assignor`: `StreamsAssignor`, the
//!   assignor a stream thread's member offers: tasks from the cluster's topics, owners from the
//!   members' owned partitions, partitions from the tasks.
//! - `sticky_tasks`: active tasks balanced, sticky, spread over processes;
//!   `high_availability`: stateful tasks moved only where their state is caught up, warm-up
//!   and standby replicas.
//! - `subscription_info`: the user data each member sends; `assignment_info`: the one it
//!   gets back; `versioned`: their envelope, so versions roll out one instance at a time.
//! - `instance_assignment`: what an instance's threads share of their assignments (standby
//!   tasks, endpoints, standby positions).

pub(crate) mod assignment_info;
pub(crate) mod high_availability;
pub(crate) mod instance_assignment;
pub(crate) mod sticky_tasks;
pub(crate) mod streams_assignor;
pub(crate) mod subscription_info;
pub(crate) mod versioned;
