//! Serializers and deserializers between typed keys/values and Kafka bytes.
//!
//! A [`Serde`] deals with Kafka's nulls explicitly: `deserialize(None)` is a null key or value. Plain
//! serdes reject null; wrap one in [`Nullable`] to read nulls as `None` into an `Option<T>`.
//!
//! At the Kafka boundary (sources, sinks, repartition topics, the test driver) the runtime calls
//! [`Serde::serialize_for`] and [`Serde::deserialize_from`], which see the topic and the record's
//! headers, as Kafka's `Serializer.serialize(topic, headers, data)` does: what a Schema Registry
//! serde needs to pick a subject or to read and write a schema id header. [`Serdes`] makes the
//! built-in ones.
//!
//! ```
//! use streams_core::serdes::Serdes;
//!
//! let words = Serdes::string();
//! let counts = Serdes::i64();
//! assert_eq!(words.serialize(&"hi".to_string()).unwrap(), Some(b"hi".to_vec()));
//! assert_eq!(counts.deserialize(Some(&7i64.to_be_bytes())).unwrap(), 7);
//! ```

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::record::Headers;

/// Why a key or value could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum SerdeError {
    /// Null data where a value is required.
    #[error("null where a {type_name} was expected (declare the type as Option<_> with a Nullable serde to accept nulls)")]
    Null {
        /// The expected Rust type.
        type_name: &'static str,
    },
    /// The bytes are not a valid encoding.
    #[error("{format} decoding failed: {message}")]
    Invalid {
        /// The encoding, e.g. "UTF-8 string", "JSON".
        format: &'static str,
        /// Details.
        message: String,
    },
}

/// Converts `T` to and from the bytes of a Kafka key or value.
///
/// Implement [`Serde::serialize`] and [`Serde::deserialize`]; a serde that needs the topic or the
/// headers (a Schema Registry serde) also overrides [`Serde::serialize_for`] and
/// [`Serde::deserialize_from`], whose defaults ignore both.
pub trait Serde<T>: Send + Sync + 'static {
    /// `T` as bytes; `Ok(None)` writes a null.
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError>;
    /// Bytes (or null) as `T`.
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError>;
    /// `value` as the key or value of a record for `topic`; the serde may read or add `headers`
    /// (the record's, as written to Kafka).
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        value: &T,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let _ = (topic, headers);
        self.serialize(value)
    }
    /// The key or value of a record read from `topic` with `headers`.
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<T, SerdeError> {
        let _ = (topic, headers);
        self.deserialize(data)
    }
}

/// A shared, type-erased serde, as topologies store them.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

fn required<T>(data: Option<&[u8]>) -> Result<&[u8], SerdeError> {
    data.ok_or(SerdeError::Null {
        type_name: std::any::type_name::<T>(),
    })
}

fn fixed<const N: usize, T>(
    data: Option<&[u8]>,
    format: &'static str,
) -> Result<[u8; N], SerdeError> {
    let b = required::<T>(data)?;
    b.try_into().map_err(|_| SerdeError::Invalid {
        format,
        message: format!("expected {N} bytes, got {}", b.len()),
    })
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.as_bytes().to_vec()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<String, SerdeError> {
        String::from_utf8(required::<String>(data)?.to_vec()).map_err(|e| SerdeError::Invalid {
            format: "UTF-8 string",
            message: e.to_string(),
        })
    }
}

/// Raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(required::<Vec<u8>>(data)?.to_vec())
    }
}

macro_rules! be_serde {
    ($name:ident, $t:ty, $n:literal, $doc:literal, $format:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        impl Serde<$t> for $name {
            fn serialize(&self, value: &$t) -> Result<Option<Vec<u8>>, SerdeError> {
                Ok(Some(value.to_be_bytes().to_vec()))
            }
            fn deserialize(&self, data: Option<&[u8]>) -> Result<$t, SerdeError> {
                Ok(<$t>::from_be_bytes(fixed::<$n, $t>(data, $format)?))
            }
        }
    };
}
be_serde!(
    I64Serde,
    i64,
    8,
    "`i64`, 8 bytes big-endian (Kafka's `LongSerde`).",
    "8-byte long"
);
be_serde!(
    U64Serde,
    u64,
    8,
    "`u64`, 8 bytes big-endian.",
    "8-byte unsigned long"
);
be_serde!(
    I32Serde,
    i32,
    4,
    "`i32`, 4 bytes big-endian (Kafka's `IntegerSerde`).",
    "4-byte integer"
);
be_serde!(
    F64Serde,
    f64,
    8,
    "`f64`, IEEE 754 big-endian (Kafka's `DoubleSerde`).",
    "8-byte double"
);

