//! MergeShards: close two adjacent shards and open one child spanning both.

use std::sync::Arc;

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;
use crate::reshard::Change;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

impl Request {
    /// Merges the shards.
    pub async fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("shardToMerge", self.shard_to_merge.as_ref());
        v.shard_id("shardToMerge", self.shard_to_merge.as_deref());
        v.required("adjacentShardToMerge", self.adjacent_shard_to_merge.as_ref());
        v.shard_id("adjacentShardToMerge", self.adjacent_shard_to_merge.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let shard = node.resolve_shard_id(&name, self.shard_to_merge.as_deref().unwrap_or_default())?;
        let adjacent = node.resolve_shard_id(&name, self.adjacent_shard_to_merge.as_deref().unwrap_or_default())?;
        node.reshard(&name, Change::Merge { shard, adjacent }).await?;
        Ok(())
    }
}
