//! SubscribeToShard: enhanced fan-out. The answer is an `application/vnd.amazon.eventstream`
//! body: an `initial-response` event, then a `SubscribeToShardEvent` each time records become
//! durable (or after five quiet seconds), ending after five minutes or with the shard's
//! ChildShards once a closed shard has been read to its end. Events carry JSON payloads, as
//! Kinesis' awsJson 1.1 protocol has them; a failure mid-stream is an `exception` message.

use std::sync::Arc;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Body;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::{ApiError, ErrorCode};
use crate::api::kinesis::ops::get_shard_iterator::{parse_start, ITERATOR_TYPES};
use crate::api::kinesis::shapes::{ChildShard, Record};
use crate::api::kinesis::validate::Violations;
use crate::node::{Node, SubscriptionEvent};
use crate::sequence::Position as SequencePosition;

/// Content type of an event stream answer.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<Position>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Position {
    #[serde(rename = "Type")]
    kind: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    records: Vec<Record>,
    continuation_sequence_number: String,
    millis_behind_latest: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<ChildShard>,
}

impl Request {
    /// Opens the subscription; errors before the first event are ordinary error answers.
    pub async fn open(self, node: &Arc<Node>) -> Result<Body, ApiError> {
        let mut v = Violations::new();
        v.required("consumerARN", self.consumer_arn.as_ref());
        v.consumer_arn("consumerARN", self.consumer_arn.as_deref());
        v.required("shardId", self.shard_id.as_ref());
        v.shard_id("shardId", self.shard_id.as_deref());
        v.required("startingPosition", self.starting_position.as_ref());
        let position =
            self.starting_position.unwrap_or(Position { kind: None, sequence_number: None, timestamp: None });
        if v.is_empty() {
            v.required("startingPosition.type", position.kind.as_ref());
        }
        v.one_of("startingPosition.type", position.kind.as_deref(), &ITERATOR_TYPES);
        v.sequence_number("startingPosition.sequenceNumber", position.sequence_number.as_deref());
        v.finish()?;
        let arn = self.consumer_arn.unwrap_or_default();
        let shard = self.shard_id.unwrap_or_default();
        let parse_sequence = |text: &str| {
            SequencePosition::parse(text).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "StartingPosition.SequenceNumber {text} used in SubscribeToShard on shard {shard} is invalid."
                ))
            })
        };
        let kind = position.kind.unwrap_or_default();
        let start = parse_start(&kind, position.sequence_number.as_deref(), position.timestamp, parse_sequence)?;
        let consumer = node.consumer_anywhere(&arn).await?;
        let events = node.subscribe_as(&consumer, &shard, start)?;
        let initial = frame(
            &Message::new(&b"{}"[..])
                .add_header(header(":message-type", "event"))
                .add_header(header(":event-type", "initial-response"))
                .add_header(header(":content-type", "application/json")),
        );
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(initial)]);
        // Each event's share of the subscription buffer is held until the next one is asked
        // for, so what waits in the transport for a slow client is counted too.
        let rest = futures_util::stream::unfold((events, None), |(mut events, held)| async move {
            drop(held);
            let (frame, room) = match events.recv().await? {
                Ok(event) => {
                    let room = event.room.clone();
                    (event_frame(event), room)
                }
                Err(err) => {
                    let err = ApiError::from(err);
                    (exception_frame(err.code.wire().0, &err.message), None)
                }
            };
            Some((Ok(frame), (events, room)))
        });
        Ok(Body::from_stream(first.chain(rest)))
    }
}

fn header(name: &'static str, value: &'static str) -> Header {
    Header::new(name, HeaderValue::String(value.into()))
}

fn frame(message: &Message) -> bytes::Bytes {
    let mut out = Vec::new();
    if let Err(err) = aws_smithy_eventstream::frame::write_message_to(message, &mut out) {
        tracing::error!(cause = %err, "event stream framing failed");
    }
    out.into()
}

fn event_frame(event: SubscriptionEvent) -> bytes::Bytes {
    let payload = Event {
        records: event.records.into_iter().map(|(seq, r)| Record::new(seq, r)).collect(),
        continuation_sequence_number: event.continuation.to_string(),
        millis_behind_latest: event.millis_behind_latest,
        child_shards: event.child_shards.iter().map(ChildShard::from).collect(),
    };
    match serde_json::to_vec(&payload) {
        Ok(body) => frame(
            &Message::new(body)
                .add_header(header(":message-type", "event"))
                .add_header(header(":event-type", "SubscribeToShardEvent"))
                .add_header(header(":content-type", "application/json")),
        ),
        Err(err) => exception_frame(ErrorCode::InternalFailure.wire().0, &err.to_string()),
    }
}

fn exception_frame(kind: &'static str, message: &str) -> bytes::Bytes {
    let body = serde_json::json!({ "message": message }).to_string();
    frame(
        &Message::new(body.into_bytes())
            .add_header(header(":message-type", "exception"))
            .add_header(Header::new(":exception-type", HeaderValue::String(kind.into())))
            .add_header(header(":content-type", "application/json")),
    )
}
