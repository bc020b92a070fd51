use std::cell::RefCell;
use std::rc::Rc;

use streams_core::serdes::{default_serde, serde_by_name, NullableRef, SerdeRef};
use streams_core::{Data, Result, StoreBuilder, StreamsConfig, StreamsError, Topology};

use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::naming::{Consumed, Materialized};
use crate::old_values::{LazySource, OldValues};
use crate::processors::KTableSource;

pub(crate) struct BuilderState {
    pub topology: Topology,
    counter: u32,
    error: Option<StreamsError>,
    default_key_serde: Option<String>,
    default_value_serde: Option<String>,
}

pub(crate) type Shared = Rc<RefCell<BuilderState>>;

impl BuilderState {
    /// Kafka's generated names: `<PREFIX><10-digit counter>`, one counter for nodes and stores.
    pub fn next_name(&mut self, prefix: &str) -> String {
        let n = format!("{prefix}{:010}", self.counter);
        self.counter += 1;
        n
    }

    /// A processor's name: `given`, else generated. A given name still uses up its index, as in
    /// Kafka Streams, so that naming one operation does not renumber the others (their store and
    /// internal topic names, and so their changelogs, stay those of the same Java topology).
    pub fn name_or(&mut self, given: Option<String>, prefix: &str) -> String {
        let generated = self.next_name(prefix);
        given.unwrap_or(generated)
    }

    /// A store's name: `given`, else generated (a given store name uses up no index).
    pub fn store_name_or(&mut self, given: Option<String>, prefix: &str) -> String {
        given.unwrap_or_else(|| self.next_name(prefix))
    }

    /// Keeps the first error; later DSL calls carry on so `build()` can report it.
    pub fn record<T>(&mut self, r: Result<T>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    pub fn fail(&mut self, message: String) {
        self.error.get_or_insert(StreamsError::Topology(message));
    }

    /// The serde for a key, if there is one: given, else the type's built-in one, else the
    /// configured default.
    pub fn find_key_serde<T: 'static>(&self, given: Option<SerdeRef<T>>) -> Option<SerdeRef<T>> {
        given.or_else(default_serde::<T>).or_else(|| {
            self.default_key_serde
                .as_deref()
                .and_then(serde_by_name::<T>)
        })
    }

    /// The serde for a key: given, else tracked from upstream, else the type's built-in one, else the configured default.
    pub fn key_serde<T: 'static>(
        &mut self,
        given: Option<SerdeRef<T>>,
        what: &str,
    ) -> Option<SerdeRef<T>> {
        let found = self.find_key_serde(given);
        if found.is_none() {
            self.fail(format!(
                "{what} needs a key serde for `{}`: pass one (Consumed/Produced/Grouped/Materialized)",
                std::any::type_name::<T>()
            ));
        }
        found
    }

    /// Same for values.
    pub fn value_serde<T: 'static>(
        &mut self,
        given: Option<SerdeRef<T>>,
        what: &str,
    ) -> Option<SerdeRef<T>> {
        let found = given.or_else(default_serde::<T>).or_else(|| {
            self.default_value_serde
                .as_deref()
                .and_then(serde_by_name::<T>)
        });
        if found.is_none() {
            self.fail(format!(
                "{what} needs a value serde for `{}`: pass one (Consumed/Produced/Grouped/Materialized)",
                std::any::type_name::<T>()
            ));
        }
        found
    }
}

/// Entry point of the DSL: declares streams and tables, then [`StreamsBuilder::build`]s the topology.
///
/// Errors in DSL calls (a missing serde, a duplicate name) are remembered and returned by `build()`,
/// so calls chain without `?` at every step.
pub struct StreamsBuilder {
    pub(crate) state: Shared,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// A builder with no default serdes beyond the built-in ones for common types.
    pub fn new() -> Self {
        StreamsBuilder {
            state: Rc::new(RefCell::new(BuilderState {
                topology: Topology::new(),
                counter: 0,
                error: None,
                default_key_serde: None,
                default_value_serde: None,
            })),
        }
    }

    /// A builder that also falls back to `default.key.serde` / `default.value.serde` of `config`.
    pub fn with_config(config: &StreamsConfig) -> Self {
        let b = Self::new();
        {
            let mut s = b.state.borrow_mut();
            s.default_key_serde = config.default_key_serde.clone();
            s.default_value_serde = config.default_value_serde.clone();
        }
        b
    }

