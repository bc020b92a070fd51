//! Stream-table joins with a grace period (KIP-923): stream records wait in a buffer store until
//! stream time passes their timestamp by the grace period, then join the versioned table as of
//! their own time, oldest first. A table update arriving a little after the stream record it
//! should have met (out of order across the two topics) is then still seen.
//!
//! The buffer is a change-logged key-value store named `<join>-Buffer`, keyed as Kafka Streams'
//! time-ordered buffer orders its records: `timestamp (8) key sequence (4)`, so records leave
//! it by timestamp, then serialized key, then arrival. A record already older than stream time
//! minus the grace period is joined at once, as in Kafka Streams.

use streams_core::serdes::SerdeRef;
use streams_core::{Data, Headers, Processor, ProcessorContext, Record, Result, StreamsError};

use crate::join_processors::StreamLookupJoin;

/// The stream-table join processor with a grace period.
pub(crate) struct BufferedTableJoin<K, V, VT, VR> {
    pub join: StreamLookupJoin<K, V, K, VT, VR>,
    pub buffer: String,
    pub grace_ms: i64,
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
    pub observed: i64,
    /// The next sequence number: distinguishes records of equal timestamp and key.
    pub next_seq: u32,
}

fn time_prefix(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn buffer_key(ts: i64, key: &[u8], seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + key.len());
    k.extend_from_slice(&time_prefix(ts));
    k.extend_from_slice(key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `value-length (4) value header-count (4)` then per header `name-length (4) name
/// value-length (4, -1 for none) value`.
fn encode_value(value: &[u8], headers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, v) in headers.iter() {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

fn decode_value(raw: &[u8]) -> Option<(Vec<u8>, Headers)> {
    let mut r = Reader(raw);
    let len = r.u32()? as usize;
    let value = r.take(len)?.to_vec();
    let mut headers = Headers::new();
    for _ in 0..r.u32()? {
        let len = r.u32()? as usize;
        let name = std::str::from_utf8(r.take(len)?).ok()?.to_string();
        let vlen = r.u32()? as i32;
        let v = if vlen < 0 {
            None
        } else {
            Some(r.take(vlen as usize)?.to_vec())
        };
        headers.add(name, v);
    }
    Some((value, headers))
}

impl<K: Data, V: Data, VT: Data, VR: Data> BufferedTableJoin<K, V, VT, VR> {
    fn corrupt(&self, what: &str) -> StreamsError {
        StreamsError::IllegalState(format!(
            "stream-table join buffer `{}`: {what}; delete the task's state directory to restore it from its changelog",
            self.buffer
        ))
    }

    /// Joins, oldest first, every buffered record whose grace period stream time has passed.
    fn evict(&mut self, ctx: &mut ProcessorContext<'_>, deadline: i64) -> Result<()> {
        let upper = time_prefix(deadline.saturating_add(1)).to_vec();
        let due: Vec<(Vec<u8>, Vec<u8>)> = ctx
            .key_value_store::<Vec<u8>, Vec<u8>>(&self.buffer)?
            .range(None, Some(&upper))?
            .collect::<Result<_>>()?;
        for (k, raw) in due {
            ctx.key_value_store::<Vec<u8>, Vec<u8>>(&self.buffer)?
                .delete(&k)?;
            if k.len() < 12 {
                return Err(self.corrupt("a key shorter than its timestamp and sequence"));
            }
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&k[..8]);
            let timestamp = (u64::from_be_bytes(ts) ^ (1 << 63)) as i64;
            let (value, headers) =
                decode_value(&raw).ok_or_else(|| self.corrupt("an undecodable record"))?;
            let key = self
                .key_serde
                .deserialize(Some(&k[8..k.len() - 4]))
                .map_err(|e| self.corrupt(&format!("an undecodable key ({e})")))?;
            let value = self
                .value_serde
                .deserialize(Some(&value))
                .map_err(|e| self.corrupt(&format!("an undecodable value ({e})")))?;
            self.join.join(
                ctx,
                Record {
                    key,
                    value,
                    timestamp,
                    headers,
                },
            )?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V> for BufferedTableJoin<K, V, VT, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        // Sequence numbers continue after the largest one a restored buffer holds.
        let store = ctx.key_value_store::<Vec<u8>, Vec<u8>>(&self.buffer)?;
        for e in store.all()? {
            let (k, _) = e?;
            if let Some(seq) = k.get(k.len().saturating_sub(4)..) {
                let seq = u32::from_be_bytes(seq.try_into().unwrap_or_default());
                self.next_seq = self.next_seq.max(seq.wrapping_add(1));
            }
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record<K, V>) -> Result<()> {
        self.observed = self.observed.max(r.timestamp);
        let deadline = self.observed.saturating_sub(self.grace_ms);
        let key = self.key_serde.serialize(&r.key);
        let value = self.value_serde.serialize(&r.value);
        match (key, value) {
            (Ok(Some(k)), Ok(Some(v))) if r.timestamp >= deadline => {
                let bk = buffer_key(r.timestamp, &k, self.next_seq);
                self.next_seq = self.next_seq.wrapping_add(1);
                ctx.key_value_store::<Vec<u8>, Vec<u8>>(&self.buffer)?
                    .put(&bk, &encode_value(&v, &r.headers))?;
            }
            // Too late to wait (or nothing to buffer): joined now.
            _ => self.join.join(ctx, r)?,
        }
        self.evict(ctx, deadline)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn buffered_values_keep_their_headers() {
        let mut h = Headers::new();
        h.add("a", Some(b"1".to_vec())).add("b", None);
        let raw = encode_value(b"value", &h);
        let (v, back) = decode_value(&raw).unwrap();
        assert_eq!(v, b"value");
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            h.iter().collect::<Vec<_>>()
        );
        assert!(decode_value(&raw[..raw.len() - 1]).is_none());
    }

    #[test]
    fn keys_order_by_time_then_key_then_arrival() {
        let mut keys = vec![
            buffer_key(5, b"b", 0),
            buffer_key(5, b"a", 1),
            buffer_key(-1, b"z", 2),
            buffer_key(5, b"a", 0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                buffer_key(-1, b"z", 2),
                buffer_key(5, b"a", 0),
                buffer_key(5, b"a", 1),
                buffer_key(5, b"b", 0),
            ]
        );
    }
}
