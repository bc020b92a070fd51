//! [`CollectorError`]: what a failed send or commit means for the thread (fenced, aborted or
//! fatal), and [`classify`], which sorts a Kafka client error into one of them.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::runtime::group::TxnOffsetsError;
use crate::StreamsError;

/// Why a commit (or send) failed, which decides what the thread does next.
#[derive(Debug)]
pub(crate) enum CollectorError {
    /// The producer can no longer be used (fenced by a newer instance, or a fatal producer error):
    /// the thread lost its tasks; close them dirty, recreate the producer and rejoin.
    Fenced(StreamsError),
    /// The transaction was aborted; the state written inside it is not committed. Close the tasks
    /// dirty, wipe their state and resume from the last committed offsets.
    Aborted(StreamsError),
    /// Anything else: the thread fails.
    Fatal(StreamsError),
}

impl CollectorError {
    pub fn into_inner(self) -> StreamsError {
        match self {
            CollectorError::Fenced(e) | CollectorError::Aborted(e) | CollectorError::Fatal(e) => e,
        }
    }

    pub fn error(&self) -> &StreamsError {
        match self {
            CollectorError::Fenced(e) | CollectorError::Aborted(e) | CollectorError::Fatal(e) => e,
        }
    }
}

pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> StreamsError {
    StreamsError::kafka(context.into(), source)
}

/// Error codes that mean this producer or member is no longer the owner of its tasks.
fn is_fenced_code(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::RebalanceInProgress
        )
    )
}

/// Sorts a client error into what the thread does next (for producer and consumer calls alike).
pub(crate) fn classify(context: &str, e: KafkaError) -> CollectorError {
    // A transactional call still failing after its retries (the cluster unreachable for longer
    // than they last) leaves the transaction's fate open: abort it and start over, as for an
    // abortable error, rather than fail the thread.
    let (fatal, abortable) = match &e {
        KafkaError::Transaction(t) => (t.is_fatal(), t.txn_requires_abort() || t.is_retriable()),
        _ => (false, false),
    };
    let fenced_code = is_fenced_code(e.rdkafka_error_code());
    let err = kafka(context, e);
    sort(err, fatal || fenced_code, abortable)
}

/// [`classify`] for `send_offsets_to_transaction`, by the same rule.
pub(crate) fn classify_txn_offsets(context: &str, e: TxnOffsetsError) -> CollectorError {
    let fenced = e.fatal || is_fenced_code(Some(e.code));
    let abortable = e.requires_abort || e.retriable;
    let err = StreamsError::Transaction {
        context: context.to_string(),
        reason: e.to_string(),
    };
    sort(err, fenced, abortable)
}

fn sort(err: StreamsError, fenced: bool, abortable: bool) -> CollectorError {
    if fenced {
        CollectorError::Fenced(err)
    } else if abortable {
        CollectorError::Aborted(err)
    } else {
        CollectorError::Fatal(err)
    }
}
