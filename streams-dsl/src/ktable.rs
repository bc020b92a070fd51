use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use streams_core::serdes::{NullableRef, SerdeRef};
use streams_core::Data;

use crate::builder::Shared;
use crate::change::Change;
use crate::change::ChangeSerde;
use crate::grouped::KGroupedTable;
use crate::kstream::KStream;
use crate::naming::{Grouped, Materialized, Named};
use crate::old_values::OldValues;
use crate::processors::{TableFilter, TableMapValues, TableSelect, ToStream};
use crate::suppress::{
    BufferedChange, BufferedChangeSerde, DueTime, KTableSuppress, SuppressKind, Suppressed,
};
use streams_core::StoreBuilder;

/// A changelog stream seen as a table: the latest value per key. Its node emits `Change<V>`s.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) store: Option<String>,
    /// For windowed tables: when a key's window ends, and how long after that it still changes
    /// (what `suppress(until_window_closes)` waits for).
    pub(crate) windowing: Option<(DueTime<K>, i64)>,
    /// The history retention of its store, when versioned (a source table materialized with
    /// `Materialized::as_versioned`).
    pub(crate) versioned: Option<i64>,
    /// Its changes come from a versioned table, directly or through operations that keep no
    /// store of their own (Kafka Streams' "versioned semantics"): some are out-of-order
    /// updates ([`Change::is_latest`] false), which joins and `group_by` skip.
    pub(crate) versioned_upstream: bool,
    /// Whether its changes carry old values, and how to turn them on.
    pub(crate) old_values: OldValues,
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
            windowing: None,
            versioned: None,
            versioned_upstream: false,
            old_values: OldValues::Kept,
        }
    }

    /// Adds a table operation as node `named` (else `<prefix><n>`). With a named
    /// `materialized` its result is kept in that store, which `supplier` gets; as Kafka Streams,
    /// an unnamed one uses up a store index and keeps nothing. `supplier` also gets the
    /// operation's old-values switch, on at once when `ask_old_values` (a filter) and this table
    /// has them without a new store.
    pub(crate) fn child_with<V2: Data, P, F>(
        &self,
        prefix: &str,
        named: Named,
        materialized: Option<&Materialized<K, V2>>,
        value_serde: Option<SerdeRef<V2>>,
        ask_old_values: bool,
        supplier: impl FnOnce(Option<String>, Arc<AtomicBool>) -> F,
    ) -> KTable<K, V2>
    where
        P: streams_core::Processor<K, Change<V>> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let mut s = self.b.borrow_mut();
        let value_serde = materialized.and_then(|m| m.value.clone()).or(value_serde);
        let mut store = None;
        if let Some(m) = materialized {
            match &m.name {
                None => {
                    s.next_name(&format!("{prefix}STATE-STORE-"));
                }
                Some(n) => store = Some(n.clone()),
            }
        }
        let name = s.name_or(named.0, prefix);
        let (old_values, send_old) = self
            .old_values
            .child(&mut s, store.is_some(), ask_old_values);
        let mut r = s
            .topology
            .add_processor::<K, Change<V>, P, F>(
                &name,
                supplier(store.clone(), send_old),
                &[&self.node],
            )
            .map(|_| ());
        if let (Some(m), Some(st)) = (materialized, &store) {
            let what = format!("table `{name}` materialized as `{st}`");
            let ks = s.key_serde(m.key.clone().or(self.key_serde.clone()), &what);
            let vs = s.value_serde(value_serde.clone(), &what);
            if let (Some(ks), Some(vs)) = (ks, vs) {
                let sb = m
                    .configure(StoreBuilder::timestamped_key_value(st.clone(), ks, vs))
                    .with_caching(false);
                r = r.and_then(|_| s.topology.add_state_store(sb, &[&name]).map(|_| ()));
            }
        }
        s.record(r);
        drop(s);
        let mut t = KTable::new(
            self.b.clone(),
            name,
            self.key_serde.clone(),
            value_serde,
            store,
        );
        t.windowing = self.windowing.clone();
        t.old_values = old_values;
        // A store of its own (never versioned here) ends the versioned semantics.
        t.versioned_upstream = self.versioned_upstream && materialized.is_none();
        t
    }

    /// Rows matching `predicate`; a row that stops matching is deleted downstream.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter_materialized(predicate, Named::default(), None)
    }

    /// [`KTable::filter`] as node `named` and, with a named `materialized`, kept in that store
    /// (queryable, and joined without another store): Kafka Streams' `filter(predicate,
    /// Named, Materialized)`.
    pub fn filter_materialized(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        named: Named,
        materialized: Option<Materialized<K, V>>,
    ) -> KTable<K, V> {
        self.filter_table(Arc::new(predicate), false, named, materialized)
    }

    /// Rows not matching `predicate`.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter_not_materialized(predicate, Named::default(), None)
    }

    /// [`KTable::filter_not`] named and materialized (see [`KTable::filter_materialized`]).
    pub fn filter_not_materialized(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        named: Named,
        materialized: Option<Materialized<K, V>>,
    ) -> KTable<K, V> {
        self.filter_table(Arc::new(predicate), true, named, materialized)
    }

    fn filter_table<F: Fn(&K, &V) -> bool + Send + Sync + 'static>(
        &self,
        f: Arc<F>,
        negate: bool,
        named: Named,
        materialized: Option<Materialized<K, V>>,
    ) -> KTable<K, V> {
        let versioned = self.versioned_upstream;
        self.child_with(
            "KTABLE-FILTER-",
            named,
            materialized.as_ref(),
            self.value_serde.clone(),
            true,
            |store, send_old| {
                move || TableFilter {
                    f: f.clone(),
                    negate,
                    store: store.clone(),
                    versioned,
                    send_old: send_old.clone(),
                }
            },
        )
    }

    /// Maps every value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Like [`KTable::map_values`], with the key (Kafka Streams' `ValueMapperWithKey`).
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.map_values_materialized(f, Named::default(), None)
    }

    /// [`KTable::map_values_with_key`] as node `named` and, with a named `materialized` (which
    /// gives the new value serde), kept in that store: Kafka Streams' `mapValues(mapper, Named,
    /// Materialized)`.
    pub fn map_values_materialized<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
        named: Named,
        materialized: Option<Materialized<K, V2>>,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        self.child_with(
            "KTABLE-MAPVALUES-",
            named,
            materialized.as_ref(),
            None,
            false,
            |store, _| {
                move || TableMapValues {
                    f: f.clone(),
                    store: store.clone(),
                }
            },
        )
    }

    /// The stream of updates: the new value per change, `None` for a delete.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        self.to_stream_named(Named::default())
    }

    /// [`KTable::to_stream`] as node `named`.
    pub fn to_stream_named(&self, named: Named) -> KStream<K, Option<V>> {
        let mut s = self.b.borrow_mut();
        let name = s.name_or(named.0, "KTABLE-TOSTREAM-");
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
        // The aggregation subtracts the value each update replaces.
        self.old_values.enable(&mut s, true);
        let name = s.name_or(grouped.name.clone(), "KTABLE-SELECT-");
        let key_serde = s.find_key_serde(grouped.key.clone());
        let versioned = self.versioned_upstream;
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &name,
                move || TableSelect {
                    select: f.clone(),
                    key_serde: key_serde.clone(),
                    versioned,
                },
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

    /// Holds updates back (see [`Suppressed`]): with `until_window_closes` a windowed table emits one
    /// final result per window once stream time passes its end plus grace.
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<K, V> {
        let mut s = self.b.borrow_mut();
        // The buffer keeps the value its first update replaced.
        self.old_values.enable(&mut s, true);
        let name = s.name_or(suppressed.name.clone(), "KTABLE-SUPPRESS-");
        if self.versioned_upstream {
            // As Kafka Streams: a buffer of latest values cannot hold a history.
            s.fail(format!(
                "suppress `{name}`: suppress is only supported for non-versioned tables (a table \
                 filtered or mapped from a versioned one without a store of its own is versioned too)"
            ));
        }
        let store = match &suppressed.name {
            Some(n) => format!("{n}-store"),
            None => s.next_name("KTABLE-SUPPRESS-STATE-STORE-"),
        };
        let (due, wait, drop_tombstones): (DueTime<K>, i64, bool) = match suppressed.kind {
            SuppressKind::UntilWindowCloses => {
                let Some((end, grace)) = self.windowing.clone() else {
                    s.fail(format!(
                        "suppress `{name}`: until_window_closes needs a windowed table (windowed_by(...) then an aggregation)"
                    ));
                    return KTable::new(self.b.clone(), name, None, None, None);
                };
                (end, grace, true)
            }
            SuppressKind::UntilTimeLimit(ms) => (Arc::new(|_: &K, ts: i64| ts), ms, false),
        };
        let ks = s.key_serde(self.key_serde.clone(), &format!("suppress `{name}`"));
        let vs = s.value_serde(self.value_serde.clone(), &format!("suppress `{name}`"));
        let (Some(ks), Some(vs)) = (ks, vs) else {
            return KTable::new(self.b.clone(), name, None, None, None);
        };
        let entry_serde: SerdeRef<BufferedChange<V>> =
            Arc::new(BufferedChangeSerde(ChangeSerde(vs.clone())));
        let sb = StoreBuilder::key_value(store.clone(), ks.clone(), entry_serde).in_memory();
        let buffer = suppressed.buffer;
        let (st, k2, v2) = (store.clone(), ks.clone(), vs.clone());
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &name,
                move || {
                    KTableSuppress::new(
                        st.clone(),
                        k2.clone(),
                        v2.clone(),
                        due.clone(),
                        wait,
                        drop_tombstones,
                        buffer,
                    )
                },
                &[&self.node],
            )
            .and_then(|t| t.add_state_store(sb, &[&name]))
            .map(|_| ());
        s.record(r);
        drop(s);
        let mut t = KTable::new(self.b.clone(), name, Some(ks), Some(vs), None);
        t.windowing = self.windowing.clone();
        t
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
