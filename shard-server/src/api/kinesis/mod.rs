//! The Kinesis-compatible HTTP API: `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`
//! and a JSON 1.1 or CBOR 1.1 body. The wire is kept apart from the meaning: [`codec`] turns bytes into
//! typed requests, each operation in [`ops`] validates and acts on [`Node`], and errors leave
//! through [`error::ErrorCode::wire`] only.

pub mod codec;
pub mod error;
pub mod ops;
pub mod page_token;
pub mod relay;
pub mod shapes;
pub mod stream_ref;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::codec::Wire;
use self::error::{ApiError, ErrorCode};
use self::ops::retention_period::Direction;
use self::ops::subscribe_to_shard;
use crate::node::Node;

/// Largest request body accepted: a PutRecord of the largest record the model allows (10 MiB,
/// base64-encoded) with room to spare. Anything larger is refused before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Bytes of each request body that need no room in the body buffer.
const FREE_BODY_BYTES: usize = 16 << 10;
/// The target prefix of Kinesis Data Streams' API version.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// Declares [`Operation`] with one variant per served Kinesis operation, named as on the wire.
macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Kinesis operations this server serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation {
            $(
                #[doc = stringify!($name)]
                $name,
            )*
        }

        impl Operation {
            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(Operation::$name),)*
                    _ => None,
                }
            }
        }
    };
}

operations!(
    AddTagsToStream,
    CreateStream,
    DecreaseStreamRetentionPeriod,
    DeleteStream,
    DeregisterStreamConsumer,
    DescribeLimits,
    DescribeStream,
    DescribeStreamConsumer,
    DescribeStreamSummary,
    DisableEnhancedMonitoring,
    EnableEnhancedMonitoring,
    GetRecords,
    GetShardIterator,
    IncreaseStreamRetentionPeriod,
    ListShards,
    ListStreamConsumers,
    ListStreams,
    ListTagsForResource,
    ListTagsForStream,
    MergeShards,
    PutRecord,
    PutRecords,
    RegisterStreamConsumer,
    RemoveTagsFromStream,
    SplitShard,
    SubscribeToShard,
    TagResource,
    UntagResource,
    UpdateMaxRecordSize,
    UpdateShardCount,
    UpdateStreamMode,
);

/// Kinesis operations that exist in the AWS API (the aws-sdk-kinesis 1.130 / botocore service
/// model) but are not served, with the reason.
pub const NOT_SERVED: [(&str, &str); 14] = [
    ("StartStreamEncryption", "Shardline has no encryption at rest yet; use encrypted volumes"),
    ("StopStreamEncryption", "Shardline has no encryption at rest yet; use encrypted volumes"),
    ("PutResourcePolicy", "Shardline has no IAM; resource policies would not be enforced"),
    ("GetResourcePolicy", "Shardline has no IAM; resource policies would not be enforced"),
    ("DeleteResourcePolicy", "Shardline has no IAM; resource policies would not be enforced"),
    ("DescribeAccountSettings", "account settings (billing commitments) do not apply to Shardline"),
    ("UpdateAccountSettings", "account settings (billing commitments) do not apply to Shardline"),
    ("UpdateStreamWarmThroughput", "warm throughput does not apply to Shardline"),
    ("CreateChannel", "channels deliver a stream to Amazon S3, which Shardline does not reach"),
    ("DeleteChannel", "channels deliver a stream to Amazon S3, which Shardline does not reach"),
    ("DescribeChannel", "channels deliver a stream to Amazon S3, which Shardline does not reach"),
    ("ListChannels", "channels deliver a stream to Amazon S3, which Shardline does not reach"),
    ("UpdateChannel", "channels deliver a stream to Amazon S3, which Shardline does not reach"),
    (
        "UpdateStreamRecordDistributionStrategy",
        "Shardline places every record by the MD5 of its partition key (or its explicit hash key)",
    ),
];

