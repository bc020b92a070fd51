//! Join operations of `KStream` and `KTable`, and `GlobalKTable`.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::{NullableRef, SerdeRef, Serdes};
use streams_core::{Data, StoreBuilder, StoreSupplier, StreamsError, SupplierShape};

use crate::buffered_join::BufferedTableJoin;
use crate::builder::{BuilderState, Shared};
use crate::change::Change;
use crate::grouped::repartition;
use crate::join_processors::{
    JoinFn, JoinWindowProcessor, KeyMapper, KeyedJoinFn, StreamJoinSide, StreamJoinSpec,
    StreamLookupJoin, TableJoinSide, TableMaterialize,
};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::naming::{ChangelogOptions, Materialized, Named};
use crate::old_values::OldValues;
use crate::processors::{KTableSource, PassThrough};
use crate::windows::JoinWindows;

/// Which rows a table-table join keeps.
#[derive(Clone, Copy)]
enum TableJoinKind {
    Inner,
    Left,
    Outer,
}

impl TableJoinKind {
    /// Whether an update of this table, and of the other, yields a result only while the
    /// opposite side has a row.
    fn needs_other_side(self) -> (bool, bool) {
        match self {
            TableJoinKind::Inner => (true, true),
            TableJoinKind::Left => (false, true),
            TableJoinKind::Outer => (false, false),
        }
    }

    /// Whether this table, and the other, keeps its rows without a partner (left and outer).
    fn outer_sides(self) -> (bool, bool) {
        match self {
            TableJoinKind::Inner => (false, false),
            TableJoinKind::Left => (true, false),
            TableJoinKind::Outer => (true, true),
        }
    }
}

/// The name of a stream-table join and the serdes of the stream side, for its repartition
/// (Kafka Streams' `Joined`).
pub struct Joined<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) grace_ms: Option<i64>,
}

impl<K, V> Default for Joined<K, V> {
    fn default() -> Self {
        Joined {
            name: None,
            key: None,
            value: None,
            grace_ms: None,
        }
    }
}

impl<K, V> Joined<K, V> {
    /// Names the join processor (and its repartition topic, `<name>-repartition`).
    pub fn as_(name: impl Into<String>) -> Self {
        Joined {
            name: Some(name.into()),
            ..Default::default()
        }
    }
    /// The stream's key and value serdes.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Joined {
            key: Some(key),
            value: Some(value),
            ..Default::default()
        }
    }
    /// Names the join processor.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Holds each stream record until stream time passes its timestamp by `grace_ms`, then
    /// joins it as of its own time (KIP-923), so table updates up to `grace_ms` late are still
    /// seen. The table must be versioned (`Materialized::as_versioned`) with a history
    /// retention of at least `grace_ms`; the records wait in a change-logged store
    /// `<join name>-Buffer`, and the stream's serdes must be known (`Joined::with`).
    pub fn with_grace_period(mut self, grace_ms: i64) -> Self {
        self.grace_ms = Some(grace_ms);
        self
    }
}

/// Serdes, processor name and store name of a stream-stream join.
pub struct StreamJoined<K, V, VO> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) other: Option<SerdeRef<VO>>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) this_supplier: Option<StoreSupplier>,
    pub(crate) other_supplier: Option<StoreSupplier>,
    pub(crate) logging: ChangelogOptions,
}

