//! The lease table of consumer applications, kept in the shard-server's own column family
//! instead of DynamoDB. A row per (application, stream, shard) holds what the KCL keeps: owner,
//! lease counter, checkpoint with sub-sequence number, pending checkpoint, owner switches since
//! the checkpoint, parents, children and hash key range. Every write is a compare-and-set on the
//! lease counter (and the owner where one is claimed), so a zombie worker's renew or checkpoint
//! fails with [`Error::LeaseConflict`] instead of overwriting the new owner's progress.
//!
//! Leases follow the stream's shard map: listing or creating an application's leases adds a
//! lease for every listed shard that has none, so children of a split or merge appear with their
//! parents named and start at TRIM_HORIZON.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};
use crate::stream::{shard_id, StreamDef};

/// Where processing of a shard stands, as the KCL records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Checkpoint {
    /// Start at the oldest retained record.
    TrimHorizon,
    /// Start at the newest record.
    Latest,
    /// Start at the first record at or after a time (ms since the epoch).
    AtTimestamp(u64),
    /// Processed up to and including this sequence number.
    SequenceNumber(String),
    /// The shard was read to its end; its children may start.
    ShardEnd,
}

/// One lease row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The shard id (the KCL's leaseKey).
    pub lease_key: String,
    /// The worker holding the lease, if any.
    pub lease_owner: Option<String>,
    /// Bumped by every write; the compare-and-set token.
    pub lease_counter: u64,
    /// Progress.
    pub checkpoint: Checkpoint,
    /// Sub-sequence number of an aggregated record within `checkpoint`.
    pub checkpoint_sub_sequence_number: u64,
    /// A checkpoint prepared but not yet committed.
    pub pending_checkpoint: Option<Checkpoint>,
    /// Owner changes since the last checkpoint.
    pub owner_switches_since_checkpoint: u64,
    /// Parents (one after a split, two after a merge), to be finished first.
    pub parent_shard_ids: Vec<String>,
    /// Children, known once the shard has closed.
    pub child_shard_ids: Vec<String>,
    /// First hash key of the shard (decimal).
    pub starting_hash_key: String,
    /// Last hash key of the shard (decimal).
    pub ending_hash_key: String,
}

/// What a lease write asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// Take the lease for `owner` (from anyone, or from nobody).
    Take {
        /// The new owner.
        owner: String,
    },
    /// Renew a lease `owner` holds.
    Renew {
        /// The holder.
        owner: String,
    },
    /// Give up a lease `owner` holds (graceful shutdown, or load balancing).
    Evict {
        /// The holder.
        owner: String,
    },
    /// Record progress on a lease `owner` holds.
    Checkpoint {
        /// The holder.
        owner: String,
        /// The new checkpoint.
        checkpoint: Checkpoint,
        /// Sub-sequence number within an aggregated record.
        sub_sequence_number: u64,
    },
}

/// The application's leases, stored in the leases column family.
#[derive(Debug)]
pub struct LeaseTable {
    engine: Arc<dyn KvEngine>,
    /// Serialises read-modify-write cycles so compare-and-set is atomic.
    writes: Mutex<()>,
}

