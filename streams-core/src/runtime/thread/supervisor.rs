//! Aggregates the states of an instance's stream threads into the instance [`State`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::state::{State, StateMachine};
use crate::runtime::thread::close_options::CloseOptions;
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

/// What to do when a stream thread fails (Kafka Streams' `StreamThreadExceptionResponse`), as
/// the handler set with `KafkaStreams::set_uncaught_exception_handler` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadExceptionResponse {
    /// Start a new thread in place of the failed one; the instance keeps running.
    ReplaceThread,
    /// Stop this instance (the default).
    ShutdownClient,
    /// Stop every instance of the application: the failed thread's group member asks the
    /// group's leader, whose assignment tells every member to stop (as Kafka Streams' assignor
    /// does). Under `group.membership=librdkafka` only this instance stops, with an error
    /// saying so.
    ShutdownApplication,
}

/// Decides what a stream thread failure leads to.
pub type UncaughtExceptionHandler =
    Arc<dyn Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync>;

/// Starts a replacement stream thread.
pub(crate) type Replacer = Box<dyn Fn() -> crate::Result<()> + Send + Sync>;

pub(crate) struct Supervisor {
    threads: Mutex<Vec<ThreadState>>,
    pub machine: StateMachine,
    error: Mutex<Option<Arc<StreamsError>>>,
    pub shutdown: Arc<AtomicBool>,
    /// `KafkaStreams::pause`: threads keep their membership but process nothing.
    pub paused: AtomicBool,
    handler: Mutex<Option<UncaughtExceptionHandler>>,
    replacer: Mutex<Option<Replacer>>,
    /// This instance asks every instance to stop (its threads' subscriptions say so).
    pub shutdown_requested: Arc<AtomicBool>,
    /// How `KafkaStreams::close_with` asked the threads to stop.
    close_options: Mutex<CloseOptions>,
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor {
            threads: Mutex::new(Vec::new()),
            machine: StateMachine::new(),
            error: Mutex::new(None),
            shutdown: Arc::new(AtomicBool::new(false)),
            paused: AtomicBool::new(false),
            handler: Mutex::new(None),
            replacer: Mutex::new(None),
            shutdown_requested: Arc::default(),
            close_options: Mutex::new(CloseOptions::default()),
        }
    }

    pub fn set_close_options(&self, options: CloseOptions) {
        *self.close_options.lock().unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// Whether a closing thread's member leaves the group.
    pub fn leaves_group_on_close(&self, static_member: bool) -> bool {
        self.close_options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .leaves(static_member)
    }

    pub fn set_handler(&self, handler: UncaughtExceptionHandler) {
        *self.handler.lock().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    pub fn set_replacer(&self, replacer: Replacer) {
        *self.replacer.lock().unwrap_or_else(|p| p.into_inner()) = Some(replacer);
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

    /// A thread died with `error`. The uncaught-exception handler decides: a stream thread
    /// (`index` >= 1) may be replaced; otherwise the whole instance shuts down (Kafka Streams'
    /// default, `SHUTDOWN_CLIENT`). The global thread (`index` 0) is never replaced.
    pub fn thread_failed(&self, index: usize, error: StreamsError) {
        let response = self.decide(&error);
        self.thread_failed_as(index, error, response, false);
    }

    /// What the uncaught-exception handler answers to `error` (`SHUTDOWN_CLIENT` without one).
    pub fn decide(&self, error: &StreamsError) -> StreamThreadExceptionResponse {
        let handler = self
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        handler.map_or(StreamThreadExceptionResponse::ShutdownClient, |h| h(error))
    }

    /// [`Self::thread_failed`] with the handler's `response` already known; `group_told` says
    /// whether a `SHUTDOWN_APPLICATION` reached every instance through the group.
    pub fn thread_failed_as(
        &self,
        index: usize,
        error: StreamsError,
        response: StreamThreadExceptionResponse,
        group_told: bool,
    ) {
        let mut error = error;
        if response == StreamThreadExceptionResponse::ReplaceThread
            && index > 0
            && !self.shutdown.load(Ordering::SeqCst)
        {
            tracing::warn!(thread = index, error = %error, "replacing a failed stream thread");
            self.set_thread_state(index, ThreadState::Dead);
            let replaced = match &*self.replacer.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(replace) => replace(),
                None => Err(StreamsError::IllegalState("no thread pool".into())),
            };
            match replaced {
                Ok(()) => return,
                Err(e) => {
                    error = StreamsError::IllegalState(format!(
                    "a failed stream thread could not be replaced ({e}); it failed with: {error}"
                ))
                }
            }
        } else if response == StreamThreadExceptionResponse::ShutdownApplication && group_told {
            tracing::error!(
                "SHUTDOWN_APPLICATION: every instance of the application was told to stop"
            );
        } else if response == StreamThreadExceptionResponse::ShutdownApplication {
            tracing::error!(
                "SHUTDOWN_APPLICATION asked, but the other instances could not be told (librdkafka \
                 holds the group membership, or no rebalance completed in time); shutting down this one"
            );
        }
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

    /// Another instance's `SHUTDOWN_APPLICATION` reached this one through the group: every
    /// thread stops and the instance ends in `ERROR`, as in Kafka Streams.
    pub fn shutdown_by_group(&self) {
        // The instance that asked keeps its failed thread's error.
        if !self.shutdown_requested.load(Ordering::SeqCst) {
            let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
            e.get_or_insert_with(|| {
                Arc::new(StreamsError::IllegalState(
                    "the application was shut down: an instance's uncaught-exception handler \
                     answered SHUTDOWN_APPLICATION"
                        .into(),
                ))
            });
        }
        self.shutdown.store(true, Ordering::SeqCst);
        self.machine.transition(State::PendingError);
    }

    pub fn error(&self) -> Option<Arc<StreamsError>> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
