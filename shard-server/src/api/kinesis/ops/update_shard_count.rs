//! UpdateShardCount: reach a target number of evenly sized shards (UNIFORM_SCALING) through
//! splits and merges, within AWS's bounds (at most double, at least half, ten per 24 hours).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    stream_name: String,
    current_shard_count: u32,
    target_shard_count: u32,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

impl Request {
    /// Rescales the stream.
    pub async fn apply(self, node: &Arc<Node>) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("targetShardCount", self.target_shard_count.as_ref());
        v.range("targetShardCount", self.target_shard_count, 1, 100_000);
        v.required("scalingType", self.scaling_type.as_ref());
        v.one_of("scalingType", self.scaling_type.as_deref(), &["UNIFORM_SCALING"]);
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let target = u32::try_from(self.target_shard_count.unwrap_or(1)).unwrap_or(1);
        let current = node.catalog().get(&name)?.def().open_shards().count();
        node.reshard(&name, Change::Scale { target }).await?;
        Ok(Response {
            stream_arn: node.stream_arn(&name),
            stream_name: name,
            current_shard_count: u32::try_from(current).unwrap_or(u32::MAX),
            target_shard_count: target,
        })
    }
}
