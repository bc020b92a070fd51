//! Per-task buffer of polled records, one queue per input partition, drained in timestamp order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::record::Headers;

/// A polled record, owned, waiting for its task.
#[derive(Debug, Clone)]
pub(crate) struct BufferedRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Kafka Streams' `PartitionGroup`: across a task's partitions, the next record processed is the
/// one with the smallest timestamp at the head of its queue, so joins see inputs in time order.
#[derive(Debug, Default)]
pub(crate) struct PartitionGroup {
    queues: BTreeMap<(Arc<str>, i32), VecDeque<BufferedRecord>>,
    len: usize,
}

impl PartitionGroup {
    pub fn push(&mut self, r: BufferedRecord) {
        self.len += 1;
        self.queues
            .entry((r.topic.clone(), r.partition))
            .or_default()
            .push_back(r);
    }

    pub fn pop_earliest(&mut self) -> Option<BufferedRecord> {
        let key = self
            .queues
            .iter()
            .filter_map(|(k, q)| q.front().map(|r| (r.timestamp, k)))
            .min_by_key(|(ts, _)| *ts)
            .map(|(_, k)| k.clone())?;
        let r = self.queues.get_mut(&key)?.pop_front();
        if r.is_some() {
            self.len -= 1;
        }
        r
    }

    /// Whether nothing is buffered for `topic`-`partition`.
    pub fn is_empty_for(&self, topic: &str, partition: i32) -> bool {
        self.queues
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .is_none_or(|(_, q)| q.is_empty())
    }

    /// Whether nothing is buffered at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many records are buffered, over all partitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Each partition that had records buffered, with how many it holds now.
    pub fn partition_lens(&self) -> impl Iterator<Item = (&Arc<str>, i32, usize)> {
        self.queues.iter().map(|((t, p), q)| (t, *p, q.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &Arc<str>, partition: i32, offset: i64, ts: i64) -> BufferedRecord {
        BufferedRecord {
            topic: topic.clone(),
            partition,
            offset,
            key: None,
            value: None,
            timestamp: ts,
            headers: Headers::new(),
        }
    }

    #[test]
    fn drains_in_timestamp_order_across_partitions_keeping_partition_order() {
        let (a, b): (Arc<str>, Arc<str>) = ("left".into(), "right".into());
        let mut g = PartitionGroup::default();
        g.push(rec(&a, 0, 0, 10));
        g.push(rec(&a, 0, 1, 5)); // out of order within a partition: stays behind offset 0
        g.push(rec(&b, 0, 0, 7));
        g.push(rec(&b, 0, 1, 30));
        let order: Vec<(String, i64)> = std::iter::from_fn(|| g.pop_earliest())
            .map(|r| (r.topic.to_string(), r.offset))
            .collect();
        assert_eq!(
            order,
            [("right", 0), ("left", 0), ("left", 1), ("right", 1)].map(|(t, o)| (t.to_string(), o))
        );
        assert_eq!(g.len(), 0);
    }
}