impl Operation {
    /// Resolves an `X-Amz-Target` header value.
    pub fn from_target(target: Option<&str>) -> Result<Self, ApiError> {
        let unknown = |message: String| ApiError::new(ErrorCode::UnknownOperation, message);
        let target = target.ok_or_else(|| unknown("The X-Amz-Target header is missing.".into()))?;
        let name = target
            .strip_prefix(TARGET_PREFIX)
            .ok_or_else(|| unknown(format!("{target} is not a Kinesis_20131202 operation.")))?;
        if let Some(op) = Operation::from_name(name) {
            return Ok(op);
        }
        match NOT_SERVED.iter().find(|(op, _)| *op == name) {
            Some((op, why)) => Err(unknown(format!("Shardline does not serve {op}: {why}. See README.md."))),
            None => Err(unknown(format!("{name} is not a Kinesis operation."))),
        }
    }
}

/// What an operation answers: a body, or (SubscribeToShard) an event stream.
pub enum Answer {
    /// A complete body in the request's wire format (empty for operations without output).
    Body(Vec<u8>),
    /// An `application/vnd.amazon.eventstream` body.
    Events(Body),
    /// The answer of the server the request was relayed to (cluster mode).
    Relayed(reqwest::Response),
}

/// Runs one operation on a request body and returns its answer in the same wire format.
pub async fn dispatch(op: Operation, wire: Wire, body: &[u8], node: &Arc<Node>) -> Result<Answer, ApiError> {
    use self::ops::*;
    const EMPTY: Vec<u8> = Vec::new();
    let encoded = match op {
        Operation::CreateStream => wire.decode::<create_stream::Request>(body)?.apply(node).map(|()| EMPTY),
        Operation::DeleteStream => wire.decode::<delete_stream::Request>(body)?.apply(node).map(|()| EMPTY),
        Operation::DescribeStream => wire.encode(&wire.decode::<describe_stream::Request>(body)?.apply(node)?),
        Operation::DescribeStreamSummary => {
            wire.encode(&wire.decode::<describe_stream_summary::Request>(body)?.apply(node)?)
        }
        Operation::ListStreams => wire.encode(&wire.decode::<list_streams::Request>(body)?.apply(node)?),
        Operation::ListShards => wire.encode(&wire.decode::<list_shards::Request>(body)?.apply(node)?),
        Operation::PutRecord => wire.encode(&wire.decode::<put_record::Request>(body)?.apply(node).await?),
        Operation::PutRecords => wire.encode(&wire.decode::<put_records::Request>(body)?.apply(node).await?),
        Operation::GetShardIterator => wire.encode(&wire.decode::<get_shard_iterator::Request>(body)?.apply(node)?),
        Operation::GetRecords => wire.encode(&wire.decode::<get_records::Request>(body)?.apply(node).await?),
        Operation::IncreaseStreamRetentionPeriod => {
            wire.decode::<retention_period::Request>(body)?.apply(node, Direction::Increase).map(|()| EMPTY)
        }
        Operation::DecreaseStreamRetentionPeriod => {
            wire.decode::<retention_period::Request>(body)?.apply(node, Direction::Decrease).map(|()| EMPTY)
        }
        Operation::SplitShard => wire.decode::<split_shard::Request>(body)?.apply(node).await.map(|()| EMPTY),
        Operation::MergeShards => wire.decode::<merge_shards::Request>(body)?.apply(node).await.map(|()| EMPTY),
        Operation::UpdateShardCount => {
            wire.encode(&wire.decode::<update_shard_count::Request>(body)?.apply(node).await?)
        }
        Operation::AddTagsToStream => wire.decode::<stream_tags::AddRequest>(body)?.apply(node).map(|()| EMPTY),
        Operation::RemoveTagsFromStream => wire.decode::<stream_tags::RemoveRequest>(body)?.apply(node).map(|()| EMPTY),
        Operation::ListTagsForStream => wire.encode(&wire.decode::<stream_tags::ListRequest>(body)?.apply(node)?),
        Operation::TagResource => wire.decode::<resource_tags::TagRequest>(body)?.apply(node).map(|()| EMPTY),
        Operation::UntagResource => wire.decode::<resource_tags::UntagRequest>(body)?.apply(node).map(|()| EMPTY),
        Operation::ListTagsForResource => wire.encode(&wire.decode::<resource_tags::ListRequest>(body)?.apply(node)?),
        Operation::EnableEnhancedMonitoring => {
            wire.encode(&wire.decode::<enhanced_monitoring::Request>(body)?.apply(node, true)?)
        }
        Operation::DisableEnhancedMonitoring => {
            wire.encode(&wire.decode::<enhanced_monitoring::Request>(body)?.apply(node, false)?)
        }
        Operation::DescribeLimits => wire.encode(&wire.decode::<describe_limits::Request>(body)?.apply(node)),
        Operation::UpdateStreamMode => wire.decode::<update_stream_mode::Request>(body)?.apply(node).map(|()| EMPTY),
        Operation::UpdateMaxRecordSize => {
            wire.decode::<update_max_record_size::Request>(body)?.apply(node).map(|()| EMPTY)
        }
        Operation::RegisterStreamConsumer => {
            wire.encode(&wire.decode::<register_stream_consumer::Request>(body)?.apply(node)?)
        }
        Operation::DescribeStreamConsumer => {
            wire.encode(&wire.decode::<describe_stream_consumer::Request>(body)?.apply(node)?)
        }
        Operation::ListStreamConsumers => {
            wire.encode(&wire.decode::<list_stream_consumers::Request>(body)?.apply(node)?)
        }
        Operation::DeregisterStreamConsumer => {
            wire.decode::<describe_stream_consumer::Request>(body)?.deregister(node).map(|()| EMPTY)
        }
        Operation::SubscribeToShard => {
            return Ok(Answer::Events(wire.decode::<subscribe_to_shard::Request>(body)?.open(node).await?));
        }
    };
    encoded.map(Answer::Body)
}

