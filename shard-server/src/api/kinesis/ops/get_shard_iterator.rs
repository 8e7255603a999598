//! GetShardIterator: an opaque, expiring position in one shard.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::error::Error;
use crate::node::{Node, StartingPosition};
use crate::sequence::Position;

/// The starting position types of GetShardIterator and SubscribeToShard.
pub const ITERATOR_TYPES: [&str; 5] =
    ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"];

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
    dry_run: Option<bool>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    shard_iterator: String,
}

impl Request {
    /// Issues the iterator.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("shardId", self.shard_id.as_ref());
        v.shard_id("shardId", self.shard_id.as_deref());
        v.required("shardIteratorType", self.shard_iterator_type.as_ref());
        v.one_of("shardIteratorType", self.shard_iterator_type.as_deref(), &ITERATOR_TYPES);
        v.sequence_number("startingSequenceNumber", self.starting_sequence_number.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let shard = self.shard_id.unwrap_or_default();
        // The shard is looked up before the starting position is read, as Kinesis does.
        let index = node.resolve_shard_id(&name, &shard)?;
        node.readable_shard(&name, index)?;
        let kind = self.shard_iterator_type.unwrap_or_default();
        let account = &node.config().account_id;
        let invalid = |text: &str, why: &str| {
            let shard = crate::stream::shard_id(index);
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {shard} in stream {name} under account {account} is invalid{why}."
            ))
        };
        let parse_sequence = |text: &str| Position::parse(text).ok_or_else(|| invalid(text, ""));
        let sequence = self.starting_sequence_number.as_deref();
        let start = parse_start(&kind, sequence, self.timestamp, parse_sequence)?;
        let shard_iterator = node.shard_iterator(&name, &shard, start).map_err(|err| match err {
            Error::ForeignSequenceNumber => {
                invalid(sequence.unwrap_or_default(), " because it did not come from this stream")
            }
            other => other.into(),
        })?;
        if self.dry_run == Some(true) {
            return Err(ApiError::dry_run());
        }
        Ok(Response { shard_iterator })
    }
}

/// A starting position from its type, sequence number and timestamp, as GetShardIterator and
/// SubscribeToShard take it; `parse_sequence` words the error for a bad sequence number.
pub fn parse_start(
    kind: &str,
    sequence: Option<&str>,
    timestamp: Option<Timestamp>,
    parse_sequence: impl Fn(&str) -> Result<Position, ApiError>,
) -> Result<StartingPosition, ApiError> {
    let mismatch = |with: &str| {
        ApiError::invalid_argument(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {with} StartingSequenceNumber."
        ))
    };
    Ok(match (kind, sequence) {
        ("TRIM_HORIZON" | "LATEST", Some(_)) => return Err(mismatch("also a")),
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => return Err(mismatch("no")),
        ("TRIM_HORIZON", None) => StartingPosition::TrimHorizon,
        ("LATEST", None) => StartingPosition::Latest,
        ("AT_SEQUENCE_NUMBER", Some(text)) => StartingPosition::AtSequenceNumber(parse_sequence(text)?),
        ("AFTER_SEQUENCE_NUMBER", Some(text)) => StartingPosition::AfterSequenceNumber(parse_sequence(text)?),
        ("AT_TIMESTAMP", _) => StartingPosition::AtTimestamp(
            timestamp
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.",
                    )
                })?
                .0,
        ),
        _ => return Err(ApiError::invalid_argument(format!("Unknown ShardIteratorType {kind}."))),
    })
}
