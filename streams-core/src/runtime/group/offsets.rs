//! [`OffsetClient`]: a group's committed offsets, read (OffsetFetch) and written (OffsetCommit
//! with the member's generation) over a connection of its own, so a commit never waits behind
//! the membership thread's JoinGroup.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::connection::Failure;
use super::consumer_protocol::{group_by_topic, Partition};
use super::coordinator::{coordinator_moved, CoordinatorLink};
use super::member::{Generation, MemberConfig};
use crate::{Result, StreamsError};

/// A committed position: the next offset to read and the metadata committed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// The metadata string committed with it (Kafka Streams keeps partition time there).
    pub metadata: Option<String>,
}

/// Reads and writes a group's offsets.
pub struct OffsetClient {
    link: CoordinatorLink,
    group_id: String,
    backoff: Duration,
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

impl OffsetClient {
    /// A client for the group of `config`.
    pub fn new(config: &MemberConfig) -> Self {
        OffsetClient {
            link: CoordinatorLink::new(
                &config.bootstrap_servers,
                &config.group_id,
                &format!("{}-offsets", config.client_id),
                config.request_timeout,
                config.security.clone(),
            ),
            group_id: config.group_id.clone(),
            backoff: config.retry_backoff,
        }
    }

    fn error(&self, context: &str, failure: &Failure) -> StreamsError {
        StreamsError::Group {
            context: format!("{context} for group `{}`", self.group_id),
            reason: failure.to_string(),
            fenced: matches!(
                failure,
                Failure::Broker(
                    ResponseError::UnknownMemberId
                        | ResponseError::IllegalGeneration
                        | ResponseError::RebalanceInProgress
                        | ResponseError::FencedInstanceId
                )
            ),
        }
    }

    /// Runs `step` until it succeeds, fails for good, or `timeout` passes; a coordinator that
    /// moved or is loading, and offsets still in an open transaction, are waited out.
    fn retrying<T>(
        &mut self,
        context: &str,
        timeout: Duration,
        mut step: impl FnMut(&mut CoordinatorLink) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let failure = match step(&mut self.link) {
                Ok(t) => return Ok(t),
                Err(f) => f,
            };
            let retriable = coordinator_moved(&failure)
                || failure == Failure::Broker(ResponseError::UnstableOffsetCommit);
            if coordinator_moved(&failure) {
                self.link.reset();
            }
            if !retriable || Instant::now() + self.backoff >= deadline {
                return Err(self.error(context, &failure));
            }
            std::thread::sleep(self.backoff);
        }
    }

    /// Commits `offsets` as the member of `generation` (at_least_once). The broker refuses a
    /// member that is no longer in that generation: the error is then `fenced`.
    pub fn commit(
        &mut self,
        generation: &Generation,
        offsets: &BTreeMap<Partition, CommittedOffset>,
        timeout: Duration,
    ) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            topics.entry(t.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(o.offset)
                    .with_committed_metadata(Some(StrBytes::from_string(
                        o.metadata.clone().unwrap_or_default(),
                    ))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id_or_member_epoch(generation.id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_group_instance_id(
                generation
                    .group_instance_id
                    .clone()
                    .map(StrBytes::from_string),
            )
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        self.retrying("committing offsets", timeout, |link| {
            let timeout = link.timeout();
            let answer = link.send(&request, timeout)?;
            for t in &answer.topics {
                for p in &t.partitions {
                    Failure::check(p.error_code)?;
                }
            }
            Ok(())
        })
    }

    /// The committed offsets of `partitions` (absent: none committed). With `require_stable`
    /// (exactly-once, KIP-447) the broker answers only once no open transaction holds offsets
    /// for them; that wait is retried up to `timeout`.
    pub fn fetch(
        &mut self,
        partitions: &BTreeSet<Partition>,
        require_stable: bool,
        timeout: Duration,
    ) -> Result<BTreeMap<Partition, CommittedOffset>> {
        let by_topic = group_by_topic(partitions);
        let group = GroupId(StrBytes::from_string(self.group_id.clone()));
        self.retrying("reading committed offsets", timeout, |link| {
            let version = link.version::<OffsetFetchRequest>()?;
            if require_stable && version < 7 {
                return Err(Failure::Protocol(format!(
                    "the broker answers OffsetFetch up to v{version}; exactly-once needs v7 (Kafka >= 2.5)"
                )));
            }
            // v8 (KIP-709) batches groups; earlier versions name one.
            let request = if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(group.clone())
                    .with_topics(Some(
                        by_topic
                            .iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic(t))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect(),
                    ))])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(group.clone())
                    .with_topics(Some(
                        by_topic
                            .iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(topic(t))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect(),
                    ))
            };
            let request = if version >= 7 {
                request.with_require_stable(require_stable)
            } else {
                request
            };
            let timeout = link.timeout();
            let answer = link.send(&request, timeout)?;
            let mut found = BTreeMap::new();
            let mut keep = |t: &TopicName, p: i32, offset: i64, meta: &Option<StrBytes>, code| {
                Failure::check(code)?;
                if offset >= 0 {
                    found.insert(
                        (t.0.to_string(), p),
                        CommittedOffset {
                            offset,
                            metadata: meta.as_ref().map(|m| m.to_string()),
                        },
                    );
                }
                Ok::<(), Failure>(())
            };
            if version >= 8 {
                let g = answer.groups.into_iter().next().ok_or_else(|| {
                    Failure::Protocol("OffsetFetch answered no group".into())
                })?;
                Failure::check(g.error_code)?;
                for t in &g.topics {
                    for p in &t.partitions {
                        keep(&t.name, p.partition_index, p.committed_offset, &p.metadata, p.error_code)?;
                    }
                }
            } else {
                Failure::check(answer.error_code)?;
                for t in &answer.topics {
                    for p in &t.partitions {
                        keep(&t.name, p.partition_index, p.committed_offset, &p.metadata, p.error_code)?;
                    }
                }
            }
            Ok(found)
        })
    }
}
