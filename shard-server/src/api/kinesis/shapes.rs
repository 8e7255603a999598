//! Kinesis structures shared by several operations' responses and requests.

use serde::{Deserialize, Serialize};

use crate::stream::ShardDef;

/// A shard as DescribeStream and ListShards return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    /// Shard id.
    pub shard_id: String,
    /// Parent shard (after a split or merge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    /// Other parent (after a merge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    /// Hash keys owned.
    pub hash_key_range: HashKeyRange,
    /// Sequence numbers spanned.
    pub sequence_number_range: SequenceNumberRange,
}

/// An inclusive range of hash keys, decimal strings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    /// First key.
    pub starting_hash_key: String,
    /// Last key.
    pub ending_hash_key: String,
}

/// A shard's sequence number span; the end is present once the shard is closed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// First sequence number.
    pub starting_sequence_number: String,
    /// Last sequence number, for closed shards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

impl From<&ShardDef> for Shard {
    fn from(shard: &ShardDef) -> Self {
        Shard {
            shard_id: shard.id(),
            parent_shard_id: shard.parent.map(crate::stream::shard_id),
            adjacent_parent_shard_id: shard.adjacent_parent.map(crate::stream::shard_id),
            hash_key_range: HashKeyRange {
                starting_hash_key: shard.hash_range.start.to_string(),
                ending_hash_key: shard.hash_range.end.to_string(),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: shard.starting_sequence().to_string(),
                ending_sequence_number: shard.ending_sequence().map(|s| s.to_string()),
            },
        }
    }
}

/// A child of a shard read to its end, as GetRecords and SubscribeToShard return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    /// Shard id.
    pub shard_id: String,
    /// Its parents (one after a split, two after a merge).
    pub parent_shards: Vec<String>,
    /// Hash keys it owns.
    pub hash_key_range: HashKeyRange,
}

impl From<&ShardDef> for ChildShard {
    fn from(shard: &ShardDef) -> Self {
        ChildShard {
            shard_id: shard.id(),
            parent_shards: shard
                .parent
                .iter()
                .chain(shard.adjacent_parent.iter())
                .map(|&p| crate::stream::shard_id(p))
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: shard.hash_range.start.to_string(),
                ending_hash_key: shard.hash_range.end.to_string(),
            },
        }
    }
}

/// The capacity mode of a stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    /// `PROVISIONED` or `ON_DEMAND`.
    pub stream_mode: Option<String>,
}

/// Shard-level metrics enabled on a stream.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    /// Metric names.
    pub shard_level_metrics: Vec<String>,
}

impl EnhancedMetrics {
    /// The metrics a stream has enabled.
    pub fn of(def: &crate::stream::StreamDef) -> Self {
        EnhancedMetrics { shard_level_metrics: def.shard_level_metrics.iter().cloned().collect() }
    }
}

/// A tag as the tag listings return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A registered consumer, as RegisterStreamConsumer and ListStreamConsumers return it; with
/// `StreamARN` it is DescribeStreamConsumer's ConsumerDescription.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    /// Name.
    pub consumer_name: String,
    /// ARN.
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    /// CREATING, ACTIVE or DELETING.
    pub consumer_status: &'static str,
    /// Registration time.
    pub consumer_creation_timestamp: crate::api::kinesis::codec::Timestamp,
    /// The stream's ARN (DescribeStreamConsumer only).
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

impl Consumer {
    /// The shape of a consumer; `with_stream` adds the stream's ARN.
    pub fn from_view(view: &crate::node::ConsumerView, with_stream: bool) -> Self {
        Consumer {
            consumer_name: view.consumer.name.clone(),
            consumer_arn: view.arn.clone(),
            consumer_status: view.consumer.status.as_str(),
            consumer_creation_timestamp: crate::api::kinesis::codec::Timestamp(view.consumer.created_at_ms),
            stream_arn: with_stream.then(|| view.stream_arn.clone()),
        }
    }
}

/// A record as GetRecords and SubscribeToShardEvent return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// Sequence number.
    pub sequence_number: String,
    /// When the record arrived.
    pub approximate_arrival_timestamp: crate::api::kinesis::codec::Timestamp,
    /// Payload.
    pub data: crate::api::kinesis::codec::Blob,
    /// Partition key.
    pub partition_key: String,
}

impl Record {
    /// The shape of a stored record.
    pub fn new(sequence_number: crate::sequence::SequenceNumber, record: crate::shard::StoredRecord) -> Self {
        Record {
            sequence_number: sequence_number.to_string(),
            approximate_arrival_timestamp: crate::api::kinesis::codec::Timestamp(record.arrival_ms),
            data: crate::api::kinesis::codec::Blob(record.data),
            partition_key: record.partition_key,
        }
    }
}
