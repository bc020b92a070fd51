use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use streams_core::serdes::{NullableRef, SerdeRef};
use streams_core::{fixed_key_processor, Data, FixedKeyProcessor, Processor, StoreBuilder};

use crate::builder::Shared;
use crate::grouped::KGroupedStream;
use crate::grouped::{repartition, repartition_with};
use crate::ktable::KTable;
use crate::naming::{
    BranchChain, Branched, Grouped, Materialized, Named, Printed, Produced, Repartitioned,
};
use crate::old_values::{LazySource, OldValues};
use crate::processors::{
    Branch, Filter, FlatMap, FlatMapValues, KTableSource, Map, MapValues, PassThrough, Peek,
    Predicate, Print, SelectKey,
};

/// An unbounded stream of key/value records.
pub struct KStream<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    /// Set after a key-changing operation: a grouping must repartition first.
    pub(crate) repartition_required: bool,
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: String,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition_required: bool,
    ) -> Self {
        KStream {
            b,
            node,
            key_serde,
            value_serde,
            repartition_required,
        }
    }

    /// Adds a processor child of this stream's node and returns the stream it emits.
    fn child<K2: Data, V2: Data, P, F>(
        &self,
        named: Named,
        prefix: &str,
        supplier: F,
        key_serde: Option<SerdeRef<K2>>,
        value_serde: Option<SerdeRef<V2>>,
        repartition: bool,
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let mut s = self.b.borrow_mut();
        let name = s.name_or(named.0, prefix);
        let r = s
            .topology
            .add_processor::<K, V, P, F>(&name, supplier, &[&self.node])
            .map(|_| ());
        s.record(r);
        // What `merge.repartition.topics` needs to know, by operation (Kafka Streams' key- and
        // value-changing graph nodes).
        match prefix {
            "KSTREAM-MAP-" | "KSTREAM-FLATMAP-" | "KSTREAM-KEY-SELECT-" => {
                s.topology.mark_key_changing(&name);
            }
            "KSTREAM-MAPVALUES-" | "KSTREAM-FLATMAPVALUES-" | "KSTREAM-PROCESSVALUES-" => {
                s.topology.mark_value_changing(&name);
            }
            _ => {}
        }
        drop(s);
        KStream::new(self.b.clone(), name, key_serde, value_serde, repartition)
    }

    /// Keeps records matching `predicate`.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let f = Arc::new(predicate);
        self.child(
            Named::default(),
            "KSTREAM-FILTER-",
            move || Filter {
                f: f.clone(),
                negate: false,
            },
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Drops records matching `predicate`.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let f = Arc::new(predicate);
        self.child(
            Named::default(),
            "KSTREAM-FILTER-",
            move || Filter {
                f: f.clone(),
                negate: true,
            },
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Replaces key and value; a later grouping repartitions.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        self.child(
            Named::default(),
            "KSTREAM-MAP-",
            move || Map(f.clone()),
            None,
            None,
            true,
        )
    }

    /// Replaces the value; the key (and partitioning) is unchanged.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Like [`KStream::map_values`], with the key (Kafka Streams' `ValueMapperWithKey`).
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        self.child(
            Named::default(),
            "KSTREAM-MAPVALUES-",
            move || MapValues(f.clone()),
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Zero or more records per record; a later grouping repartitions.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)> + 'static,
    {
        let f = Arc::new(f);
        self.child(
            Named::default(),
            "KSTREAM-FLATMAP-",
            move || FlatMap(f.clone()),
            None,
            None,
            true,
        )
    }

    /// Zero or more values per record, under the same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2> + 'static,
    {
        self.flat_map_values_with_key(move |_, v| f(v))
    }

    /// Like [`KStream::flat_map_values`], with the key.
    pub fn flat_map_values_with_key<V2: Data, I>(
        &self,
        f: impl Fn(&K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2> + 'static,
    {
        let f = Arc::new(f);
        self.child(
            Named::default(),
            "KSTREAM-FLATMAPVALUES-",
            move || FlatMapValues(f.clone()),
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Sets a new key computed from key and value; a later grouping repartitions.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.select_key_named(f, Named::default())
    }

    fn select_key_named<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        named: Named,
    ) -> KStream<K2, V> {
        let f = Arc::new(f);
        self.child(
            named,
            "KSTREAM-KEY-SELECT-",
            move || SelectKey(f.clone()),
            None,
            self.value_serde.clone(),
            true,
        )
    }

    /// Calls `f` for each record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f = Arc::new(f);
        self.child(
            Named::default(),
            "KSTREAM-PEEK-",
            move || Peek {
                f: f.clone(),
                forward: true,
            },
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Runs a value processor on the stream (Kafka Streams' `processValues`): it cannot change
    /// keys, so no repartition follows it; it may use `stores` and forward `FixedKeyRecord`s of
    /// another value type.
    pub fn process_values<V2: Data, P, F>(
        &self,
        supplier: F,
        named: Named,
        stores: &[&str],
    ) -> KStream<K, V2>
    where
        P: FixedKeyProcessor<K, V> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let out = self.child::<K, V2, _, _>(
            named,
            "KSTREAM-PROCESSVALUES-",
            move || fixed_key_processor(supplier()),
            self.key_serde.clone(),
            None,
            self.repartition_required,
        );
        out.connect_stores(stores);
        out
    }

    /// Prints each record (Kafka Streams' `print`): `[label]: key, value` lines to standard output
    /// or a file; terminal.
    pub fn print(&self, printed: Printed<K, V>) {
        let label = printed.label.unwrap_or_else(|| self.node.clone());
        let (target, mapper) = (printed.to, printed.mapper);
        let _ = self.child::<K, V, _, _>(
            Named(printed.name),
            "KSTREAM-PRINTER-",
            move || Print {
                target: target.clone(),
                label: label.clone(),
                mapper: mapper.clone(),
                file: None,
            },
            None,
            None,
            false,
        );
    }

    /// Calls `f` for each record (terminal).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f = Arc::new(f);
        let _ = self.child::<K, V, _, _>(
            Named::default(),
            "KSTREAM-FOREACH-",
            move || Peek {
                f: f.clone(),
                forward: false,
            },
            None,
            None,
            false,
        );
    }

    /// Starts splitting the stream into branches by predicate (`Named` prefixes the branch names).
    pub fn split(&self, named: Named) -> BranchedKStream<K, V> {
        let list: Arc<Mutex<BranchList<K, V>>> = Arc::default();
        let mut s = self.b.borrow_mut();
        let splitter = s.name_or(named.0, "KSTREAM-BRANCH-");
        // The splitter reads its branches when a task creates it, after the topology is built,
        // so branches added (and chained) later are all there, as in Kafka Streams.
        let shared = list.clone();
        let r = s
            .topology
            .add_processor::<K, V, _, _>(
                &splitter,
                move || {
                    let l = shared.lock().unwrap_or_else(|e| e.into_inner());
                    Branch {
                        branches: l.branches.clone(),
                        default: l.default.clone(),
                    }
                },
                &[&self.node],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        BranchedKStream {
            source: self.clone_handle(),
            splitter,
            list,
            out: BTreeMap::new(),
        }
    }

    /// The records of both streams.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut s = self.b.borrow_mut();
        let name = s.next_name("KSTREAM-MERGE-");
        let r = s
            .topology
            .add_processor::<K, V, _, _>(
                &name,
                || PassThrough::<K, V>(PhantomData),
                &[&self.node, &other.node],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        KStream::new(
            self.b.clone(),
            name,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required || other.repartition_required,
        )
    }

    /// Writes the stream to `topic` with the tracked or built-in serdes.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to `topic`.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let mut s = self.b.borrow_mut();
        let name = s.name_or(produced.name, "KSTREAM-SINK-");
        let ks = s.key_serde(
            produced.key.or_else(|| self.key_serde.clone()),
            &format!("sink to `{topic}`"),
        );
        let vs = s.value_serde(
            produced.value.or_else(|| self.value_serde.clone()),
            &format!("sink to `{topic}`"),
        );
        if let (Some(k), Some(v)) = (ks, vs) {
            let r = match produced.partitioner {
                Some(p) => {
                    s.topology
                        .add_sink_with_partitioner(&name, topic, k, v, p, &[&self.node])
                }
                None => s.topology.add_sink(&name, topic, k, v, &[&self.node]),
            }
            .map(|_| ());
            s.record(r);
        }
    }

    /// Writes each record to the topic `topic_of` names for it (Kafka Streams' `to` with a
    /// `TopicNameExtractor`); the topics must exist. `describe()` shows `description` for it.
    pub fn to_dynamic(
        &self,
        description: &str,
        topic_of: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let mut s = self.b.borrow_mut();
        let name = s.name_or(produced.name, "KSTREAM-SINK-");
        let what = format!("sink `{name}`");
        let ks = s.key_serde(produced.key.or_else(|| self.key_serde.clone()), &what);
        let vs = s.value_serde(produced.value.or_else(|| self.value_serde.clone()), &what);
        if let (Some(k), Some(v)) = (ks, vs) {
            let r = s
                .topology
                .add_sink_with_topic_chooser(
                    &name,
                    description,
                    k,
                    v,
                    Arc::new(topic_of),
                    produced.partitioner,
                    &[&self.node],
                )
                .map(|_| ());
            s.record(r);
        }
    }

    /// Sends the stream through a repartition topic (Kafka Streams' `repartition`): named
    /// `<application.id>-<name>-repartition` (name from `repartitioned`, else
    /// `KSTREAM-REPARTITION-<n>`), with the given partition count and partitioner, else the
    /// writing sub-topology's count and murmur2 of the key bytes. Downstream of it, the stream is
    /// partitioned by its key.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let mut s = self.b.borrow_mut();
        // As Kafka Streams: a given name uses up no index here.
        let base = match repartitioned.name {
            Some(n) => n,
            None => s.next_name("KSTREAM-REPARTITION-"),
        };
        let what = format!("repartition `{base}`");
        let ks = s.key_serde(repartitioned.key.or_else(|| self.key_serde.clone()), &what);
        let vs = s.value_serde(
            repartitioned.value.or_else(|| self.value_serde.clone()),
            &what,
        );
        let (Some(ks), Some(vs)) = (ks, vs) else {
            drop(s);
            return self.clone_handle();
        };
        let source = repartition_with(
            &mut s,
            &self.node,
            &base,
            ks.clone(),
            vs.clone(),
            repartitioned.partitioner,
            repartitioned.partitions,
        );
        drop(s);
        KStream::new(self.b.clone(), source, Some(ks), Some(vs), false)
    }

    /// Runs a Processor API processor on the stream; it may use `stores` (added with
    /// `StreamsBuilder::add_state_store`) and forward `Record<K2, V2>`s.
    pub fn process<K2: Data, V2: Data, P, F>(
        &self,
        supplier: F,
        named: Named,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V> + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let out =
            self.child::<K2, V2, P, F>(named, "KSTREAM-PROCESSOR-", supplier, None, None, true);
        out.connect_stores(stores);
        out
    }

    /// Lets this stream's node use `stores` (added with `StreamsBuilder::add_state_store`).
    fn connect_stores(&self, stores: &[&str]) {
        let mut s = self.b.borrow_mut();
        for st in stores {
            let r = s
                .topology
                .connect_processor_and_store(&self.node, st)
                .map(|_| ());
            s.record(r);
        }
    }

    /// Groups by the current key (repartitioning first if an upstream operation changed keys).
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(
            self.clone_handle(),
            grouped.name,
            grouped.key.or_else(|| self.key_serde.clone()),
            grouped.value.or_else(|| self.value_serde.clone()),
            self.repartition_required,
        )
    }

    /// Groups by a new key computed from each record; always repartitions.
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V> {
        self.group_by_with(f, Grouped::default())
    }

    /// Like [`KStream::group_by`], with serdes and a name for the repartition topic.
    pub fn group_by_with<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        // Kafka Streams names the key selection after the grouping.
        let selected = self.select_key_named(f, Named(grouped.name.clone()));
        KGroupedStream::new(
            selected,
            grouped.name,
            grouped.key,
            grouped.value.or_else(|| self.value_serde.clone()),
            true,
        )
    }

    pub(crate) fn clone_handle(&self) -> KStream<K, V> {
        KStream::new(
            self.b.clone(),
            self.node.clone(),
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// The name of the node that emits this stream.
    pub fn node_name(&self) -> &str {
        &self.node
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// The stream as a table (Kafka Streams' `toTable`): each record upserts its key and `None`
    /// deletes it. A stream of plain values converts with `.map_values(Some)` first. As in Kafka
    /// Streams, the table is kept in the store `materialized` names, or, unnamed, in
    /// `KSTREAM-TOTABLE-STATE-STORE-<n>` once an operation needs it (a join, `group_by`,
    /// `suppress`); a stream whose key changed is repartitioned first.
    pub fn to_table(&self, named: Named, materialized: Materialized<K, V>) -> KTable<K, V> {
        let mut s = self.b.borrow_mut();
        let name = s.name_or(named.0, "KSTREAM-TOTABLE-");
        let store = s.store_name_or(materialized.name.clone(), "KSTREAM-TOTABLE-STATE-STORE-");
        let what = format!("table `{name}`");
        let ks = s.key_serde(
            materialized.key.clone().or_else(|| self.key_serde.clone()),
            &what,
        );
        let vs = s.value_serde(materialized.value.clone(), &what);
        let (Some(ks), Some(vs)) = (ks, vs) else {
            drop(s);
            return KTable::new(self.b.clone(), name, None, None, None);
        };
        let mut parent = self.node.clone();
        if self.repartition_required {
            let nullable: SerdeRef<Option<V>> = self
                .value_serde
                .clone()
                .unwrap_or_else(|| Arc::new(NullableRef(vs.clone())));
            parent = repartition(&mut s, &parent, &name, ks.clone(), nullable);
        }
        let versioned = materialized.versioned_history_ms;
        let sb = materialized.configure(match versioned {
            Some(history) => {
                StoreBuilder::versioned_key_value(store.clone(), history, ks.clone(), vs.clone())
            }
            // A versioned store has no record cache (as in Kafka Streams).
            None => StoreBuilder::timestamped_key_value(store.clone(), ks.clone(), vs.clone())
                .with_caching(materialized.caching),
        });
        let lazy = LazySource::new(name.clone(), sb);
        let l = lazy.clone();
        let r = s
            .topology
            .add_processor(
                &name,
                move || {
                    KTableSource::<K, V>::new(l.store.clone())
                        .versioned(versioned.is_some())
                        .lazy(l.clone())
                },
                &[&parent],
            )
            .map(|_| ());
        s.record(r);
        // A named store is queryable: kept from the start (else once something needs it).
        let named = materialized.name.is_some();
        if named {
            lazy.materialize(&mut s);
        }
        drop(s);
        let mut t = KTable::new(
            self.b.clone(),
            name,
            Some(ks),
            Some(vs),
            named.then_some(store),
        );
        t.old_values = OldValues::Source(lazy);
        t.versioned = versioned;
        t.versioned_upstream = versioned.is_some();
        t
    }
}

/// A stream being split by [`KStream::split`].
pub struct BranchedKStream<K, V> {
    source: KStream<K, V>,
    splitter: String,
    list: Arc<Mutex<BranchList<K, V>>>,
    out: BTreeMap<String, KStream<K, V>>,
}

/// The branches a splitter forwards to: `(child, predicate)` in order, then the default child.
struct BranchList<K, V> {
    branches: Vec<(String, Predicate<K, V>)>,
    default: Option<String>,
}

impl<K, V> Default for BranchList<K, V> {
    fn default() -> Self {
        BranchList {
            branches: Vec::new(),
            default: None,
        }
    }
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch for records matching `predicate` (first match wins); `name` defaults to its
    /// position (from 1).
    pub fn branch(
        self,
        name: Option<&str>,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        let branched = match name {
            Some(n) => Branched::as_(n),
            None => Branched::default(),
        };
        self.branch_with(predicate, branched)
    }

    /// Adds a branch for records matching `predicate`, named and chained by `branched`.
    pub fn branch_with(
        mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        branched: Branched<K, V>,
    ) -> Self {
        let position = {
            let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
            l.branches.push((String::new(), Arc::new(predicate)));
            l.branches.len()
        };
        let child = self.add_branch(position, branched);
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = l.branches.last_mut() {
            last.0 = child;
        }
        drop(l);
        self
    }

    /// Finishes with a branch for records no predicate matched; returns the branches by name.
    pub fn default_branch(self, name: Option<&str>) -> BTreeMap<String, KStream<K, V>> {
        let branched = match name {
            Some(n) => Branched::as_(n),
            None => Branched::default(),
        };
        self.default_branch_with(branched)
    }

    /// Like [`BranchedKStream::default_branch`], named and chained by `branched`.
    pub fn default_branch_with(
        mut self,
        branched: Branched<K, V>,
    ) -> BTreeMap<String, KStream<K, V>> {
        let child = self.add_branch(0, branched);
        self.list.lock().unwrap_or_else(|e| e.into_inner()).default = Some(child);
        self.out
    }

    /// Finishes; records no predicate matched are dropped.
    pub fn no_default_branch(self) -> BTreeMap<String, KStream<K, V>> {
        self.out
    }

    /// Adds the branch node `<splitter><name or position>` and applies its chain.
    fn add_branch(&mut self, position: usize, branched: Branched<K, V>) -> String {
        let src = &self.source;
        let name = format!(
            "{}{}",
            self.splitter,
            branched.name.unwrap_or_else(|| position.to_string())
        );
        let mut s = src.b.borrow_mut();
        // Each branch uses up an index, as in Kafka Streams.
        s.next_name("KSTREAM-BRANCHCHILD-");
        let r = s
            .topology
            .add_processor::<K, V, _, _>(
                &name,
                || PassThrough::<K, V>(PhantomData),
                &[&self.splitter],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        let branch = KStream::new(
            src.b.clone(),
            name.clone(),
            src.key_serde.clone(),
            src.value_serde.clone(),
            src.repartition_required,
        );
        match branched.chain {
            None => {
                self.out.insert(name.clone(), branch);
            }
            Some(BranchChain::Function(f)) => {
                if let Some(result) = f(branch) {
                    self.out.insert(name.clone(), result);
                }
            }
            Some(BranchChain::Consumer(f)) => f(branch),
        }
        name
    }
}