    /// A stream of the records of `topic`, with the built-in serdes for `K` and `V`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str) -> KStream<K, V> {
        self.stream_with(&[topic], Consumed::default())
    }

    /// A stream of the records of `topics`, with the given serdes.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut s = self.state.borrow_mut();
        let name = s.name_or(consumed.name, "KSTREAM-SOURCE-");
        let ks = s.key_serde(consumed.key, &format!("source `{name}`"));
        let vs = s.value_serde(consumed.value, &format!("source `{name}`"));
        if let (Some(k), Some(v)) = (ks.clone(), vs.clone()) {
            let r = s
                .topology
                .add_source(&name, topics, k, v)
                .and_then(|t| match consumed.timestamp_extractor {
                    Some(e) => t.set_timestamp_extractor(&name, e),
                    None => Ok(t),
                })
                .map(|_| ());
            s.record(r);
        }
        drop(s);
        KStream::new(self.state.clone(), name, ks, vs, false)
    }

    /// A table over `topic`: each record upserts its key; a null value deletes it. As in Kafka
    /// Streams, the table is kept in a store when `materialized` names one (then it is
    /// queryable), or once an operation needs it (a join, `group_by`, `suppress`; the store is
    /// then `<topic>-STATE-STORE-<n>`).
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let mut s = self.state.borrow_mut();
        let store = s.store_name_or(materialized.name.clone(), &format!("{topic}-STATE-STORE-"));
        let source = s.name_or(consumed.name, "KSTREAM-SOURCE-");
        let table_node = s.next_name("KTABLE-SOURCE-");
        let ks = s.key_serde(
            consumed.key.or(materialized.key.clone()),
            &format!("table `{topic}`"),
        );
        let vs = s.value_serde(
            consumed.value.or(materialized.value.clone()),
            &format!("table `{topic}`"),
        );
        let mut old_values = OldValues::Kept;
        if let (Some(k), Some(v)) = (ks.clone(), vs.clone()) {
            let nullable: SerdeRef<Option<V>> = std::sync::Arc::new(NullableRef(v.clone()));
            let sb = materialized
                .configure(match materialized.versioned_history_ms {
                    Some(history) => {
                        StoreBuilder::versioned_key_value(store.clone(), history, k.clone(), v)
                    }
                    None => StoreBuilder::timestamped_key_value(store.clone(), k.clone(), v),
                })
                .for_source_table(topic);
            let versioned = materialized.versioned_history_ms.is_some();
            let lazy = LazySource::new(table_node.clone(), sb);
            let l = lazy.clone();
            let extractor = consumed.timestamp_extractor.clone();
            let r = s
                .topology
                .add_source(&source, &[topic], k, nullable)
                .and_then(|t| match extractor {
                    Some(e) => t.set_timestamp_extractor(&source, e),
                    None => Ok(t),
                })
                .and_then(|t| {
                    t.add_processor(
                        &table_node,
                        move || {
                            KTableSource::<K, V>::new(l.store.clone())
                                .versioned(versioned)
                                .lazy(l.clone())
                        },
                        &[&source],
                    )
                })
                .map(|_| ());
            s.record(r);
            // A named store is queryable: kept from the start.
            if materialized.name.is_some() {
                lazy.materialize(&mut s);
            }
            old_values = OldValues::Source(lazy);
        }
        drop(s);
        let named = materialized.name.is_some();
        let mut t = KTable::new(
            self.state.clone(),
            table_node,
            ks,
            vs,
            named.then_some(store),
        );
        t.old_values = old_values;
        t.versioned = materialized.versioned_history_ms;
        t.versioned_upstream = t.versioned.is_some();
        t
    }

    /// A global table over `topic`: every instance reads the whole topic into a store (named by
    /// `materialized`) before processing starts, and keeps it up to date.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> crate::GlobalKTable<K, V> {
        crate::joins::global_table(
            &self.state,
            topic,
            consumed.key,
            consumed.value,
            materialized,
        )
    }

    /// Registers a store for processors added with [`KStream::process`].
    pub fn add_state_store(&self, store: StoreBuilder) -> &Self {
        let mut s = self.state.borrow_mut();
        let r = s.topology.add_state_store(store, &[]).map(|_| ());
        s.record(r);
        self
    }

    /// The topology, or the first error any DSL call hit.
    pub fn build(&self) -> Result<Topology> {
        let mut s = self.state.borrow_mut();
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        s.topology.validate()?;
        Ok(s.topology.clone())
    }

    /// [`StreamsBuilder::build`] with the `topology.optimization` of `config` applied (Kafka
    /// Streams' `build(props)`), so that `describe()` shows the topology that will run:
    /// `merge.repartition.topics` shares one repartition topic among the groupings and joins
    /// below a key change, `reuse.ktable.source.topics` makes source tables' topics their
    /// changelogs. `KafkaStreams` applies the same to a topology built without it.
    pub fn build_with(&self, config: &streams_core::StreamsConfig) -> Result<Topology> {
        let mut t = self.build()?;
        t.optimize(config)?;
        Ok(t)
    }
}
