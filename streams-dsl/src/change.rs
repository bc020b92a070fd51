use streams_core::serdes::{Serde, SerdeError, SerdeRef};
use streams_core::Headers;

/// A table update: the new value and the one it replaced (`None` = absent / deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update.
    pub new: Option<V>,
    /// The value before it.
    pub old: Option<V>,
    /// The update is the key's latest version. Only a versioned table (KIP-889) sees an update
    /// that is not: one older than the key's latest, which changes its history, not its
    /// current value. Table-table joins and `group_by` below a versioned table skip those, as
    /// Kafka Streams does (KIP-914); `to_stream` still shows them.
    pub is_latest: bool,
}

impl<V> Change<V> {
    /// The latest version of a key: `new` replacing `old`.
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Change {
            new,
            old,
            is_latest: true,
        }
    }

    /// A change derived from this one (a filter's, a mapping's, a join's), keeping whether it
    /// is the latest version.
    pub fn derive<W>(&self, new: Option<W>, old: Option<W>) -> Change<W> {
        Change {
            new,
            old,
            is_latest: self.is_latest,
        }
    }
}

/// Serializes a [`Change`] for a repartition topic as Kafka Streams' `ChangedSerializer` does (so a
/// Java application's KTable repartition topics read here and ours there): the old value then a
/// `0` byte; the new value then `1`; or both, as `[new length: zigzag varint][new][old]` then `2`.
/// A change with neither is refused, as in Kafka Streams.
pub struct ChangeSerde<V>(pub SerdeRef<V>);

const OLD_ONLY: u8 = 0;
const NEW_ONLY: u8 = 1;
const NEW_AND_OLD: u8 = 2;

impl<V: 'static> ChangeSerde<V> {
    fn encode(
        change: &Change<V>,
        mut inner: impl FnMut(&V) -> Result<Option<Vec<u8>>, SerdeError>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let new = change.new.as_ref().map(&mut inner).transpose()?.flatten();
        let old = change.old.as_ref().map(&mut inner).transpose()?.flatten();
        let out = match (new, old) {
            (Some(mut n), Some(o)) => {
                let mut out = Vec::with_capacity(5 + n.len() + o.len() + 1);
                put_varint(&mut out, n.len() as i32);
                out.append(&mut n);
                out.extend_from_slice(&o);
                out.push(NEW_AND_OLD);
                out
            }
            (Some(mut n), None) => {
                n.push(NEW_ONLY);
                n
            }
            (None, Some(mut o)) => {
                o.push(OLD_ONLY);
                o
            }
            (None, None) => {
                return Err(SerdeError::Invalid {
                    format: "table change",
                    message: "both the old and the new value are null".to_string(),
                })
            }
        };
        Ok(Some(out))
    }

    fn decode(
        data: Option<&[u8]>,
        mut inner: impl FnMut(&[u8]) -> Result<V, SerdeError>,
    ) -> Result<Change<V>, SerdeError> {
        let bad = |m: &str| SerdeError::Invalid {
            format: "table change",
            message: m.to_string(),
        };
        let data = data.ok_or(SerdeError::Null {
            type_name: "Change",
        })?;
        let (&flag, body) = data.split_last().ok_or_else(|| bad("empty"))?;
        // Flags 3 to 5 are 0 to 2 with an is-latest byte before the flag (Kafka Streams reads
        // them; versions that wrote them marked versioned-table changes that way).
        let (shape, body, is_latest) = match flag {
            OLD_ONLY..=NEW_AND_OLD => (flag, body, true),
            3..=5 => match body.split_last() {
                Some((&1, body)) => (flag - 3, body, true),
                Some((&0, body)) => (flag - 3, body, false),
                _ => return Err(bad("bad is-latest byte")),
            },
            f => {
                return Err(bad(&format!(
                    "unknown flag {f} (Kafka Streams writes 0 to 5)"
                )))
            }
        };
        let (new, old) = match shape {
            OLD_ONLY => (None, Some(inner(body)?)),
            NEW_ONLY => (Some(inner(body)?), None),
            _ => {
                let (len, rest) = take_varint(body).ok_or_else(|| bad("bad length"))?;
                let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
                if len > rest.len() {
                    return Err(bad("truncated new value"));
                }
                let (new, old) = rest.split_at(len);
                (Some(inner(new)?), Some(inner(old)?))
            }
        };
        Ok(Change {
            new,
            old,
            is_latest,
        })
    }
}

