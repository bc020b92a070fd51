use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::{NullableRef, SerdeRef};
use streams_core::Data;

use crate::builder::Shared;
use crate::change::Change;
use crate::grouped::KGroupedTable;
use crate::kstream::KStream;
use crate::naming::Grouped;
use crate::processors::{TableFilter, TableMapValues, TableSelect, ToStream};

/// A changelog stream seen as a table: the latest value per key. Its node emits `Change<V>`s.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) store: Option<String>,
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: String,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        store: Option<String>,
    ) -> Self {
        KTable {
            b,
            node,
            key_serde,
            value_serde,
            store,
        }
    }

    fn child<V2: Data, P, F>(
        &self,
        prefix: &str,
        supplier: F,
        value_serde: Option<SerdeRef<V2>>,
    ) -> KTable<K, V2>
    where
        P: streams_core::Processor<K, Change<V>> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let mut s = self.b.borrow_mut();
        let name = s.next_name(prefix);
        let r = s
            .topology
            .add_processor::<K, Change<V>, P, F>(&name, supplier, &[&self.node])
            .map(|_| ());
        s.record(r);
        drop(s);
        KTable::new(
            self.b.clone(),
            name,
            self.key_serde.clone(),
            value_serde,
            None,
        )
    }

    /// Rows matching `predicate`; a row that stops matching is deleted downstream.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let f = Arc::new(predicate);
        self.child(
            "KTABLE-FILTER-",
            move || TableFilter {
                f: f.clone(),
                negate: false,
            },
            self.value_serde.clone(),
        )
    }

    /// Rows not matching `predicate`.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let f = Arc::new(predicate);
        self.child(
            "KTABLE-FILTER-",
            move || TableFilter {
                f: f.clone(),
                negate: true,
            },
            self.value_serde.clone(),
        )
    }

    /// Maps every value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        self.child("KTABLE-MAPVALUES-", move || TableMapValues(f.clone()), None)
    }

    /// The stream of updates: the new value per change, `None` for a delete.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut s = self.b.borrow_mut();
        let name = s.next_name("KTABLE-TOSTREAM-");
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &name,
                || ToStream::<K, V>(PhantomData),
                &[&self.node],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        let vs = self
            .value_serde
            .clone()
            .map(|v| Arc::new(NullableRef(v)) as SerdeRef<Option<V>>);
        KStream::new(self.b.clone(), name, self.key_serde.clone(), vs, false)
    }

    /// Re-groups rows by a new key and value for aggregation (always repartitions).
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let f = Arc::new(f);
        let mut s = self.b.borrow_mut();
        let name = s.next_name("KTABLE-SELECT-");
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &name,
                move || TableSelect(f.clone()),
                &[&self.node],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        KGroupedTable {
            b: self.b.clone(),
            node: name,
            name: grouped.name,
            key_serde: grouped.key,
            value_serde: grouped.value,
        }
    }

    /// The name of the store holding this table, if it is materialized.
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The name of the node emitting this table's changes.
    pub fn node_name(&self) -> &str {
        &self.node
    }
}
