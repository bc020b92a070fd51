use streams_core::serdes::{Serde, SerdeError, SerdeRef};
use streams_core::Headers;

/// A table update: the new value and the one it replaced (`None` = absent / deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update.
    pub new: Option<V>,
    /// The value before it.
    pub old: Option<V>,
}

/// Serializes a [`Change`] for a repartition topic: a flag byte (bit 0 new, bit 1 old), then the new
/// value length-prefixed, then the old value.
pub struct ChangeSerde<V>(pub SerdeRef<V>);

impl<V: 'static> ChangeSerde<V> {
    fn encode(
        change: &Change<V>,
        mut inner: impl FnMut(&V) -> Result<Option<Vec<u8>>, SerdeError>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let new = change.new.as_ref().map(&mut inner).transpose()?.flatten();
        let old = change.old.as_ref().map(&mut inner).transpose()?.flatten();
        let mut out = vec![u8::from(new.is_some()) | (u8::from(old.is_some()) << 1)];
        if let Some(n) = &new {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        if let Some(o) = &old {
            out.extend_from_slice(o);
        }
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
        let (&flags, mut rest) = data.split_first().ok_or_else(|| bad("empty"))?;
        let new = if flags & 1 != 0 {
            if rest.len() < 4 {
                return Err(bad("truncated length"));
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() < 4 + len {
                return Err(bad("truncated new value"));
            }
            let v = inner(&rest[4..4 + len])?;
            rest = &rest[4 + len..];
            Some(v)
        } else {
            None
        };
        let old = if flags & 2 != 0 {
            Some(inner(rest)?)
        } else {
            None
        };
        Ok(Change { new, old })
    }
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
            Change {
                new: Some("n".to_string()),
                old: Some("old".to_string()),
            },
            Change {
                new: None,
                old: Some("o".to_string()),
            },
            Change {
                new: Some(String::new()),
                old: None,
            },
            Change {
                new: None,
                old: None,
            },
        ] {
            let b = s.serialize(&c).unwrap();
            assert_eq!(s.deserialize(b.as_deref()).unwrap(), c);
        }
        assert!(s.deserialize(Some(&[1, 0, 0])).is_err());
    }
}
