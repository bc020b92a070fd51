//! Which tables send old values and keep a store, decided as the DSL grows (Kafka Streams'
//! `enableSendingOldValues` and lazy source materialization).
//!
//! A source table without a named store (`table`, `to_table`) keeps none until an operation
//! downstream needs one: a join looks values up there, `group_by` and `suppress` need the value
//! each update replaces. Until then it forwards each update without the old value. A filter
//! asks its parent for old values without forcing a store: with them it can drop an update
//! filtered out on both sides; without them it forwards every update, so a row it filters out
//! reaches `to_stream` as a delete. Both are what Kafka Streams does, and show in `describe()`
//! and in the records a filter emits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streams_core::StoreBuilder;

use crate::builder::BuilderState;

/// How a table's node gets old values.
#[derive(Clone)]
pub(crate) enum OldValues {
    /// It always has them: a store of its own (aggregations, joins, materialized operations) or
    /// a buffer (suppress).
    Kept,
    /// A source table whose store is kept only once needed (until then its updates carry no
    /// old value: there is nowhere to read it from).
    Source(Arc<LazySource>),
    /// An operation with a store of its own whose switch still matters (a materialized filter
    /// drops updates filtered out on both sides only once asked for old values).
    Own(Arc<AtomicBool>),
    /// An operation without a store of its own (filter, mapping, transform): it has old values
    /// when its parent does. `send` is its own switch.
    Derived {
        send: Arc<AtomicBool>,
        parent: Box<OldValues>,
    },
}

impl OldValues {
    /// Kafka Streams' `enableSendingOldValues(force)`: turns old values on along the chain and
    /// says whether they are on. A source without a store gets one only when `force`d.
    pub(crate) fn enable(&self, s: &mut BuilderState, force: bool) -> bool {
        match self {
            OldValues::Kept => true,
            OldValues::Source(source) => {
                if !force && !source.is_materialized() {
                    return false;
                }
                source.materialize(s);
                true
            }
            OldValues::Own(send) => {
                send.store(true, Ordering::Relaxed);
                true
            }
            OldValues::Derived { send, parent } => {
                if !parent.enable(s, force) {
                    return false;
                }
                send.store(true, Ordering::Relaxed);
                true
            }
        }
    }

    /// The old values of a child of this table and its switch: `own_store` if it keeps one;
    /// `ask_now` turns the switch on at once where this table has old values without a new
    /// store (as a Kafka Streams filter asks when it is created).
    pub(crate) fn child(
        &self,
        s: &mut BuilderState,
        own_store: bool,
        ask_now: bool,
    ) -> (OldValues, Arc<AtomicBool>) {
        let send = Arc::new(AtomicBool::new(ask_now && self.enable(s, false)));
        let values = if own_store {
            OldValues::Own(send.clone())
        } else {
            OldValues::Derived {
                send: send.clone(),
                parent: Box::new(self.clone()),
            }
        };
        (values, send)
    }
}

/// A source table's store, added to the topology only once something needs it. The source's
/// processor reads the switches when its task starts, after the topology is built.
pub(crate) struct LazySource {
    /// The source table's node.
    pub node: String,
    /// The store's name (its index is used up whether or not it is kept, as in Kafka Streams).
    pub store: String,
    /// The store, until it is added.
    builder: Mutex<Option<StoreBuilder>>,
    materialized: AtomicBool,
}

impl LazySource {
    /// The source node `node`'s store `builder`, added by [`LazySource::materialize`] (at once
    /// for a named, queryable store; else when something needs it).
    pub(crate) fn new(node: String, builder: StoreBuilder) -> Arc<LazySource> {
        Arc::new(LazySource {
            node,
            store: builder.name().to_string(),
            builder: Mutex::new(Some(builder)),
            materialized: AtomicBool::new(false),
        })
    }

    /// Keeps the store: adds it to the topology on the source's node (once).
    pub(crate) fn materialize(&self, s: &mut BuilderState) {
        let pending = self
            .builder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(builder) = pending {
            let r = s
                .topology
                .add_state_store(builder, &[&self.node])
                .map(|_| ());
            s.record(r);
            self.materialized.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the store is kept.
    pub(crate) fn is_materialized(&self) -> bool {
        self.materialized.load(Ordering::Relaxed)
    }
}
