//! KTable-KTable foreign-key join (KIP-213). The left table's rows subscribe to the right row
//! their foreign key names: subscriptions go to a topic partitioned like the right table, where
//! they are stored and answered (now, and again whenever the right row changes); responses go back
//! to a topic partitioned like the left table, where a response is joined with the left row if
//! the row is still the one that subscribed (same hash), else dropped as stale.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serdes::{BytesSerde, Serde, SerdeError, SerdeRef};
use streams_core::{
    Data, PartitionChooser, Processor, ProcessorContext, Record, Result, StoreBuilder, StreamsError,
};

use crate::change::Change;
use crate::join_processors::{JoinFn, TableMaterialize};
use crate::ktable::KTable;
use crate::naming::Materialized;
use crate::processors::PassThrough;

const DELETE_KEY_NO_PROPAGATE: u8 = 0;
const DELETE_KEY_AND_PROPAGATE: u8 = 1;
const PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE: u8 = 2;
const PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE: u8 = 3;

/// A left row's subscription to a right key (Kafka Streams' `SubscriptionWrapper`, version 1).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Subscription {
    instruction: u8,
    hash: Option<ValueHash>,
    /// The left row's key, serialized.
    primary: Vec<u8>,
    /// The partition of the left row's task, where the response must go (absent in version 0).
    primary_partition: Option<i32>,
}

/// The right value a subscription sees, with the hash of the left row that subscribed (Kafka
/// Streams' `SubscriptionResponseWrapper`, version 0).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Response<VO> {
    hash: Option<ValueHash>,
    value: Option<VO>,
    /// Where the response goes; not on the wire.
    primary_partition: Option<i32>,
}

/// Kafka Streams' hash of a serialized left value: MurmurHash3 x64 128-bit with seed 104729, as
/// the two 64-bit halves Java writes big-endian (`h1`, then `h2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueHash([u64; 2]);

const MURMUR3_SEED: u32 = 104_729;
const NO_HASH: u8 = 0x80;

impl ValueHash {
    fn of(bytes: &[u8]) -> ValueHash {
        // Reading from a slice cannot fail.
        let h = murmur3::murmur3_x64_128(&mut std::io::Cursor::new(bytes), MURMUR3_SEED)
            .unwrap_or_default();
        ValueHash([h as u64, (h >> 64) as u64])
    }

    /// The first byte of a wrapper: its version, with the top bit set when there is no hash.
    fn flagged(version: u8, hash: Option<ValueHash>) -> u8 {
        if hash.is_some() {
            version
        } else {
            version | NO_HASH
        }
    }

    fn put(hash: Option<ValueHash>, out: &mut Vec<u8>) {
        if let Some(ValueHash([h1, h2])) = hash {
            out.extend_from_slice(&h1.to_be_bytes());
            out.extend_from_slice(&h2.to_be_bytes());
        }
    }
}

fn invalid(m: &str) -> SerdeError {
    SerdeError::Invalid {
        format: "foreign-key join wrapper",
        message: m.to_string(),
    }
}

/// Reads a wrapper's first byte (`first`: version and no-hash flag) and, with a hash, its 16
/// bytes off the front of `rest`.
fn take_hash(
    first: u8,
    rest: &[u8],
) -> std::result::Result<(u8, Option<ValueHash>, &[u8]), SerdeError> {
    let version = first & !NO_HASH;
    if first & NO_HASH != 0 {
        return Ok((version, None, rest));
    }
    if rest.len() < 16 {
        return Err(invalid("truncated hash"));
    }
    let (h, rest) = rest.split_at(16);
    let half = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_be_bytes(a)
    };
    Ok((
        version,
        Some(ValueHash([half(&h[..8]), half(&h[8..])])),
        rest,
    ))
}

/// `[version 1 | no-hash flag][instruction][hash][primary key][primary partition: i32]`; version 0
/// (no partition) is read too.
pub(crate) struct SubscriptionSerde;

