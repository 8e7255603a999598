//! The Kinesis-compatible HTTP API: `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`
//! and a JSON 1.1 body. The wire is kept apart from the meaning: [`codec`] turns bytes into
//! typed requests, each operation in [`ops`] validates and acts on [`Node`], and errors leave
//! through [`error::ErrorCode::wire`] only.

pub mod codec;
pub mod error;
pub mod ops;
pub mod page_token;
pub mod shapes;
pub mod stream_ref;
pub mod validate;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use self::error::{ApiError, ErrorCode};
use self::ops::retention_period::Direction;
use crate::node::Node;

/// Largest request body accepted: a PutRecord of the largest record the model allows (10 MiB,
/// base64-encoded) with room to spare. Anything larger is refused before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// The target prefix of Kinesis Data Streams' API version.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";
/// Content type of JSON 1.1 requests and responses.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// Kinesis operations this server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CreateStream.
    CreateStream,
    /// DeleteStream.
    DeleteStream,
    /// DescribeStream.
    DescribeStream,
    /// DescribeStreamSummary.
    DescribeStreamSummary,
    /// ListStreams.
    ListStreams,
    /// ListShards.
    ListShards,
    /// PutRecord.
    PutRecord,
    /// PutRecords.
    PutRecords,
    /// GetShardIterator.
    GetShardIterator,
    /// GetRecords.
    GetRecords,
    /// IncreaseStreamRetentionPeriod.
    IncreaseStreamRetentionPeriod,
    /// DecreaseStreamRetentionPeriod.
    DecreaseStreamRetentionPeriod,
    /// SplitShard.
    SplitShard,
    /// MergeShards.
    MergeShards,
    /// UpdateShardCount.
    UpdateShardCount,
}

/// Kinesis operations that exist in the AWS API but are not served yet.
const NOT_YET_SERVED: [&str; 24] = [
    "AddTagsToStream",
    "DeleteResourcePolicy",
    "DeregisterStreamConsumer",
    "DescribeAccountSettings",
    "DescribeLimits",
    "DescribeStreamConsumer",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetResourcePolicy",
    "ListStreamConsumers",
    "ListTagsForResource",
    "ListTagsForStream",
    "PutResourcePolicy",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateStreamMode",
    "UpdateStreamWarmThroughput",
];

impl Operation {
    /// Resolves an `X-Amz-Target` header value.
    pub fn from_target(target: Option<&str>) -> Result<Self, ApiError> {
        let unknown = |message: String| ApiError::new(ErrorCode::UnknownOperation, message);
        let target = target.ok_or_else(|| unknown("The X-Amz-Target header is missing.".into()))?;
        let name = target
            .strip_prefix(TARGET_PREFIX)
            .ok_or_else(|| unknown(format!("{target} is not a Kinesis_20131202 operation.")))?;
        Ok(match name {
            "CreateStream" => Operation::CreateStream,
            "DeleteStream" => Operation::DeleteStream,
            "DescribeStream" => Operation::DescribeStream,
            "DescribeStreamSummary" => Operation::DescribeStreamSummary,
            "ListStreams" => Operation::ListStreams,
            "ListShards" => Operation::ListShards,
            "PutRecord" => Operation::PutRecord,
            "PutRecords" => Operation::PutRecords,
            "GetShardIterator" => Operation::GetShardIterator,
            "GetRecords" => Operation::GetRecords,
            "IncreaseStreamRetentionPeriod" => Operation::IncreaseStreamRetentionPeriod,
            "DecreaseStreamRetentionPeriod" => Operation::DecreaseStreamRetentionPeriod,
            "SplitShard" => Operation::SplitShard,
            "MergeShards" => Operation::MergeShards,
            "UpdateShardCount" => Operation::UpdateShardCount,
            other if NOT_YET_SERVED.contains(&other) => {
                return Err(unknown(format!(
                    "Shardline does not serve {other} yet; see the compatibility table in README.md."
                )))
            }
            other => return Err(unknown(format!("{other} is not a Kinesis operation."))),
        })
    }
}