/// Any `serde` type as JSON (serde_json).
pub struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T> JsonSerde<T> {
    /// The serde.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}
impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError::Invalid {
                format: "JSON",
                message: e.to_string(),
            })
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(required::<T>(data)?).map_err(|e| SerdeError::Invalid {
            format: "JSON",
            message: e.to_string(),
        })
    }
}

/// Any `serde` type in bincode's compact binary format (standard configuration).
pub struct BincodeSerde<T>(PhantomData<fn() -> T>);
impl<T> BincodeSerde<T> {
    /// The serde.
    pub fn new() -> Self {
        BincodeSerde(PhantomData)
    }
}
impl<T> Default for BincodeSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Serde<T> for BincodeSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map(Some)
            .map_err(|e| SerdeError::Invalid {
                format: "bincode",
                message: e.to_string(),
            })
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = required::<T>(data)?;
        let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| SerdeError::Invalid {
            format: "bincode",
            message: e.to_string(),
        })?;
        if used != bytes.len() {
            return Err(SerdeError::Invalid {
                format: "bincode",
                message: format!("{} trailing bytes", bytes.len() - used),
            });
        }
        Ok(value)
    }
}

/// Makes any serde null-aware: Kafka's null is `None`.
pub struct Nullable<T, S>(S, PhantomData<fn() -> T>);
impl<T, S: Serde<T>> Nullable<T, S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Nullable(inner, PhantomData)
    }
}
impl<T: 'static, S: Serde<T>> Serde<Option<T>> for Nullable<T, S> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(data).map(Some),
            None => Ok(None),
        }
    }
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        value: &Option<T>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize_for(topic, headers, v),
            None => Ok(None),
        }
    }
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize_from(topic, headers, data).map(Some),
            None => Ok(None),
        }
    }
}

/// `Option<T>` through a shared serde of `T`.
pub struct NullableRef<T>(pub SerdeRef<T>);
impl<T: 'static> Serde<Option<T>> for NullableRef<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(data).map(Some),
            None => Ok(None),
        }
    }
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        value: &Option<T>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize_for(topic, headers, v),
            None => Ok(None),
        }
    }
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize_from(topic, headers, data).map(Some),
            None => Ok(None),
        }
    }
}

/// Ready-made serdes, shared and type-erased as topologies take them (Kafka's `Serdes`).
#[derive(Debug, Clone, Copy)]
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings.
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// Raw bytes.
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// `i64`, 8 bytes big-endian (Kafka's `Serdes.Long()`).
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    /// `u64`, 8 bytes big-endian.
    pub fn u64() -> SerdeRef<u64> {
        Arc::new(U64Serde)
    }
    /// `i32`, 4 bytes big-endian (Kafka's `Serdes.Integer()`).
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(I32Serde)
    }
    /// `f64`, IEEE 754 big-endian (Kafka's `Serdes.Double()`).
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(F64Serde)
    }
    /// Any `serde` type as JSON.
    pub fn json<T: serde::Serialize + serde::de::DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(JsonSerde::<T>::new())
    }
    /// Any `serde` type as bincode (compact; for internal topics and stores).
    pub fn bincode<T: serde::Serialize + serde::de::DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(BincodeSerde::<T>::new())
    }
    /// `inner`, reading Kafka's null as `None` and writing `None` as null.
    pub fn nullable<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(NullableRef(inner))
    }
}

/// The built-in serde for `T` when there is an obvious one (`String`, `Vec<u8>`, `i64`, `u64`,
/// `i32`, `f64`, and `Option` of those), so DSL users need not name serdes for common types.
pub fn default_serde<T: 'static>() -> Option<SerdeRef<T>> {
    let t = TypeId::of::<T>();
    let boxed: Box<dyn Any> = if t == TypeId::of::<String>() {
        Box::new(Arc::new(StringSerde) as SerdeRef<String>)
    } else if t == TypeId::of::<Vec<u8>>() {
        Box::new(Arc::new(BytesSerde) as SerdeRef<Vec<u8>>)
    } else if t == TypeId::of::<i64>() {
        Box::new(Arc::new(I64Serde) as SerdeRef<i64>)
    } else if t == TypeId::of::<u64>() {
        Box::new(Arc::new(U64Serde) as SerdeRef<u64>)
    } else if t == TypeId::of::<i32>() {
        Box::new(Arc::new(I32Serde) as SerdeRef<i32>)
    } else if t == TypeId::of::<f64>() {
        Box::new(Arc::new(F64Serde) as SerdeRef<f64>)
    } else if t == TypeId::of::<Option<String>>() {
        Box::new(Arc::new(Nullable::new(StringSerde)) as SerdeRef<Option<String>>)
    } else if t == TypeId::of::<Option<Vec<u8>>>() {
        Box::new(Arc::new(Nullable::new(BytesSerde)) as SerdeRef<Option<Vec<u8>>>)
    } else if t == TypeId::of::<Option<i64>>() {
        Box::new(Arc::new(Nullable::new(I64Serde)) as SerdeRef<Option<i64>>)
    } else if t == TypeId::of::<Option<f64>>() {
        Box::new(Arc::new(Nullable::new(F64Serde)) as SerdeRef<Option<f64>>)
    } else {
        return None;
    };
    boxed.downcast::<SerdeRef<T>>().ok().map(|b| *b)
}