impl<K, V, VO> Default for StreamJoined<K, V, VO> {
    fn default() -> Self {
        StreamJoined {
            key: None,
            value: None,
            other: None,
            name: None,
            store_name: None,
            this_supplier: None,
            other_supplier: None,
            logging: ChangelogOptions::default(),
        }
    }
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// The key serde and both value serdes (for the join's window stores).
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>, other: SerdeRef<VO>) -> Self {
        StreamJoined {
            key: Some(key),
            value: Some(value),
            other: Some(other),
            ..Default::default()
        }
    }
    /// Names the join's processors as Kafka Streams does: `<name>-this-windowed`,
    /// `<name>-this-join` (`<name>-outer-this-join` in an outer join), `<name>-merge`, ...
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Names the join's stores (and so their changelog topics) as Kafka Streams does:
    /// `<name>-this-join-store`, `<name>-other-join-store` (`-outer-` before `this`/`other` on an
    /// outer side) and, for left and outer joins, `<name>-left-shared-join-store` /
    /// `<name>-outer-shared-join-store`. Unnamed stores take the generated processor names.
    pub fn with_store_name(mut self, name: impl Into<String>) -> Self {
        self.store_name = Some(name.into());
        self
    }
    /// The window store of this stream's records comes from `supplier` (Kafka Streams'
    /// `withThisStoreSupplier`), named after it: a window supplier that retains duplicates, with
    /// the join's size (before + after) and a retention of size plus grace. An outer or left
    /// join's shared store is then `<supplier name>-left-shared-join-store` (`-outer-` for an
    /// outer join), in memory when the supplier's stores are.
    pub fn with_this_store_supplier(mut self, supplier: StoreSupplier) -> Self {
        self.this_supplier = Some(supplier);
        self
    }
    /// The other stream's window store comes from `supplier` (`withOtherStoreSupplier`).
    pub fn with_other_store_supplier(mut self, supplier: StoreSupplier) -> Self {
        self.other_supplier = Some(supplier);
        self
    }
    /// No changelog topics for the join's own stores (those from suppliers keep theirs).
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging.disable();
        self
    }
    /// Changelogs of the join's own stores created with these topic configs.
    pub fn with_logging_enabled(
        mut self,
        configs: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.logging.enable(configs);
        self
    }
    /// Applies the logging options to one of the join's own stores.
    fn logged(&self, sb: StoreBuilder) -> StoreBuilder {
        self.logging.apply(sb)
    }
}

/// Why `supplier` cannot hold one side of a join over `windows` (Kafka Streams' checks).
fn join_supplier_misfit(supplier: &StoreSupplier, windows: &JoinWindows) -> Option<String> {
    let size = windows.before_ms + windows.after_ms;
    let name = supplier.name();
    match supplier.shape() {
        SupplierShape::Window {
            retain_duplicates: false,
            ..
        } => Some(format!(
            "store supplier `{name}` must retain duplicates (a join keeps every record of a key)"
        )),
        SupplierShape::Window {
            retention_ms,
            window_size_ms,
            ..
        } if retention_ms != size + windows.grace_ms || window_size_ms != size => Some(format!(
            "store supplier `{name}` has window size {window_size_ms} ms and retention \
             {retention_ms} ms; the join windows need size {size} ms (before + after) and \
             retention {} ms (size + grace)",
            size + windows.grace_ms
        )),
        SupplierShape::Window { .. } => None,
        other => Some(format!(
            "store supplier `{name}` makes {} stores; a join needs a window store supplier",
            other.words()
        )),
    }
}

fn inner<L: 'static, R: 'static, O: 'static>(
    f: impl Fn(&L, &R) -> O + Send + Sync + 'static,
) -> JoinFn<L, R, O> {
    Arc::new(move |l, r| match (l, r) {
        (Some(l), Some(r)) => Some(f(l, r)),
        _ => None,
    })
}

fn left<L: 'static, R: 'static, O: 'static>(
    f: impl Fn(&L, Option<&R>) -> O + Send + Sync + 'static,
) -> JoinFn<L, R, O> {
    Arc::new(move |l, r| l.map(|l| f(l, r)))
}

fn outer<L: 'static, R: 'static, O: 'static>(
    f: impl Fn(Option<&L>, Option<&R>) -> O + Send + Sync + 'static,
) -> JoinFn<L, R, O> {
    Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| f(l, r)))
}

/// A key-less joiner for a stream-side join.
fn keyless<K: 'static, L: 'static, R: 'static, O: 'static>(
    j: JoinFn<L, R, O>,
) -> KeyedJoinFn<K, L, R, O> {
    Arc::new(move |_, l, r| j(l, r))
}

fn inner_with_key<K: 'static, L: 'static, R: 'static, O: 'static>(
    f: impl Fn(&K, &L, &R) -> O + Send + Sync + 'static,
) -> KeyedJoinFn<K, L, R, O> {
    Arc::new(move |k, l, r| match (l, r) {
        (Some(l), Some(r)) => Some(f(k, l, r)),
        _ => None,
    })
}

