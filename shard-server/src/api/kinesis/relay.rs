//! Cluster mode: which server answers a Kinesis request. Every server of a stream's cluster
//! accepts every request (one Service is the SDK endpoint); this decides, from the operation
//! and the fields naming the stream and shard, whether to answer here or relay the request
//! unchanged to the server that holds the shard (GetShardIterator, GetRecords, SubscribeToShard) or the stream's
//! shared state (everything stream-wide: descriptions, consumers, tags, monitoring). Puts are
//! split by shard owner in the node; listings are answered by any server.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde::Deserialize;

use super::codec::Wire;
use super::error::ApiError;
use super::Operation;
use crate::iterator;
use crate::node::{next_hop, Hop, Node};
use crate::peers::FORWARDED;
use crate::placement::Route;
use crate::stream::parse_shard_id;

/// The request fields that address a stream, shard or consumer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Addressing {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

/// The stream name inside a stream or consumer ARN (`…:stream/NAME[/consumer/…]`).
fn stream_of_arn(arn: &str) -> Option<String> {
    let rest = arn.split_once(":stream/")?.1;
    Some(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// The server that must answer `op`, when it is not this one (see [`next_hop`]).
pub fn destination(
    node: &Arc<Node>,
    op: Operation,
    wire: Wire,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let Some(route) = route(node, op, wire, body) else { return Ok(None) };
    let hop = if headers.contains_key(FORWARDED) { Hop::Forwarded } else { Hop::Client };
    Ok(next_hop(route, hop)?)
}

/// Where `op` belongs in cluster mode; `None` when it is answered by any server (or the body
/// does not say, and the local answer explains why).
fn route(node: &Node, op: Operation, wire: Wire, body: &[u8]) -> Option<Route> {
    node.cluster_id()?;
    let route = match op {
        Operation::PutRecord
        | Operation::PutRecords
        | Operation::ListStreams
        | Operation::DescribeLimits
        | Operation::CreateStream
        | Operation::DeleteStream => return None,
        Operation::GetRecords => {
            let addressing: Addressing = wire.decode(body).ok()?;
            let (stream, shard) = iterator::peek(addressing.shard_iterator.as_deref()?)?;
            node.shard_route(&stream, shard)
        }
        Operation::SubscribeToShard => {
            // To the shard's owner, which asks the home server about the consumer.
            let addressing: Addressing = wire.decode(body).ok()?;
            let stream = stream_of_arn(addressing.consumer_arn.as_deref()?)?;
            let shard = parse_shard_id(addressing.shard_id.as_deref()?)?;
            node.shard_route(&stream, shard)
        }
        Operation::GetShardIterator => {
            let addressing: Addressing = wire.decode(body).ok()?;
            let stream = addressing.stream_name.or_else(|| addressing.stream_arn.as_deref().and_then(stream_of_arn))?;
            let shard = parse_shard_id(addressing.shard_id.as_deref()?)?;
            node.shard_route(&stream, shard)
        }
        _ => {
            let addressing: Addressing = wire.decode(body).ok()?;
            let stream = addressing
                .stream_name
                .or_else(|| addressing.stream_arn.as_deref().and_then(stream_of_arn))
                .or_else(|| addressing.consumer_arn.as_deref().and_then(stream_of_arn))
                .or_else(|| addressing.resource_arn.as_deref().and_then(stream_of_arn))?;
            node.home_route(&stream)
        }
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_come_out_of_stream_and_consumer_arns() {
        assert_eq!(stream_of_arn("arn:aws:kinesis:us-east-1:000000000000:stream/orders").as_deref(), Some("orders"));
        assert_eq!(
            stream_of_arn("arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/app:1700000000").as_deref(),
            Some("orders")
        );
        assert_eq!(stream_of_arn("arn:aws:kinesis:us-east-1:000000000000:table/x"), None);
    }
}
