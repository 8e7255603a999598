//! Checkpointing one shard's progress: a compare-and-set on its lease, shared with the worker's
//! renewals through one counter, so a worker that lost the lease is refused.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::leases_client::LeasesClient;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::lease::{is_conflict, HeldLease};

/// Why a checkpoint was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Another worker holds the lease now; stop processing the shard.
    #[error("the lease of {shard} was lost to another worker")]
    LeaseLost {
        /// Shard id.
        shard: String,
    },
    /// Nothing was delivered yet, so there is nothing to checkpoint.
    #[error("no record has been delivered on {shard} yet")]
    NothingToCheckpoint {
        /// Shard id.
        shard: String,
    },
    /// The call failed; it may be retried.
    #[error("checkpoint call failed: {0}")]
    Call(#[from] tonic::Status),
}

/// Records progress for one shard lease.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    client: LeasesClient<Channel>,
    lease: Arc<HeldLease>,
    /// The last record handed to the processor: (sequence number, sub-sequence number).
    delivered: Arc<Mutex<Option<(String, u64)>>>,
    lost: CancellationToken,
}

impl Checkpointer {
    pub(super) fn new(client: LeasesClient<Channel>, lease: Arc<HeldLease>, lost: CancellationToken) -> Self {
        Self { client, lease, delivered: Arc::default(), lost }
    }

    pub(super) async fn delivered(&self, sequence_number: String, sub_sequence_number: u64) {
        *self.delivered.lock().await = Some((sequence_number, sub_sequence_number));
    }

    /// The shard this checkpointer serves.
    pub fn shard_id(&self) -> &str {
        &self.lease.shard_id
    }

    /// Checkpoints at the last record delivered to the processor.
    pub async fn checkpoint(&self) -> Result<(), CheckpointError> {
        let delivered = self.delivered.lock().await.clone();
        let (sequence_number, sub) =
            delivered.ok_or_else(|| CheckpointError::NothingToCheckpoint { shard: self.lease.shard_id.clone() })?;
        self.checkpoint_at(&sequence_number, sub).await
    }

    /// Checkpoints at a given record (and sub-record of an aggregate).
    pub async fn checkpoint_at(&self, sequence_number: &str, sub_sequence_number: u64) -> Result<(), CheckpointError> {
        let kind = pb::checkpoint::Kind::SequenceNumber;
        let checkpoint = pb::Checkpoint {
            kind: kind.into(),
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number,
            timestamp_ms: 0,
        };
        self.write(checkpoint).await
    }

    /// Records that the shard was read to its end, so its children may start.
    pub async fn checkpoint_shard_end(&self) -> Result<(), CheckpointError> {
        let checkpoint = pb::Checkpoint { kind: pb::checkpoint::Kind::ShardEnd.into(), ..Default::default() };
        self.write(checkpoint).await
    }

    async fn write(&self, checkpoint: pb::Checkpoint) -> Result<(), CheckpointError> {
        if self.lost.is_cancelled() {
            return Err(CheckpointError::LeaseLost { shard: self.lease.shard_id.clone() });
        }
        let mut counter = self.lease.counter.lock().await;
        let request = pb::CheckpointRequest { lease: Some(self.lease.request(*counter)), checkpoint: Some(checkpoint) };
        match self.client.clone().checkpoint(request).await {
            Ok(lease) => {
                *counter = lease.into_inner().lease_counter;
                Ok(())
            }
            Err(status) if is_conflict(&status) => {
                self.lost.cancel();
                Err(CheckpointError::LeaseLost { shard: self.lease.shard_id.clone() })
            }
            Err(status) => Err(status.into()),
        }
    }
}
