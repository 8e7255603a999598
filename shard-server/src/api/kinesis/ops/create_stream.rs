//! CreateStream: a new stream with evenly split shards, CREATING until it turns ACTIVE.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::StreamModeDetails;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;
use crate::stream::{NewStream, StreamMode, DEFAULT_MAX_RECORD_SIZE_KIB, ON_DEMAND_SHARDS};

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: Option<i64>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_kib: Option<i64>,
}

impl Request {
    /// Creates the stream.
    pub fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mode = self.stream_mode_details.as_ref().and_then(|d| d.stream_mode.as_deref());
        let mut v = Violations::new();
        v.required("streamName", self.stream_name.as_ref());
        v.stream_name("streamName", self.stream_name.as_deref());
        v.range("shardCount", self.shard_count, 1, i64::from(i32::MAX));
        if let Some(details) = &self.stream_mode_details {
            v.required("streamModeDetails.streamMode", details.stream_mode.as_ref());
        }
        v.one_of("streamModeDetails.streamMode", mode, &["PROVISIONED", "ON_DEMAND"]);
        v.range("warmThroughputMiBps", self.warm_throughput_mibps, 0, i64::MAX);
        v.range("maxRecordSizeInKiB", self.max_record_size_kib, 1024, 10240);
        v.tag_map("tags", self.tags.as_ref(), 200);
        v.finish()?;

        let mode = match mode {
            Some("ON_DEMAND") => StreamMode::OnDemand,
            Some(_) => StreamMode::Provisioned,
            None if self.shard_count.is_some() => StreamMode::Provisioned,
            None => StreamMode::OnDemand,
        };
        let shard_count = match (mode, self.shard_count) {
            (_, Some(count)) => {
                u32::try_from(count).map_err(|_| ApiError::invalid_argument("ShardCount is out of range."))?
            }
            (StreamMode::OnDemand, None) => ON_DEMAND_SHARDS,
            (StreamMode::Provisioned, None) => {
                return Err(ApiError::invalid_argument("ShardCount is required for streams in PROVISIONED mode."))
            }
        };
        let max_record_size_kib = self
            .max_record_size_kib
            .map_or(DEFAULT_MAX_RECORD_SIZE_KIB, |kib| u32::try_from(kib).unwrap_or(DEFAULT_MAX_RECORD_SIZE_KIB));
        let name = self.stream_name.unwrap_or_default();
        node.create_stream(NewStream {
            name,
            shard_count,
            mode,
            max_record_size_kib,
            tags: self.tags.unwrap_or_default(),
        })?;
        Ok(())
    }
}