impl Serde<Subscription> for SubscriptionSerde {
    fn serialize(&self, s: &Subscription) -> std::result::Result<Option<Vec<u8>>, SerdeError> {
        let version = u8::from(s.primary_partition.is_some());
        let mut out = Vec::with_capacity(2 + 16 + s.primary.len() + 4);
        out.push(ValueHash::flagged(version, s.hash));
        out.push(s.instruction);
        ValueHash::put(s.hash, &mut out);
        out.extend_from_slice(&s.primary);
        if let Some(p) = s.primary_partition {
            out.extend_from_slice(&p.to_be_bytes());
        }
        Ok(Some(out))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> std::result::Result<Subscription, SerdeError> {
        let d = data.ok_or(SerdeError::Null {
            type_name: "Subscription",
        })?;
        let (&first, rest) = d.split_first().ok_or_else(|| invalid("empty"))?;
        let (&instruction, rest) = rest
            .split_first()
            .ok_or_else(|| invalid("no instruction"))?;
        let (version, hash, rest) = take_hash(first, rest)?;
        let (primary, primary_partition) = match version {
            0 => (rest, None),
            1 if rest.len() >= 4 => {
                let (p, part) = rest.split_at(rest.len() - 4);
                (
                    p,
                    Some(i32::from_be_bytes([part[0], part[1], part[2], part[3]])),
                )
            }
            1 => return Err(invalid("truncated primary partition")),
            v => return Err(invalid(&format!("unknown subscription version {v}"))),
        };
        if instruction > PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE {
            return Err(invalid(&format!("unknown instruction {instruction}")));
        }
        Ok(Subscription {
            instruction,
            hash,
            primary: primary.to_vec(),
            primary_partition,
        })
    }
}

/// `[version 0 | no-hash flag][hash][value]`; an empty value is null (as in Kafka Streams).
pub(crate) struct ResponseSerde<VO>(pub SerdeRef<VO>);

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(&self, r: &Response<VO>) -> std::result::Result<Option<Vec<u8>>, SerdeError> {
        let mut out = vec![ValueHash::flagged(0, r.hash)];
        ValueHash::put(r.hash, &mut out);
        if let Some(v) = r
            .value
            .as_ref()
            .map(|v| self.0.serialize(v))
            .transpose()?
            .flatten()
        {
            out.extend_from_slice(&v);
        }
        Ok(Some(out))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> std::result::Result<Response<VO>, SerdeError> {
        let d = data.ok_or(SerdeError::Null {
            type_name: "Response",
        })?;
        let (&first, rest) = d.split_first().ok_or_else(|| invalid("empty"))?;
        let (version, hash, rest) = take_hash(first, rest)?;
        if version != 0 {
            return Err(invalid(&format!("unknown response version {version}")));
        }
        let value = if rest.is_empty() {
            None
        } else {
            Some(self.0.deserialize(Some(rest))?)
        };
        Ok(Response {
            hash,
            value,
            primary_partition: None,
        })
    }
}

fn hash_of<V: 'static>(
    ctx: &ProcessorContext<'_>,
    serde: &SerdeRef<V>,
    v: Option<&V>,
) -> Result<Option<ValueHash>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = serde
        .serialize(v)
        .map_err(|e| StreamsError::processor_failed(ctx.node_name(), e))?
        .unwrap_or_default();
    Ok(Some(ValueHash::of(&bytes)))
}

fn ser<T: 'static>(ctx: &ProcessorContext<'_>, s: &SerdeRef<T>, v: &T) -> Result<Vec<u8>> {
    s.serialize(v)
        .map_err(|e| StreamsError::processor_failed(ctx.node_name(), e))?
        .ok_or_else(|| StreamsError::processing(ctx.node_name().to_string(), "null key"))
}

/// Left side: turns left-row changes into subscriptions keyed by foreign key.
pub(crate) struct SubscriptionSend<K, V, KO> {
    extractor: Arc<dyn Fn(&V) -> KO + Send + Sync>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    fk_serde: SerdeRef<KO>,
    left_join: bool,
    /// The left table is versioned: its out-of-order updates subscribe to nothing (dropped, as
    /// in Kafka Streams).
    versioned: bool,
}

impl<K: Data, V: Data, KO: Data> SubscriptionSend<K, V, KO> {
    fn send(
        &self,
        ctx: &mut ProcessorContext<'_>,
        fk: KO,
        instruction: u8,
        primary: &[u8],
        hash: Option<ValueHash>,
        ts: i64,
    ) -> Result<()> {
        let primary_partition = Some(ctx.task_id().partition);
        ctx.forward(Record::new(
            fk,
            Subscription {
                instruction,
                hash,
                primary: primary.to_vec(),
                primary_partition,
            },
            ts,
        ))
    }
}

