//! ListStreams: stream names and summaries in name order, paginated.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::page_token;
use crate::api::kinesis::shapes::StreamModeDetails;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// Streams per page when `Limit` is absent.
const DEFAULT_LIMIT: i64 = 100;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    stream_names: Vec<String>,
    has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    stream_summaries: Vec<StreamSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    stream_creation_timestamp: Timestamp,
}

impl Request {
    /// Lists a page of streams.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        v.range("limit", self.limit, 1, 10000);
        v.stream_name("exclusiveStartStreamName", self.exclusive_start_stream_name.as_deref());
        v.length("nextToken", self.next_token.as_deref(), 1, 1_048_576);
        v.finish()?;
        let after = match (self.next_token, self.exclusive_start_stream_name) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_argument(
                    "NextToken and ExclusiveStartStreamName cannot be provided together.",
                ))
            }
            (Some(token), None) => Some(page_token::redeem::<String>(node.iterators(), &token, node.now_ms())?),
            (None, after) => after,
        };
        let limit = usize::try_from(self.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
        let streams = node.catalog().list();
        let remaining =
            streams.iter().filter(|s| after.as_deref().is_none_or(|after| s.name.as_str() > after)).collect::<Vec<_>>();
        let page = &remaining[..remaining.len().min(limit)];
        let has_more_streams = remaining.len() > page.len();
        let next_token = match (has_more_streams, page.last()) {
            (true, Some(last)) => Some(page_token::issue(node.iterators(), &last.name, node.now_ms())?),
            _ => None,
        };
        let stream_summaries = page
            .iter()
            .map(|stream| {
                let def = stream.def();
                StreamSummary {
                    stream_name: def.name.clone(),
                    stream_arn: node.stream_arn(&def.name),
                    stream_status: def.status.as_str(),
                    stream_mode_details: StreamModeDetails { stream_mode: Some(def.mode.as_str().to_owned()) },
                    stream_creation_timestamp: Timestamp(def.created_at_ms),
                }
            })
            .collect();
        Ok(Response {
            stream_names: page.iter().map(|s| s.name.clone()).collect(),
            has_more_streams,
            next_token,
            stream_summaries,
        })
    }
}
