//! DescribeStreamConsumer and DeregisterStreamConsumer: one consumer, named by its ARN or by
//! its stream's ARN and its name.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::Consumer;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::{ConsumerView, Node};

/// The request of either operation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

/// DescribeStreamConsumer's response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    consumer_description: Consumer,
}

impl Request {
    fn find(self, node: &Node) -> Result<ConsumerView, ApiError> {
        let mut v = Violations::new();
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        v.consumer_name("consumerName", self.consumer_name.as_deref());
        v.consumer_arn("consumerARN", self.consumer_arn.as_deref());
        v.finish()?;
        let stream = match (&self.consumer_arn, self.stream_arn) {
            (None, Some(arn)) => Some(stream_ref::resolve(node, None, Some(arn))?),
            _ => None,
        };
        Ok(node.consumer(self.consumer_arn.as_deref(), stream.as_deref(), self.consumer_name.as_deref())?)
    }

    /// Describes the consumer.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let view = self.find(node)?;
        Ok(Response { consumer_description: Consumer::from_view(&view, true) })
    }

    /// Starts deregistering the consumer.
    pub fn deregister(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let view = self.find(node)?;
        node.deregister_consumer(&view)?;
        Ok(())
    }
}