impl<K: Data, V: Data, KO: Data> Processor<K, Change<V>> for SubscriptionSend<K, V, KO> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        if self.versioned && !r.value.is_latest {
            ctx.record_dropped();
            return Ok(());
        }
        let primary = ser(ctx, &self.key_serde, &r.key)?;
        let hash = hash_of(ctx, &self.value_serde, r.value.new.as_ref())?;
        let ts = r.timestamp;
        let new_fk = r.value.new.as_ref().map(|v| (self.extractor)(v));
        match (&r.value.old, new_fk) {
            (Some(old), Some(new_fk)) => {
                let old_fk = (self.extractor)(old);
                let moved =
                    ser(ctx, &self.fk_serde, &old_fk)? != ser(ctx, &self.fk_serde, &new_fk)?;
                if moved {
                    self.send(ctx, old_fk, DELETE_KEY_NO_PROPAGATE, &primary, hash, ts)?;
                }
                // A row that moved to another foreign key unsets its earlier result even without a
                // right value; one that stayed changes the result only where there is one to join
                // (inner join; Kafka Streams' instructions).
                let instruction = if moved || self.left_join {
                    PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE
                } else {
                    PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE
                };
                self.send(ctx, new_fk, instruction, &primary, hash, ts)
            }
            (Some(old), None) => {
                let old_fk = (self.extractor)(old);
                self.send(ctx, old_fk, DELETE_KEY_AND_PROPAGATE, &primary, hash, ts)
            }
            (None, Some(new_fk)) => {
                let instruction = if self.left_join {
                    PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE
                } else {
                    PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE
                };
                self.send(ctx, new_fk, instruction, &primary, hash, ts)
            }
            (None, None) => Ok(()),
        }
    }
}

fn prefix(fk: &[u8]) -> Vec<u8> {
    let mut p = (fk.len() as u32).to_be_bytes().to_vec();
    p.extend_from_slice(fk);
    p
}

/// Right side: keeps subscriptions in a timestamped store keyed as Kafka Streams' `CombinedKey`
/// (`[fk length: i32][fk][primary]`), and passes each on to be answered.
pub(crate) struct SubscriptionReceive<KO> {
    subscriptions: String,
    fk_serde: SerdeRef<KO>,
}

impl<KO: Data> Processor<KO, Subscription> for SubscriptionReceive<KO> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        r: Record<KO, Subscription>,
    ) -> Result<()> {
        let mut key = prefix(&ser(ctx, &self.fk_serde, &r.key)?);
        key.extend_from_slice(&r.value.primary);
        {
            let mut store =
                ctx.timestamped_key_value_store::<Vec<u8>, Subscription>(&self.subscriptions)?;
            match r.value.instruction {
                DELETE_KEY_NO_PROPAGATE | DELETE_KEY_AND_PROPAGATE => {
                    store.delete(&key)?;
                }
                _ => store.put(&key, &r.value, r.timestamp)?,
            }
        }
        ctx.forward(r)
    }
}

/// Right side: answers a subscription with the right row's current value.
pub(crate) struct SubscriptionJoin<KO, VO> {
    right_store: String,
    left_join: bool,
    _t: PhantomData<fn(KO, VO)>,
}

impl<KO: Data, VO: Data> Processor<KO, Subscription> for SubscriptionJoin<KO, VO> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        r: Record<KO, Subscription>,
    ) -> Result<()> {
        let sub = r.value;
        let right = ctx
            .timestamped_key_value_store::<KO, VO>(&self.right_store)?
            .get(&r.key)?;
        let send = match sub.instruction {
            DELETE_KEY_NO_PROPAGATE => false,
            PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE => right.is_some(),
            _ => true,
        };
        if !send {
            return Ok(());
        }
        // A left row deleted from a left join unsets its result at its own time (Kafka Streams
        // resolves it without the right row); otherwise the later of both rows' times.
        let ts = match &right {
            Some(v) if !(self.left_join && sub.instruction == DELETE_KEY_AND_PROPAGATE) => {
                v.timestamp.max(r.timestamp)
            }
            _ => r.timestamp,
        };
        ctx.forward(Record::new(
            sub.primary,
            Response {
                hash: sub.hash,
                value: right.map(|v| v.value),
                primary_partition: sub.primary_partition,
            },
            ts,
        ))
    }
}

/// Right side: a right row changed; every subscriber gets the new value.
pub(crate) struct RightChange<KO, VO> {
    subscriptions: String,
    fk_serde: SerdeRef<KO>,
    /// The right table is versioned: its out-of-order updates reach no subscriber (dropped).
    versioned: bool,
    _t: PhantomData<fn(VO)>,
}

