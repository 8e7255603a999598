//! PutRecord: one record, routed by partition key (or explicit hash key), durable on return.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Blob;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::ops::records::{check_entry, to_put_entry, EntryFields};
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::{Violations, SEQUENCE_NUMBER_PATTERN};
use crate::metrics::PutOp;
use crate::node::Node;
use crate::sequence;

/// How far ahead of this server's clock a SequenceNumberForOrdering may be dated.
const ORDERING_CLOCK_TOLERANCE_SECS: u64 = 300;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    data: Option<Blob>,
    sequence_number_for_ordering: Option<String>,
    dry_run: Option<bool>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    shard_id: String,
    sequence_number: String,
    /// Sent only for encrypted streams, as Kinesis sends it (Shardline encrypts none).
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
}

impl Request {
    /// Puts the record.
    pub async fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        let fields = EntryFields {
            partition_key: self.partition_key.as_deref(),
            explicit_hash_key: self.explicit_hash_key.as_deref(),
            data: self.data.as_ref(),
        };
        check_entry(&mut v, String::new, &fields);
        v.pattern(
            "sequenceNumberForOrdering",
            self.sequence_number_for_ordering.as_deref(),
            sequence::is_well_formed,
            SEQUENCE_NUMBER_PATTERN,
        );
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        if let Some(ordering) = &self.sequence_number_for_ordering {
            // Any number Kinesis could have issued orders, this server's or AWS's (every record a
            // shard takes numbers above every earlier one anyway), except one from the future.
            // A number this stream issued may be a little ahead of this clock (arrival times
            // never step back, a shard's creation may be dated a second on), so the future
            // starts a while from now.
            let future_secs = node.now_ms() / 1000 + ORDERING_CLOCK_TOLERANCE_SECS;
            let position = sequence::Position::parse(ordering);
            if position.is_none_or(|p| p.arrival_secs().is_some_and(|at| at > future_secs)) {
                return Err(ApiError::invalid_argument(format!(
                    "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {name} under account {} is invalid.",
                    node.config().account_id
                )));
            }
        }
        let entry = to_put_entry(self.partition_key, self.explicit_hash_key.as_deref(), self.data)?;
        if self.dry_run == Some(true) {
            node.catalog().get(&name)?;
            return Err(ApiError::dry_run());
        }
        let bytes = (entry.partition_key.len() + entry.data.len()) as u64;
        let started = std::time::Instant::now();
        let outcome = node.put(&name, vec![entry]).await;
        let (stored, throttled) = match &outcome {
            Ok(results) => {
                let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
                (stored, 1 - stored)
            }
            Err(_) => (0, 0),
        };
        let ok = outcome.is_ok() && stored == 1;
        if node.has_stream(&name) {
            node.metrics().put(PutOp::PutRecord, &name, 1, stored, throttled, bytes * stored, started.elapsed(), ok);
        }
        let result = outcome?.pop().ok_or_else(ApiError::internal)??;
        Ok(Response {
            shard_id: result.shard_id,
            sequence_number: result.sequence_number.to_string(),
            encryption_type: None,
        })
    }
}
