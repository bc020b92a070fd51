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

    /// Takes one statistics report: `(topic, partition, last stable offset, high watermark)` of
    /// each partition being fetched. Returns the partitions that count as hanging for the first
    /// time; a partition left out (no longer fetched, or paused) starts over when it is back.
    pub fn report<'a>(
        &mut self,
        now: Instant,
        partitions: impl IntoIterator<Item = (&'a str, i32, i64, i64)>,
    ) -> Vec<Hanging> {
        let mut stops = HashMap::with_capacity(self.stops.len());
        let mut hanging = Vec::new();
        for (topic, partition, stable, high_watermark) in partitions {
            if stable < 0 || stable >= high_watermark {
                continue;
            }
            let key = (topic.to_string(), partition);
            let mut stop = match self.stops.remove(&key) {
                Some(stop) if stop.stable == stable => stop,
                _ => Stop {
                    stable,
                    since: now,
                    reported: false,
                },
            };
            if !stop.reported && now.duration_since(stop.since) >= self.limit {
                stop.reported = true;
                hanging.push(Hanging {
                    topic: topic.to_string(),
                    partition,
                    stable,
                    high_watermark,
                });
            }
            stops.insert(key, stop);
        }
        self.stops = stops;
        hanging
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
             --bootstrap-server <broker> find-hanging --topic {} --partition {}` and end it with \
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

    fn hanging(topic: &str, partition: i32, stable: i64, high_watermark: i64) -> Hanging {
        Hanging {
            topic: topic.into(),
            partition,
            stable,
            high_watermark,
        }
    }

    #[test]
    fn a_stable_offset_stopped_past_the_limit_is_reported_once() {
        let mut w = StableOffsetWatch::new(LIMIT);
        let t0 = Instant::now();
        assert_eq!(w.report(t0, [("in", 1, 656, 700)]), vec![]);
        assert_eq!(w.report(t0 + LIMIT / 2, [("in", 1, 656, 2915)]), vec![]);
        assert_eq!(
            w.report(t0 + LIMIT, [("in", 1, 656, 2915), ("in", 0, 5, 5)]),
            vec![hanging("in", 1, 656, 2915)]
        );
        assert_eq!(w.report(t0 + LIMIT * 2, [("in", 1, 656, 2915)]), vec![]);
    }

    #[test]
    fn a_moving_caught_up_or_unfetched_stable_offset_restarts_the_clock() {
        let mut w = StableOffsetWatch::new(LIMIT);
        let t0 = Instant::now();
        assert_eq!(w.report(t0, [("in", 0, 10, 20)]), vec![]);
        // Transactions commit one after another: the stable offset moves, nothing hangs.
        assert_eq!(w.report(t0 + LIMIT * 3 / 4, [("in", 0, 15, 30)]), vec![]);
        assert_eq!(w.report(t0 + LIMIT * 3 / 2, [("in", 0, 15, 30)]), vec![]);
        assert_eq!(w.report(t0 + LIMIT * 3 / 2, [("in", 0, 30, 30)]), vec![]);
        assert_eq!(w.report(t0 + LIMIT * 2, [("in", 0, 30, 40)]), vec![]);
        // Not fetched for a while (revoked, paused): its offsets say nothing meanwhile.
        assert_eq!(w.report(t0 + LIMIT * 5 / 2, [("in", 1, -1, 40)]), vec![]);
        assert_eq!(w.report(t0 + LIMIT * 4, [("in", 0, 30, 40)]), vec![]);
        assert_eq!(
            w.report(t0 + LIMIT * 5, [("in", 0, 30, 40)]),
            vec![hanging("in", 0, 30, 40)]
        );
    }
}
