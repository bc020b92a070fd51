//! `ThreadEnv`: what every thread of an instance shares (topology, configuration, topic layout,
//! RocksDB resources, metrics, global stores, its share of the group's assignments, the turns
//! its threads take at committing), and the
//! hand-over of task directories between active tasks and standby copies.

use std::sync::Arc;

use state_stores::RocksDbResources;

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::global::GlobalStores;
use crate::runtime::assignment::instance_assignment::InstanceAssignment;
use crate::runtime::commit::producer::ProducerSupplier;
use crate::runtime::commit::turns::CommitTurns;
use crate::runtime::group::Security;
use crate::runtime::internal_topics::TopicLayout;
use crate::runtime::metrics::{RuntimeCounters, StreamsMetrics};
use crate::task::TaskId;
use crate::topology::Topology;

/// What every thread of an instance shares.
pub(crate) struct ThreadEnv {
    pub topology: Arc<Topology>,
    pub config: StreamsConfig,
    pub layout: TopicLayout,
    pub resources: RocksDbResources,
    pub process_id: uuid::Uuid,
    pub counters: Arc<RuntimeCounters>,
    /// The instance's global stores, readable from every task.
    pub globals: GlobalStores,
    /// The instance's metrics.
    pub metrics: Arc<StreamsMetrics>,
    /// Makes the threads' and tasks' producers.
    pub producers: Arc<dyn ProducerSupplier>,
    /// The instance's standby copies (none unless `num.standby.replicas` > 0).
    pub standbys: Arc<dyn StandbyHandover>,
    pub assignment: Arc<InstanceAssignment>,
    /// The security of the runtime's own group member connections when the stream threads join
    /// through it (see `thread::membership::own_membership`); `None`: librdkafka's membership.
    pub own_membership: Option<Security>,
    /// The threads take turns at their periodic commits.
    pub commit_turns: CommitTurns,
}

impl ThreadEnv {
    /// `processing.guarantee`.
    pub fn guarantee(&self) -> ProcessingGuarantee {
        self.config.processing_guarantee
    }

    /// Whether persistent stores hold writes until the Kafka transaction commits.
    pub(crate) fn transactional_stores(&self) -> bool {
        self.guarantee().is_exactly_once() && self.config.transactional_state_stores
    }
}

/// Lets the standby copies of an instance give a task's directory to the active task that takes
/// it over, and take it back when the active task closes.
pub(crate) trait StandbyHandover: Send + Sync {
    /// `id` becomes active here: a copy of it checkpoints and closes, unlocking its directory.
    fn mark_active(&self, id: TaskId);
    /// `id` is no longer active here; a copy may open it again.
    fn mark_inactive(&self, id: TaskId);
}
