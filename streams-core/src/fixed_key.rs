//! Value-only processing (Kafka Streams' `FixedKeyProcessor`): processors that cannot change a
//! record's key, so a stream they transform needs no repartition before grouping or joining.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::processor::{Processor, ProcessorContext, PunctuatorId};
use crate::record::{Data, Headers, Record};
use crate::Result;

/// A record whose key cannot be replaced: only its value, timestamp and headers can.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedKeyRecord<K, V> {
    key: K,
    /// The value.
    pub value: V,
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> FixedKeyRecord<K, V> {
    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }
    /// The same record with another value (of any type).
    pub fn with_value<V2>(self, value: V2) -> FixedKeyRecord<K, V2> {
        FixedKeyRecord {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// The context of a [`FixedKeyProcessor`]: everything a [`ProcessorContext`] offers (stores,
/// punctuation, metadata), but `forward` takes [`FixedKeyRecord`]s, so keys stay as they came.
pub struct FixedKeyContext<'c, 'a, K> {
    inner: &'c mut ProcessorContext<'a>,
    _key: PhantomData<fn(K)>,
}

impl<K: Data> FixedKeyContext<'_, '_, K> {
    /// Sends `record` to every child of this node.
    pub fn forward<V: Data>(&mut self, record: FixedKeyRecord<K, V>) -> Result<()> {
        self.inner.forward(Record {
            key: record.key,
            value: record.value,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

impl<'a, K> Deref for FixedKeyContext<'_, 'a, K> {
    type Target = ProcessorContext<'a>;
    fn deref(&self) -> &Self::Target {
        self.inner
    }
}

impl<K> DerefMut for FixedKeyContext<'_, '_, K> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.inner
    }
}

/// A processor of values (Kafka Streams' `FixedKeyProcessor`), added with
/// `KStream::process_values` in the DSL.
pub trait FixedKeyProcessor<K: Data, V: Data>: Send {
    /// Called once per task before any record; schedule punctuations here.
    fn init(&mut self, _ctx: &mut FixedKeyContext<'_, '_, K>) -> Result<()> {
        Ok(())
    }
    /// Handles one record.
    fn process(
        &mut self,
        ctx: &mut FixedKeyContext<'_, '_, K>,
        record: FixedKeyRecord<K, V>,
    ) -> Result<()>;
    /// Handles a punctuation scheduled with [`ProcessorContext::schedule`].
    fn punctuate(
        &mut self,
        _ctx: &mut FixedKeyContext<'_, '_, K>,
        _id: PunctuatorId,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
    /// Called when the task closes.
    fn close(&mut self, _ctx: &mut FixedKeyContext<'_, '_, K>) -> Result<()> {
        Ok(())
    }
}

/// `processor` as a [`Processor`] (what `KStream::process_values` adds to the topology).
pub fn fixed_key_processor<K: Data, V: Data, P: FixedKeyProcessor<K, V>>(
    processor: P,
) -> impl Processor<K, V> {
    FixedKeyAdapter {
        inner: processor,
        _t: PhantomData,
    }
}

struct FixedKeyAdapter<K, V, P> {
    inner: P,
    _t: PhantomData<fn(K, V)>,
}

fn fixed<'c, 'a, K>(ctx: &'c mut ProcessorContext<'a>) -> FixedKeyContext<'c, 'a, K> {
    FixedKeyContext {
        inner: ctx,
        _key: PhantomData,
    }
}

impl<K: Data, V: Data, P: FixedKeyProcessor<K, V>> Processor<K, V> for FixedKeyAdapter<K, V, P> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.inner.init(&mut fixed(ctx))
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        let record = FixedKeyRecord {
            key: r.key,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
        };
        self.inner.process(&mut fixed(ctx), record)
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.inner.punctuate(&mut fixed(ctx), id, timestamp)
    }
    fn close(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        self.inner.close(&mut fixed(ctx))
    }
}
