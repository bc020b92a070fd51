//! [`RuntimeCounters`]: plain atomic counters of an instance, for tests and the CLI's summary.

use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Counters shared by all threads of an instance.
#[derive(Debug, Default)]
pub struct RuntimeCounters {
    /// Transactional producers currently open.
    pub transactional_producers: AtomicUsize,
    /// Transactional producers created since start.
    pub transactional_producers_created: AtomicUsize,
    /// Records processed.
    pub processed: AtomicU64,
    /// Successful commits.
    pub commits: AtomicU64,
    /// Assignments received (one per rebalance per thread).
    pub assignments: AtomicU64,
    /// Changelog records restored.
    pub restored: AtomicU64,
    /// Records skipped by a log_and_continue handler or for an invalid timestamp.
    pub dropped_records: AtomicU64,
}
