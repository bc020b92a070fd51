//! [`CountedProducer`]: a producer that keeps the instance's count of open transactional
//! producers (what the zombie-fencing tests audit).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::commit::producer::RecordProducer;
use crate::runtime::metrics::RuntimeCounters;

/// A producer counted in [`RuntimeCounters::transactional_producers`] while it lives.
pub(crate) struct CountedProducer {
    inner: Box<dyn RecordProducer>,
    counters: Arc<RuntimeCounters>,
}

impl CountedProducer {
    /// Counts `inner` if it is transactional.
    pub fn new(inner: Box<dyn RecordProducer>, counters: Arc<RuntimeCounters>) -> Self {
        if inner.is_transactional() {
            counters
                .transactional_producers
                .fetch_add(1, Ordering::SeqCst);
            counters
                .transactional_producers_created
                .fetch_add(1, Ordering::SeqCst);
        }
        CountedProducer { inner, counters }
    }
}

impl Deref for CountedProducer {
    type Target = dyn RecordProducer;
    fn deref(&self) -> &Self::Target {
        self.inner.as_ref()
    }
}

impl DerefMut for CountedProducer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.inner.as_mut()
    }
}

impl Drop for CountedProducer {
    fn drop(&mut self) {
        if self.inner.is_transactional() {
            self.counters
                .transactional_producers
                .fetch_sub(1, Ordering::SeqCst);
        }
    }
}
