//! The partitions a group-less consumer (restore, standby) reads, changed by difference.
//!
//! A full `assign()` stops every assigned partition and starts them again. librdkafka up to at
//! least 2.15 counts a second stop of a partition whose first stop has not been answered yet, and
//! then aborts the process on an assertion (`rktp->rktp_started` in
//! `rd_kafka_assignment_partition_stopped`, librdkafka #5573). Two `assign()` calls a few
//! microseconds apart, as registering several changelogs of one task did, are enough. Changing
//! the assignment incrementally, once per batch of changes, stops each partition once; a
//! partition stopped less than [`STOP_SETTLE`] ago keeps its next stop (and the restart behind
//! it) pending until then, by when librdkafka has long answered the first. Until a change is
//! applied, records and positions the consumer reports for that partition are the previous
//! assignment's: callers ignore them ([`ManualAssignment::is_pending_for`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

type Partition = (String, i32);

/// How long after stopping a partition it is not stopped again. librdkafka answers a stop as soon
/// as the partition's broker thread serves it, within milliseconds.
pub(crate) const STOP_SETTLE: Duration = Duration::from_secs(1);

/// Pending starts and stops of a consumer's partitions, applied together by [`Self::apply`].
#[derive(Debug, Default)]
pub(crate) struct ManualAssignment {
    assigned: BTreeSet<Partition>,
    starts: BTreeMap<Partition, i64>,
    stops: BTreeSet<Partition>,
    last_stopped: HashMap<Partition, Instant>,
}

impl ManualAssignment {
    /// Reads `topic`-`partition` from `offset` after the next [`Self::apply`]; an assigned
    /// partition is stopped and started again at `offset`.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        self.starts.insert((topic.to_string(), partition), offset);
    }

    /// Stops reading `topic`-`partition` at the next [`Self::apply`].
    pub fn stop(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        self.starts.remove(&key);
        self.stops.insert(key);
    }

    /// Whether a start or stop of `topic`-`partition` has not reached the consumer yet: what the
    /// consumer delivers for it (and its position) still belong to the previous assignment.
    pub fn is_pending_for(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.starts.contains_key(&key) || self.stops.contains(&key)
    }

    /// Gives the consumer the pending changes: one incremental unassign, one incremental assign.
    /// Changes of a partition stopped less than [`STOP_SETTLE`] ago stay pending.
    pub fn apply<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> KafkaResult<()> {
        let now = Instant::now();
        let settling = |k: &Partition| {
            self.last_stopped
                .get(k)
                .is_some_and(|at| now.duration_since(*at) < STOP_SETTLE)
        };
        let (stopping, waiting): (Vec<Partition>, Vec<Partition>) = self
            .assigned
            .iter()
            .filter(|k| self.stops.contains(*k) || self.starts.contains_key(*k))
            .cloned()
            .partition(|k| !settling(k));
        if !stopping.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &stopping {
                tpl.add_partition(t, *p);
            }
            consumer.incremental_unassign(&tpl)?;
            for k in &stopping {
                self.assigned.remove(k);
                self.last_stopped.insert(k.clone(), now);
            }
        }
        self.last_stopped
            .retain(|_, at| now.duration_since(*at) < STOP_SETTLE);
        self.stops.retain(|k| waiting.contains(k));
        let starting: Vec<(Partition, i64)> = self
            .starts
            .iter()
            .filter(|(k, _)| !waiting.contains(*k))
            .map(|(k, o)| (k.clone(), *o))
            .collect();
        if !starting.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in &starting {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
            }
            consumer.incremental_assign(&tpl)?;
            for (k, _) in starting {
                self.starts.remove(&k);
                self.assigned.insert(k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ManualAssignment {
        /// Whether a start or stop waits for [`Self::apply`].
        pub fn is_pending(&self) -> bool {
            !self.starts.is_empty() || !self.stops.is_empty()
        }

        /// The partitions the consumer reads once the pending changes are applied.
        pub fn target(&self) -> BTreeSet<Partition> {
            let mut out: BTreeSet<Partition> =
                self.assigned.difference(&self.stops).cloned().collect();
            out.extend(self.starts.keys().cloned());
            out
        }
    }

    #[test]
    fn a_stop_cancels_a_pending_start_and_a_restart_stops_first() {
        let mut a = ManualAssignment::default();
        a.start("c", 0, 5);
        a.stop("c", 0);
        assert!(a.target().is_empty());
        assert!(a.starts.is_empty());
        a.assigned.insert(("c".into(), 1));
        a.start("c", 1, 9);
        a.start("c", 2, 0);
        let want: BTreeSet<Partition> = [("c".to_string(), 1), ("c".to_string(), 2)].into();
        assert_eq!(a.target(), want);
        a.stop("c", 1);
        assert_eq!(a.target(), [("c".to_string(), 2)].into());
        assert!(a.is_pending());
    }

    fn unjoined_consumer() -> BaseConsumer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("group.id", "manual-assignment-test")
            .set("log_level", "0")
            .create()
            .expect("a consumer needs no broker to be created")
    }

    fn assignment_of(consumer: &BaseConsumer) -> BTreeSet<Partition> {
        consumer
            .assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect()
    }

    /// A consumer with no broker still starts and stops fetchers, which is all the changes
    /// need; many changes in a row, as a rebalance makes them, reach the consumer in the end.
    #[test]
    fn rapid_changes_reach_a_live_consumer() {
        let consumer = unjoined_consumer();
        let mut a = ManualAssignment::default();
        for round in 0..300i64 {
            let p = (round % 7) as i32;
            a.start("changelog", p, round);
            a.start("changelog", (p + 3) % 7, 0);
            if round % 3 == 0 {
                a.stop("changelog", (p + 1) % 7);
            }
            a.apply(&consumer)
                .expect("incremental changes are accepted");
            assert_eq!(assignment_of(&consumer), a.assigned, "round {round}");
        }
        let want = a.target();
        std::thread::sleep(STOP_SETTLE);
        a.apply(&consumer)
            .expect("incremental changes are accepted");
        assert!(!a.is_pending());
        assert_eq!(assignment_of(&consumer), want);
    }

    #[test]
    fn a_partition_is_not_stopped_twice_within_the_settle_time() {
        let consumer = unjoined_consumer();
        let mut a = ManualAssignment::default();
        a.start("c", 0, 0);
        a.apply(&consumer).expect("apply");
        a.stop("c", 0);
        a.apply(&consumer).expect("apply");
        assert!(assignment_of(&consumer).is_empty());
        // Starting again right away is fine; stopping (or restarting) must wait.
        a.start("c", 0, 10);
        a.apply(&consumer).expect("apply");
        a.start("c", 0, 20);
        a.stop("c", 1);
        a.apply(&consumer).expect("apply");
        assert_eq!(assignment_of(&consumer), [("c".to_string(), 0)].into());
        assert_eq!(a.starts.get(&("c".to_string(), 0)), Some(&20));
        std::thread::sleep(STOP_SETTLE);
        a.apply(&consumer).expect("apply");
        assert!(!a.is_pending());
        let pos = consumer.assignment().expect("assignment");
        assert_eq!(
            pos.find_partition("c", 0).map(|e| e.offset()),
            Some(Offset::Offset(20))
        );
    }
}
