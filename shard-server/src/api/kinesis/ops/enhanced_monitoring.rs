//! EnableEnhancedMonitoring and DisableEnhancedMonitoring: shard-level metrics on or off.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::monitoring::SHARD_LEVEL_METRICS;
use crate::node::Node;

/// The request of either operation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
}

/// The response of either operation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    stream_name: String,
    current_shard_level_metrics: Vec<String>,
    desired_shard_level_metrics: Vec<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

impl Request {
    /// Enables (`enable`) or disables the metrics.
    pub fn apply(self, node: &Node, enable: bool) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("shardLevelMetrics", self.shard_level_metrics.as_ref());
        let metrics = self.shard_level_metrics.unwrap_or_default();
        if metrics.is_empty() || metrics.len() > 7 {
            v.violation(None, "shardLevelMetrics", "Member must have length between 1 and 7");
        }
        let mut allowed = SHARD_LEVEL_METRICS.to_vec();
        allowed.push("ALL");
        for metric in &metrics {
            v.one_of("shardLevelMetrics.member", Some(metric), &allowed);
        }
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let change = node.set_enhanced_monitoring(&name, &metrics, enable)?;
        Ok(Response {
            stream_arn: node.stream_arn(&name),
            stream_name: name,
            current_shard_level_metrics: change.current.into_iter().collect(),
            desired_shard_level_metrics: change.desired.into_iter().collect(),
        })
    }
}