fn left_with_key<K: 'static, L: 'static, R: 'static, O: 'static>(
    f: impl Fn(&K, &L, Option<&R>) -> O + Send + Sync + 'static,
) -> KeyedJoinFn<K, L, R, O> {
    Arc::new(move |k, l, r| l.map(|l| f(k, l, r)))
}

fn outer_with_key<K: 'static, L: 'static, R: 'static, O: 'static>(
    f: impl Fn(&K, Option<&L>, Option<&R>) -> O + Send + Sync + 'static,
) -> KeyedJoinFn<K, L, R, O> {
    Arc::new(move |k, l, r| (l.is_some() || r.is_some()).then(|| f(k, l, r)))
}

/// When a stream's key changed upstream, joins read it through a repartition topic so both inputs
/// are partitioned alike (co-partitioning).
fn copartitioned<K: Data, V: Data>(
    s: &mut BuilderState,
    stream: &KStream<K, V>,
    base: &str,
    ks: &SerdeRef<K>,
    vs: &SerdeRef<V>,
) -> String {
    if stream.repartition_required {
        repartition(s, &stream.node, base, ks.clone(), vs.clone())
    } else {
        stream.node.clone()
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    #[allow(clippy::too_many_arguments)]
    fn stream_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: KeyedJoinFn<K, V, VO, VR>,
        (left_outer, right_outer): (bool, bool),
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let mut s = self.b.borrow_mut();
        let name = joined.name.clone();
        let what = format!("join `{}`", name.as_deref().unwrap_or("stream-stream"));
        let ks = s.key_serde(joined.key.clone().or_else(|| self.key_serde.clone()), &what);
        let vs = s.value_serde(
            joined.value.clone().or_else(|| self.value_serde.clone()),
            &what,
        );
        let os = s.value_serde(
            joined.other.clone().or_else(|| other.value_serde.clone()),
            &what,
        );
        let (Some(ks), Some(vs), Some(os)) = (ks, vs, os) else {
            let merge = s.next_name("KSTREAM-MERGE-");
            drop(s);
            return KStream::new(self.b.clone(), merge, None, None, false);
        };
        if windows.before_ms + windows.after_ms < 0 || windows.grace_ms < 0 {
            s.fail(format!(
                "{what}: the join window is empty or the grace negative"
            ));
        }
        // Kafka Streams' names, in its order (a generated name uses up an index even when a given
        // one is used), so that stores and internal topics are those of the same Java topology.
        let this_in_base = name
            .as_ref()
            .map_or(self.node.clone(), |n| format!("{n}-left"));
        let this_in = copartitioned(&mut s, self, &this_in_base, &ks, &vs);
        let other_in_base = name
            .as_ref()
            .map_or(other.node.clone(), |n| format!("{n}-right"));
        let other_in = copartitioned(&mut s, other, &other_in_base, &ks, &os);
        let suffixed = |suffix: &str| name.as_ref().map(|n| format!("{n}{suffix}"));
        let this_win = s.name_or(suffixed("-this-windowed"), "KSTREAM-WINDOWED-");
        let other_win = s.name_or(suffixed("-other-windowed"), "KSTREAM-WINDOWED-");
        let this_generated = s.next_name(if right_outer {
            "KSTREAM-OUTERTHIS-"
        } else {
            "KSTREAM-JOINTHIS-"
        });
        let other_generated = s.next_name(if left_outer {
            "KSTREAM-OUTEROTHER-"
        } else {
            "KSTREAM-JOINOTHER-"
        });
        let this_suffix = if right_outer {
            "-outer-this-join"
        } else {
            "-this-join"
        };
        let other_suffix = if left_outer {
            "-outer-other-join"
        } else {
            "-other-join"
        };
        let this_join = suffixed(this_suffix).unwrap_or_else(|| this_generated.clone());
        let other_join = suffixed(other_suffix).unwrap_or_else(|| other_generated.clone());
        let merge = s.name_or(suffixed("-merge"), "KSTREAM-MERGE-");
        let store_base = joined.store_name.clone();
        let own_store = |suffix: &str, generated: &str| match &store_base {
            Some(b) => format!("{b}{suffix}-store"),
            None => format!("{generated}-store"),
        };
        let this_store = joined.this_supplier.as_ref().map_or_else(
            || own_store(this_suffix, &this_generated),
            |p| p.name().to_string(),
        );
        let other_store = joined.other_supplier.as_ref().map_or_else(
            || own_store(other_suffix, &other_generated),
            |p| p.name().to_string(),
        );
        for supplier in [&joined.this_supplier, &joined.other_supplier]
            .into_iter()
            .flatten()
        {
            if let Some(why) = join_supplier_misfit(supplier, &windows) {
                s.fail(format!("{what}: {why}"));
            }
        }
        if this_store == other_store {
            s.fail(format!(
                "{what}: both store suppliers are named `{this_store}`; each side needs its own store"
            ));
        }
        let shared_base = joined
            .this_supplier
            .as_ref()
            .map(|p| p.name().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| store_base.clone());
        let outer_store = left_outer.then(|| match &shared_base {
            Some(b) if right_outer => format!("{b}-outer-shared-join-store"),
            Some(b) => format!("{b}-left-shared-join-store"),
            None => {
                let index = this_generated.rsplit('-').next().unwrap_or_default();
                format!("KSTREAM-OUTERSHARED-{index}-store")
            }
        });
        let outer_in_memory = joined
            .this_supplier
            .as_ref()
            .is_some_and(|p| !p.persistent());
        let retention = windows.before_ms + windows.after_ms + windows.grace_ms;
        let size = windows.before_ms + windows.after_ms;
        let side_store = |supplier: &Option<StoreSupplier>, b: StoreBuilder| match supplier {
            Some(p) => b.with_supplier(p.clone()),
            None => joined.logged(b),
        };
        let this_builder = side_store(
            &joined.this_supplier,
            StoreBuilder::window(
                this_store.clone(),
                retention,
                size,
                true,
                ks.clone(),
                vs.clone(),
            ),
        );
        let other_builder = side_store(
            &joined.other_supplier,
            StoreBuilder::window(
                other_store.clone(),
                retention,
                size,
                true,
                ks.clone(),
                os.clone(),
            ),
        );
        let outer_builder = outer_store.as_ref().map(|o| {
            let b = StoreBuilder::key_value(
                o.clone(),
                Arc::new(streams_core::serdes::BytesSerde) as SerdeRef<Vec<u8>>,
                Arc::new(streams_core::serdes::BytesSerde) as SerdeRef<Vec<u8>>,
            );
            joined.logged(if outer_in_memory { b.in_memory() } else { b })
        });
        let spec = Arc::new(StreamJoinSpec {
            joiner,
            left_outer,
            right_outer,
            windows,
            left_store: this_store.clone(),
            right_store: other_store.clone(),
            outer_store: outer_store.clone(),
            key_serde: ks.clone(),
            left_serde: vs.clone(),
            right_serde: os.clone(),
            min_time: Default::default(),
        });
        let (ts1, ts2, sp1, sp2) = (this_store.clone(), other_store.clone(), spec.clone(), spec);
        let r = s
            .topology
            .add_processor::<K, V, _, _>(
                &this_win,
                move || JoinWindowProcessor::<K, V> {
                    store: ts1.clone(),
                    _t: PhantomData,
                },
                &[&this_in],
            )
            .and_then(|t| {
                t.add_processor::<K, VO, _, _>(
                    &other_win,
                    move || JoinWindowProcessor::<K, VO> {
                        store: ts2.clone(),
                        _t: PhantomData,
                    },
                    &[&other_in],
                )
            })
            .and_then(|t| {
                t.add_processor::<K, V, _, _>(
                    &this_join,
                    move || StreamJoinSide::<K, V, VO, VR, V> {
                        spec: sp1.clone(),
                        left: true,
                        _t: PhantomData,
                    },
                    &[&this_win],
                )
            })
            .and_then(|t| {
                t.add_processor::<K, VO, _, _>(
                    &other_join,
                    move || StreamJoinSide::<K, V, VO, VR, VO> {
                        spec: sp2.clone(),
                        left: false,
                        _t: PhantomData,
                    },
                    &[&other_win],
                )
            })
            .and_then(|t| {
                t.add_processor::<K, VR, _, _>(
                    &merge,
                    || PassThrough::<K, VR>(PhantomData),
                    &[&this_join, &other_join],
                )
            })
            .and_then(|t| t.add_state_store(this_builder, &[&this_win, &other_join]))
            .and_then(|t| t.add_state_store(other_builder, &[&other_win, &this_join]))
            .and_then(|t| match outer_builder {
                Some(o) => t.add_state_store(o, &[&this_join, &other_join]),
                None => Ok(t),
            })
            .map(|_| ());
        s.record(r);
        drop(s);
        KStream::new(self.b.clone(), merge, Some(ks), None, false)
    }

    /// Windowed inner join: a result for every pair of records with equal keys whose timestamps
    /// are within `windows`; the result's timestamp is the larger of the two.
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(
            other,
            keyless(inner(joiner)),
            (false, false),
            windows,
            joined,
        )
    }

    /// [`KStream::join`] with a joiner that also gets the key (Kafka Streams'
    /// `ValueJoinerWithKey`).
    pub fn join_with_key<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(
            other,
            inner_with_key(joiner),
            (false, false),
            windows,
            joined,
        )
    }

    /// Windowed left join: like [`KStream::join`], and a record of this stream that found no
    /// partner is emitted with `None` once its window closed (after the grace period).
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(other, keyless(left(joiner)), (true, false), windows, joined)
    }

    /// [`KStream::left_join`] with a joiner that also gets the key.
    pub fn left_join_with_key<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(other, left_with_key(joiner), (true, false), windows, joined)
    }

    /// Windowed outer join: unmatched records of either side are emitted with `None` for the
    /// other once their window closed.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(other, keyless(outer(joiner)), (true, true), windows, joined)
    }

    /// [`KStream::outer_join`] with a joiner that also gets the key.
    pub fn outer_join_with_key<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&K, Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(other, outer_with_key(joiner), (true, true), windows, joined)
    }

    fn table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: KeyedJoinFn<K, V, VT, VR>,
        left_join: bool,
        joined: Joined<K, V>,
    ) -> KStream<K, VR> {
        let store = table.materialized().map(|(s, _)| s);
        let mut s = self.b.borrow_mut();
        let what = format!("stream-table join of `{}`", self.node);
        let mut parent = self.node.clone();
        if self.repartition_required {
            // As Kafka Streams: the repartition (named after the join, else after the stream's
            // node) comes first.
            let ks = s.key_serde(joined.key.clone().or_else(|| self.key_serde.clone()), &what);
            let vs = s.value_serde(
                joined.value.clone().or_else(|| self.value_serde.clone()),
                &what,
            );
            if let (Some(ks), Some(vs)) = (ks, vs) {
                let base = joined.name.clone().unwrap_or_else(|| self.node.clone());
                parent = repartition(&mut s, &parent, &base, ks, vs);
            }
        }
        let name = s.name_or(
            joined.name,
            if left_join {
                "KSTREAM-LEFTJOIN-"
            } else {
                "KSTREAM-JOIN-"
            },
        );
        let Some(store) = store else {
            s.fail(format!("{what}: the table has no store"));
            drop(s);
            return KStream::new(self.b.clone(), name, None, None, false);
        };
        let as_of = table.versioned.is_some();
        let lookup = {
            let st = store.clone();
            move || StreamLookupJoin::<K, V, K, VT, VR> {
                store: st.clone(),
                key_mapper: Arc::new(|k: &K, _: &V| k.clone()),
                joiner: joiner.clone(),
                as_of,
                _t: PhantomData,
            }
        };
        let r = match joined.grace_ms {
            None => s.topology.add_processor::<K, V, _, _>(&name, lookup, &[&parent]),
            Some(grace_ms) => {
                let ks = joined.key.clone().or_else(|| self.key_serde.clone());
                let vs = joined.value.clone().or_else(|| self.value_serde.clone());
                match (table.versioned, ks, vs) {
                    (None, _, _) => Err(StreamsError::Topology(format!(
                        "{what}: a grace period needs a versioned table; materialize it with Materialized::as_versioned"
                    ))),
                    (Some(history), _, _) if history < grace_ms => Err(StreamsError::Topology(format!(
                        "{what}: the table's history retention ({history} ms) is shorter than the grace period ({grace_ms} ms); keep at least the grace period"
                    ))),
                    (Some(_), Some(key_serde), Some(value_serde)) => {
                        let buffer = format!("{name}-Buffer");
                        let b = buffer.clone();
                        s.topology
                            .add_processor::<K, V, _, _>(
                                &name,
                                move || BufferedTableJoin {
                                    join: lookup(),
                                    buffer: b.clone(),
                                    grace_ms,
                                    key_serde: key_serde.clone(),
                                    value_serde: value_serde.clone(),
                                    observed: i64::MIN,
                                    next_seq: 0,
                                },
                                &[&parent],
                            )
                            .and_then(|t| {
                                t.add_state_store(
                                    StoreBuilder::key_value(buffer, Serdes::bytes(), Serdes::bytes()),
                                    &[&name],
                                )
                            })
                    }
                    _ => Err(StreamsError::Topology(format!(
                        "{what}: a grace period buffers the stream's records; give their serdes with Joined::with"
                    ))),
                }
            }
        }
        .and_then(|t| t.connect_processor_and_store(&name, &store))
        .map(|_| ());
        s.record(r);
        drop(s);
        KStream::new(self.b.clone(), name, self.key_serde.clone(), None, false)
    }

    /// Stream-table inner join: each record is enriched with the table's current value for its
    /// key and dropped when there is none. Table updates emit nothing. Both must be partitioned
    /// alike (a key-changing operation upstream repartitions the stream first).
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(table, keyless(inner(joiner)), false, Joined::default())
    }

    /// [`KStream::join_table`] named and with serdes for its repartition (Kafka Streams' `Joined`).
    pub fn join_table_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR> {
        self.table_join(table, keyless(inner(joiner)), false, joined)
    }

    /// [`KStream::join_table_with`] with a joiner that also gets the key (Kafka Streams'
    /// `ValueJoinerWithKey`).
    pub fn join_table_with_key<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&K, &V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR> {
        self.table_join(table, inner_with_key(joiner), false, joined)
    }

    /// Stream-table left join: records without a table value join with `None`.
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(table, keyless(left(joiner)), true, Joined::default())
    }

    /// [`KStream::left_join_table`] named and with serdes for its repartition (`Joined`).
    pub fn left_join_table_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR> {
        self.table_join(table, keyless(left(joiner)), true, joined)
    }

    /// [`KStream::left_join_table_with`] with a joiner that also gets the key.
    pub fn left_join_table_with_key<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&K, &V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR> {
        self.table_join(table, left_with_key(joiner), true, joined)
    }

    fn global_join<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: KeyMapper<K, V, GK>,
        joiner: KeyedJoinFn<K, V, GV, VR>,
    ) -> KStream<K, VR> {
        let mut s = self.b.borrow_mut();
        // Kafka Streams names inner and left global-table joins alike.
        let name = s.next_name("KSTREAM-LEFTJOIN-");
        let st = table.store.clone();
        let r = s
            .topology
            .add_processor::<K, V, _, _>(
                &name,
                move || StreamLookupJoin::<K, V, GK, GV, VR> {
                    store: st.clone(),
                    key_mapper: key_mapper.clone(),
                    joiner: joiner.clone(),
                    as_of: false,
                    _t: PhantomData,
                },
                &[&self.node],
            )
            .map(|_| ());
        s.record(r);
        drop(s);
        KStream::new(
            self.b.clone(),
            name,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Joins with a global table: `key_mapper` picks the table key for each record (any key; no
    /// co-partitioning needed, every instance has the whole table). Records without a match are
    /// dropped.
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, Arc::new(key_mapper), keyless(inner(joiner)))
    }

    /// [`KStream::join_global`] with a joiner that also gets the stream record's key.
    pub fn join_global_with_key<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, Arc::new(key_mapper), inner_with_key(joiner))
    }

    /// Left join with a global table: records without a match join with `None`.
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, Arc::new(key_mapper), keyless(left(joiner)))
    }

    /// [`KStream::left_join_global`] with a joiner that also gets the stream record's key.
    pub fn left_join_global_with_key<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, Arc::new(key_mapper), left_with_key(joiner))
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The store holding this table and the node emitting its changes once they are in the
    /// store. A table without a store (filtered or mapped) is materialized first: joins look
    /// values up there.
    pub(crate) fn materialized(&self) -> Option<(String, String)> {
        if let Some(s) = &self.store {
            return Some((s.clone(), self.node.clone()));
        }
        let mut s = self.b.borrow_mut();
        // A source table keeps the store it had put aside (as Kafka Streams' value getter does).
        if let OldValues::Source(source) = &self.old_values {
            source.materialize(&mut s);
            return Some((source.store.clone(), source.node.clone()));
        }
        let node = s.next_name("KTABLE-MATERIALIZE-");
        let store = s.next_name("KTABLE-MATERIALIZE-STATE-STORE-");
        let what = format!("materializing table `{}` for a join", self.node);
        let ks = s.key_serde(self.key_serde.clone(), &what)?;
        let vs = s.value_serde(self.value_serde.clone(), &what)?;
        let st = store.clone();
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &node,
                move || TableMaterialize::<K, V> {
                    store: st.clone(),
                    _t: PhantomData,
                },
                &[&self.node],
            )
            .and_then(|t| {
                t.add_state_store(
                    StoreBuilder::timestamped_key_value(store.clone(), ks, vs),
                    &[&node],
                )
            })
            .map(|_| ());
        s.record(r);
        Some((store, node))
    }

    fn table_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: JoinFn<V, VO, VR>,
        kind: TableJoinKind,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let (Some((this_store, this_in)), Some((other_store, other_in))) =
            (self.materialized(), other.materialized())
        else {
            return KTable::new(self.b.clone(), self.node.clone(), None, None, None);
        };
        let mut s = self.b.borrow_mut();
        // As Kafka Streams: an outer side's old values are needed (its deletes must retract
        // the results it had).
        let (this_outer, other_outer) = kind.outer_sides();
        if this_outer {
            self.old_values.enable(&mut s, true);
        }
        if other_outer {
            other.old_values.enable(&mut s, true);
        }
        // Kafka Streams' names and order, whatever the kind of join: a join named N has nodes
        // N, N-join-this and N-join-other (each still using up its index).
        let name = named.0;
        let merge = s.name_or(name.clone(), "KTABLE-MERGE-");
        let this_join = s.name_or(
            name.as_ref().map(|n| format!("{n}-join-this")),
            "KTABLE-JOINTHIS-",
        );
        let other_join = s.name_or(
            name.as_ref().map(|n| format!("{n}-join-other")),
            "KTABLE-JOINOTHER-",
        );
        let (this_needs_other, other_needs_this) = kind.needs_other_side();
        let (j1, j2) = (joiner.clone(), joiner);
        let (os, ts) = (other_store.clone(), this_store.clone());
        let (this_versioned, other_versioned) = (self.versioned_upstream, other.versioned_upstream);
        let mut r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &this_join,
                move || TableJoinSide::<K, V, VO, VR, V> {
                    other_store: os.clone(),
                    joiner: j1.clone(),
                    left: true,
                    needs_other: this_needs_other,
                    versioned: this_versioned,
                    _t: PhantomData,
                },
                &[&this_in],
            )
            .and_then(|t| {
                t.add_processor::<K, Change<VO>, _, _>(
                    &other_join,
                    move || TableJoinSide::<K, V, VO, VR, VO> {
                        other_store: ts.clone(),
                        joiner: j2.clone(),
                        left: false,
                        needs_other: other_needs_this,
                        versioned: other_versioned,
                        _t: PhantomData,
                    },
                    &[&other_in],
                )
            })
            .and_then(|t| t.connect_processor_and_store(&this_join, &other_store))
            .and_then(|t| t.connect_processor_and_store(&other_join, &this_store))
            .map(|_| ());
        let mut result_store = None;
        let what = format!("table join `{merge}`");
        let ks = s.key_serde(
            materialized.key.clone().or_else(|| self.key_serde.clone()),
            &what,
        );
        let vrs = materialized.value.clone();
        if let Some(store) = materialized.name.clone() {
            let vrs = s.value_serde(vrs.clone(), &what);
            if let (Some(k), Some(v), Ok(())) = (ks.clone(), vrs, &r) {
                let st = store.clone();
                let sb = materialized.configure(StoreBuilder::timestamped_key_value(
                    store.clone(),
                    k,
                    v,
                ));
                r = s
                    .topology
                    .add_processor::<K, Change<VR>, _, _>(
                        &merge,
                        move || TableMaterialize::<K, VR> {
                            store: st.clone(),
                            _t: PhantomData,
                        },
                        &[&this_join, &other_join],
                    )
                    .and_then(|t| t.add_state_store(sb, &[&merge]))
                    .map(|_| ());
                result_store = Some(store);
            }
        } else {
            r = r.and_then(|()| {
                s.topology
                    .add_processor::<K, Change<VR>, _, _>(
                        &merge,
                        || PassThrough::<K, Change<VR>>(PhantomData),
                        &[&this_join, &other_join],
                    )
                    .map(|_| ())
            });
        }
        s.record(r);
        drop(s);
        KTable::new(self.b.clone(), merge, ks, vrs, result_store)
    }

    /// Table-table inner join: a row for every key present in both, updated when either changes
    /// (deleted when either side is deleted). Both tables must be co-partitioned.
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            inner(joiner),
            TableJoinKind::Inner,
            Named::default(),
            materialized,
        )
    }

    /// [`KTable::join`] with its nodes named (`named`, `<named>-join-this`,
    /// `<named>-join-other`): Kafka Streams' `join(other, joiner, Named, Materialized)`.
    pub fn join_named<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            inner(joiner),
            TableJoinKind::Inner,
            named,
            materialized,
        )
    }

    /// Table-table left join: a row for every key of this table, with the other's value if any.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            left(joiner),
            TableJoinKind::Left,
            Named::default(),
            materialized,
        )
    }

    /// [`KTable::left_join`] with its nodes named (`named`, `<named>-join-this`,
    /// `<named>-join-other`): Kafka Streams' `leftJoin(other, joiner, Named, Materialized)`.
    pub fn left_join_named<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            left(joiner),
            TableJoinKind::Left,
            named,
            materialized,
        )
    }

    /// Table-table outer join: a row for every key of either table.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            outer(joiner),
            TableJoinKind::Outer,
            Named::default(),
            materialized,
        )
    }

    /// [`KTable::outer_join`] with its nodes named (`named`, `<named>-join-this`,
    /// `<named>-join-other`): Kafka Streams' `outerJoin(other, joiner, Named, Materialized)`.
    pub fn outer_join_named<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            outer(joiner),
            TableJoinKind::Outer,
            named,
            materialized,
        )
    }
}

