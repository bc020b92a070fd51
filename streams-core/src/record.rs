use std::any::Any;
use std::sync::Arc;

/// Kafka record headers, in order; a header value may be null.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Option<Vec<u8>>)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }
    /// Appends a header (keys may repeat, as in Kafka).
    pub fn add(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> &mut Self {
        self.0.push((key.into(), value));
        self
    }
    /// The last value of `key`.
    pub fn last(&self, key: &str) -> Option<Option<&[u8]>> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref())
    }
    /// Removes every header named `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A record flowing through a topology: typed key and value, timestamp (ms) and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in ms since the epoch.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
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
}

/// Where the record being processed came from (absent inside wall-clock punctuations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// What any key or value type must be to flow between processors.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

pub(crate) type Datum = Arc<dyn Any + Send + Sync>;

/// A record whose key and value types are erased, as it travels between nodes.
#[derive(Clone)]
pub(crate) struct DynRecord {
    pub key: Datum,
    pub value: Datum,
    pub timestamp: i64,
    pub headers: Headers,
}

impl DynRecord {
    pub fn from_typed<K: Data, V: Data>(r: Record<K, V>) -> Self {
        DynRecord {
            key: Arc::new(r.key),
            value: Arc::new(r.value),
            timestamp: r.timestamp,
            headers: r.headers,
        }
    }

    /// The typed record, or `None` when the types differ. Clones only if another node still shares the data.
    pub fn into_typed<K: Data, V: Data>(self) -> Option<Record<K, V>> {
        let key = self.key.downcast::<K>().ok()?;
        let value = self.value.downcast::<V>().ok()?;
        Some(Record {
            key: Arc::unwrap_or_clone(key),
            value: Arc::unwrap_or_clone(value),
            timestamp: self.timestamp,
            headers: self.headers,
        })
    }
}