/// How the Kinesis endpoint admits requests.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Requests processed at once (bodies read, not yet answered); more wait for a slot.
    pub max_in_flight: usize,
    /// How long a request's body may take to arrive once its headers have.
    pub body_timeout: Duration,
    /// Bytes of request bodies held at once (received, not yet answered), in all.
    pub body_buffer_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { max_in_flight: 4096, body_timeout: Duration::from_secs(60), body_buffer_bytes: 1 << 30 }
    }
}

/// What [`handle`] admits requests with.
#[derive(Debug)]
struct Admission {
    in_flight: Arc<Semaphore>,
    body_timeout: Duration,
    /// One permit per body byte held; taken as the bytes arrive, so a client holds only what
    /// it has really sent.
    body_buffer: Arc<Semaphore>,
}

/// The HTTP routes: the Kinesis endpoint on every path, `GET /health` (never queued behind
/// other requests), and the public gRPC services at their own paths.
pub fn router(node: Arc<Node>, limits: RequestLimits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let admission = Arc::new(Admission {
        in_flight: in_flight.clone(),
        body_timeout: limits.body_timeout,
        body_buffer: Arc::new(Semaphore::new(
            limits.body_buffer_bytes.clamp(MAX_REQUEST_BYTES, Semaphore::MAX_PERMITS),
        )),
    });
    let kinesis = Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(handle)
        .layer(Extension(admission))
        .with_state(node.clone());
    crate::api::grpc::routes(kinesis, node, in_flight)
}

