//! [`CloseOptions`]: how [`KafkaStreams::close_with`](crate::KafkaStreams::close_with) stops an
//! instance (Kafka Streams' `CloseOptions`).

use std::time::Duration;

/// What a closing instance does about its place in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupMembershipOperation {
    /// Dynamic members leave, static members (`group.instance.id`) keep their place until
    /// their session times out, so a restart in time takes their tasks back without a
    /// rebalance.
    #[default]
    Default,
    /// Every member leaves at once, static ones too: the group rebalances now (Kafka Streams'
    /// `LEAVE_GROUP`).
    LeaveGroup,
    /// Every member keeps its place until its session times out (Kafka Streams'
    /// `REMAIN_IN_GROUP`).
    RemainInGroup,
}

/// Options of [`KafkaStreams::close_with`](crate::KafkaStreams::close_with).
///
/// ```
/// use std::time::Duration;
/// use streams_core::runtime::{CloseOptions, GroupMembershipOperation};
///
/// let options = CloseOptions::default()
///     .timeout(Duration::from_secs(10))
///     .group_membership_operation(GroupMembershipOperation::LeaveGroup);
/// assert_eq!(options.operation, GroupMembershipOperation::LeaveGroup);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseOptions {
    /// How long to wait for the threads to stop.
    pub timeout: Duration,
    /// What the members do about the group.
    pub operation: GroupMembershipOperation,
}

impl Default for CloseOptions {
    fn default() -> Self {
        CloseOptions {
            timeout: Duration::from_secs(60),
            operation: GroupMembershipOperation::Default,
        }
    }
}

impl CloseOptions {
    /// Waits up to `timeout` for the threads.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Leaves the group, stays in it, or does what the membership kind does by default.
    pub fn group_membership_operation(mut self, operation: GroupMembershipOperation) -> Self {
        self.operation = operation;
        self
    }

    /// Whether a member leaves, given whether it is static.
    pub(crate) fn leaves(&self, static_member: bool) -> bool {
        match self.operation {
            GroupMembershipOperation::Default => !static_member,
            GroupMembershipOperation::LeaveGroup => true,
            GroupMembershipOperation::RemainInGroup => false,
        }
    }
}
