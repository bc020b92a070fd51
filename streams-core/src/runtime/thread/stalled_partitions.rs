//! [`StableOffsetWatch`]: names the input partitions whose last stable offset has stopped behind
//! their high watermark for longer than any transaction may stay open, a hanging transaction
//! (KIP-664) that holds every read_committed reader of the partition where it starts.
//!
//! Kafka aborts a transaction that outlives its producer's `transaction.timeout.ms`, at most the
//! broker's `transaction.max.timeout.ms` (15 minutes by default), so an open transaction older than
//! that is one whose markers were lost: for one, the coordinator drops the markers of partitions
//! that have no leader at that moment as if they were deleted (KAFKA-5202). Nothing in the
//! clients ends it; `kafka-transactions.sh find-hanging` / `abort` does, which the warning says.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Kafka's default `transaction.max.timeout.ms`, the age past which `kafka-transactions.sh
/// find-hanging` calls an open transaction hanging.
pub(crate) const MAX_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Where one partition's last stable offset stopped, and since when.
struct Stop {
    stable: i64,
    since: Instant,
    reported: bool,
}

/// Tracks each partition's last stable and high watermark offsets as the consumer's statistics
/// report them.
pub(crate) struct StableOffsetWatch {
    limit: Duration,
    stops: HashMap<(String, i32), Stop>,
}

/// A partition held at `stable` by a transaction open for longer than the limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hanging {
    pub topic: String,
    pub partition: i32,
    pub stable: i64,
    pub high_watermark: i64,
}

impl StableOffsetWatch {
    /// Reports a partition once its stable offset stood still behind its high watermark for
    /// `limit`.
    pub fn new(limit: Duration) -> Self {
        StableOffsetWatch {
            limit,
            stops: HashMap::new(),
        }
    }

    /// Takes one observation; returns the partition the first time it counts as hanging.
    pub fn observe(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        stable: i64,
        high_watermark: i64,
    ) -> Option<Hanging> {
        let key = (topic.to_string(), partition);
        if stable < 0 || stable >= high_watermark {
            self.stops.remove(&key);
            return None;
        }
        let stop = self.stops.entry(key).or_insert(Stop {
            stable,
            since: now,
            reported: false,
        });
        if stop.stable != stable {
            *stop = Stop {
                stable,
                since: now,
                reported: false,
            };
        }
        if stop.reported || now.duration_since(stop.since) < self.limit {
            return None;
        }
        stop.reported = true;
        Some(Hanging {
            topic: topic.to_string(),
            partition,
            stable,
            high_watermark,
        })
    }
}

impl Hanging {
    /// Logs the partition by name, with the commands that end the transaction.
    pub fn warn(&self, limit: Duration) {
        tracing::warn!(
            topic = %self.topic,
            partition = self.partition,
            last_stable_offset = self.stable,
            high_watermark = self.high_watermark,
            "a transaction has held this input partition's last stable offset for over {limit:?}, \
             Kafka's default maximum transaction timeout: likely a hanging transaction whose \
             markers the broker lost, which no read_committed reader gets past. Find it with `kafka-transactions.sh \
             --bootstrap-server <broker> find-hanging --broker-id <leader of {}-{}>` and end it with \
             `kafka-transactions.sh --bootstrap-server <broker> abort --topic {} --partition {} \
             --start-offset {}`",
            self.topic,
            self.partition,
            self.topic,
            self.partition,
            self.stable
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_stable_offset_stopped_past_the_limit_is_reported_once() {
        let mut w = StableOffsetWatch::new(LIMIT);
        let t0 = Instant::now();
        assert_eq!(w.observe(t0, "in", 1, 656, 700), None);
        assert_eq!(w.observe(t0 + LIMIT / 2, "in", 1, 656, 2915), None);
        assert_eq!(
            w.observe(t0 + LIMIT, "in", 1, 656, 2915),
            Some(Hanging {
                topic: "in".into(),
                partition: 1,
                stable: 656,
                high_watermark: 2915
            })
        );
        assert_eq!(w.observe(t0 + LIMIT * 2, "in", 1, 656, 2915), None);
    }

    #[test]
    fn a_moving_or_caught_up_stable_offset_restarts_the_clock() {
        let mut w = StableOffsetWatch::new(LIMIT);
        let t0 = Instant::now();
        assert_eq!(w.observe(t0, "in", 0, 10, 20), None);
        // Transactions commit one after another: the stable offset moves, nothing hangs.
        assert_eq!(w.observe(t0 + LIMIT * 3 / 4, "in", 0, 15, 30), None);
        assert_eq!(w.observe(t0 + LIMIT * 3 / 2, "in", 0, 15, 30), None);
        assert_eq!(w.observe(t0 + LIMIT * 3 / 2, "in", 0, 30, 30), None);
        assert_eq!(w.observe(t0 + LIMIT * 5 / 2, "in", 0, 30, 40), None);
        // Unknown offsets (a partition not fetched yet) say nothing.
        assert_eq!(w.observe(t0 + LIMIT * 9, "in", 2, -1, 40), None);
        assert!(w.observe(t0 + LIMIT * 4, "in", 0, 30, 40).is_some());
    }
}
