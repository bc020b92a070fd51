//! Kafka Streams' changelog layouts: how a store entry appears as a changelog record.
//!
//! The stores keep their own on-disk keys (length-prefixed, sign-flipped times, so that byte order
//! is time order). Their changelogs instead carry exactly what Kafka Streams writes, so that a Java
//! application's changelog topics restore here and ours restore there:
//!
//! * key-value: the key and the value as they are;
//! * timestamped key-value and timestamped window values: the value without its 8-byte timestamp,
//!   which travels as the changelog record's timestamp instead ([`split_timestamped`]);
//! * window: `[key][window start: i64 BE][sequence number: u32 BE]` ([`window_changelog_key`]);
//! * session: `[key][session end: i64 BE][session start: i64 BE]` ([`session_changelog_key`]).

use crate::{Result, SessionWindow, StoreError};

/// The changelog key of a window store entry: `[key][window start][sequence number]`, big-endian.
pub fn window_changelog_key(key: &[u8], window_start: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12);
    out.extend_from_slice(key);
    out.extend_from_slice(&window_start.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Splits a window changelog key into `(key, window start, sequence number)`; `store` names the
/// store in the error.
pub fn split_window_changelog_key<'a>(store: &str, raw: &'a [u8]) -> Result<(&'a [u8], i64, u32)> {
    let key_len = raw
        .len()
        .checked_sub(12)
        .ok_or_else(|| too_short(store, "window", raw.len(), 12))?;
    let (key, rest) = raw.split_at(key_len);
    Ok((key, be_i64(&rest[..8]), be_u32(&rest[8..])))
}

/// The changelog key of a session: `[key][session end][session start]`, big-endian.
pub fn session_changelog_key(key: &[u8], window: SessionWindow) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 16);
    out.extend_from_slice(key);
    out.extend_from_slice(&window.end.to_be_bytes());
    out.extend_from_slice(&window.start.to_be_bytes());
    out
}

/// Splits a session changelog key into `(key, session window)`; `store` names the store in the
/// error.
pub fn split_session_changelog_key<'a>(
    store: &str,
    raw: &'a [u8],
) -> Result<(&'a [u8], SessionWindow)> {
    let key_len = raw
        .len()
        .checked_sub(16)
        .ok_or_else(|| too_short(store, "session", raw.len(), 16))?;
    let (key, rest) = raw.split_at(key_len);
    Ok((
        key,
        SessionWindow {
            end: be_i64(&rest[..8]),
            start: be_i64(&rest[8..]),
        },
    ))
}

/// Splits a stored timestamped value (`[timestamp: i64 BE][value]`) into the value its changelog
/// record carries and the timestamp that record is stamped with.
pub fn split_timestamped<'a>(store: &str, raw: &'a [u8]) -> Result<(&'a [u8], i64)> {
    if raw.len() < 8 {
        return Err(too_short(store, "timestamped value", raw.len(), 8));
    }
    Ok((&raw[8..], be_i64(&raw[..8])))
}

fn too_short(store: &str, what: &str, len: usize, min: usize) -> StoreError {
    StoreError::CorruptEntry {
        store: store.to_string(),
        reason: format!(
            "{what} changelog entry of {len} bytes is shorter than its {min}-byte suffix"
        ),
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Bytes as Kafka Streams' WindowKeySchema.toStoreKeyBinary("k", 5, 1) and
    // SessionKeySchema.toBinary(Windowed("k", SessionWindow(2, 7))) write them.
    #[test]
    fn window_and_session_keys_have_kafka_streams_layout() {
        let w = window_changelog_key(b"k", 5, 1);
        assert_eq!(
            w,
            [b"k".as_slice(), &[0, 0, 0, 0, 0, 0, 0, 5], &[0, 0, 0, 1]].concat()
        );
        assert_eq!(
            split_window_changelog_key("s", &w).unwrap(),
            (&b"k"[..], 5, 1)
        );
        let s = session_changelog_key(b"k", SessionWindow { start: 2, end: 7 });
        assert_eq!(
            s,
            [
                b"k".as_slice(),
                &[0, 0, 0, 0, 0, 0, 0, 7],
                &[0, 0, 0, 0, 0, 0, 0, 2]
            ]
            .concat()
        );
        assert_eq!(
            split_session_changelog_key("s", &s).unwrap(),
            (&b"k"[..], SessionWindow { start: 2, end: 7 })
        );
        assert!(split_window_changelog_key("s", &[1; 11]).is_err());
        assert!(split_session_changelog_key("s", &[1; 15]).is_err());
        assert!(split_timestamped("s", &[1; 7]).is_err());
    }
}
