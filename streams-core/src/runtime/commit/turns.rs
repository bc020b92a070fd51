//! `CommitTurns`: the stream threads of an instance take turns at their periodic commits.
//!
//! A commit is mostly waiting: for the acknowledgements of what was sent, for the offsets'
//! round trips and, under exactly-once, for EndTxn. Threads that commit at the same moment all
//! wait at once and leave the cores idle; taken in turns, one thread processes while another
//! waits. Left alone they do commit together: they start together (an instance resumes all of
//! them at once, a rebalance assigns them at once) and, measured on the benchmark's word count
//! with two threads, drifted back together within a second when started half an interval
//! apart. Taking turns plus spreading the first commits over the interval ([`phase`]) kept them
//! 40-60 ms apart, and word count ran 10-15% faster under both at_least_once and
//! exactly_once_v2 (twelve runs of each, alternating sets).
//!
//! Only the periodic commit takes a turn, and only for as long as another thread's commit
//! lasts: it stays due and the thread goes on processing meanwhile. A commit that must happen
//! now (a revocation, a close) does not wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether one of the instance's threads is in its periodic commit.
#[derive(Debug, Default)]
pub(crate) struct CommitTurns {
    taken: AtomicBool,
}

/// A thread's turn to commit, given back when dropped.
#[derive(Debug)]
pub(crate) struct CommitTurn<'a> {
    taken: &'a AtomicBool,
}

impl CommitTurns {
    /// The turn, unless another thread holds it.
    pub fn try_take(&self) -> Option<CommitTurn<'_>> {
        self.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| CommitTurn { taken: &self.taken })
    }
}

impl Drop for CommitTurn<'_> {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

/// How far into the commit interval thread `index` (1-based, as in `StreamThread-1`) of
/// `threads` starts its first one after an assignment, so the threads' commits are spread over
/// the interval instead of falling due together.
pub(crate) fn phase(index: usize, threads: usize, interval: Duration) -> Duration {
    let threads = threads.max(1);
    let slot = index.saturating_sub(1) % threads;
    interval * slot as u32 / threads as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_holds_the_turn_until_it_drops_it() {
        let turns = CommitTurns::default();
        let first = turns.try_take().expect("free at first");
        assert!(turns.try_take().is_none(), "held by the first");
        drop(first);
        assert!(turns.try_take().is_some(), "given back");
    }

    #[test]
    fn the_threads_first_commits_are_spread_over_the_interval() {
        let interval = Duration::from_millis(100);
        let phases: Vec<_> = (1..=4).map(|i| phase(i, 4, interval)).collect();
        assert_eq!(
            phases,
            [0, 25, 50, 75].map(Duration::from_millis).to_vec(),
            "four threads a quarter apart"
        );
        assert_eq!(phase(1, 1, interval), Duration::ZERO);
        // A thread added beyond num.stream.threads takes the first slots again.
        assert_eq!(phase(5, 4, interval), Duration::ZERO);
        assert_eq!(phase(2, 0, interval), Duration::ZERO);
    }
}