/// Reads a whole body of at most [`MAX_REQUEST_BYTES`] within the body timeout, taking room
/// in the body buffer for each chunk as it arrives (the returned permit holds it until the
/// answer is made). A slow body only holds its connection and the bytes it sent: the request
/// takes an in-flight slot once its body is here.
async fn read_body(
    body: Body,
    admission: &Admission,
) -> Result<(bytes::Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let collect = async {
        let mut chunks = body.into_data_stream();
        let mut buffer = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| ApiError::serialization("The request body could not be read."))?;
            if buffer.len() + chunk.len() > MAX_REQUEST_BYTES {
                return Err(ApiError::new(
                    ErrorCode::RequestTooLarge,
                    format!("The request body exceeds the limit of {MAX_REQUEST_BYTES} bytes."),
                ));
            }
            // The first bytes of every body are free (the connection cap bounds them), so a
            // full buffer never holds up the small calls: ListStreams, DescribeStream, leases.
            let beyond_free = (buffer.len() + chunk.len()).saturating_sub(FREE_BODY_BYTES.max(buffer.len()));
            if beyond_free > 0 {
                let room = u32::try_from(beyond_free).unwrap_or(u32::MAX);
                let permit =
                    admission.body_buffer.clone().acquire_many_owned(room).await.map_err(|_| ApiError::internal())?;
                match held.as_mut() {
                    Some(held) => held.merge(permit),
                    None => held = Some(permit),
                }
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok((bytes::Bytes::from(buffer), held))
    };
    match tokio::time::timeout(admission.body_timeout, collect).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("The request body did not arrive within {} seconds.", admission.body_timeout.as_secs_f64()),
        )),
    }
}

#[tracing::instrument(name = "kinesis", skip_all, fields(op))]
async fn handle(
    State(node): State<Arc<Node>>,
    Extension(admission): Extension<Arc<Admission>>,
    request: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (wire, wire_error) = match Wire::from_content_type(content_type) {
        Ok(wire) => (wire, None),
        Err(err) => (Wire::Json, Some(err)),
    };
    let outcome = async {
        if let Some(err) = wire_error {
            return Err(err);
        }
        if parts.method != Method::POST {
            return Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!("{} is not supported; Kinesis requests are POSTs.", parts.method),
            ));
        }
        let op = Operation::from_target(parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()))?;
        tracing::Span::current().record("op", tracing::field::debug(op));
        let (body, _room) = read_body(body, &admission).await?;
        let _slot = admission.in_flight.acquire().await.map_err(|_| ApiError::internal())?;
        if let Some(address) = relay::destination(&node, op, wire, &parts.headers, &body)? {
            let streaming = op == Operation::SubscribeToShard;
            let relayed =
                node.peers().forward_http(&address, &parts.headers, body, streaming).await.map_err(ApiError::from)?;
            return Ok(Answer::Relayed(relayed));
        }
        dispatch(op, wire, &body, &node).await
    }
    .await;

    let (status, body, error_type, content_type) = match outcome {
        Ok(Answer::Body(body)) => (StatusCode::OK, Body::from(body), None, wire.content_type()),
        Ok(Answer::Events(events)) => (StatusCode::OK, events, None, subscribe_to_shard::EVENT_STREAM_CONTENT_TYPE),
        Ok(Answer::Relayed(relayed)) => return relayed_response(relayed, &request_id),
        Err(err) => {
            let (kind, status) = err.code.wire();
            tracing::debug!(error = kind, message = %err.message, "request refused");
            (status, Body::from(wire.error_body(kind, &err.message)), Some(kind), wire.content_type())
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(kind) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    }
    response
}

/// A relayed server's answer, passed on as it came (streamed, so SubscribeToShard works too).
fn relayed_response(relayed: reqwest::Response, request_id: &str) -> Response {
    let status = StatusCode::from_u16(relayed.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = axum::http::HeaderMap::new();
    for name in [header::CONTENT_TYPE.as_str(), "x-amzn-errortype", "x-amzn-requestid"] {
        if let Some(value) = relayed.headers().get(name).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            if let Ok(name) = axum::http::HeaderName::from_bytes(name.as_bytes()) {
                headers.insert(name, value);
            }
        }
    }
    if !headers.contains_key("x-amzn-requestid") {
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-amzn-requestid", id);
        }
    }
    let mut response = (status, Body::from_stream(relayed.bytes_stream())).into_response();
    response.headers_mut().extend(headers);
    response
}
