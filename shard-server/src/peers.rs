//! Calls from one shard-server to the others of its cluster: a request for a shard this server
//! does not hold goes to the server that does. Connections are made lazily and reused. Every
//! call has a deadline (`--peer-timeout-ms`): a peer that accepts and never answers costs the
//! client a retryable error after that long, not a request held forever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use shardline_proto::v1 as pb;
use shardline_proto::v1::records_client::RecordsClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::node::{PutEntry, PutResult};
use crate::sequence::SequenceNumber;

/// Metadata (and HTTP header) marking a request one server forwarded to another: the receiver
/// serves it or fails it, and never forwards it again.
pub const FORWARDED: &str = "x-shardline-forwarded";
/// The signature shape a server's own Kinesis calls to a peer carry: the Kinesis port refuses
/// unsigned requests, and signatures are not verified yet. When they are, these calls move to
/// the internal port.
const PEER_AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=shardline-peer/20130101/local/kinesis/aws4_request, SignedHeaders=host, Signature=0";
/// The signing date of [`PEER_AUTHORIZATION`].
const PEER_DATE: &str = "20130101T000000Z";

/// Connections to the other servers.
#[derive(Debug)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    http: reqwest::Client,
    timeout: Duration,
}

/// How long connecting to a peer may take (within the call's deadline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle peer connection is pinged, and how long the answer may take.
const PEER_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The error for a server that could not be reached; retrying reaches it or its successor.
pub fn unreachable(address: &str, cause: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("The shard-server at {address} could not be reached ({cause}); retry shortly."))
}

impl Peers {
    /// Connections whose calls each get `timeout`.
    pub fn new(timeout: Duration) -> Self {
        // A relayed subscription carries an event at least every heartbeat: a peer quiet for
        // longer than a few of them is gone, and its stream ends.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .read_timeout(crate::node::HEARTBEAT * 4)
            .tcp_keepalive(PEER_KEEP_ALIVE)
            .build()
            .unwrap_or_default();
        Self { channels: Mutex::default(), http, timeout }
    }

    /// The error for a peer that did not answer in time.
    fn too_slow(&self, address: &str) -> Error {
        unreachable(address, format_args!("no answer within {} ms", self.timeout.as_millis()))
    }

    /// A gRPC channel to the server at `address` (`host:port`), kept per address.
    pub fn channel(&self, address: &str) -> Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|err| unreachable(address, err))?
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            // Until the answer's headers: a relayed subscription's stream is not cut by it, but
            // a peer that stops answering pings (wedged, or cut off) ends it.
            .timeout(self.timeout)
            .http2_keep_alive_interval(PEER_KEEP_ALIVE)
            .keep_alive_timeout(PEER_KEEP_ALIVE)
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(PEER_KEEP_ALIVE))
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A request marked as forwarded.
    pub fn request<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        request
    }

    /// Puts `entries` (hash keys resolved) on the server at `address`; results in input order.
    /// A record the owner refuses keeps its Kinesis error; an unreachable owner fails every
    /// record with a retryable error.
    pub async fn put(&self, address: &str, stream: &str, entries: Vec<(u128, PutEntry)>) -> Vec<Result<PutResult>> {
        let count = entries.len();
        let records = entries
            .into_iter()
            .map(|(hash, e)| pb::PutRecordEntry {
                partition_key: e.partition_key,
                explicit_hash_key: Some(hash.to_string()),
                data: e.data,
            })
            .collect();
        let request = Self::request(pb::PutRecordsRequest { stream_name: stream.to_owned(), records });
        let answer = match self.channel(address) {
            Ok(channel) => RecordsClient::new(channel).put_records(request).await,
            Err(err) => return (0..count).map(|_| Err(Error::Unavailable(err.to_string()))).collect(),
        };
        match answer {
            Ok(response) => {
                let mut results: Vec<Result<PutResult>> =
                    response.into_inner().records.into_iter().map(put_result).collect();
                results.resize_with(count, || Err(unreachable(address, "short answer")));
                results
            }
            Err(status) => (0..count).map(|_| Err(unreachable(address, status.message()))).collect(),
        }
    }

    /// Sends a Kinesis HTTP request on to the server at `address` unchanged. The deadline
    /// covers the whole answer, or only its headers for a `streaming` one (SubscribeToShard).
    pub async fn forward_http(
        &self,
        address: &str,
        query: Option<&str>,
        headers: &axum::http::HeaderMap,
        body: bytes::Bytes,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let url = match query {
            Some(query) => format!("http://{address}/?{query}"),
            None => format!("http://{address}/"),
        };
        let mut request = self.http.post(url).body(body);
        if !streaming {
            request = request.timeout(self.timeout);
        }
        for name in ["content-type", "x-amz-target", "authorization", "x-amz-date", "date"] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.as_bytes());
            }
        }
        match tokio::time::timeout(self.timeout, request.header(FORWARDED, "1").send()).await {
            Ok(answer) => answer.map_err(|err| unreachable(address, err)),
            Err(_) => Err(self.too_slow(address)),
        }
    }
}

impl Peers {
    /// Calls Kinesis operation `operation` with a JSON body on the server at `address`, marked
    /// as forwarded; its JSON answer, or its error as the data-plane error it names.
    pub async fn kinesis_call(
        &self,
        address: &str,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let answer = self
            .http
            .post(format!("http://{address}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{operation}"))
            .header("authorization", PEER_AUTHORIZATION)
            .header("x-amz-date", PEER_DATE)
            .header(FORWARDED, "1")
            .body(body.to_string())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|err| unreachable(address, err))?;
        let ok = answer.status().is_success();
        let text = answer.text().await.map_err(|err| unreachable(address, err))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| unreachable(address, format!("bad answer: {err}")))?;
        if ok {
            return Ok(value);
        }
        let message = value["message"].as_str().or(value["Message"].as_str()).unwrap_or_default().to_owned();
        Err(named_error(value["__type"].as_str().unwrap_or_default(), message))
    }
}

fn put_result(result: pb::PutRecordResult) -> Result<PutResult> {
    if result.error_code.is_empty() {
        let sequence_number = SequenceNumber::parse(&result.sequence_number)
            .ok_or_else(|| Error::Unavailable(format!("bad sequence number {}", result.sequence_number)))?;
        return Ok(PutResult { shard_id: result.shard_id, sequence_number });
    }
    Err(named_error(&result.error_code, result.error_message))
}

/// The data-plane error for a Kinesis error type another server answered with; anything not
/// the caller's to fix is a retryable failure here.
fn named_error(kind: &str, message: String) -> Error {
    match kind {
        "ProvisionedThroughputExceededException" => Error::ThroughputExceeded(message),
        "InvalidArgumentException" => Error::InvalidArgument(message),
        "ResourceNotFoundException" => Error::ResourceNotFound(message),
        "ResourceInUseException" => Error::ResourceInUse(message),
        _ => Error::Unavailable(message),
    }
}
