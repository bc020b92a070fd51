//! `KTable::transform_values`: a stateful, key-aware value transformation of a table (Kafka
//! Streams' `KTable.transformValues` with a `ValueTransformerWithKey`), optionally materialized,
//! with access to the state stores it names.

use std::marker::PhantomData;

use streams_core::{Data, Processor, ProcessorContext, Record, Result};

use crate::change::Change;
use crate::ktable::KTable;
use crate::naming::{Materialized, Named};
use crate::processors::forward_table_change;

/// Transforms a table's values, one key at a time, with access to state stores through the
/// context (Kafka Streams' `ValueTransformerWithKey`). `value` is `None` for a deleted row; the
/// result `None` deletes the row downstream.
pub trait ValueTransformerWithKey<K, V, VR>: Send {
    /// Called once before the first record, e.g. to look up stores.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
    /// The new value for `key`'s `value`.
    fn transform(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: Option<&V>,
    ) -> Result<Option<VR>>;
    /// Called when the task closes.
    fn close(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
}

struct TableTransformValues<T, V, VR> {
    transformer: T,
    store: Option<String>,
    _v: PhantomData<fn(V) -> VR>,
}

impl<K: Data, V: Data, VR: Data, T: ValueTransformerWithKey<K, V, VR>> Processor<K, Change<V>>
    for TableTransformValues<T, V, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.transformer.init(ctx)
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        let new = self
            .transformer
            .transform(ctx, &r.key, r.value.new.as_ref())?;
        // Materialized, the old value comes from the store; otherwise the transformer also
        // computes it (as Kafka Streams does when a downstream operation needs old values).
        let old = match &self.store {
            Some(_) => None,
            None => self
                .transformer
                .transform(ctx, &r.key, r.value.old.as_ref())?,
        };
        let change = r.value.derive(new, old);
        forward_table_change(ctx, self.store.as_deref(), r, change, false)
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.transformer.close(ctx)
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// A table of `supplier()`'s transformer applied to every value (Kafka Streams'
    /// `transformValues`): each task gets its own transformer, connected to the state stores
    /// `stores` names (added with `StreamsBuilder::add_state_store`). The node is `named` (else
    /// `KTABLE-TRANSFORMVALUES-<n>`); with a named `materialized` (which gives the new value
    /// serde) the result is kept in that store and the transformer sees each update once.
    /// Without it, the transformer also computes each update's old value, as Kafka Streams does
    /// when a downstream operation needs old values.
    pub fn transform_values<VR: Data, T: ValueTransformerWithKey<K, V, VR> + 'static>(
        &self,
        supplier: impl Fn() -> T + Send + Sync + 'static,
        named: Named,
        materialized: Option<Materialized<K, VR>>,
        stores: &[&str],
    ) -> KTable<K, VR> {
        let supplier = std::sync::Arc::new(supplier);
        let t = self.child_with(
            "KTABLE-TRANSFORMVALUES-",
            named,
            materialized.as_ref(),
            None,
            false,
            |store, _| {
                move || TableTransformValues {
                    transformer: supplier(),
                    store: store.clone(),
                    _v: PhantomData::<fn(V) -> VR>,
                }
            },
        );
        let mut s = self.b.borrow_mut();
        for store in stores {
            let r = s
                .topology
                .connect_processor_and_store(&t.node, store)
                .map(|_| ());
            s.record(r);
        }
        drop(s);
        t
    }
}
