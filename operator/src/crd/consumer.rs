//! The `Consumer` resource: a consumer application of a stream, with its lag.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{self, Condition};

/// A consumer application reading a stream.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "shardline.io",
    version = "v1alpha1",
    kind = "Consumer",
    namespaced,
    status = "ConsumerStatus",
    shortname = "sc",
    printcolumn = r#"{"name":"Stream","type":"string","jsonPath":".spec.stream"}"#,
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.applicationName"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","jsonPath":".status.lagRecords"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    /// The `Stream` (same namespace) to consume.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub stream: String,
    /// Application name: workers sharing it share the shards through leases.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub application_name: String,
    /// Where shards without a checkpoint start.
    #[serde(default)]
    pub initial_position: InitialPosition,
    /// Read through enhanced fan-out (a registered stream consumer) instead of polling.
    #[serde(default)]
    pub enhanced_fan_out: bool,
}

/// Where a consumer starts.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InitialPosition {
    /// The oldest retained record.
    #[default]
    TrimHorizon,
    /// Records put from now on.
    Latest,
}

/// A consumer's progress.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    /// Per shard: lease owner, checkpoint and lag.
    #[serde(default)]
    pub shards: Vec<ShardProgress>,
    /// Records behind the tips of all shards.
    #[serde(default)]
    pub lag_records: u64,
    /// Milliseconds behind the tip, the largest over the shards.
    #[serde(default)]
    pub lag_millis: u64,
    /// Ready and Degraded.
    #[serde(default)]
    #[schemars(schema_with = "condition::list_schema")]
    pub conditions: Vec<Condition>,
    /// The generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One shard's progress.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardProgress {
    /// Shard id.
    pub shard_id: String,
    /// Worker holding the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Checkpoint (sequence number, TRIM_HORIZON, LATEST or SHARD_END).
    pub checkpoint: String,
    /// Records after the checkpoint.
    pub lag_records: u64,
}