/// The serde a `default.key.serde` / `default.value.serde` config value names, if it fits `T`.
/// Accepts short names (`string`, `bytes`, `long`, `integer`, `double`) and Kafka's class names.
pub fn serde_by_name<T: 'static>(name: &str) -> Option<SerdeRef<T>> {
    let short = name
        .rsplit(['$', '.'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let wanted = match short.trim_end_matches("serde") {
        "string" => TypeId::of::<String>(),
        "bytes" | "bytearray" => TypeId::of::<Vec<u8>>(),
        "long" => TypeId::of::<i64>(),
        "integer" => TypeId::of::<i32>(),
        "double" => TypeId::of::<f64>(),
        _ => return None,
    };
    if wanted == TypeId::of::<T>() {
        default_serde::<T>()
    } else {
        None
    }
}

/// The short names `serde_by_name` understands, for error messages.
pub const SERDE_NAMES: &[&str] = &["string", "bytes", "long", "integer", "double"];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kafka_compatible_numbers() {
        assert_eq!(
            I64Serde.serialize(&1).unwrap(),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(I64Serde.deserialize(Some(&[0xff; 8])).unwrap(), -1);
        assert_eq!(I32Serde.serialize(&258).unwrap(), Some(vec![0, 0, 1, 2]));
        assert_eq!(
            F64Serde
                .deserialize(F64Serde.serialize(&1.5).unwrap().as_deref())
                .unwrap(),
            1.5
        );
        assert_eq!(
            U64Serde.deserialize(Some(&u64::MAX.to_be_bytes())).unwrap(),
            u64::MAX
        );
        let err = I64Serde.deserialize(Some(&[1, 2, 3])).unwrap_err();
        assert!(err.to_string().contains("expected 8 bytes, got 3"), "{err}");
    }

    #[test]
    fn nulls_are_explicit() {
        assert!(matches!(
            StringSerde.deserialize(None),
            Err(SerdeError::Null { .. })
        ));
        let n = Nullable::new(StringSerde);
        assert_eq!(n.deserialize(None).unwrap(), None);
        assert_eq!(n.deserialize(Some(b"x")).unwrap(), Some("x".to_string()));
        assert_eq!(n.serialize(&None).unwrap(), None);
        assert!(StringSerde.deserialize(Some(&[0xff])).is_err());
    }

    #[test]
    fn json_and_bincode_round_trip() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Order {
            id: u32,
            item: String,
        }
        let o = Order {
            id: 7,
            item: "tea".into(),
        };
        let j = JsonSerde::<Order>::new();
        assert_eq!(
            j.serialize(&o).unwrap().unwrap(),
            br#"{"id":7,"item":"tea"}"#.to_vec()
        );
        assert_eq!(j.deserialize(Some(br#"{"id":7,"item":"tea"}"#)).unwrap(), o);
        assert!(j.deserialize(Some(b"{")).is_err());
        let b = BincodeSerde::<Order>::new();
        let bytes = b.serialize(&o).unwrap().unwrap();
        assert_eq!(b.deserialize(Some(&bytes)).unwrap(), o);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(b.deserialize(Some(&longer)).is_err());
    }

    #[test]
    fn defaults_by_type_and_name() {
        assert!(default_serde::<String>().is_some());
        assert!(default_serde::<Option<i64>>().is_some());
        assert!(default_serde::<(u8, u8)>().is_none());
        assert!(serde_by_name::<String>(
            "org.apache.kafka.common.serialization.Serdes$StringSerde"
        )
        .is_some());
        assert!(serde_by_name::<i64>("long").is_some());
        assert!(serde_by_name::<i64>("string").is_none());
    }
}
