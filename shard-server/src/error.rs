//! Errors of the data plane, phrased as Kinesis phrases them. The API layer maps each variant to
//! its Kinesis error code in one place (`api::kinesis::error`).

use crate::store;

/// A data-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No stream of that name (or it is still being created).
    #[error("Stream {name} under account {account} not found.")]
    StreamNotFound {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// A stream of that name already exists.
    #[error("Stream {name} under account {account} already exists.")]
    StreamExists {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The stream is not in a state that allows the call.
    #[error("Stream {name} under account {account} not ACTIVE, instead in state {status}")]
    StreamNotActive {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// Its current status.
        status: &'static str,
    },
    /// No shard of that id in the stream.
    #[error("Shard {shard_id} in stream {stream} under account {account} does not exist")]
    ShardNotFound {
        /// Shard id in canonical form (`shardId-000000000007`).
        shard_id: String,
        /// Stream name.
        stream: String,
        /// Account id.
        account: String,
    },
    /// A starting sequence number in Kinesis' oldest layout (version 0) for the right shard
    /// index: Kinesis answers it with a bare internal failure, and so does Shardline.
    #[error("sequence numbers of layout version 0 name no position")]
    OldestSequenceLayout,
    /// A shard id from which no shard index can be read, or (SplitShard, MergeShards) a shard
    /// the stream does not have.
    #[error("Could not find shard {shard_id} in stream {stream} under account {account}.")]
    CouldNotFindShard {
        /// Shard id as given.
        shard_id: String,
        /// Stream name.
        stream: String,
        /// Account id.
        account: String,
    },
    /// A starting sequence number of the right shard index that another shard issued (its
    /// creation time differs); the API layer words it with the request's fields.
    #[error("The sequence number did not come from this stream.")]
    ForeignSequenceNumber,
    /// A resource other than a stream or shard (a consumer) does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A resource is busy or already exists.
    #[error("{0}")]
    ResourceInUse(String),
    /// A value is well formed but not acceptable here.
    #[error("{0}")]
    InvalidArgument(String),
    /// An account or stream limit would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A lease changed since the caller last saw it (compare-and-set failed).
    #[error("{0}")]
    LeaseConflict(String),
    /// A shard's throughput limit is exhausted (only when limits are on).
    #[error("{0}")]
    ThroughputExceeded(String),
    /// The shard iterator is older than its time-to-live.
    #[error("{0}")]
    ExpiredIterator(String),
    /// The pagination token is older than its time-to-live.
    #[error("{0}")]
    ExpiredNextToken(String),
    /// The operator owns this stream's topology (cluster mode).
    #[error("{0}")]
    ManagedByOperator(String),
    /// An assignment older than the one this server holds.
    #[error("Stream {stream} is at assignment epoch {current}; epoch {offered} is stale.")]
    StaleEpoch {
        /// Stream name.
        stream: String,
        /// The epoch offered.
        offered: u64,
        /// The epoch held.
        current: u64,
    },
    /// The shard is briefly unavailable (being resharded, or its server cannot be reached);
    /// retrying shortly succeeds.
    #[error("{0}")]
    Unavailable(String),
    /// The write path has stopped (the server is shutting down or storage failed).
    #[error("the write path is not accepting records: {0}")]
    WritePathClosed(&'static str),
    /// Storage failed underneath.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The shard log journal failed underneath.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl Error {
    /// The refusal of a change that would take the account past its shard limit, in
    /// Kinesis' words.
    pub fn shard_limit(account: &str, region: &str, current: u64, limit: u32, additional: u64) -> Self {
        Error::LimitExceeded(format!(
            "This request would exceed the shard limit for the account {account} in {region}. Current shard count for the account: {current}. Limit: {limit}. Number of additional shards that would have resulted from this request: {additional}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits."
        ))
    }
}

/// Result alias for data-plane calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
