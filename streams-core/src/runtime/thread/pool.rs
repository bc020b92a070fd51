//! The stream threads of an instance: started with it, added and removed while it runs, and
//! replaced after a failure when the uncaught-exception handler says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use crate::runtime::env::ThreadEnv;
use crate::runtime::state::StateRestoreListener;
use crate::runtime::tasks::task_manager::TaskManager;
use crate::runtime::thread::stream_thread::StreamThread;
use crate::runtime::thread::supervisor::Supervisor;
use crate::{Result, StreamsError};

/// One stream thread of the pool.
struct PoolThread {
    name: String,
    handle: Option<JoinHandle<()>>,
    /// Asks this thread alone to stop (removal).
    stop: Arc<AtomicBool>,
    tasks: Arc<Mutex<TaskManager>>,
}

/// The instance's stream threads.
pub(crate) struct ThreadPool {
    env: Arc<ThreadEnv>,
    supervisor: Arc<Supervisor>,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
    threads: Mutex<Vec<PoolThread>>,
}

impl ThreadPool {
    pub fn new(
        env: Arc<ThreadEnv>,
        supervisor: Arc<Supervisor>,
        restore_listener: Option<Arc<dyn StateRestoreListener>>,
    ) -> Arc<Self> {
        let pool = Arc::new(ThreadPool {
            env,
            supervisor: supervisor.clone(),
            restore_listener,
            threads: Mutex::new(Vec::new()),
        });
        // A failed thread the handler wants replaced gets a successor from here.
        let weak: Weak<ThreadPool> = Arc::downgrade(&pool);
        supervisor.set_replacer(Box::new(move || match weak.upgrade() {
            Some(pool) => pool.spawn().map(|_| ()),
            None => Err(StreamsError::IllegalState(
                "the instance is gone: no thread to replace".into(),
            )),
        }));
        pool
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PoolThread>> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts one more stream thread; returns its name.
    pub fn spawn(&self) -> Result<String> {
        let index = self.supervisor.add_thread();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = StreamThread::new(
            self.env.clone(),
            index,
            self.supervisor.clone(),
            stop.clone(),
            self.restore_listener.clone(),
        )?;
        let tasks = thread.task_manager();
        let name = format!("{}-StreamThread-{index}", self.env.config.application_id);
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || thread.run())
            .map_err(|e| StreamsError::Io {
                path: name.clone().into(),
                source: e,
            })?;
        self.lock().push(PoolThread {
            name: name.clone(),
            handle: Some(handle),
            stop,
            tasks,
        });
        Ok(name)
    }

    /// Asks the newest live thread to stop (it commits, closes its tasks and leaves the group);
    /// returns its name, or `None` when no thread is alive.
    pub fn remove(&self) -> Option<String> {
        let threads = self.lock();
        let t = threads.iter().rev().find(|t| {
            !t.stop.load(Ordering::SeqCst) && t.handle.as_ref().is_some_and(|h| !h.is_finished())
        })?;
        t.stop.store(true, Ordering::SeqCst);
        Some(t.name.clone())
    }

    /// Whether the thread `name` has finished.
    pub fn is_finished(&self, name: &str) -> bool {
        self.lock()
            .iter()
            .find(|t| t.name == name)
            .is_none_or(|t| t.handle.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Names of the threads alive and not asked to stop.
    pub fn live(&self) -> Vec<String> {
        self.live_task_managers()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Each live thread's name and tasks.
    pub fn live_task_managers(&self) -> Vec<(String, Arc<Mutex<TaskManager>>)> {
        self.lock()
            .iter()
            .filter(|t| {
                !t.stop.load(Ordering::SeqCst)
                    && t.handle.as_ref().is_some_and(|h| !h.is_finished())
            })
            .map(|t| (t.name.clone(), t.tasks.clone()))
            .collect()
    }

    /// The tasks of every thread, for interactive queries.
    pub fn task_managers(&self) -> Vec<Arc<Mutex<TaskManager>>> {
        self.lock().iter().map(|t| t.tasks.clone()).collect()
    }

    /// Whether every thread has finished.
    pub fn all_finished(&self) -> bool {
        self.lock()
            .iter()
            .all(|t| t.handle.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Joins the finished threads (all of them once the instance closes).
    pub fn join_finished(&self) {
        let handles: Vec<JoinHandle<()>> = self
            .lock()
            .iter_mut()
            .filter(|t| t.handle.as_ref().is_some_and(JoinHandle::is_finished))
            .filter_map(|t| t.handle.take())
            .collect();
        for h in handles {
            if h.join().is_err() {
                tracing::error!("a stream thread panicked");
            }
        }
    }
}
