//! IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod: one request shape, one
//! rule set (24 to 8,760 hours; each call only moves in its own direction).

use serde::Deserialize;

use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;

/// Which way the call may move the retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// IncreaseStreamRetentionPeriod.
    Increase,
    /// DecreaseStreamRetentionPeriod.
    Decrease,
}

/// The request of either operation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

impl Request {
    /// Changes the retention period.
    pub fn apply(self, node: &Node, direction: Direction) -> Result<(), ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.required("retentionPeriodHours", self.retention_period_hours.as_ref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let hours = self.retention_period_hours.unwrap_or_default().clamp(0, i64::from(u32::MAX));
        let hours = u32::try_from(hours).unwrap_or(u32::MAX);
        node.set_retention(&name, hours, direction == Direction::Increase)?;
        Ok(())
    }
}
