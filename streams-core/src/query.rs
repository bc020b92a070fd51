//! Typed reads of a task's stores from outside the processors: the test driver and interactive
//! queries (`KafkaStreams::query_*`) share them.

use crate::record::Data;
use crate::store::{
    AnyStore, KeyValueStoreHandle, RangePage, StoreSerdes, TimestampedKeyValueStoreHandle,
    TimestampedWindowStoreHandle, ValueAndTimestamp, VersionedKeyValueStoreHandle, VersionedRecord,
    WindowStoreHandle,
};
use crate::task::StoreSlot;
use crate::{Result, StreamsError};

fn type_error(store: &str, types: (&str, &str)) -> StreamsError {
    StreamsError::IllegalState(format!(
        "store `{store}` holds ({}, {}); read it with those types",
        types.0, types.1
    ))
}

fn kind_error(store: &str, wanted: &str) -> StreamsError {
    StreamsError::IllegalState(format!("store `{store}` is not a {wanted} store"))
}

fn serdes<'a, K: Data, V: Data>(
    serdes: &'a std::sync::Arc<dyn std::any::Any + Send + Sync>,
    name: &str,
    types: (&str, &str),
) -> Result<&'a StoreSerdes<K, V>> {
    serdes
        .downcast_ref::<StoreSerdes<K, V>>()
        .ok_or_else(|| type_error(name, types))
}

/// Typed access to the key-value store in `slot`, and whether its values carry timestamps.
fn kv_handle<K: Data, V: Data>(
    slot: &mut StoreSlot,
) -> Result<(KeyValueStoreHandle<'_, K, V>, bool)> {
    let StoreSlot {
        name,
        kind,
        store,
        serdes: any_serdes,
        types,
        ..
    } = slot;
    let serdes = serdes::<K, V>(any_serdes, name, *types)?;
    let AnyStore::KeyValue(s) = store else {
        return Err(kind_error(name, "key-value"));
    };
    let handle = KeyValueStoreHandle {
        store: s.as_mut(),
        name,
        serdes,
    };
    Ok((handle, kind.is_timestamped_key_value()))
}

/// The value and timestamp of `key` in a key-value store (plain stores report timestamp -1).
pub(crate) fn kv_get<K: Data, V: Data>(
    slot: &mut StoreSlot,
    key: &K,
) -> Result<Option<ValueAndTimestamp<V>>> {
    let (h, timestamped) = kv_handle::<K, V>(slot)?;
    if timestamped {
        TimestampedKeyValueStoreHandle { inner: h }.get(key)
    } else {
        Ok(h.get(key)?.map(|value| ValueAndTimestamp {
            value,
            timestamp: -1,
        }))
    }
}

/// The latest value of `key` in a versioned store, or the one it had at `as_of`.
pub(crate) fn versioned_get<K: Data, V: Data>(
    slot: &mut StoreSlot,
    key: &K,
    as_of: Option<i64>,
) -> Result<Option<VersionedRecord<V>>> {
    let serdes = serdes::<K, V>(&slot.serdes, &slot.name, slot.types)?;
    let AnyStore::KeyValue(s) = &mut slot.store else {
        return Err(kind_error(&slot.name, "versioned key-value"));
    };
    let Some(store) = s.as_versioned_mut() else {
        return Err(kind_error(&slot.name, "versioned key-value"));
    };
    let h = VersionedKeyValueStoreHandle {
        store,
        name: &slot.name,
        serdes,
    };
    match as_of {
        Some(t) => h.get_as_of(key, t),
        None => h.get(key),
    }
}

/// Entries with `from <= key <= to` (by serialized key; `None` = open) of a key-value store.
pub(crate) fn kv_range<K: Data, V: Data>(
    slot: &mut StoreSlot,
    from: Option<&K>,
    to: Option<&K>,
) -> Result<Vec<(K, V)>> {
    let (h, timestamped) = kv_handle::<K, V>(slot)?;
    if timestamped {
        TimestampedKeyValueStoreHandle { inner: h }
            .range(from, to)?
            .map(|e| e.map(|(k, v)| (k, v.value)))
            .collect()
    } else {
        h.range(from, to)?.collect()
    }
}

/// Up to `limit` entries with `from <= key <= to` of a key-value store past the serialized key
/// `after`, and the serialized key to resume after when more follow (see
/// [`crate::iq::KeyValueIterator`]).
pub(crate) fn kv_range_page<K: Data, V: Data>(
    slot: &mut StoreSlot,
    from: Option<&K>,
    to: Option<&K>,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<RangePage<K, V>> {
    let (h, timestamped) = kv_handle::<K, V>(slot)?;
    h.range_page(from, to, after, limit, timestamped)
}

/// Entries of a window store for `key` (every key if `None`) in windows starting in
/// `[from, to]`, as (key, window start, value and timestamp; -1 for plain window stores).
pub(crate) fn window_fetch<K: Data, V: Data>(
    slot: &mut StoreSlot,
    key: Option<&K>,
    from: i64,
    to: i64,
) -> Result<Vec<(K, i64, ValueAndTimestamp<V>)>> {
    let serdes = serdes::<K, V>(&slot.serdes, &slot.name, slot.types)?;
    let AnyStore::Window(s) = &mut slot.store else {
        return Err(kind_error(&slot.name, "window"));
    };
    let h = WindowStoreHandle {
        store: s.as_mut(),
        name: &slot.name,
        serdes,
    };
    if slot.timestamped_window {
        let t = TimestampedWindowStoreHandle { inner: h };
        match key {
            Some(k) => Ok(t
                .fetch_range(k, from, to)?
                .into_iter()
                .map(|(s, v)| (k.clone(), s, v))
                .collect()),
            None => t.fetch_all(from, to),
        }
    } else {
        let plain = |v| ValueAndTimestamp {
            value: v,
            timestamp: -1,
        };
        match key {
            Some(k) => Ok(h
                .fetch_range(k, from, to)?
                .into_iter()
                .map(|(s, v)| (k.clone(), s, plain(v)))
                .collect()),
            None => Ok(h
                .fetch_all(from, to)?
                .into_iter()
                .map(|(k, s, v)| (k, s, plain(v)))
                .collect()),
        }
    }
}

/// Every session of a session store as (key, session window, value).
pub(crate) fn sessions<K: Data, V: Data>(
    slot: &mut StoreSlot,
) -> Result<Vec<(K, state_stores::SessionWindow, V)>> {
    let serdes = serdes::<K, V>(&slot.serdes, &slot.name, slot.types)?;
    let name = slot.name.clone();
    let AnyStore::Session(s) = &mut slot.store else {
        return Err(kind_error(&name, "session"));
    };
    let de = |part: &'static str, e| StreamsError::StoreDeserialization {
        part,
        store: name.clone(),
        source: e,
    };
    s.all()?
        .into_iter()
        .map(|(k, w, v)| {
            Ok((
                serdes.key.deserialize(Some(&k)).map_err(|e| de("key", e))?,
                w,
                serdes
                    .value
                    .deserialize(Some(&v))
                    .map_err(|e| de("value", e))?,
            ))
        })
        .collect()
}
