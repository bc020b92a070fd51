//! [`range_assign`]: the consumer protocol's `range` assignment, which the member offers besides
//! its own assignor so that a group whose other members are plain consumers (librdkafka's or
//! Java's, `range`) still agrees on a protocol: how instances of an earlier version of this
//! runtime, whose threads joined through librdkafka, are upgraded one at a time.
//!
//! As Java's `RangeAssignor` and librdkafka's `range`: per topic, the members subscribed to it in
//! member id order take consecutive partitions, the first `partitions % members` one extra; so
//! partition `p` of topics with equal partition counts lands on one member.

use std::collections::BTreeMap;

use super::consumer_protocol::Assignment;
use super::member::MemberSubscription;

/// The protocol name.
pub(crate) const RANGE: &str = "range";

/// Every member's `range` assignment of the topics it subscribes to.
pub(crate) fn range_assign(
    members: &[MemberSubscription],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::default()))
        .collect();
    for (topic, count) in topics {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.subscription.topics.iter().any(|t| t == topic))
            .map(|m| m.member_id.as_str())
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        subscribed.sort_unstable();
        let n = subscribed.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribed.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let a = out.entry(member.to_string()).or_default();
            for p in next..next + take {
                a.partitions.insert((topic.clone(), p));
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::group::Subscription;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                ..Subscription::default()
            },
        }
    }

    #[test]
    fn consecutive_ranges_per_topic_in_member_order_with_the_extra_first() {
        let topics = BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 5)]);
        let out = range_assign(
            &[member("m2", &["a", "b"]), member("m1", &["a", "b"])],
            &topics,
        );
        let parts = |m: &str| -> Vec<(String, i32)> { out[m].partitions.iter().cloned().collect() };
        let expected = |t: &[(&str, i32)]| -> Vec<(String, i32)> {
            t.iter().map(|(x, p)| (x.to_string(), *p)).collect()
        };
        assert_eq!(
            parts("m1"),
            expected(&[("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)])
        );
        assert_eq!(
            parts("m2"),
            expected(&[("a", 3), ("a", 4), ("b", 3), ("b", 4)])
        );
    }

    #[test]
    fn only_subscribers_of_a_topic_share_it() {
        let topics = BTreeMap::from([("a".to_string(), 2), ("c".to_string(), 1)]);
        let out = range_assign(&[member("x", &["a"]), member("y", &["a", "c"])], &topics);
        assert_eq!(out["x"].partitions.len(), 1);
        assert_eq!(out["y"].partitions.len(), 2);
        assert!(out["y"].partitions.contains(&("c".to_string(), 0)));
    }
}
