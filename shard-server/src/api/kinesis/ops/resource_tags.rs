//! TagResource, UntagResource and ListTagsForResource: tags by resource ARN. Stream ARNs are
//! served; consumer ARNs are refused with a clear message (consumers carry no tags here).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::{ApiError, ErrorCode};
use crate::api::kinesis::ops::stream_tags::{validate_tag_keys, validate_tag_map};
use crate::api::kinesis::shapes::Tag;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// The stream a resource ARN names.
fn stream_of(node: &Node, arn: Option<String>) -> Result<String, ApiError> {
    let arn = arn.unwrap_or_default();
    if arn.contains("/consumer/") {
        return Err(ApiError::invalid_argument(format!(
            "Tagging consumer {arn} is not supported by Shardline; tag its stream instead."
        )));
    }
    stream_ref::resolve(node, None, Some(arn)).map_err(|err| match err.code {
        ErrorCode::InvalidArgument | ErrorCode::ResourceNotFound => err,
        _ => ApiError::invalid_argument("ResourceARN is not a Kinesis stream ARN."),
    })
}

fn validate_arn(v: &mut Violations, arn: Option<&str>) {
    v.required("resourceARN", arn);
    v.length("resourceARN", arn, 1, 2048);
}

/// TagResource's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagRequest {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

impl TagRequest {
    /// Adds the tags.
    pub fn apply(self, node: &Node) -> Result<(), ApiError> {
        let mut v = Violations::new();
        validate_arn(&mut v, self.resource_arn.as_deref());
        validate_tag_map(&mut v, self.tags.as_ref());
        v.finish()?;
        let name = stream_of(node, self.resource_arn)?;
        node.add_tags(&name, self.tags.unwrap_or_default())?;
        Ok(())
    }
}

/// UntagResource's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagRequest {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

impl UntagRequest {
    /// Removes the tags.
    pub fn apply(self, node: &Node) -> Result<(), ApiError> {
        let mut v = Violations::new();
        validate_arn(&mut v, self.resource_arn.as_deref());
        validate_tag_keys(&mut v, self.tag_keys.as_ref());
        v.finish()?;
        let name = stream_of(node, self.resource_arn)?;
        node.remove_tags(&name, &self.tag_keys.unwrap_or_default())?;
        Ok(())
    }
}

/// ListTagsForResource's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

/// ListTagsForResource's response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResponse {
    tags: Vec<Tag>,
}

impl ListRequest {
    /// Lists every tag.
    pub fn apply(self, node: &Node) -> Result<ListResponse, ApiError> {
        let mut v = Violations::new();
        validate_arn(&mut v, self.resource_arn.as_deref());
        v.finish()?;
        let name = stream_of(node, self.resource_arn)?;
        let tags = node.tags(&name)?.into_iter().map(|(key, value)| Tag { key, value }).collect();
        Ok(ListResponse { tags })
    }
}
