//! AddTagsToStream, RemoveTagsFromStream and ListTagsForStream: tags by stream name or ARN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::Tag;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// Most tags one ListTagsForStream call returns.
const MAX_LIST_LIMIT: i64 = 50;

/// AddTagsToStream's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddRequest {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// Checks a tag map's shape as the model does (1–200 entries, key 1–128, value 0–256).
pub fn validate_tag_map(v: &mut Violations, tags: Option<&BTreeMap<String, String>>) {
    v.required("tags", tags);
    v.tag_map("tags", tags, 200);
}

/// Checks a tag key list's shape (1–50 keys of 1–128 characters).
pub fn validate_tag_keys(v: &mut Violations, keys: Option<&Vec<String>>) {
    v.required("tagKeys", keys);
    v.string_list("tagKeys", keys.map(Vec::as_slice), (1, 50), (1, 128));
}

impl AddRequest {
    /// Adds the tags.
    pub fn apply(self, node: &Node) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        validate_tag_map(&mut v, self.tags.as_ref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        node.add_tags(&name, self.tags.unwrap_or_default())?;
        Ok(())
    }
}

/// RemoveTagsFromStream's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveRequest {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

impl RemoveRequest {
    /// Removes the tags.
    pub fn apply(self, node: &Node) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        validate_tag_keys(&mut v, self.tag_keys.as_ref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        node.remove_tags(&name, &self.tag_keys.unwrap_or_default())?;
        Ok(())
    }
}

/// ListTagsForStream's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

/// ListTagsForStream's response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResponse {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

impl ListRequest {
    /// Lists a page of tags in key order.
    pub fn apply(self, node: &Node) -> Result<ListResponse, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.length("exclusiveStartTagKey", self.exclusive_start_tag_key.as_deref(), 1, 128);
        v.range("limit", self.limit, 1, MAX_LIST_LIMIT);
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let limit = usize::try_from(self.limit.unwrap_or(MAX_LIST_LIMIT)).unwrap_or(50);
        let after = self.exclusive_start_tag_key;
        let mut tags: Vec<Tag> = node
            .tags(&name)?
            .into_iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .map(|(key, value)| Tag { key, value })
            .collect();
        let has_more_tags = tags.len() > limit;
        tags.truncate(limit);
        Ok(ListResponse { tags, has_more_tags })
    }
}
