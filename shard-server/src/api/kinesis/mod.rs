//! The Kinesis-compatible HTTP API: `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`
//! and a JSON 1.1 or CBOR 1.1 body. The wire is kept apart from the meaning: [`codec`] turns bytes into
//! typed requests, each operation in [`ops`] validates and acts on [`Node`], and errors leave
//! through [`error::ErrorCode::wire`] only.

pub mod authentication;
pub mod codec;
pub mod coral;
pub mod error;
pub mod ops;
pub mod page_token;
pub mod relay;
pub mod shapes;
pub mod stream_ref;
pub mod transport;
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
    /// Resolves an `X-Amz-Target` header value. A target that names no Kinesis operation is
    /// a bare `UnknownOperationException`, as Kinesis answers it; an operation Kinesis has and
    /// Shardline does not serve says why.
    pub fn from_target(target: Option<&str>) -> Result<Self, ApiError> {
        // `Service.Operation`, read as the service reads it: anything after a second `.` is
        // ignored.
        let mut pieces = target.unwrap_or_default().split('.');
        let service = pieces.next().unwrap_or_default();
        let operation = pieces.next().unwrap_or_default();
        let name = if TARGET_PREFIX.strip_suffix('.') == Some(service) { operation } else { "" };
        if let Some(op) = Operation::from_name(name) {
            return Ok(op);
        }
        match NOT_SERVED.iter().find(|(op, _)| *op == name) {
            Some((op, why)) => Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!("Shardline does not serve {op}: {why}. See README.md."),
            )),
            None => Err(ApiError::bare(ErrorCode::UnknownOperation)),
        }
    }

    /// True when `name` is an operation of Kinesis' API, served here or not.
    pub fn is_kinesis_operation(name: &str) -> bool {
        Operation::from_name(name).is_some() || NOT_SERVED.iter().any(|(op, _)| *op == name)
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
        Operation::PutRecords => {
            let response = wire.decode::<put_records::Request>(body)?.apply(node).await?;
            wire.encode_sized(&response, response.encoded_len_hint())
        }
        Operation::GetShardIterator => wire.encode(&wire.decode::<get_shard_iterator::Request>(body)?.apply(node)?),
        Operation::GetRecords => {
            let response = wire.decode::<get_records::Request>(body)?.apply(node).await?;
            wire.encode_sized(&response, response.encoded_len_hint())
        }
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
    /// Whether pages of any origin may call the endpoint from a browser (CORS), as the service
    /// allows. Off by default: until signatures are verified, any page a user opens could
    /// otherwise write to a stream the user's browser can reach.
    pub cors: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { max_in_flight: 4096, body_timeout: Duration::from_secs(60), body_buffer_bytes: 1 << 30, cors: false }
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
    /// CORS on (see [`RequestLimits::cors`]).
    cors: bool,
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
        cors: limits.cors,
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
    // The declared length, when there is one, sizes the buffer once: growing it by doubling
    // copies a 5 MiB PutRecords body about twice over. Reserving only maps address space; the
    // body buffer's room is still taken as bytes arrive.
    let declared = usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(MAX_REQUEST_BYTES);
    let collect = async {
        let mut chunks = body.into_data_stream();
        let mut buffer = Vec::with_capacity(declared.min(MAX_REQUEST_BYTES));
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
    let (parts, body) = request.into_parts();
    let origin = admission.cors && parts.headers.contains_key(header::ORIGIN);
    let preflight = origin && parts.method == Method::OPTIONS;
    let mut response = if preflight {
        transport::preflight(&parts.headers)
    } else {
        match answer(&node, &admission, &parts, body).await {
            Reply::Answer(wire, Answer::Body(body)) => transport::body(StatusCode::OK, wire.content_type(), body),
            Reply::Answer(_, Answer::Events(events)) => {
                let mut response = (StatusCode::OK, events).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(subscribe_to_shard::EVENT_STREAM_CONTENT_TYPE),
                );
                response
            }
            Reply::Answer(_, Answer::Relayed(relayed)) => relayed_response(relayed),
            Reply::Refused(wire, err) => {
                let (kind, status) = err.code.wire();
                tracing::debug!(error = kind, message = %err.message, "request refused");
                let mut response =
                    transport::body(status, wire.content_type(), wire.error_body(err.code, &err.message));
                response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(kind));
                response
            }
            Reply::Transport(refusal) => refusal.into_response(),
        }
    };
    transport::stamp(response.headers_mut(), origin, preflight);
    response
}

