//! How a request names its stream: `StreamName`, `StreamARN`, or both (which must agree).

use super::error::{ApiError, ErrorCode};
use super::validate::{parse_stream_arn, Violations};
use crate::node::Node;

/// Validates the naming fields' shapes.
pub fn validate(v: &mut Violations, name: Option<&str>, arn: Option<&str>) {
    v.stream_name("streamName", name);
    v.stream_arn("streamARN", arn);
}

/// The stream name a request refers to.
pub fn resolve(node: &Node, name: Option<String>, arn: Option<String>) -> Result<String, ApiError> {
    let Some(arn) = arn else {
        return name.ok_or_else(|| ApiError::invalid_argument("Either StreamName or StreamARN should be provided."));
    };
    let (region, account, arn_name) = parse_stream_arn(&arn)
        .ok_or_else(|| ApiError::invalid_argument(format!("StreamARN {arn} is not a valid stream ARN.")))?;
    let config = node.config();
    if region != config.region || account != config.account_id {
        return Err(ApiError::new(
            ErrorCode::ResourceNotFound,
            format!("Stream {arn_name} under account {account} not found."),
        ));
    }
    if let Some(name) = name {
        if name != arn_name {
            return Err(ApiError::invalid_argument(format!(
                "StreamName {name} does not match the stream in StreamARN {arn}."
            )));
        }
    }
    Ok(arn_name.to_owned())
}
