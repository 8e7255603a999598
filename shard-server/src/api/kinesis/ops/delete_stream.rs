//! DeleteStream: the stream turns DELETING, then its data and definition are removed.

use std::sync::Arc;

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    /// Deletes registered consumers along with the stream; without it they block deletion.
    enforce_consumer_deletion: Option<bool>,
}

impl Request {
    /// Starts the deletion.
    pub fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        node.delete_stream(&name, self.enforce_consumer_deletion == Some(true))?;
        Ok(())
    }
}
