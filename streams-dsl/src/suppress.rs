//! `KTable::suppress`: hold a table's updates back and emit only the last one per key, when its
//! window closes (emit-final) or after a time limit. The buffer lives in memory, backed by a
//! change-logged store so a restarted task emits exactly what the crashed one would have.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use streams_core::serdes::{Serde, SerdeError, SerdeRef};
use streams_core::{Data, Processor, ProcessorContext, Record, Result, StreamsError};

use crate::change::{Change, ChangeSerde};

/// What a full suppression buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Stop the application with an error naming the buffer (the only choice for emit-final:
    /// emitting early would break the one-result-per-window promise).
    ShutDown,
    /// Emit the oldest buffered updates early to make room.
    EmitEarly,
}

/// Bounds of a suppression buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<usize>,
    max_bytes: Option<usize>,
    when_full: WhenFull,
}

impl BufferConfig {
    /// No bound: memory grows with the number of open windows.
    pub fn unbounded() -> Self {
        BufferConfig {
            max_records: None,
            max_bytes: None,
            when_full: WhenFull::ShutDown,
        }
    }
    /// At most `n` keys buffered.
    pub fn max_records(n: usize) -> Self {
        BufferConfig {
            max_records: Some(n),
            ..Self::unbounded()
        }
    }
    /// At most `n` bytes of serialized keys and values buffered.
    pub fn max_bytes(n: usize) -> Self {
        BufferConfig {
            max_bytes: Some(n),
            ..Self::unbounded()
        }
    }
    /// Fail when full (the default).
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = WhenFull::ShutDown;
        self
    }
    /// Emit early when full.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = WhenFull::EmitEarly;
        self
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum SuppressKind {
    UntilWindowCloses,
    UntilTimeLimit(i64),
}

/// How `KTable::suppress` holds updates back.
#[derive(Debug, Clone)]
pub struct Suppressed {
    pub(crate) kind: SuppressKind,
    pub(crate) buffer: BufferConfig,
    pub(crate) name: Option<String>,
}

impl Suppressed {
    /// Emit-final for windowed tables: one result per window, when stream time passes the window's
    /// end plus grace. The buffer must shut down when full.
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Suppressed {
            kind: SuppressKind::UntilWindowCloses,
            buffer: buffer.shut_down_when_full(),
            name: None,
        }
    }
    /// Emit a key's latest update once stream time is `time_limit_ms` past its first buffered one.
    pub fn until_time_limit(time_limit_ms: i64, buffer: BufferConfig) -> Self {
        Suppressed {
            kind: SuppressKind::UntilTimeLimit(time_limit_ms),
            buffer,
            name: None,
        }
    }
    /// Names the processor (and its store `<name>-store`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A buffered update as stored: when it is due, the timestamp of its record, the change.
#[derive(Clone)]
pub(crate) struct BufferedChange<V> {
    due: i64,
    pub timestamp: i64,
    pub change: Change<V>,
}

/// `[due][timestamp][change]`, 8-byte big-endian times; a change with neither value (a row added
/// and removed while buffered) is stored as nothing.
pub(crate) struct BufferedChangeSerde<V>(pub ChangeSerde<V>);

impl<V: 'static> Serde<BufferedChange<V>> for BufferedChangeSerde<V> {
    fn serialize(&self, b: &BufferedChange<V>) -> std::result::Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&b.due.to_be_bytes());
        out.extend_from_slice(&b.timestamp.to_be_bytes());
        if b.change.new.is_some() || b.change.old.is_some() {
            if let Some(c) = self.0.serialize(&b.change)? {
                out.extend_from_slice(&c);
            }
        }
        Ok(Some(out))
    }
    fn deserialize(
        &self,
        data: Option<&[u8]>,
    ) -> std::result::Result<BufferedChange<V>, SerdeError> {
        let d = data.ok_or(SerdeError::Null {
            type_name: "BufferedChange",
        })?;
        if d.len() < 16 {
            return Err(SerdeError::Invalid {
                format: "suppression buffer entry",
                message: format!("{} bytes", d.len()),
            });
        }
        let time = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            i64::from_be_bytes(a)
        };
        Ok(BufferedChange {
            due: time(&d[..8]),
            timestamp: time(&d[8..16]),
            change: if d.len() == 16 {
                Change::new(None, None)
            } else {
                self.0.deserialize(Some(&d[16..]))?
            },
        })
    }
}

/// When a buffered update is due, from its key and record timestamp.
pub(crate) type DueTime<K> = Arc<dyn Fn(&K, i64) -> i64 + Send + Sync>;

struct Entry<K, V> {
    key: K,
    value: BufferedChange<V>,
    size: usize,
}

