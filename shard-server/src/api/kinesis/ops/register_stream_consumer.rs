//! RegisterStreamConsumer: an enhanced fan-out consumer on a stream, CREATING then ACTIVE.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::Consumer;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    consumer: Consumer,
}

impl Request {
    /// Registers the consumer.
    pub fn apply(self, node: &Arc<Node>) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        v.required("streamARN", self.stream_arn.as_ref());
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        v.required("consumerName", self.consumer_name.as_ref());
        v.consumer_name("consumerName", self.consumer_name.as_deref());
        v.finish()?;
        let stream = stream_ref::resolve(node, None, self.stream_arn)?;
        let view = node.register_consumer(&stream, self.consumer_name.as_deref().unwrap_or_default())?;
        Ok(Response { consumer: Consumer::from_view(&view, false) })
    }
}