/// Kafka's `ByteUtils.writeVarint`: zigzag, then 7 bits per byte, low first.
fn put_varint(out: &mut Vec<u8>, value: i32) {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Kafka's `ByteUtils.readVarint`; `None` when truncated or longer than 5 bytes.
fn take_varint(b: &[u8]) -> Option<(i32, &[u8])> {
    let mut v: u32 = 0;
    for (i, &byte) in b.iter().enumerate().take(5) {
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = ((v >> 1) as i32) ^ -((v & 1) as i32);
            return Some((value, &b[i + 1..]));
        }
    }
    None
}

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, change: &Change<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(change, |v| self.0.serialize(v))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Change<V>, SerdeError> {
        Self::decode(data, |b| self.0.deserialize(Some(b)))
    }
    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        change: &Change<V>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Self::encode(change, |v| self.0.serialize_for(topic, headers, v))
    }
    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Change<V>, SerdeError> {
        Self::decode(data, |b| self.0.deserialize_from(topic, headers, Some(b)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use streams_core::serdes::StringSerde;

    #[test]
    fn round_trip_every_shape() {
        let s = ChangeSerde::<String>(Arc::new(StringSerde));
        for c in [
            Change::new(Some("n".to_string()), Some("old".to_string())),
            Change::new(None, Some("o".to_string())),
            Change::new(Some(String::new()), None),
            Change::new(Some("x".repeat(200)), Some(String::new())),
        ] {
            let b = s.serialize(&c).unwrap();
            assert_eq!(s.deserialize(b.as_deref()).unwrap(), c);
        }
        assert!(s.serialize(&Change::new(None, None)).is_err());
        assert!(s.deserialize(Some(&[9, 9, 2])).is_err());
        assert!(s.deserialize(Some(&[3])).is_err());
        assert!(s.deserialize(Some(&[b'o', 7, 3])).is_err());
        assert!(s.deserialize(Some(&[6])).is_err());
        // The is-latest forms Kafka Streams reads: the flag byte before 3 to 5.
        let not_latest = s.deserialize(Some(&[b'n', 0, 4])).unwrap();
        assert_eq!(
            (not_latest.new.as_deref(), not_latest.is_latest),
            (Some("n"), false)
        );
        let both = s.deserialize(Some(&[4, b'a', b'b', b'c', 1, 5])).unwrap();
        assert_eq!(
            both,
            Change::new(Some("ab".to_string()), Some("c".to_string()))
        );
    }

    // Bytes as Kafka Streams 4.4's ChangedSerializer writes them (String values; checked against
    // the Java class).
    #[test]
    fn layout_is_kafka_streams_changed_serializer() {
        let s = ChangeSerde::<String>(Arc::new(StringSerde));
        let both = Change::new(Some("ab".to_string()), Some("c".to_string()));
        assert_eq!(
            s.serialize(&both).unwrap().unwrap(),
            vec![4, b'a', b'b', b'c', 2]
        );
        let new = Change::new(Some("ab".to_string()), None);
        assert_eq!(s.serialize(&new).unwrap().unwrap(), vec![b'a', b'b', 1]);
        let old = Change::new(None, Some("c".to_string()));
        assert_eq!(s.serialize(&old).unwrap().unwrap(), vec![b'c', 0]);
        let long = Change::new(Some("x".repeat(200)), Some(String::new()));
        let b = s.serialize(&long).unwrap().unwrap();
        assert_eq!(
            (&b[..2], b[b.len() - 1], b.len()),
            (&[0x90, 0x03][..], 2, 203)
        );
    }
}
