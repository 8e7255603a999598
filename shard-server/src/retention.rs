//! Retention: records older than their stream's retention period are unreadable at once (reads
//! filter on arrival time), and a periodic pass deletes whole journal segments once every
//! stream with records in them has expired those records. Before a segment holding a shard
//! goes, the shard's counter and newest arrival are written to the meta family, so sequence
//! numbers keep rising even after retention has taken every record of a shard.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::journal::{JournalError, ShardSet};
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};
use crate::stream::{Catalog, ShardProgress};

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Journal segments deleted.
    pub segments_deleted: u64,
}

/// Deletes every journal segment whose records have all expired as of `now_ms`.
pub fn enforce(engine: &dyn KvEngine, catalog: &Catalog, now_ms: u64) -> Result<Pass> {
    let streams: HashMap<u64, _> = catalog.list().into_iter().filter(|s| !s.is_deleted()).map(|s| (s.id, s)).collect();
    // A replicated shard's frames are its Raft log: deleting them under raft-rs needs a
    // snapshot to stand for them, which is not built yet, so segments holding a replicated
    // stream's frames are kept (its expired records are still never read: reads filter on
    // arrival time).
    let retention_of = |id: u64| {
        streams.get(&id).map(|s| {
            let def = s.def();
            match def.placement.as_ref().is_some_and(|p| !p.replicas.is_empty()) {
                true => u64::MAX,
                false => def.retention_ms(),
            }
        })
    };
    let mut keep_progress = |shards: &ShardSet| {
        let mut batch = WriteBatch::new();
        for key in shards {
            let Some(log) = streams.get(&key.stream).and_then(|s| s.log(key.shard)) else { continue };
            let counter = log.last_counter.load(Ordering::Acquire);
            let arrival = log.last_arrival_ms.load(Ordering::Acquire);
            batch.put(Cf::Meta, keys::counter(key.stream, key.shard), ShardProgress::encode(counter, arrival));
        }
        if batch.is_empty() {
            return Ok(());
        }
        engine.write(batch, Durability::Sync).map_err(|err| JournalError::Deferred(err.to_string()))
    };
    let expiry = catalog.journal().expire(now_ms, &retention_of, &mut keep_progress)?;
    if expiry.segments > 0 {
        tracing::debug!(segments = expiry.segments, "expired journal segments deleted");
    }
    Ok(Pass { segments_deleted: expiry.segments })
}
