//! GetRecords: up to 10,000 records or 10 MiB from an iterator's position.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::{ChildShard, Record};
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// Most records per call, and the default.
pub const MAX_LIMIT: i64 = 10_000;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    shard_iterator: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    records: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_shard_iterator: Option<String>,
    millis_behind_latest: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<ChildShard>,
}

impl Response {
    /// About the length of the encoded answer: each record's data in base64 and ~160 bytes
    /// of sequence number, time, key and names, plus the iterator.
    pub fn encoded_len_hint(&self) -> usize {
        let records: usize =
            self.records.iter().map(|r| r.data.0.len().div_ceil(3) * 4 + r.partition_key.len() + 160).sum();
        records + 512
    }
}

impl Request {
    /// Reads the records (off the async workers: it may touch disk).
    pub async fn apply(self, node: &Arc<Node>) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        v.required("shardIterator", self.shard_iterator.as_ref());
        v.length("shardIterator", self.shard_iterator.as_deref(), 1, 512);
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        if let Some(limit) = self.limit {
            v.range("limit", Some(limit), 1, i64::MAX);
        }
        v.finish()?;
        let limit = self.limit.unwrap_or(MAX_LIMIT);
        if limit > MAX_LIMIT {
            return Err(ApiError::invalid_argument(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to {MAX_LIMIT}"
            )));
        }
        let token = self.shard_iterator.unwrap_or_default();
        let reader = node.clone();
        let page = tokio::task::spawn_blocking(move || {
            reader.get_records(&token, usize::try_from(limit).unwrap_or(usize::MAX))
        })
        .await
        .map_err(|err| {
            tracing::error!(cause = %err, "GetRecords task failed");
            ApiError::internal()
        })??;
        Ok(Response {
            records: page.records.into_iter().map(|(seq, r)| Record::new(seq, r)).collect(),
            next_shard_iterator: page.next_iterator,
            millis_behind_latest: page.millis_behind_latest,
            child_shards: page.child_shards.iter().map(ChildShard::from).collect(),
        })
    }
}
