//! ListShards: a stream's shards, paginated, optionally filtered by position in time.

use serde::{Deserialize, Serialize};

use crate::api::kinesis::codec::Timestamp;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::page_token;
use crate::api::kinesis::shapes::Shard;
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::node::Node;
use crate::stream::{parse_shard_id, ShardDef, StreamStatus};

/// Shards per page when `MaxResults` is absent.
const DEFAULT_MAX_RESULTS: i64 = 1000;
const FILTER_TYPES: [&str; 6] =
    ["AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"];

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    #[allow(dead_code)]
    stream_creation_timestamp: Option<Timestamp>,
    shard_filter: Option<ShardFilter>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilter {
    #[serde(rename = "Type")]
    kind: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<Timestamp>,
}

/// Where a listing continues: the stream, the filter in force and the last shard returned.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    stream: String,
    after: u32,
    filter: Option<(String, Option<u32>, Option<u64>)>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    shards: Vec<Shard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// A filter after validation.
#[derive(Debug, Clone)]
enum Filter {
    After(u32),
    OpenAtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp(u64),
    FromTimestamp(u64),
}

impl Filter {
    fn parse(kind: &str, shard_id: Option<u32>, timestamp: Option<u64>) -> Result<Self, ApiError> {
        Ok(match kind {
            "AFTER_SHARD_ID" => Filter::After(shard_id.ok_or_else(|| {
                ApiError::invalid_argument("ShardId must be specified for the AFTER_SHARD_ID ShardFilter type.")
            })?),
            "AT_TRIM_HORIZON" => Filter::OpenAtTrimHorizon,
            "FROM_TRIM_HORIZON" => Filter::FromTrimHorizon,
            "AT_LATEST" => Filter::AtLatest,
            "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                let at = timestamp.ok_or_else(|| {
                    ApiError::invalid_argument(format!("Timestamp must be specified for the {kind} ShardFilter type."))
                })?;
                if kind == "AT_TIMESTAMP" {
                    Filter::AtTimestamp(at)
                } else {
                    Filter::FromTimestamp(at)
                }
            }
            other => return Err(ApiError::invalid_argument(format!("Unknown ShardFilter type {other}."))),
        })
    }

    /// Whether `shard` passes, given the stream's trim horizon (the oldest retained time).
    fn admits(&self, shard: &ShardDef, trim_horizon_ms: u64) -> bool {
        match self {
            Filter::After(after) => shard.index > *after,
            Filter::OpenAtTrimHorizon => {
                shard.open_at(trim_horizon_ms) || shard.created_at_ms > trim_horizon_ms && shard.parent.is_none()
            }
            Filter::FromTrimHorizon => shard.open_after(trim_horizon_ms),
            Filter::AtLatest => shard.is_open(),
            Filter::AtTimestamp(at) => shard.open_at(*at) || shard.created_at_ms > *at && shard.parent.is_none(),
            Filter::FromTimestamp(at) => shard.open_after(*at),
        }
    }
}

impl Request {
    /// Lists a page of shards.
    pub fn apply(self, node: &Node) -> Result<Response, ApiError> {
        let mut v = Violations::new();
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.length("nextToken", self.next_token.as_deref(), 1, 1_048_576);
        v.shard_id("exclusiveStartShardId", self.exclusive_start_shard_id.as_deref());
        v.range("maxResults", self.max_results, 1, 10000);
        if let Some(filter) = &self.shard_filter {
            v.required("shardFilter.type", filter.kind.as_ref());
            v.one_of("shardFilter.type", filter.kind.as_deref(), &FILTER_TYPES);
            v.shard_id("shardFilter.shardId", filter.shard_id.as_deref());
        }
        v.finish()?;

        let now = node.now_ms();
        let (name, mut after, filter) = match self.next_token {
            Some(token) => {
                if self.stream_name.is_some() || self.stream_arn.is_some() {
                    return Err(ApiError::invalid_argument("NextToken and StreamName cannot be provided together."));
                }
                if self.exclusive_start_shard_id.is_some() || self.shard_filter.is_some() {
                    return Err(ApiError::invalid_argument(
                        "NextToken cannot be provided together with ExclusiveStartShardId or ShardFilter.",
                    ));
                }
                let position: Position = page_token::redeem(node.iterators(), &token, now)?;
                let filter = position.filter.map(|(kind, shard, at)| Filter::parse(&kind, shard, at)).transpose()?;
                (position.stream, Some(position.after), filter)
            }
            None => {
                if self.stream_name.is_none() && self.stream_arn.is_none() {
                    return Err(ApiError::invalid_argument("Either NextToken or StreamName should be provided."));
                }
                let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
                let after = self.exclusive_start_shard_id.as_deref().and_then(parse_shard_id);
                let filter = match &self.shard_filter {
                    Some(f) => Some(Filter::parse(
                        f.kind.as_deref().unwrap_or_default(),
                        f.shard_id.as_deref().and_then(parse_shard_id),
                        f.timestamp.map(|t| t.0),
                    )?),
                    None => None,
                };
                (name, after, filter)
            }
        };
        let stream = node.catalog().get(&name)?;
        let def = stream.def();
        if def.status == StreamStatus::Creating {
            return Err(ApiError::from(crate::Error::StreamNotActive {
                name: def.name.clone(),
                account: node.config().account_id.clone(),
                status: def.status.as_str(),
            }));
        }
        if let Some(Filter::After(id)) = &filter {
            after = Some(after.map_or(*id, |a| a.max(*id)));
        }
        let limit = usize::try_from(self.max_results.unwrap_or(DEFAULT_MAX_RESULTS)).unwrap_or(usize::MAX);
        let matching = def
            .listed_shards(now)
            .filter(|s| after.is_none_or(|after| s.index > after))
            .filter(|s| filter.as_ref().is_none_or(|f| f.admits(s, now.saturating_sub(def.retention_ms()))))
            .collect::<Vec<_>>();
        let page = &matching[..matching.len().min(limit)];
        let next_token = match (matching.len() > page.len(), page.last()) {
            (true, Some(last)) => Some(page_token::issue(
                node.iterators(),
                &Position {
                    stream: def.name.clone(),
                    after: last.index,
                    filter: self.shard_filter.as_ref().map(|f| {
                        (
                            f.kind.clone().unwrap_or_default(),
                            f.shard_id.as_deref().and_then(parse_shard_id),
                            f.timestamp.map(|t| t.0),
                        )
                    }),
                },
                now,
            )?),
            _ => None,
        };
        Ok(Response { shards: page.iter().map(|s| Shard::from(*s)).collect(), next_token })
    }
}
