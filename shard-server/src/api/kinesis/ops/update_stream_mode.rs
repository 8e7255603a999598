//! UpdateStreamMode: switch between PROVISIONED and ON_DEMAND; the stream is UPDATING meanwhile.

use std::sync::Arc;

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::shapes::StreamModeDetails;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;
use crate::stream::StreamMode;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<StreamModeDetails>,
}

impl Request {
    /// Switches the mode.
    pub fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mut v = Violations::new();
        v.required("streamARN", self.stream_arn.as_ref());
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        v.required("streamModeDetails", self.stream_mode_details.as_ref());
        let mode = self.stream_mode_details.and_then(|d| d.stream_mode);
        if v.is_empty() {
            v.required("streamModeDetails.streamMode", mode.as_ref());
        }
        v.one_of("streamModeDetails.streamMode", mode.as_deref(), &["PROVISIONED", "ON_DEMAND"]);
        v.finish()?;
        let name = stream_ref::resolve(node, None, self.stream_arn)?;
        let mode = if mode.as_deref() == Some("ON_DEMAND") { StreamMode::OnDemand } else { StreamMode::Provisioned };
        node.set_stream_mode(&name, mode)?;
        Ok(())
    }
}
