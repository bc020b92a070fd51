//! The producer seam: [`RecordProducer`], what the task manager needs from a producer, and
//! [`ProducerSupplier`], which makes them. [`KafkaProducers`] supplies
//! [`StreamProducer`]s on librdkafka; unit tests supply fakes that record every call, so the
//! commit order under each processing guarantee is checked without a broker.

use std::collections::HashMap;
use std::sync::Arc;

use rdkafka::TopicPartitionList;

use crate::config::StreamsConfig;
use crate::runtime::commit::error::CollectorError;
use crate::runtime::commit::stream_producer::StreamProducer;
use crate::runtime::group::GenerationMetadata;
use crate::runtime::metrics::StreamsMetrics;
use crate::task::ProducedRecord;
use crate::Result;

/// A thread's (or a legacy exactly_once task's) producer, plain or transactional.
pub(crate) trait RecordProducer: Send {
    /// Whether it was created with a `transactional.id`.
    fn is_transactional(&self) -> bool;
    /// Starts tracking the acknowledged offsets of the changelog `topic`.
    fn track_changelog(&self, topic: &str);
    /// Hands one record over (a transactional producer begins a transaction first if none is
    /// open); delivery failures surface at the next flush or commit.
    fn send(&mut self, record: &ProducedRecord) -> Result<(), CollectorError>;
    /// Serves delivery reports.
    fn poll(&self);
    /// Waits until every record sent is acknowledged (at_least_once commits).
    fn flush(&mut self) -> Result<(), CollectorError>;
    /// Adds `offsets` of the group `group` to the open transaction, waits for its records'
    /// acknowledgements meanwhile, and commits it (one is begun first if none is open and
    /// there are offsets).
    fn commit_transaction(
        &mut self,
        offsets: &TopicPartitionList,
        group: &Arc<GenerationMetadata>,
    ) -> Result<(), CollectorError>;
    /// Aborts the open transaction, if any, dropping records not yet sent. `false` when it
    /// could not be aborted: the producer must then be replaced, which fences the transaction.
    #[must_use]
    fn abort_transaction(&mut self) -> bool;
    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool;
    /// The highest acknowledged offset per tracked changelog partition.
    fn changelog_offsets(&self) -> HashMap<(String, i32), i64>;
}

/// Makes the producers of an instance's threads and tasks (Kafka Streams' `KafkaClientSupplier`).
pub(crate) trait ProducerSupplier: Send + Sync {
    /// A producer with `client.id` = `client_id`, transactional when `transactional_id` is set,
    /// tracking the acknowledged offsets of `changelogs`.
    fn producer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        transactional_id: Option<String>,
        changelogs: &[String],
        metrics: &StreamsMetrics,
    ) -> Result<Box<dyn RecordProducer>>;
}

/// Supplies librdkafka producers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KafkaProducers;

impl ProducerSupplier for KafkaProducers {
    fn producer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        transactional_id: Option<String>,
        changelogs: &[String],
        metrics: &StreamsMetrics,
    ) -> Result<Box<dyn RecordProducer>> {
        let p = StreamProducer::new(config, client_id, transactional_id, changelogs, metrics)?;
        Ok(Box::new(p))
    }
}
