//! The `Stream` resource: a Kinesis stream run by shard-servers across zones.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{self, Condition};

/// A Shardline stream: its shards, retention and where its shard-servers run.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "shardline.io",
    version = "v1alpha1",
    kind = "Stream",
    namespaced,
    status = "StreamStatus",
    shortname = "st",
    scale = r#"{"specReplicasPath":".spec.shards","statusReplicasPath":".status.shards","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"Shards","type":"integer","jsonPath":".spec.shards"}"#,
    printcolumn = r#"{"name":"Retention","type":"integer","jsonPath":".spec.retentionHours"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicationFactor"}"#,
    printcolumn = r#"{"name":"Under-Replicated","type":"integer","jsonPath":".status.underReplicated"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpec {
    /// Open shards the stream should have (1..=10000); changing it reshards uniformly. With
    /// `streamMode: ON_DEMAND`, the fewest the operator scales the stream down to.
    #[schemars(range(min = 1, max = 10000))]
    pub shards: u32,
    /// Hours records are kept (24..=8760).
    #[serde(default = "default_retention")]
    #[schemars(range(min = 24, max = 8760))]
    pub retention_hours: u32,
    /// Zones the shard-servers are spread over (node label `topology.kubernetes.io/zone`);
    /// empty means one group without zone constraints.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Node label spreading the servers, when not the standard zone label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 316))]
    pub topology_key: Option<String>,
    /// Copies of every shard (1..=5), each on a different shard-server and, where there are
    /// enough zones, in a different zone: a Raft group that acknowledges a put once a majority
    /// of them has it on disk, so a shard survives the loss of a minority of its servers, disks
    /// or zones. 1 keeps a single copy. Set when the stream is created; at most the number of
    /// shard-servers.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 5))]
    pub replication_factor: u32,
    /// Shard-servers in each zone (1..=100).
    #[serde(default = "default_servers")]
    #[schemars(range(min = 1, max = 100))]
    pub servers_per_zone: u32,
    /// Each shard-server's volume.
    #[serde(default)]
    pub storage: Storage,
    /// CPU and memory of each shard-server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Kinesis per-shard throughput limits.
    #[serde(default)]
    pub throughput_limits: ThroughputLimits,
    /// Capacity mode.
    #[serde(default)]
    pub stream_mode: StreamMode,
}

fn default_retention() -> u32 {
    24
}

fn default_servers() -> u32 {
    1
}

fn default_replication_factor() -> u32 {
    3
}

/// A shard-server's persistent volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Volume size, a Kubernetes quantity such as `10Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: String,
    /// Storage class; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for Storage {
    fn default() -> Self {
        Self { size: "10Gi".into(), storage_class_name: None }
    }
}

/// Whether shards enforce Kinesis' throughput limits.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ThroughputLimits {
    /// As the shard-servers are started (off unless `--throughput-limits`).
    #[default]
    ServerDefault,
    /// 1 MiB/s and 1,000 records/s in, 2 MiB/s and 5 reads/s out per shard.
    On,
    /// No limits.
    Off,
}

/// Kinesis capacity mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    /// A fixed shard count.
    #[default]
    Provisioned,
    /// Shards sized by the operator to the write rate (at most half of each shard's capacity).
    OnDemand,
}

/// Where a stream stands.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// Creating, Active, Updating, Deleting or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Resharding and Degraded.
    #[serde(default)]
    #[schemars(schema_with = "condition::list_schema")]
    pub conditions: Vec<Condition>,
    /// The generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Open shards now (the scale subresource's replicas).
    #[serde(default)]
    pub shards: u32,
    /// Label selector of the stream's pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Every shard, open and closed.
    #[serde(default)]
    pub shard_map: Vec<ShardStatus>,
    /// The Kinesis endpoint (the client Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The shard-servers' layout epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Retention the shard-servers apply, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_hours: Option<u32>,
    /// Open-shard counts of the UpdateShardCount steps still to run, the current one first.
    #[serde(default)]
    pub reshard_plan: Vec<u32>,
    /// Open replicated shards with fewer live replicas than their replica set names (a
    /// replica's server not Ready, or a configuration change still under way).
    #[serde(default)]
    pub under_replicated: u32,
}

/// A stream's lifecycle phase.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Servers and the stream are being created.
    Creating,
    /// Serving.
    Active,
    /// Serving while resharding or changing settings.
    Updating,
    /// Being deleted.
    Deleting,
    /// Needs the user's attention; see the conditions.
    Failed,
}

/// One shard in the status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Shard id.
    pub id: String,
    /// First hash key (decimal).
    pub starting_hash_key: String,
    /// Last hash key (decimal).
    pub ending_hash_key: String,
    /// open or closed.
    pub state: String,
    /// Parent shards.
    #[serde(default)]
    pub parents: Vec<String>,
    /// The shard-server serving it (for a replicated shard, its preferred leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The shard-servers holding its replicas, when it is replicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    /// The replica leading it, as its servers report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}