/// How a request is answered.
enum Reply {
    /// The operation's answer, in the request's wire format.
    Answer(Wire, Answer),
    /// An error in the request's wire format.
    Refused(Wire, ApiError),
    /// A refusal before the request's format is known, in the shape Kinesis uses for it.
    Transport(transport::Refusal),
}

/// Runs a request through Kinesis' checks in Kinesis' order (method, body, content type,
/// target, signature; then the operation's own validation) and then the operation.
async fn answer(node: &Arc<Node>, admission: &Admission, parts: &axum::http::request::Parts, body: Body) -> Reply {
    if parts.method != Method::POST {
        return Reply::Transport(transport::Refusal::access_denied());
    }
    let content = transport::Content::of(parts.headers.get(header::CONTENT_TYPE));
    let target = transport::Target::of(parts.headers.get("x-amz-target"));
    // Errors before the body is judged are answered in CBOR unless the request is JSON 1.1.
    let early_wire = if content == Some(transport::Content::Json) { Wire::Json } else { Wire::Cbor };
    let (body, _room) = match read_body(body, admission).await {
        Ok(read) => read,
        Err(err) => return Reply::Refused(content.map_or(early_wire, transport::Content::wire), err),
    };
    if body.is_empty() {
        let code = if target.exists() { ErrorCode::Serialization } else { ErrorCode::UnknownOperation };
        return Reply::Refused(early_wire, ApiError::bare(code));
    }
    let Some(content) = content else {
        return Reply::Transport(if target.named() {
            transport::Refusal::unknown_operation()
        } else {
            transport::Refusal::access_denied()
        });
    };
    let wire = content.wire();
    if let Err(err) = wire.check_object(&body) {
        return match content {
            transport::Content::LegacyJson => Reply::Transport(transport::Refusal::legacy(ErrorCode::Serialization)),
            _ => Reply::Refused(wire, err),
        };
    }
    if content == transport::Content::LegacyJson {
        return Reply::Transport(transport::Refusal::legacy(ErrorCode::UnknownOperation));
    }
    let op = match target.operation() {
        Ok(op) => op,
        Err(err) => return Reply::Refused(wire, err),
    };
    tracing::Span::current().record("op", tracing::field::debug(op));
    if let Err(err) = authentication::check(&parts.headers, parts.uri.query()) {
        return Reply::Refused(wire, err);
    }
    let outcome = async {
        let _slot = admission.in_flight.acquire().await.map_err(|_| ApiError::internal())?;
        if let Some(address) = relay::destination(node, op, wire, &parts.headers, &body)? {
            let streaming = op == Operation::SubscribeToShard;
            let relayed = node
                .peers()
                .forward_http(&address, parts.uri.query(), &parts.headers, body, streaming)
                .await
                .map_err(ApiError::from)?;
            return Ok(Answer::Relayed(relayed));
        }
        dispatch(op, wire, &body, node).await
    }
    .await;
    match outcome {
        Ok(answer) => Reply::Answer(wire, answer),
        Err(err) => Reply::Refused(wire, err),
    }
}

/// A relayed server's answer, passed on as it came (streamed, so SubscribeToShard works too).
fn relayed_response(relayed: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(relayed.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = axum::http::HeaderMap::new();
    for name in [header::CONTENT_TYPE.as_str(), "x-amzn-errortype", "x-amzn-requestid"] {
        if let Some(value) = relayed.headers().get(name).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            if let Ok(name) = axum::http::HeaderName::from_bytes(name.as_bytes()) {
                headers.insert(name, value);
            }
        }
    }
    let mut response = (status, Body::from_stream(relayed.bytes_stream())).into_response();
    response.headers_mut().extend(headers);
    response
}
