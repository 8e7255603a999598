//! SplitShard: close a shard and open two children divided at a hash key.

use std::sync::Arc;

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::{is_hash_key, Violations, HASH_KEY_PATTERN};
use crate::hash_range::parse_hash_key;
use crate::node::Node;
use crate::reshard::Change;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

impl Request {
    /// Splits the shard.
    pub async fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("shardToSplit", self.shard_to_split.as_ref());
        v.shard_id("shardToSplit", self.shard_to_split.as_deref());
        v.required("newStartingHashKey", self.new_starting_hash_key.as_ref());
        v.pattern("newStartingHashKey", self.new_starting_hash_key.as_deref(), is_hash_key, HASH_KEY_PATTERN);
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let shard_text = self.shard_to_split.unwrap_or_default();
        let shard = node.resolve_shard_id(&name, &shard_text)?;
        let at = self.new_starting_hash_key.as_deref().and_then(parse_hash_key).ok_or_else(|| {
            ApiError::invalid_argument("NewStartingHashKey must be a decimal number between 0 and 2^128 - 1.")
        })?;
        node.reshard(&name, Change::Split { shard, at }).await?;
        Ok(())
    }
}
