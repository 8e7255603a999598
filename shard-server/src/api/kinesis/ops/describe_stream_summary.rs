//! DescribeStreamSummary: a stream without its shard list.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::{EnhancedMetrics, StreamModeDetails};
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    stream_description_summary: Summary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    retention_period_hours: u32,
    stream_creation_timestamp: Timestamp,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: &'static str,
    open_shard_count: usize,
    consumer_count: u32,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_kib: u32,
}

impl Request {
    /// Summarises the stream.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let stream = node.catalog().get(&name)?;
        let def = stream.def();
        Ok(Response {
            stream_description_summary: Summary {
                stream_name: def.name.clone(),
                stream_arn: node.stream_arn(&def.name),
                stream_status: def.status.as_str(),
                stream_mode_details: StreamModeDetails { stream_mode: Some(def.mode.as_str().to_owned()) },
                retention_period_hours: def.retention_hours,
                stream_creation_timestamp: Timestamp(def.created_at_ms),
                enhanced_monitoring: vec![EnhancedMetrics::of(&def)],
                encryption_type: "NONE",
                open_shard_count: def.open_shards().count(),
                consumer_count: u32::try_from(def.consumers.len()).unwrap_or(u32::MAX),
                max_record_size_kib: def.max_record_size_kib,
            },
        })
    }
}
