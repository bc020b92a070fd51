//! The consumer seam: [`GroupConsumer`], what the task manager needs from its stream thread's
//! consumer, implemented by librdkafka's consumer and by fakes in unit tests.
//!
//! It speaks rdkafka's data types (partition lists, group metadata, errors) but hides the client,
//! so commits, pauses and revocations are tested without a broker.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::runtime::group::GenerationMetadata;

/// The part of a group member's consumer that tasks are committed and paused through.
pub(crate) trait GroupConsumer {
    /// Stops fetching `partitions` (their tasks are restoring).
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()>;
    /// Fetches `partitions` again.
    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()>;
    /// Has the fetch of `partitions`, just resumed, start now: called where every input may
    /// have been paused (a paused instance resuming, tasks leaving restoration), not for the
    /// routine resume of an input whose buffer drained. The default does nothing.
    fn wake_fetchers(&self, _partitions: &TopicPartitionList) {}
    /// The committed offsets of `partitions`. Under `isolation.level=read_committed` the answer
    /// waits until no transaction of a previous owner is pending on them (KIP-447).
    fn committed_offsets(
        &self,
        partitions: TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<TopicPartitionList>;
    /// Starts fetching the inputs of new tasks, paused (their tasks restore first), from the
    /// committed offsets [`Self::committed_offsets`] read (`Offset::Invalid` where none was
    /// committed: `auto.offset.reset` applies); partitions already fetched are left alone. A
    /// consumer whose group assigned the partitions fetches them already, from the committed
    /// offsets it read itself: the default does nothing.
    fn start_fetching(&self, _from: &TopicPartitionList) -> KafkaResult<()> {
        Ok(())
    }
    /// Commits `offsets` to the group and waits for the answer (at_least_once).
    fn commit_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()>;
    /// The member's group metadata (generation, member id), which exactly_once_v2 sends with
    /// the offsets into a transaction; `None` before the consumer joined.
    fn group_metadata(&self) -> Option<GenerationMetadata>;
    /// Whether the group took the assignment away (session expired, unknown member, illegal
    /// generation) before this thread served the lost-partitions callback.
    fn assignment_lost(&self) -> bool;
    /// Whether the group completed a join since the generation this consumer's commits carry,
    /// whose assignment the thread has yet to serve: a commit now would be refused. librdkafka's
    /// membership updates its generation on its own thread, so it never reports one.
    fn generation_superseded(&self) -> bool {
        false
    }
}

impl<C: ConsumerContext> GroupConsumer for BaseConsumer<C> {
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::pause(self, partitions)
    }

    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::resume(self, partitions)
    }

    fn wake_fetchers(&self, partitions: &TopicPartitionList) {
        wake_fetchers(self, partitions);
    }

    fn committed_offsets(
        &self,
        partitions: TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<TopicPartitionList> {
        Consumer::committed_offsets(self, partitions, timeout)
    }

    fn commit_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::commit(self, offsets, CommitMode::Sync)
    }

    fn group_metadata(&self) -> Option<GenerationMetadata> {
        GenerationMetadata::of_consumer(self.client())
    }

    fn assignment_lost(&self) -> bool {
        Consumer::assignment_lost(self)
    }
}

/// How long [`wake_fetchers`] waits for the leaders' answer: past it the broker threads wake
/// on their own (at most 1 s).
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Wakes the broker threads that fetch `partitions`. librdkafka does not wake a broker thread
/// when a partition resumes, and a thread that had nothing to fetch waits for I/O up to 1 s
/// (its fixed maximum block) before it sees the partition (confluentinc/confluent-kafka-go#630:
/// 0.5 s between resume and fetch). Measured here: 0.5-1 s without a record after every
/// resume of a paused instance. Any request to a partition's leader wakes its thread, so this
/// asks the leaders for the partitions' end offsets (one ListOffsets per leader, answered from
/// memory) and ignores the answer.
pub(crate) fn wake_fetchers<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &TopicPartitionList,
) {
    let mut latest = TopicPartitionList::with_capacity(partitions.count());
    for e in partitions.elements() {
        // A timestamp of -1 (`Offset::End`) asks for the end offset.
        if latest
            .add_partition_offset(e.topic(), e.partition(), Offset::End)
            .is_err()
        {
            return;
        }
    }
    if latest.count() == 0 {
        return;
    }
    if let Err(e) = consumer.offsets_for_times(latest, WAKE_TIMEOUT) {
        tracing::debug!(error = %e, "waking the fetchers of resumed partitions failed; they start within 1 s");
    }
}
