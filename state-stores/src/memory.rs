use std::collections::BTreeMap;
use std::ops::Bound;

use crate::key_value::prefix_upper_bound;
use crate::{KeyValueStore, KvIter, Result, StateStore, StoreError};

/// A key-value store in a `BTreeMap`; not persistent, so it is rebuilt from its changelog on restart.
#[derive(Debug, Default)]
pub struct InMemoryKeyValueStore {
    name: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    closed: bool,
}

impl InMemoryKeyValueStore {
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryKeyValueStore {
            name: name.into(),
            map: BTreeMap::new(),
            closed: false,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(StoreError::Closed(self.name.clone()))
        } else {
            Ok(())
        }
    }

    fn bounds(from: Option<&[u8]>, to: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        (
            from.map_or(Bound::Unbounded, |f| Bound::Included(f.to_vec())),
            to.map_or(Bound::Unbounded, |t| Bound::Included(t.to_vec())),
        )
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + 'a) -> KvIter<'a> {
    Box::new(it.map(|(k, v)| Ok((k.clone(), v.clone()))))
}

impl StateStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> Result<()> {
        self.check_open()
    }
    fn close(&mut self) -> Result<()> {
        self.closed = true;
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
}

impl KeyValueStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_open()?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        Ok(self.map.remove(key))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.check_open()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        Ok(owned(self.map.range(Self::bounds(from, to))))
    }

    fn reverse_range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KvIter<'_>> {
        self.check_open()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        Ok(owned(self.map.range(Self::bounds(from, to)).rev()))
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<KvIter<'_>> {
        self.check_open()?;
        let upper = prefix_upper_bound(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(owned(
            self.map.range((Bound::Included(prefix.to_vec()), upper)),
        ))
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        self.check_open()?;
        Ok(self.map.len() as u64)
    }

    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.check_open()?;
        for (k, v) in entries {
            match v {
                Some(v) => self.map.insert(k.clone(), v.clone()),
                None => self.map.remove(k),
            };
        }
        Ok(())
    }
}
