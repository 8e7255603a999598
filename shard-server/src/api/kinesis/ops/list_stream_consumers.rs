//! ListStreamConsumers: a stream's consumers, paginated.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::page_token;
use crate::api::kinesis::shapes::Consumer;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// Consumers per page when `MaxResults` is absent.
const DEFAULT_MAX_RESULTS: i64 = 100;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    #[allow(dead_code)]
    stream_creation_timestamp: Option<Timestamp>,
}

/// Where a listing continues.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    stream: String,
    skip: usize,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    consumers: Vec<Consumer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl Request {
    /// Lists a page of consumers.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        v.required("streamARN", self.stream_arn.as_ref());
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        v.range("maxResults", self.max_results, 1, 10_000);
        v.length("nextToken", self.next_token.as_deref(), 1, 1_048_576);
        v.finish()?;
        let name = stream_ref::resolve(node, None, self.stream_arn)?;
        let skip = match self.next_token {
            Some(token) => {
                let position: Position = page_token::redeem(node.iterators(), &token, node.now_ms())?;
                if position.stream != name {
                    return Err(ApiError::invalid_argument("NextToken does not belong to this stream."));
                }
                position.skip
            }
            None => 0,
        };
        let max = usize::try_from(self.max_results.unwrap_or(DEFAULT_MAX_RESULTS)).unwrap_or(100);
        let all = node.consumers(&name)?;
        let page: Vec<Consumer> = all.iter().skip(skip).take(max).map(|c| Consumer::from_view(c, false)).collect();
        let next = skip + page.len();
        let next_token = (next < all.len())
            .then(|| page_token::issue(node.iterators(), &Position { stream: name, skip: next }, node.now_ms()))
            .transpose()?;
        Ok(Response { consumers: page, next_token })
    }
}
