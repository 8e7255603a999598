//! DescribeStream: a stream with a page of its shards.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::{EnhancedMetrics, Shard, StreamModeDetails};
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;
use crate::stream::{parse_shard_id, StreamStatus};

/// Shards per page when `Limit` is absent.
const DEFAULT_LIMIT: i64 = 100;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    stream_description: StreamDescription,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamDescription {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    shards: Vec<Shard>,
    has_more_shards: bool,
    retention_period_hours: u32,
    stream_creation_timestamp: Timestamp,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: &'static str,
}

impl Request {
    /// Describes the stream.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.range("limit", self.limit, 1, 10000);
        v.shard_id("exclusiveStartShardId", self.exclusive_start_shard_id.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let stream = node.catalog().get(&name)?;
        let def = stream.def();
        let limit = usize::try_from(self.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
        let after = self.exclusive_start_shard_id.as_deref().and_then(parse_shard_id);
        // A stream shows no shards while it is being created, as Kinesis does.
        let visible = match def.status {
            StreamStatus::Creating => Vec::new(),
            _ => def
                .listed_shards(node.now_ms())
                .filter(|s| after.is_none_or(|after| s.index > after))
                .collect::<Vec<_>>(),
        };
        let has_more_shards = visible.len() > limit;
        Ok(Response {
            stream_description: StreamDescription {
                stream_name: def.name.clone(),
                stream_arn: node.stream_arn(&def.name),
                stream_status: def.status.as_str(),
                stream_mode_details: StreamModeDetails { stream_mode: Some(def.mode.as_str().to_owned()) },
                shards: visible.into_iter().take(limit).map(Shard::from).collect(),
                has_more_shards,
                retention_period_hours: def.retention_hours,
                stream_creation_timestamp: Timestamp(def.created_at_ms),
                enhanced_monitoring: vec![EnhancedMetrics::of(&def)],
                encryption_type: "NONE",
            },
        })
    }
}
