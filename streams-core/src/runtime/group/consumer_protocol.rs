//! The bytes a member of protocol type `consumer` puts into JoinGroup and gets back from
//! SyncGroup: a version (`i16`) followed by `ConsumerProtocolSubscription` or
//! `ConsumerProtocolAssignment` at that version, as Java's `ConsumerProtocol` writes them, so
//! brokers and tools that read consumer groups (describe, the KIP-848 migration) understand ours.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::connection::Failure;

/// A topic partition.
pub type Partition = (String, i32);

/// Version written: v3 adds the rack, v2 the generation of the owned partitions (KIP-792), v1
/// the owned partitions themselves (KIP-429), which cooperative rebalancing needs.
const SUBSCRIPTION_VERSION: i16 = 3;
/// Version written for assignments (every version has the same fields).
const ASSIGNMENT_VERSION: i16 = 3;

/// What one member asks for in a join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The topics it reads.
    pub topics: Vec<String>,
    /// The assignor's own data (versioned by the assignor).
    pub user_data: Bytes,
    /// The partitions it holds now (cooperative rebalancing keeps them where they are).
    pub owned: BTreeSet<Partition>,
    /// The generation in which it was given `owned`, -1 when none.
    pub generation: i32,
}

/// What one member is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions it consumes.
    pub partitions: BTreeSet<Partition>,
    /// The assignor's own data for this member.
    pub user_data: Bytes,
}

/// Partition numbers by topic, as the protocol's messages list them.
pub(crate) fn group_by_topic(partitions: &BTreeSet<Partition>) -> BTreeMap<&str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    topics
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

fn malformed(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Protocol(format!("malformed {what}: {e}"))
}

/// Encodes a subscription for JoinGroup.
pub(crate) fn encode_subscription(s: &Subscription) -> Result<Bytes, Failure> {
    let message = ConsumerProtocolSubscription::default()
        .with_topics(
            s.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(Some(s.user_data.clone()))
        .with_owned_partitions(
            group_by_topic(&s.owned)
                .into_iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_generation_id(s.generation);
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    message
        .encode(&mut buf, SUBSCRIPTION_VERSION)
        .map_err(|e| malformed("subscription", e))?;
    Ok(buf.freeze())
}

/// Decodes a member's subscription from the leader's JoinGroup answer. Versions above the
/// highest known are read as it (Java's rule: newer versions only append fields).
pub(crate) fn decode_subscription(mut bytes: Bytes) -> Result<Subscription, Failure> {
    if bytes.remaining() < 2 {
        return Err(malformed("subscription", "shorter than its version"));
    }
    let version = bytes.get_i16().min(SUBSCRIPTION_VERSION);
    let m = ConsumerProtocolSubscription::decode(&mut bytes, version)
        .map_err(|e| malformed("subscription", e))?;
    Ok(Subscription {
        topics: m.topics.iter().map(|t| t.to_string()).collect(),
        user_data: m.user_data.unwrap_or_default(),
        owned: m
            .owned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        generation: if version >= 2 { m.generation_id } else { -1 },
    })
}

/// Encodes an assignment for SyncGroup.
pub(crate) fn encode_assignment(a: &Assignment) -> Result<Bytes, Failure> {
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            group_by_topic(&a.partitions)
                .into_iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_user_data(Some(a.user_data.clone()));
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    message
        .encode(&mut buf, ASSIGNMENT_VERSION)
        .map_err(|e| malformed("assignment", e))?;
    Ok(buf.freeze())
}

/// Decodes this member's assignment from SyncGroup; empty bytes (a member the leader left out)
/// are an empty assignment.
pub(crate) fn decode_assignment(mut bytes: Bytes) -> Result<Assignment, Failure> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    if bytes.remaining() < 2 {
        return Err(malformed("assignment", "shorter than its version"));
    }
    let version = bytes.get_i16().min(ASSIGNMENT_VERSION);
    let m = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map_err(|e| malformed("assignment", e))?;
    Ok(Assignment {
        partitions: m
            .assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        user_data: m.user_data.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[(&str, i32)]) -> BTreeSet<Partition> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn subscriptions_and_assignments_read_back_as_written() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Bytes::from_static(b"\x00\x01data"),
            owned: parts(&[("a", 0), ("a", 2), ("b", 1)]),
            generation: 7,
        };
        let read = decode_subscription(encode_subscription(&s).expect("encode")).expect("decode");
        assert_eq!(read, s);
        let a = Assignment {
            partitions: parts(&[("a", 1), ("b", 0)]),
            user_data: Bytes::from_static(b"tasks"),
        };
        let read = decode_assignment(encode_assignment(&a).expect("encode")).expect("decode");
        assert_eq!(read, a);
        assert_eq!(
            decode_assignment(Bytes::new()).expect("empty"),
            Assignment::default()
        );
    }

    #[test]
    fn a_newer_version_is_read_by_its_known_fields_and_garbage_is_an_error() {
        let s = Subscription {
            topics: vec!["t".into()],
            ..Subscription::default()
        };
        let mut bytes = BytesMut::from(&encode_subscription(&s).expect("encode")[..]);
        bytes[0..2].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(
            decode_subscription(bytes.freeze()).expect("v9").topics,
            vec!["t".to_string()]
        );
        assert!(decode_subscription(Bytes::from_static(b"\x00")).is_err());
        assert!(decode_assignment(Bytes::from_static(b"\x00\x00\xff\xff\xff")).is_err());
    }
}