pub(crate) struct KTableSuppress<K, V> {
    store: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    /// When an entry is due (window end, or record time) ...
    due: DueTime<K>,
    /// ... and how long after that it is emitted (grace, or the time limit).
    wait_ms: i64,
    drop_tombstones: bool,
    buffer: BufferConfig,
    observed: i64,
    index: BTreeSet<(i64, Vec<u8>)>,
    entries: HashMap<Vec<u8>, Entry<K, V>>,
    bytes: usize,
}

impl<K: Data, V: Data> KTableSuppress<K, V> {
    pub(crate) fn new(
        store: String,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        due: DueTime<K>,
        wait_ms: i64,
        drop_tombstones: bool,
        buffer: BufferConfig,
    ) -> Self {
        KTableSuppress {
            store,
            key_serde,
            value_serde,
            due,
            wait_ms,
            drop_tombstones,
            buffer,
            observed: i64::MIN,
            index: BTreeSet::new(),
            entries: HashMap::new(),
            bytes: 0,
        }
    }

    fn key_bytes(&self, ctx: &ProcessorContext<'_>, key: &K) -> Result<Vec<u8>> {
        self.key_serde
            .serialize(key)
            .map_err(|e| StreamsError::processor_failed(ctx.node_name(), e))?
            .ok_or_else(|| {
                StreamsError::processing(ctx.node_name().to_string(), "null key in suppress")
            })
    }

    fn size_of(&self, kb: &[u8], v: &BufferedChange<V>) -> usize {
        let ser = ChangeSerde(self.value_serde.clone());
        kb.len()
            + 16
            + ser
                .serialize(&v.change)
                .ok()
                .flatten()
                .map_or(0, |b| b.len())
    }

    fn insert(&mut self, kb: Vec<u8>, key: K, value: BufferedChange<V>) {
        let size = self.size_of(&kb, &value);
        self.index.insert((value.due, kb.clone()));
        self.bytes += size;
        self.entries.insert(kb, Entry { key, value, size });
    }

    fn remove(&mut self, kb: &[u8]) -> Option<Entry<K, V>> {
        let e = self.entries.remove(kb)?;
        self.index.remove(&(e.value.due, kb.to_vec()));
        self.bytes -= e.size;
        Some(e)
    }

    fn emit_oldest(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        let Some((_, kb)) = self.index.iter().next().cloned() else {
            return Ok(());
        };
        let Some(e) = self.remove(&kb) else {
            return Ok(());
        };
        ctx.key_value_store::<K, BufferedChange<V>>(&self.store)?
            .delete(&e.key)?;
        if e.value.change.new.is_none() && self.drop_tombstones {
            return Ok(());
        }
        ctx.forward(Record::new(e.key, e.value.change, e.value.timestamp))
    }

    fn over_capacity(&self) -> bool {
        self.buffer
            .max_records
            .is_some_and(|m| self.entries.len() > m)
            || self.buffer.max_bytes.is_some_and(|m| self.bytes > m)
    }
}

impl<K: Data, V: Data> Processor<K, Change<V>> for KTableSuppress<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        // A restored buffer: the entries the previous owner of this task held.
        let all = ctx
            .key_value_store::<K, BufferedChange<V>>(&self.store)?
            .all()?
            .collect::<Result<Vec<_>>>()?;
        for (k, v) in all {
            let kb = self.key_bytes(ctx, &k)?;
            self.observed = self.observed.max(v.timestamp);
            self.insert(kb, k, v);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, Change<V>>) -> Result<()> {
        self.observed = self.observed.max(r.timestamp);
        let kb = self.key_bytes(ctx, &r.key)?;
        let prior = self.remove(&kb);
        let value = BufferedChange {
            due: match &prior {
                Some(p) => p.value.due,
                None => (self.due)(&r.key, r.timestamp),
            },
            timestamp: r.timestamp,
            change: Change::new(
                r.value.new,
                match prior {
                    Some(p) => p.value.change.old,
                    None => r.value.old,
                },
            ),
        };
        ctx.key_value_store::<K, BufferedChange<V>>(&self.store)?
            .put(&r.key, &value)?;
        self.insert(kb, r.key, value);
        let expiry = self.observed.saturating_sub(self.wait_ms);
        while self
            .index
            .iter()
            .next()
            .is_some_and(|(due, _)| *due <= expiry)
        {
            self.emit_oldest(ctx)?;
        }
        while self.over_capacity() {
            match self.buffer.when_full {
                WhenFull::EmitEarly => self.emit_oldest(ctx)?,
                WhenFull::ShutDown => {
                    return Err(StreamsError::processing(
                        ctx.node_name().to_string(),
                        format!(
                            "the suppression buffer (store `{}`) is full: {} records, {} bytes, limits {:?} records / {:?} bytes; raise BufferConfig limits or use BufferConfig::unbounded()",
                            self.store,
                            self.entries.len(),
                            self.bytes,
                            self.buffer.max_records,
                            self.buffer.max_bytes
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}
