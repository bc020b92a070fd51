//! Which Kafka errors are retried, and for how long (`task.timeout.ms`, KIP-572).
//!
//! A broker that restarts, a partition leader that moves or a coordinator that loads make the
//! clients report errors that go away by themselves. Kafka Streams retries those while a task
//! initializes or restores, and fails only when a task made no progress for `task.timeout.ms`;
//! anything else (authorization, a fatal client error) fails at once.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::{Result, StreamsError};

/// Whether `e` is one the clients get past by retrying (Java's `RetriableException` family).
pub(crate) fn is_retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            BrokerTransportFailure
                | AllBrokersDown
                | BrokerDestroy
                | DestroyBroker
                | UnknownPartition
                | UnknownTopic
                | UnknownTopicOrPartition
                | LeaderNotAvailable
                | NotLeaderForPartition
                | PreferredLeaderNotAvailable
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | ReplicaNotAvailable
                | BrokerNotAvailable
                | KafkaStorageError
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | RequestTimedOut
                | OperationTimedOut
                | TimedOutQueue
                | NetworkException
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | WaitingForCoordinator
                | OffsetNotAvailable
                | UnstableOffsetCommit
        )
    )
}

/// How often a window that is still open says so (with the latest error).
const STILL_RETRYING_EVERY: Duration = Duration::from_secs(30);

/// The time a task has spent on retriable errors without progress.
#[derive(Debug)]
pub(crate) struct RetryWindow {
    limit: Duration,
    since: Option<Instant>,
    last_warned: Option<Instant>,
}

impl RetryWindow {
    /// A window of `task.timeout.ms`.
    pub fn new(limit: Duration) -> Self {
        RetryWindow {
            limit,
            since: None,
            last_warned: None,
        }
    }

    /// Progress was made: the next error starts a new window.
    pub fn progressed(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(after = ?since.elapsed(), "recovered from retriable Kafka errors");
        }
        self.last_warned = None;
    }

    /// `Ok` when the caller should retry `e` later; the error (with `context`) when it is not
    /// retriable or the window has run out.
    pub fn retry(&mut self, context: &str, e: KafkaError) -> Result<()> {
        let fail = |context: String, source| Err(StreamsError::kafka(context, source));
        if !is_retriable(&e) {
            return fail(context.to_string(), e);
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if self
            .last_warned
            .is_none_or(|t| t.elapsed() >= STILL_RETRYING_EVERY)
        {
            tracing::warn!(error = %e, retrying_for = ?since.elapsed(), "{context}: retriable error; retrying for up to task.timeout.ms");
            self.last_warned = Some(Instant::now());
        }
        if since.elapsed() > self.limit {
            return fail(
                format!(
                    "{context} (retriable errors for {:?}, past task.timeout.ms)",
                    since.elapsed()
                ),
                e,
            );
        }
        tracing::debug!(error = %e, "{context}: retrying");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageConsumption(code)
    }

    #[test]
    fn a_moving_leader_is_retried_and_authorization_is_not() {
        assert!(is_retriable(&err(RDKafkaErrorCode::NotLeaderForPartition)));
        assert!(is_retriable(&err(RDKafkaErrorCode::AllBrokersDown)));
        assert!(!is_retriable(&err(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        let mut w = RetryWindow::new(Duration::from_secs(60));
        assert!(w
            .retry("x", err(RDKafkaErrorCode::NotLeaderForPartition))
            .is_ok());
        assert!(w
            .retry("x", err(RDKafkaErrorCode::TopicAuthorizationFailed))
            .is_err());
    }

    #[test]
    fn retriable_errors_fail_once_the_window_runs_out_and_progress_resets_it() {
        let mut w = RetryWindow::new(Duration::from_millis(20));
        assert!(w.retry("x", err(RDKafkaErrorCode::AllBrokersDown)).is_ok());
        std::thread::sleep(Duration::from_millis(30));
        let e = w
            .retry("restoring", err(RDKafkaErrorCode::AllBrokersDown))
            .expect_err("the window ran out")
            .to_string();
        assert!(e.contains("past task.timeout.ms"), "{e}");
        w.progressed();
        assert!(w.retry("x", err(RDKafkaErrorCode::AllBrokersDown)).is_ok());
    }
}
