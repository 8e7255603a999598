//! Replicated shards: every replicated shard is a Raft group (`raft-rs`), its log the shard's
//! journal log ([`crate::raft_log::JournalRaftLog`]), so record bytes are written once per
//! replica (docs/replication.md).
//!
//! One store loop per server ([`Replicator`]) owns every replica's `RawNode`. Each round it
//! takes what queued (proposals, peers' messages, hosting orders), steps and ticks the groups,
//! writes every group's new entries in one journal commit (one fsync per retention class) and
//! their hard states in one meta batch, and only then sends the messages Raft allows after
//! persistence and applies what is committed: a shard's high watermark moves, and the puts in
//! the committed entries are answered, only once a majority of its replicas has them fsync'd.
//!
//! Sequence numbers are assigned by the leader when it proposes: the next counter after the
//! last record of its log. A new leader's log holds every committed entry, so counters never go
//! back across leader changes; an uncommitted entry a new leader overwrites was never answered
//! nor readable.

mod group;
mod logging;
pub mod storage;
mod store;
#[cfg(test)]
mod tests;
mod transport;

pub use group::{publish_committed, SealedAt};
pub use store::{Envelope, GroupStatus, Hosting, Replicator, Transport, TICK};
pub use transport::{decode, GrpcTransport, Sender, MAX_DECODED_BATCH};

use md5::{Digest, Md5};

/// A shard's Raft group, named the same on every server: stream name and shard index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    /// Stream name.
    pub stream: String,
    /// Shard index.
    pub shard: u32,
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream, self.shard)
    }
}

/// The Raft id of the server with cluster id `member`: the same on every server, never 0
/// (Raft's "nobody"). Derived rather than assigned so a placement needs no second numbering.
pub fn raft_id(member: &str) -> u64 {
    let digest = Md5::digest(member.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) | 1
}

/// Why a replicated append or hosting order failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// This server's replica is not the group's leader; `leader` is the one it knows of.
    #[error("this server does not lead shard {group}; its leader is {leader:?}")]
    NotLeader {
        /// The group.
        group: GroupId,
        /// Raft id of the leader this replica knows of, if any.
        leader: Option<u64>,
    },
    /// The group is not hosted on this server.
    #[error("shard {0} has no replica on this server")]
    NotHosted(GroupId),
    /// The entry was not committed: a leader change took it back, or it waited too long.
    #[error("the write to shard {0} was not committed ({1}); retry it")]
    NotCommitted(GroupId, &'static str),
    /// The shard is sealed for a reshard: its last record under the put's layout epoch was
    /// reported.
    #[error("shard {0} is being resharded")]
    Sealed(GroupId),
    /// The put waited longer than the commit timeout: its entry may or may not commit later.
    #[error("the write to shard {0} was not confirmed within the commit timeout; it may or may not be stored")]
    Unknown(GroupId),
    /// Something this server cannot do yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// Raft refused the call.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The shard's log failed.
    #[error(transparent)]
    Log(#[from] crate::raft_log::RaftLogError),
    /// The store loop has stopped (after a failed write, or at shutdown).
    #[error("the replication loop has stopped")]
    Stopped,
}

impl From<ReplicationError> for crate::error::Error {
    fn from(err: ReplicationError) -> Self {
        crate::error::Error::Unavailable(format!("{err}; retry the request shortly."))
    }
}