impl<KO: Data, VO: Data> Processor<KO, Change<VO>> for RightChange<KO, VO> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<KO, Change<VO>>) -> Result<()> {
        if self.versioned && !r.value.is_latest {
            ctx.record_dropped();
            return Ok(());
        }
        let p = prefix(&ser(ctx, &self.fk_serde, &r.key)?);
        let subs = ctx
            .timestamped_key_value_store::<Vec<u8>, Subscription>(&self.subscriptions)?
            .prefix_scan(&p)?
            .collect::<Result<Vec<_>>>()?;
        for (_, sub) in subs {
            let sub = sub.value;
            ctx.forward(Record::new(
                sub.primary,
                Response {
                    hash: sub.hash,
                    value: r.value.new.clone(),
                    primary_partition: sub.primary_partition,
                },
                r.timestamp,
            ))?;
        }
        Ok(())
    }
}

/// Left side: joins a response with the left row, unless the row changed since it subscribed.
pub(crate) struct ResponseJoin<K, V, VO, VR> {
    left_store: String,
    value_serde: SerdeRef<V>,
    joiner: JoinFn<V, VO, VR>,
    _t: PhantomData<fn(K)>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Response<VO>>
    for ResponseJoin<K, V, VO, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        r: Record<K, Response<VO>>,
    ) -> Result<()> {
        let left = ctx
            .timestamped_key_value_store::<K, V>(&self.left_store)?
            .get(&r.key)?;
        let current = hash_of(ctx, &self.value_serde, left.as_ref().map(|l| &l.value))?;
        if current != r.value.hash {
            tracing::debug!(
                node = ctx.node_name(),
                "dropping a stale foreign-key join response"
            );
            return Ok(());
        }
        let new = (self.joiner)(left.as_ref().map(|l| &l.value), r.value.value.as_ref());
        ctx.forward(Record {
            key: r.key,
            value: Change::new(new, None),
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// The partition a foreign key lives in (`None`: the default partitioner's).
type ForeignKeyPartitioner<KO> = Arc<dyn Fn(&KO) -> Option<i32> + Send + Sync>;

/// The name and the foreign table's partitioner of a foreign-key join (Kafka Streams'
/// `TableJoined`).
pub struct TableJoined<KO> {
    name: Option<String>,
    other_partitioner: Option<ForeignKeyPartitioner<KO>>,
}

impl<KO> Default for TableJoined<KO> {
    fn default() -> Self {
        TableJoined {
            name: None,
            other_partitioner: None,
        }
    }
}

impl<KO> TableJoined<KO> {
    /// Names the join: its nodes, its subscription store (`<name>-subscription-store`) and its
    /// topics (`<name>-subscription-registration-topic`, `<name>-subscription-response-topic`),
    /// as Kafka Streams names them.
    pub fn as_(name: impl Into<String>) -> Self {
        TableJoined {
            name: Some(name.into()),
            other_partitioner: None,
        }
    }

    /// How the foreign table is partitioned, when not by the default partitioner of its key
    /// (`None` from `partitioner` falls back to it): subscriptions must reach the partition
    /// holding their foreign key. Responses always return to the subscribing row's partition.
    pub fn with_other_partitioner(
        mut self,
        partitioner: impl Fn(&KO) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.other_partitioner = Some(Arc::new(partitioner));
        self
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    fn fk_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: JoinFn<V, VO, VR>,
        left_join: bool,
        table_joined: TableJoined<KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let (Some((left_store, left_in)), Some((right_store, right_in))) =
            (self.materialized(), other.materialized())
        else {
            return KTable::new(self.b.clone(), self.node.clone(), None, None, None);
        };
        let (left_versioned, right_versioned) = (self.versioned_upstream, other.versioned_upstream);
        let mut s = self.b.borrow_mut();
        // As Kafka Streams: both sides send old values (a left row's old foreign key is
        // unsubscribed).
        self.old_values.enable(&mut s, true);
        other.old_values.enable(&mut s, true);
        let what = "foreign-key join";
        let (Some(ks), Some(vs), Some(kos), Some(vos)) = (
            s.key_serde(self.key_serde.clone(), what),
            s.value_serde(self.value_serde.clone(), what),
            s.key_serde(other.key_serde.clone(), what),
            s.value_serde(other.value_serde.clone(), what),
        ) else {
            drop(s);
            return KTable::new(self.b.clone(), self.node.clone(), None, None, None);
        };
        // Kafka Streams' names, in its order: the internal topics and the subscription store
        // (and so its changelog) are those of the same Java topology.
        // A named join's nodes are `<name><suffix>`, each still using up its index.
        let name = table_joined.name;
        let mut named = |suffix: &str, prefix: &str| {
            s.name_or(name.as_ref().map(|n| format!("{n}{suffix}")), prefix)
        };
        let sub_topic = format!(
            "{}-topic",
            named(
                "-subscription-registration",
                "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-"
            )
        );
        let send = named(
            "-subscription-registration-processor",
            "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-",
        );
        let sub_sink = named("-subscription-registration-sink", "KTABLE-SINK-");
        let sub_source = named("-subscription-registration-source", "KTABLE-SOURCE-");
        let sub_store = named(
            "-subscription-store",
            "KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-",
        );
        let receive = named(
            "-subscription-receive",
            "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-",
        );
        let join = named(
            "-subscription-join-foreign",
            "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-",
        );
        let right_change = named(
            "-foreign-join-subscription",
            "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-",
        );
        let resp_topic = format!(
            "{}-topic",
            named(
                "-subscription-response",
                "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-"
            )
        );
        let resp_sink = named("-subscription-response-sink", "KTABLE-SINK-");
        let resp_source = named("-subscription-response-source", "KTABLE-SOURCE-");
        let resolve = named(
            "-subscription-response-resolver",
            "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR-",
        );
        let output = named("-result", "KTABLE-FK-JOIN-OUTPUT-");
        let result_store = s.store_name_or(
            materialized.name.clone(),
            "KTABLE-FK-JOIN-OUTPUT-STATE-STORE-",
        );
        s.topology.add_internal_topic(&sub_topic);
        s.topology.add_internal_topic(&resp_topic);
        let bytes: SerdeRef<Vec<u8>> = Arc::new(BytesSerde);
        let subs: SerdeRef<Subscription> = Arc::new(SubscriptionSerde);
        let resps: SerdeRef<Response<VO>> = Arc::new(ResponseSerde(vos.clone()));
        let (k1, v1, ko1, ko2, ko3) = (
            ks.clone(),
            vs.clone(),
            kos.clone(),
            kos.clone(),
            kos.clone(),
        );
        let (ss1, ss2, rs1, ls1, v2) = (
            sub_store.clone(),
            sub_store.clone(),
            right_store.clone(),
            left_store.clone(),
            vs.clone(),
        );
        // Responses go back to the partition of the left row's task (Kafka Streams' v1
        // subscriptions), else where the default partitioner puts the left key.
        let to_primary_partition: PartitionChooser<Vec<u8>, Response<VO>> =
            Arc::new(|_, r| r.primary_partition);
        let r = s
            .topology
            .add_processor::<K, Change<V>, _, _>(
                &send,
                move || SubscriptionSend::<K, V, KO> {
                    extractor: extractor.clone(),
                    key_serde: k1.clone(),
                    value_serde: v1.clone(),
                    fk_serde: ko1.clone(),
                    left_join,
                    versioned: left_versioned,
                },
                &[&left_in],
            )
            .and_then(|t| match &table_joined.other_partitioner {
                Some(p) => {
                    let p = p.clone();
                    let by_foreign_key: PartitionChooser<KO, Subscription> =
                        Arc::new(move |fk, _| p(fk));
                    t.add_sink_with_partitioner(
                        &sub_sink,
                        &sub_topic,
                        kos.clone(),
                        subs.clone(),
                        by_foreign_key,
                        &[&send],
                    )
                }
                None => t.add_sink(&sub_sink, &sub_topic, kos.clone(), subs.clone(), &[&send]),
            })
            .and_then(|t| t.add_source(&sub_source, &[&sub_topic], kos.clone(), subs.clone()))
            .and_then(|t| {
                t.add_processor::<KO, Subscription, _, _>(
                    &receive,
                    move || SubscriptionReceive::<KO> {
                        subscriptions: ss1.clone(),
                        fk_serde: ko2.clone(),
                    },
                    &[&sub_source],
                )
            })
            .and_then(|t| {
                t.add_processor::<KO, Subscription, _, _>(
                    &join,
                    move || SubscriptionJoin::<KO, VO> {
                        right_store: rs1.clone(),
                        left_join,
                        _t: PhantomData,
                    },
                    &[&receive],
                )
            })
            .and_then(|t| {
                t.add_processor::<KO, Change<VO>, _, _>(
                    &right_change,
                    move || RightChange::<KO, VO> {
                        subscriptions: ss2.clone(),
                        fk_serde: ko3.clone(),
                        versioned: right_versioned,
                        _t: PhantomData,
                    },
                    &[&right_in],
                )
            })
            .and_then(|t| {
                t.add_state_store(
                    StoreBuilder::timestamped_key_value(
                        sub_store.clone(),
                        bytes.clone(),
                        subs.clone(),
                    ),
                    &[&receive, &right_change],
                )
            })
            .and_then(|t| t.connect_processor_and_store(&join, &right_store))
            .and_then(|t| {
                t.add_sink_with_partitioner(
                    &resp_sink,
                    &resp_topic,
                    bytes.clone(),
                    resps.clone(),
                    to_primary_partition,
                    &[&join, &right_change],
                )
            })
            .and_then(|t| t.add_source(&resp_source, &[&resp_topic], ks.clone(), resps.clone()))
            .and_then(|t| {
                t.add_processor::<K, Response<VO>, _, _>(
                    &resolve,
                    move || ResponseJoin::<K, V, VO, VR> {
                        left_store: ls1.clone(),
                        value_serde: v2.clone(),
                        joiner: joiner.clone(),
                        _t: PhantomData,
                    },
                    &[&resp_source],
                )
            })
            .and_then(|t| t.connect_processor_and_store(&resolve, &left_store))
            .map(|_| ());
        s.record(r);
        // The output node materializes the result when the join is given a store name.
        let vrs = materialized.value.clone();
        let materialize = materialized.name.is_some();
        let what = format!("foreign-key join store `{result_store}`");
        let stored = match (materialize, s.value_serde(vrs.clone(), &what)) {
            (true, Some(vr)) => Some(vr),
            _ => None,
        };
        let r = match &stored {
            Some(vr) => {
                let st = result_store.clone();
                let sb = materialized.configure(StoreBuilder::timestamped_key_value(
                    result_store.clone(),
                    ks.clone(),
                    vr.clone(),
                ));
                s.topology
                    .add_processor::<K, Change<VR>, _, _>(
                        &output,
                        move || TableMaterialize::<K, VR> {
                            store: st.clone(),
                            _t: PhantomData,
                        },
                        &[&resolve],
                    )
                    .and_then(|t| t.add_state_store(sb, &[&output]))
                    .map(|_| ())
            }
            None => s
                .topology
                .add_processor::<K, Change<VR>, _, _>(
                    &output,
                    || PassThrough::<K, Change<VR>>(PhantomData),
                    &[&resolve],
                )
                .map(|_| ()),
        };
        s.record(r);
        drop(s);
        KTable::new(
            self.b.clone(),
            output,
            Some(ks),
            vrs,
            stored.map(|_| result_store),
        )
    }

    /// Foreign-key inner join: each row of this table joins the row of `other` whose key
    /// `extractor` takes from its value. The tables need not be co-partitioned. A result is
    /// updated when either row changes and deleted when either is deleted or the foreign key
    /// points to a missing row.
    pub fn join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let j: JoinFn<V, VO, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        });
        self.fk_join(
            other,
            Arc::new(extractor),
            j,
            false,
            TableJoined::default(),
            materialized,
        )
    }

    /// [`KTable::join_on_foreign_key`] named and with the foreign table's partitioner
    /// (Kafka Streams' `join(other, extractor, joiner, TableJoined, Materialized)`).
    pub fn join_on_foreign_key_with<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        table_joined: TableJoined<KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let j: JoinFn<V, VO, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        });
        self.fk_join(
            other,
            Arc::new(extractor),
            j,
            false,
            table_joined,
            materialized,
        )
    }

    /// Foreign-key left join: every row of this table, with the foreign row's value if any.
    pub fn left_join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let j: JoinFn<V, VO, VR> = Arc::new(move |l, r| l.map(|l| joiner(l, r)));
        self.fk_join(
            other,
            Arc::new(extractor),
            j,
            true,
            TableJoined::default(),
            materialized,
        )
    }

    /// [`KTable::left_join_on_foreign_key`] named and with the foreign table's partitioner.
    pub fn left_join_on_foreign_key_with<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        table_joined: TableJoined<KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let j: JoinFn<V, VO, VR> = Arc::new(move |l, r| l.map(|l| joiner(l, r)));
        self.fk_join(
            other,
            Arc::new(extractor),
            j,
            true,
            table_joined,
            materialized,
        )
    }
}