/// True for names usable as application names (those of streams: `[a-zA-Z0-9_.-]{1,256}`).
pub fn is_application_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl LeaseTable {
    /// The table over `engine`.
    pub fn new(engine: Arc<dyn KvEngine>) -> Self {
        Self { engine, writes: Mutex::new(()) }
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut failure = None;
        self.engine.scan(Cf::Leases, start, end, &mut |key, value| match serde_json::from_slice::<Lease>(value) {
            Ok(lease) => {
                leases.push(lease);
                true
            }
            Err(err) => {
                failure = Some(crate::store::Error::Corrupt { key: crate::stream::hex(key), reason: err.to_string() });
                false
            }
        })?;
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(leases),
        }
    }

    fn encode(lease: &Lease) -> Result<Vec<u8>> {
        serde_json::to_vec(lease).map_err(|err| {
            crate::store::Error::Corrupt { key: lease.lease_key.clone(), reason: err.to_string() }.into()
        })
    }

    /// Lists an application's leases on a stream after adding one for every listed shard that
    /// has none: root shards start at `initial`, children of a split or merge at TRIM_HORIZON.
    /// Closed shards learn their children.
    pub fn sync(&self, application: &str, def: &StreamDef, now_ms: u64, initial: &Checkpoint) -> Result<Vec<Lease>> {
        let _guard = self.writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (start, end) = keys::lease_range(application, &def.name);
        let mut leases = self.scan(&start, &end)?;
        let mut batch = WriteBatch::new();
        for shard in def.listed_shards(now_ms) {
            let children: Vec<String> = def.children(shard.index).map(|c| c.id()).collect();
            match leases.iter_mut().find(|l| l.lease_key == shard.id()) {
                Some(lease) if lease.child_shard_ids != children => {
                    // Lineage only: the counter stays, so the holder's compare-and-set still works.
                    lease.child_shard_ids = children;
                    batch.put(Cf::Leases, keys::lease(application, &def.name, shard.index), Self::encode(lease)?);
                }
                Some(_) => {}
                None => {
                    let lease = Lease {
                        lease_key: shard.id(),
                        lease_owner: None,
                        lease_counter: 0,
                        checkpoint: if shard.parent.is_some() { Checkpoint::TrimHorizon } else { initial.clone() },
                        checkpoint_sub_sequence_number: 0,
                        pending_checkpoint: None,
                        owner_switches_since_checkpoint: 0,
                        parent_shard_ids: shard
                            .parent
                            .iter()
                            .chain(shard.adjacent_parent.iter())
                            .map(|&p| shard_id(p))
                            .collect(),
                        child_shard_ids: children,
                        starting_hash_key: shard.hash_range.start.to_string(),
                        ending_hash_key: shard.hash_range.end.to_string(),
                    };
                    batch.put(Cf::Leases, keys::lease(application, &def.name, shard.index), Self::encode(&lease)?);
                    leases.push(lease);
                }
            }
        }
        if !batch.is_empty() {
            self.engine.write(batch, Durability::Sync)?;
        }
        leases.sort_by_key(|l| crate::stream::parse_shard_id(&l.lease_key));
        Ok(leases)
    }

    /// Applies `change` to the lease of `shard` if its counter is still `expected_counter` (and,
    /// for a holder's change, the holder still owns it). Returns the lease as written.
    pub fn update(
        &self,
        application: &str,
        stream: &str,
        shard: u32,
        expected_counter: u64,
        change: LeaseChange,
    ) -> Result<Lease> {
        let _guard = self.writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = keys::lease(application, stream, shard);
        let id = shard_id(shard);
        let raw = self.engine.get(Cf::Leases, &key)?.ok_or_else(|| {
            Error::ResourceNotFound(format!("Application {application} has no lease for {id} of stream {stream}."))
        })?;
        let mut lease: Lease = serde_json::from_slice(&raw)
            .map_err(|err| crate::store::Error::Corrupt { key: crate::stream::hex(&key), reason: err.to_string() })?;
        if lease.lease_counter != expected_counter {
            return Err(Error::LeaseConflict(format!(
                "Lease {id} of application {application} is at counter {}, not {expected_counter}: another worker changed it.",
                lease.lease_counter
            )));
        }
        let held_by = |lease: &Lease, owner: &str| {
            if lease.lease_owner.as_deref() == Some(owner) {
                Ok(())
            } else {
                Err(Error::LeaseConflict(format!(
                    "Lease {id} of application {application} is held by {}, not {owner}.",
                    lease.lease_owner.as_deref().unwrap_or("nobody")
                )))
            }
        };
        match change {
            LeaseChange::Take { owner } => {
                if lease.lease_owner.as_deref() != Some(owner.as_str()) {
                    lease.owner_switches_since_checkpoint += 1;
                }
                lease.lease_owner = Some(owner);
            }
            LeaseChange::Renew { owner } => held_by(&lease, &owner)?,
            LeaseChange::Evict { owner } => {
                held_by(&lease, &owner)?;
                lease.lease_owner = None;
            }
            LeaseChange::Checkpoint { owner, checkpoint, sub_sequence_number } => {
                held_by(&lease, &owner)?;
                lease.checkpoint = checkpoint;
                lease.checkpoint_sub_sequence_number = sub_sequence_number;
                lease.pending_checkpoint = None;
                lease.owner_switches_since_checkpoint = 0;
            }
        }
        lease.lease_counter += 1;
        let mut batch = WriteBatch::new();
        batch.put(Cf::Leases, key, Self::encode(&lease)?);
        self.engine.write(batch, Durability::Sync)?;
        Ok(lease)
    }

    /// The deletions of every application's leases on stream `stream`, to go in the batch that
    /// deletes the stream: a new stream of the same name starts with no leases.
    pub fn stream_deletion(&self, stream: &str) -> Result<WriteBatch> {
        let (start, end) = keys::all_leases_range();
        let mut applications = std::collections::BTreeSet::new();
        self.engine.scan(Cf::Leases, &start, &end, &mut |key, _| {
            if let Some((application, leased)) = keys::lease_names(key) {
                if leased == stream {
                    applications.insert(application.to_owned());
                }
            }
            true
        })?;
        let mut batch = WriteBatch::new();
        for application in applications {
            let (start, end) = keys::lease_range(&application, stream);
            batch.delete_range(Cf::Leases, start, end);
        }
        Ok(batch)
    }

    /// Deletes every lease of an application; returns how many there were.
    pub fn delete_application(&self, application: &str) -> Result<usize> {
        let _guard = self.writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (start, end) = keys::application_range(application);
        let count = self.scan(&start, &end)?.len();
        let mut batch = WriteBatch::new();
        batch.delete_range(Cf::Leases, start, end);
        self.engine.write(batch, Durability::Sync)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::reshard::{apply, Change};
    use crate::store::MemoryEngine;
    use crate::stream::{Catalog, NewStream, StreamMode};

    fn stream(shards: u32) -> StreamDef {
        let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
        let catalog =
            Catalog::load(engine, crate::journal::Journal::in_memory(), "123456789012".into(), "us-east-1".into(), 100)
                .expect("catalog");
        let request = NewStream {
            name: "s".into(),
            shard_count: shards,
            mode: StreamMode::Provisioned,
            max_record_size_kib: 1024,
            tags: BTreeMap::new(),
        };
        let def = catalog.create(request, 0).expect("create").def().clone();
        def
    }

    #[test]
    fn every_write_is_a_compare_and_set() {
        let table = LeaseTable::new(Arc::new(MemoryEngine::new()));
        let def = stream(2);
        let leases = table.sync("app", &def, 0, &Checkpoint::TrimHorizon).expect("sync");
        assert_eq!(leases.len(), 2);
        let a = table.update("app", "s", 0, 0, LeaseChange::Take { owner: "a".into() }).expect("take");
        assert_eq!((a.lease_counter, a.owner_switches_since_checkpoint), (1, 1));
        // b steals with the counter it saw; a's renew with its old counter now fails.
        table.update("app", "s", 0, 1, LeaseChange::Take { owner: "b".into() }).expect("steal");
        let zombie = table.update("app", "s", 0, 1, LeaseChange::Renew { owner: "a".into() });
        assert!(matches!(zombie, Err(Error::LeaseConflict(_))));
        let zombie = table.update(
            "app",
            "s",
            0,
            2,
            LeaseChange::Checkpoint { owner: "a".into(), checkpoint: Checkpoint::ShardEnd, sub_sequence_number: 0 },
        );
        assert!(matches!(zombie, Err(Error::LeaseConflict(_))), "right counter, wrong owner");
        let done = table
            .update(
                "app",
                "s",
                0,
                2,
                LeaseChange::Checkpoint {
                    owner: "b".into(),
                    checkpoint: Checkpoint::SequenceNumber("7".into()),
                    sub_sequence_number: 3,
                },
            )
            .expect("checkpoint");
        assert_eq!(done.checkpoint, Checkpoint::SequenceNumber("7".into()));
        assert_eq!(done.owner_switches_since_checkpoint, 0);
        assert_eq!(table.delete_application("app").expect("delete"), 2);
        assert!(table
            .sync("other", &def, 0, &Checkpoint::Latest)
            .expect("sync")
            .iter()
            .all(|l| l.lease_owner.is_none()));
    }

    #[test]
    fn children_get_leases_naming_their_parents() {
        let table = LeaseTable::new(Arc::new(MemoryEngine::new()));
        let mut def = stream(2);
        table.sync("app", &def, 0, &Checkpoint::Latest).expect("sync");
        apply(&mut def, Change::Merge { shard: 0, adjacent: 1 }, &|_| 4, 10);
        let leases = table.sync("app", &def, 10, &Checkpoint::Latest).expect("sync");
        assert_eq!(leases.len(), 3);
        assert_eq!(leases[0].child_shard_ids, vec!["shardId-000000000002"]);
        assert_eq!(leases[0].lease_counter, 0, "learning children does not disturb the holder");
        assert_eq!(leases[2].parent_shard_ids, vec!["shardId-000000000000", "shardId-000000000001"]);
        assert_eq!(leases[2].checkpoint, Checkpoint::TrimHorizon, "children start at their beginning");
        assert_eq!(leases[0].checkpoint, Checkpoint::Latest);
    }
}