/// A table every instance holds completely, read from its topic by the global thread and kept up
/// to date; joined from streams by any key (no co-partitioning).
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) _t: PhantomData<fn(K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The global store's name.
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

pub(crate) fn global_table<K: Data, V: Data>(
    b: &Shared,
    topic: &str,
    key: Option<SerdeRef<K>>,
    value: Option<SerdeRef<V>>,
    materialized: crate::naming::Materialized<K, V>,
) -> GlobalKTable<K, V> {
    let mut s = b.borrow_mut();
    let store = s.store_name_or(materialized.name.clone(), &format!("{topic}-STATE-STORE-"));
    let source = s.next_name("KSTREAM-SOURCE-");
    let node = s.next_name("KTABLE-SOURCE-");
    let ks = s.key_serde(
        key.or(materialized.key.clone()),
        &format!("global table `{topic}`"),
    );
    let vs = s.value_serde(
        value.or(materialized.value.clone()),
        &format!("global table `{topic}`"),
    );
    if let (Some(k), Some(v)) = (ks, vs) {
        let nullable: SerdeRef<Option<V>> = Arc::new(NullableRef(v.clone()));
        // The topic is the store's changelog: add_global_store turns logging off.
        let sb = materialized.configure(StoreBuilder::timestamped_key_value(
            store.clone(),
            k.clone(),
            v,
        ));
        let st = store.clone();
        let r = s
            .topology
            .add_global_store(sb, &source, topic, k, nullable, &node, move || {
                KTableSource::<K, V>::new(st.clone())
            })
            .map(|_| ());
        s.record(r);
    }
    GlobalKTable {
        store,
        _t: PhantomData,
    }
}
