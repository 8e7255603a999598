//! DescribeLimits: the account's shard limit and usage.

use serde::{Deserialize, Serialize};

use crate::node::Node;

/// The request (no fields).
#[derive(Debug, Deserialize)]
pub struct Request {}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    shard_limit: u32,
    open_shard_count: u64,
    on_demand_stream_count: u32,
    on_demand_stream_count_limit: u32,
}

impl Request {
    /// Reports the limits.
    pub fn apply(self, node: &Node) -> Response {
        let limits = node.limits();
        Response {
            shard_limit: limits.shard_limit,
            open_shard_count: limits.open_shard_count,
            on_demand_stream_count: limits.on_demand_stream_count,
            on_demand_stream_count_limit: limits.on_demand_stream_count_limit,
        }
    }
}
