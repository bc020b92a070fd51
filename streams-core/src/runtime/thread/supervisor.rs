//! Aggregates the states of an instance's stream threads into the instance [`State`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::state::{State, StateMachine};
use crate::StreamsError;

/// Lifecycle of one stream thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadState {
    Created,
    Rebalancing,
    Running,
    Dead,
    Failed,
}

pub(crate) struct Supervisor {
    threads: Mutex<Vec<ThreadState>>,
    pub machine: StateMachine,
    error: Mutex<Option<Arc<StreamsError>>>,
    pub shutdown: Arc<AtomicBool>,
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor {
            threads: Mutex::new(Vec::new()),
            machine: StateMachine::new(),
            error: Mutex::new(None),
            shutdown: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn add_thread(&self) -> usize {
        let mut t = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        t.push(ThreadState::Created);
        t.len()
    }

    /// `index` is 1-based.
    pub fn set_thread_state(&self, index: usize, state: ThreadState) {
        let all = {
            let mut t = self.threads.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = t.get_mut(index.wrapping_sub(1)) {
                if *s == state || *s == ThreadState::Failed {
                    return;
                }
                *s = state;
            }
            t.clone()
        };
        self.recompute(&all);
    }

    fn recompute(&self, all: &[ThreadState]) {
        let finished = all
            .iter()
            .all(|s| matches!(s, ThreadState::Dead | ThreadState::Failed));
        match self.machine.get() {
            State::Running | State::Rebalancing => {
                let live: Vec<_> = all
                    .iter()
                    .filter(|s| !matches!(s, ThreadState::Dead | ThreadState::Failed))
                    .collect();
                if !live.is_empty() && live.iter().all(|s| **s == ThreadState::Running) {
                    self.machine.transition(State::Running);
                } else if live.iter().any(|s| **s != ThreadState::Running) {
                    self.machine.transition(State::Rebalancing);
                }
            }
            State::PendingError if finished => {
                self.machine.transition(State::Error);
            }
            _ => {}
        }
    }

    /// A thread died with `error`: the whole instance shuts down (Kafka Streams'
    /// `SHUTDOWN_CLIENT` response to an uncaught exception).
    pub fn thread_failed(&self, index: usize, error: StreamsError) {
        {
            let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
            e.get_or_insert_with(|| Arc::new(error));
        }
        self.shutdown.store(true, Ordering::SeqCst);
        self.machine.transition(State::PendingError);
        let all = {
            let mut t = self.threads.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = t.get_mut(index.wrapping_sub(1)) {
                *s = ThreadState::Failed;
            }
            t.clone()
        };
        self.recompute(&all);
    }

    pub fn error(&self) -> Option<Arc<StreamsError>> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
