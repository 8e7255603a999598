//! An in-memory engine: ordered maps behind one lock. It is the reference the RocksDB engine is
//! checked against, and a fast engine for unit tests. It keeps nothing across restarts.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::{Cf, Durability, KvEngine, Mutation, Result, WriteBatch};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// A volatile engine keeping every column family in a `BTreeMap`.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    families: Mutex<BTreeMap<Cf, Map>>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Cf, Map>) -> T) -> T {
        let mut guard = match self.families.lock() {
            Ok(guard) => guard,
            // Nothing panics while holding the lock (visitors run on a copy), so a poisoned
            // lock still guards consistent maps.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

impl KvEngine for MemoryEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|families| families.get(&cf).and_then(|map| map.get(key).cloned())))
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        // Copy the range out so `visit` runs without the lock held.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self.with(|families| {
            families
                .get(&cf)
                .map(|map| {
                    map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        });
        for (key, value) in &entries {
            if !visit(key, value) {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<()> {
        self.with(|families| {
            for mutation in batch.into_mutations() {
                match mutation {
                    Mutation::Put { cf, key, value } => {
                        families.entry(cf).or_default().insert(key, value);
                    }
                    Mutation::Delete { cf, key } => {
                        families.entry(cf).or_default().remove(&key);
                    }
                    Mutation::DeleteRange { cf, start, end } => {
                        if start < end {
                            let map = families.entry(cf).or_default();
                            let doomed: Vec<Vec<u8>> = map
                                .range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Excluded(end.as_slice())))
                                .map(|(k, _)| k.clone())
                                .collect();
                            for key in doomed {
                                map.remove(&key);
                            }
                        }
                    }
                }
            }
        });
        Ok(())
    }

    fn compact_range(&self, _cf: Cf, _start: &[u8], _end: &[u8]) -> Result<()> {
        Ok(())
    }
}