/// Conversions between leases and their `shardline.v1` messages.
pub mod wire {
    use shardline_proto::v1 as pb;

    use super::{Checkpoint, Lease};

    impl From<&Checkpoint> for pb::Checkpoint {
        fn from(checkpoint: &Checkpoint) -> Self {
            use pb::checkpoint::Kind;
            let mut out = pb::Checkpoint::default();
            match checkpoint {
                Checkpoint::TrimHorizon => out.kind = Kind::TrimHorizon.into(),
                Checkpoint::Latest => out.kind = Kind::Latest.into(),
                Checkpoint::ShardEnd => out.kind = Kind::ShardEnd.into(),
                Checkpoint::AtTimestamp(ms) => {
                    out.kind = Kind::AtTimestamp.into();
                    out.timestamp_ms = i64::try_from(*ms).unwrap_or(i64::MAX);
                }
                Checkpoint::SequenceNumber(seq) => {
                    out.kind = Kind::SequenceNumber.into();
                    out.sequence_number = seq.clone();
                }
            }
            out
        }
    }

    /// The checkpoint a message names, or `None` when its kind is unset or unknown.
    pub fn checkpoint(message: &pb::Checkpoint) -> Option<Checkpoint> {
        use pb::checkpoint::Kind;
        Some(match Kind::try_from(message.kind).ok()? {
            Kind::TrimHorizon => Checkpoint::TrimHorizon,
            Kind::Latest => Checkpoint::Latest,
            Kind::ShardEnd => Checkpoint::ShardEnd,
            Kind::AtTimestamp => Checkpoint::AtTimestamp(u64::try_from(message.timestamp_ms).ok()?),
            Kind::SequenceNumber => Checkpoint::SequenceNumber(message.sequence_number.clone()),
            Kind::Unspecified => return None,
        })
    }

    impl From<&Lease> for pb::Lease {
        fn from(lease: &Lease) -> Self {
            let mut checkpoint = pb::Checkpoint::from(&lease.checkpoint);
            checkpoint.sub_sequence_number = lease.checkpoint_sub_sequence_number;
            pb::Lease {
                lease_key: lease.lease_key.clone(),
                lease_owner: lease.lease_owner.clone(),
                lease_counter: lease.lease_counter,
                checkpoint: Some(checkpoint),
                pending_checkpoint: lease.pending_checkpoint.as_ref().map(pb::Checkpoint::from),
                owner_switches_since_checkpoint: lease.owner_switches_since_checkpoint,
                parent_shard_ids: lease.parent_shard_ids.clone(),
                child_shard_ids: lease.child_shard_ids.clone(),
                starting_hash_key: lease.starting_hash_key.clone(),
                ending_hash_key: lease.ending_hash_key.clone(),
            }
        }
    }
}
