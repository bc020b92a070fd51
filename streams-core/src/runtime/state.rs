//! Lifecycle states of a [`KafkaStreams`](crate::KafkaStreams) instance and the listeners that observe them.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The state of a streams instance, as in Kafka Streams.
///
/// ```text
/// Created -> Rebalancing <-> Running -> PendingShutdown -> NotRunning
///                  \____________\______-> PendingError -> Error
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Threads are joining the group, being assigned tasks or restoring state.
    Rebalancing,
    /// Every thread processes its tasks.
    Running,
    /// `close` was called; threads are committing and closing their tasks.
    PendingShutdown,
    /// Closed cleanly.
    NotRunning,
    /// A thread failed; the others are shutting down.
    PendingError,
    /// Stopped after a failure; see [`KafkaStreams::last_error`](crate::KafkaStreams::last_error).
    Error,
}

impl State {
    /// Whether the instance is started and not shutting down.
    pub fn is_running_or_rebalancing(self) -> bool {
        matches!(self, State::Running | State::Rebalancing)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            State::Created => "CREATED",
            State::Rebalancing => "REBALANCING",
            State::Running => "RUNNING",
            State::PendingShutdown => "PENDING_SHUTDOWN",
            State::NotRunning => "NOT_RUNNING",
            State::PendingError => "PENDING_ERROR",
            State::Error => "ERROR",
        };
        f.write_str(s)
    }
}

/// Called with `(new, old)` on every state change.
pub type StateListener = Arc<dyn Fn(State, State) + Send + Sync>;

/// Observes state restoration from changelogs, per store and changelog partition.
pub trait StateRestoreListener: Send + Sync {
    /// Restoration of `store` from `topic`-`partition` starts at `start` and runs to `end` (exclusive).
    fn on_restore_start(&self, topic: &str, partition: i32, store: &str, start: i64, end: i64);
    /// A batch of `restored` records up to `batch_end` (inclusive) was applied.
    fn on_batch_restored(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        batch_end: i64,
        restored: u64,
    );
    /// Restoration finished after `total` records.
    fn on_restore_end(&self, topic: &str, partition: i32, store: &str, total: u64);
}

/// Why a standby copy stopped following its changelog (Kafka Streams'
/// `StandbyUpdateListener.SuspendReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbySuspendReason {
    /// The task became active on this instance.
    Promoted,
    /// The copy moved to another instance (or the instance closes).
    Migrated,
}

/// Observes standby copies following their changelogs (Kafka Streams'
/// `StandbyUpdateListener`, KIP-988), per store and changelog partition.
pub trait StandbyUpdateListener: Send + Sync {
    /// The copy of `store` starts following `topic`-`partition` at `start`.
    fn on_update_start(&self, topic: &str, partition: i32, store: &str, start: i64);
    /// A batch of `batch_size` records up to `batch_end` (inclusive) was applied to the copy of
    /// `store` of `task`; the changelog ends at `current_end` (-1 when not known yet).
    #[allow(clippy::too_many_arguments)]
    fn on_batch_loaded(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        task: crate::TaskId,
        batch_end: i64,
        batch_size: u64,
        current_end: i64,
    );
    /// The copy stopped at `store_offset` (the next offset it would apply).
    fn on_update_suspended(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        store_offset: i64,
        current_end: i64,
        reason: StandbySuspendReason,
    );
}

/// The instance state plus waiting on it; shared by the handle and its threads.
pub(crate) struct StateMachine {
    inner: Mutex<State>,
    changed: Condvar,
    listener: Mutex<Option<StateListener>>,
}

impl StateMachine {
    pub fn new() -> Self {
        StateMachine {
            inner: Mutex::new(State::Created),
            changed: Condvar::new(),
            listener: Mutex::new(None),
        }
    }

    pub fn get(&self) -> State {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_listener(&self, l: StateListener) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }

    /// Moves to `new` if the transition is allowed; returns whether it happened.
    pub fn transition(&self, new: State) -> bool {
        let old = {
            let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let old = *s;
            let allowed = match (old, new) {
                (a, b) if a == b => false,
                (State::Created, State::Rebalancing | State::PendingShutdown) => true,
                (State::Rebalancing, State::Running) | (State::Running, State::Rebalancing) => true,
                (
                    State::Created | State::Rebalancing | State::Running,
                    State::PendingShutdown | State::PendingError,
                ) => true,
                (State::PendingShutdown, State::NotRunning) => true,
                (State::PendingError, State::Error) => true,
                _ => false,
            };
            if !allowed {
                return false;
            }
            *s = new;
            old
        };
        self.changed.notify_all();
        tracing::info!(from = %old, to = %new, "streams state transition");
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            l(new, old);
        }
        true
    }

    /// Waits until `pred` holds for the state, or `timeout` passes; returns the last state seen.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(State) -> bool) -> State {
        let deadline = Instant::now() + timeout;
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while !pred(*s) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *s
    }
}
