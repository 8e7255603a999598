//! `shardline.v1.Admin`: streams, shards and their settings.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{from_error, invalid};
use crate::api::kinesis::validate::is_stream_name;
use crate::hash_range::parse_hash_key;
use crate::node::Node;
use crate::reshard::Change;
use crate::stream::{NewStream, StreamDef, StreamMode, StreamStatus, DEFAULT_MAX_RECORD_SIZE_KIB};

/// The service over a node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<Node>,
}

impl AdminService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn shard(&self, stream: &str, shard: &str) -> Result<u32, Status> {
        self.node.shard_index(stream, shard).map_err(from_error)
    }
}

fn status(status: StreamStatus) -> pb::StreamStatus {
    match status {
        StreamStatus::Creating => pb::StreamStatus::Creating,
        StreamStatus::Active => pb::StreamStatus::Active,
        StreamStatus::Updating => pb::StreamStatus::Updating,
        StreamStatus::Deleting => pb::StreamStatus::Deleting,
    }
}

fn describe(def: &StreamDef, arn: String) -> pb::StreamDescription {
    pb::StreamDescription {
        stream_name: def.name.clone(),
        stream_arn: arn,
        status: status(def.status).into(),
        retention_period_hours: def.retention_hours,
        creation_timestamp_ms: i64::try_from(def.created_at_ms).unwrap_or(i64::MAX),
        shards: def
            .shards
            .iter()
            .map(|s| pb::Shard {
                shard_id: s.id(),
                starting_hash_key: s.hash_range.start.to_string(),
                ending_hash_key: s.hash_range.end.to_string(),
                starting_sequence_number: s.starting_sequence().to_string(),
                ending_sequence_number: s.ending_sequence().map(|e| e.to_string()),
                parent_shard_id: s.parent.map(crate::stream::shard_id),
                adjacent_parent_shard_id: s.adjacent_parent.map(crate::stream::shard_id),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Result<Response<pb::CreateStreamResponse>, Status> {
        let request = request.into_inner();
        if !is_stream_name(&request.stream_name) || request.stream_name.len() > 128 {
            return Err(invalid(format!(
                "stream_name '{}' must match [a-zA-Z0-9_.-]+ and have 1 to 128 characters",
                request.stream_name
            )));
        }
        if request.shard_count == 0 {
            return Err(invalid("shard_count must be at least 1"));
        }
        self.node
            .create_stream(NewStream {
                name: request.stream_name,
                shard_count: request.shard_count,
                mode: StreamMode::Provisioned,
                max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
                tags: Default::default(),
            })
            .map_err(from_error)?;
        Ok(Response::new(pb::CreateStreamResponse {}))
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamResponse>, Status> {
        self.node.delete_stream(&request.into_inner().stream_name, true).map_err(from_error)?;
        Ok(Response::new(pb::DeleteStreamResponse {}))
    }

    async fn describe_stream(
        &self,
        request: Request<pb::DescribeStreamRequest>,
    ) -> Result<Response<pb::StreamDescription>, Status> {
        let name = request.into_inner().stream_name;
        let stream = self.node.catalog().get(&name).map_err(from_error)?;
        let def = stream.def().clone();
        Ok(Response::new(describe(&def, self.node.stream_arn(&name))))
    }

    async fn list_streams(
        &self,
        _request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let stream_names = self.node.catalog().list().iter().map(|s| s.name.clone()).collect();
        Ok(Response::new(pb::ListStreamsResponse { stream_names }))
    }

    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Result<Response<pb::ReshardResponse>, Status> {
        let request = request.into_inner();
        let shard = self.shard(&request.stream_name, &request.shard_id)?;
        let at = parse_hash_key(&request.new_starting_hash_key).ok_or_else(|| {
            invalid(format!(
                "new_starting_hash_key '{}' is not a decimal 128-bit number",
                request.new_starting_hash_key
            ))
        })?;
        self.node.reshard(&request.stream_name, Change::Split { shard, at }).await.map_err(from_error)?;
        Ok(Response::new(pb::ReshardResponse {}))
    }

    async fn merge_shards(
        &self,
        request: Request<pb::MergeShardsRequest>,
    ) -> Result<Response<pb::ReshardResponse>, Status> {
        let request = request.into_inner();
        let shard = self.shard(&request.stream_name, &request.shard_id)?;
        let adjacent = self.shard(&request.stream_name, &request.adjacent_shard_id)?;
        self.node.reshard(&request.stream_name, Change::Merge { shard, adjacent }).await.map_err(from_error)?;
        Ok(Response::new(pb::ReshardResponse {}))
    }

    async fn update_shard_count(
        &self,
        request: Request<pb::UpdateShardCountRequest>,
    ) -> Result<Response<pb::ReshardResponse>, Status> {
        let request = request.into_inner();
        if request.target_shard_count == 0 {
            return Err(invalid("target_shard_count must be at least 1"));
        }
        let change = Change::Scale { target: request.target_shard_count };
        self.node.reshard(&request.stream_name, change).await.map_err(from_error)?;
        Ok(Response::new(pb::ReshardResponse {}))
    }

    async fn set_retention(
        &self,
        request: Request<pb::SetRetentionRequest>,
    ) -> Result<Response<pb::SetRetentionResponse>, Status> {
        let request = request.into_inner();
        let current = self.node.catalog().get(&request.stream_name).map_err(from_error)?.def().retention_hours;
        let increase = request.retention_period_hours >= current;
        self.node.set_retention(&request.stream_name, request.retention_period_hours, increase).map_err(from_error)?;
        Ok(Response::new(pb::SetRetentionResponse {}))
    }

    async fn set_throughput_limits(
        &self,
        request: Request<pb::SetThroughputLimitsRequest>,
    ) -> Result<Response<pb::SetThroughputLimitsResponse>, Status> {
        let request = request.into_inner();
        let limits = match pb::ThroughputLimits::try_from(request.limits) {
            Ok(pb::ThroughputLimits::On) => Some(true),
            Ok(pb::ThroughputLimits::Off) => Some(false),
            Ok(pb::ThroughputLimits::ServerDefault) => None,
            Err(_) => return Err(invalid(format!("limits {} is not a ThroughputLimits value", request.limits))),
        };
        self.node.set_throughput_limits(&request.stream_name, limits).map_err(from_error)?;
        Ok(Response::new(pb::SetThroughputLimitsResponse {}))
    }
}