/// Runs one operation on a JSON body and returns the JSON answer.
pub async fn dispatch(op: Operation, body: &[u8], node: &Arc<Node>) -> Result<Vec<u8>, ApiError> {
    use self::codec::{decode, encode};
    use self::ops::*;
    const EMPTY: Vec<u8> = Vec::new();
    match op {
        Operation::CreateStream => decode::<create_stream::Request>(body)?.apply(node).map(|()| EMPTY),
        Operation::DeleteStream => decode::<delete_stream::Request>(body)?.apply(node).map(|()| EMPTY),
        Operation::DescribeStream => encode(&decode::<describe_stream::Request>(body)?.apply(node)?),
        Operation::DescribeStreamSummary => encode(&decode::<describe_stream_summary::Request>(body)?.apply(node)?),
        Operation::ListStreams => encode(&decode::<list_streams::Request>(body)?.apply(node)?),
        Operation::ListShards => encode(&decode::<list_shards::Request>(body)?.apply(node)?),
        Operation::PutRecord => encode(&decode::<put_record::Request>(body)?.apply(node).await?),
        Operation::PutRecords => encode(&decode::<put_records::Request>(body)?.apply(node).await?),
        Operation::GetShardIterator => encode(&decode::<get_shard_iterator::Request>(body)?.apply(node)?),
        Operation::GetRecords => encode(&decode::<get_records::Request>(body)?.apply(node).await?),
        Operation::IncreaseStreamRetentionPeriod => {
            decode::<retention_period::Request>(body)?.apply(node, Direction::Increase).map(|()| EMPTY)
        }
        Operation::DecreaseStreamRetentionPeriod => {
            decode::<retention_period::Request>(body)?.apply(node, Direction::Decrease).map(|()| EMPTY)
        }
        Operation::SplitShard => decode::<split_shard::Request>(body)?.apply(node).await.map(|()| EMPTY),
        Operation::MergeShards => decode::<merge_shards::Request>(body)?.apply(node).await.map(|()| EMPTY),
        Operation::UpdateShardCount => encode(&decode::<update_shard_count::Request>(body)?.apply(node).await?),
    }
}

/// The HTTP routes: the Kinesis endpoint on every path, and `GET /health`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new().route("/health", get(|| async { "ok" })).fallback(handle).with_state(node)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let media = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim();
    match media {
        JSON_CONTENT_TYPE | "application/x-amz-json-1.0" | "application/json" => Ok(()),
        CBOR_CONTENT_TYPE => Err(ApiError::serialization(
            "CBOR requests are not served yet; use JSON (AWS Java SDK: set AWS_CBOR_DISABLE=true).",
        )),
        other => {
            Err(ApiError::serialization(format!("Unsupported Content-Type '{other}'; expected {JSON_CONTENT_TYPE}.")))
        }
    }
}

#[tracing::instrument(name = "kinesis", skip_all, fields(op))]
async fn handle(State(node): State<Arc<Node>>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let outcome = async {
        if parts.method != Method::POST {
            return Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!("{} is not supported; Kinesis requests are POSTs.", parts.method),
            ));
        }
        check_content_type(&parts.headers)?;
        let op = Operation::from_target(parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()))?;
        tracing::Span::current().record("op", tracing::field::debug(op));
        let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await.map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTooLarge,
                format!("The request body exceeds the limit of {MAX_REQUEST_BYTES} bytes."),
            )
        })?;
        dispatch(op, &body, &node).await
    }
    .await;
    let (status, body, error_type) = match outcome {
        Ok(body) => (StatusCode::OK, body, None),
        Err(err) => {
            let (kind, status) = err.code.wire();
            tracing::debug!(error = kind, message = %err.message, "request refused");
            let body = serde_json::json!({ "__type": kind, "message": err.message }).to_string().into_bytes();
            (status, body, Some(kind))
        }
    };
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(kind) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    }
    response
}
