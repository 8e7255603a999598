//! UpdateMaxRecordSize: the largest record (partition key plus data) a stream accepts.

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
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

impl Request {
    /// Changes the limit.
    pub fn apply(self, node: &Arc<Node>) -> Result<(), ApiError> {
        let mut v = Violations::new();
        v.required("streamARN", self.stream_arn.as_ref());
        v.stream_arn("streamARN", self.stream_arn.as_deref());
        v.required("maxRecordSizeInKiB", self.max_record_size_in_kib.as_ref());
        v.range("maxRecordSizeInKiB", self.max_record_size_in_kib, 1024, 10240);
        v.finish()?;
        let name = stream_ref::resolve(node, None, self.stream_arn)?;
        let kib = u32::try_from(self.max_record_size_in_kib.unwrap_or(1024)).unwrap_or(1024);
        node.set_max_record_size(&name, kib)?;
        Ok(())
    }
}
