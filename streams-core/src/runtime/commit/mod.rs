//! Getting what tasks produce to Kafka and committing it under each processing guarantee.
//!
//! `StreamProducer` is a thread's (or, under legacy
//! exactly_once, a task's) producer: it sends sink records and changelog writes, tracks
//! delivery failures and the changelog offsets the stores reflect, and drives transactions.
//! `CollectorError` says what a failure means for the thread. `CommitTurns` has an
//! instance's threads take turns at their periodic commits. Calls
//! `clients` and `metrics` only.

pub(crate) mod counted_producer;
pub(crate) mod error;
pub(crate) mod producer;
pub(crate) mod stream_producer;
pub(crate) mod turns;
