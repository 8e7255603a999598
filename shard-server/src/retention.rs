//! Retention: records older than their stream's retention period are unreadable at once (reads
//! filter on arrival time) and are removed from disk by a periodic pass that range-deletes
//! each shard's expired prefix and compacts it away, never key by key.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::shard;
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};
use crate::stream::Catalog;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Shards whose expired prefix was deleted.
    pub shards_trimmed: u64,
}

/// Deletes every shard's expired records as of `now_ms`.
pub fn enforce(engine: &dyn KvEngine, catalog: &Catalog, now_ms: u64) -> Result<Pass> {
    let mut pass = Pass::default();
    for stream in catalog.list() {
        if stream.is_deleted() {
            continue;
        }
        let (retention_ms, shards) = {
            let def = stream.def();
            (def.retention_ms(), def.shards.iter().map(|s| s.index).collect::<Vec<_>>())
        };
        let cutoff = now_ms.saturating_sub(retention_ms);
        for index in shards {
            let Some(log) = stream.log(index) else { continue };
            // Read the watermark before the index: anything appended later arrived after `cutoff`.
            let last = log.last_counter.load(Ordering::Acquire);
            let keep_from = shard::seek_time(engine, stream.id, index, cutoff)?.unwrap_or(last + 1);
            let trimmed = log.trimmed_below.load(Ordering::Acquire);
            if keep_from <= trimmed.max(1) {
                continue;
            }
            let mut batch = WriteBatch::new();
            let first = keys::record(stream.id, index, trimmed);
            let end = keys::record(stream.id, index, keep_from);
            batch.delete_range(Cf::Records, first.clone(), end.clone());
            let (index_start, _) = keys::shard_range(keys::TIME_INDEX_PREFIX, stream.id, index);
            batch.delete_range(Cf::Records, index_start, keys::time_index(stream.id, index, cutoff, 0));
            engine.write(batch, Durability::Buffered)?;
            engine.compact_range(Cf::Records, &first, &end)?;
            log.trimmed_below.store(keep_from, Ordering::Release);
            pass.shards_trimmed += 1;
            tracing::debug!(stream = %stream.name, shard = index, below = keep_from, "expired records deleted");
        }
    }
    Ok(pass)
}
