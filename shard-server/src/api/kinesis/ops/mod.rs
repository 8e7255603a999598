//! One module per Kinesis operation: its request, validation, action and response.

pub mod create_stream;
pub mod delete_stream;
pub mod describe_limits;
pub mod describe_stream;
pub mod describe_stream_consumer;
pub mod describe_stream_summary;
pub mod enhanced_monitoring;
pub mod get_records;
pub mod get_shard_iterator;
pub mod list_shards;
pub mod list_stream_consumers;
pub mod list_streams;
pub mod merge_shards;
pub mod put_record;
pub mod put_records;
pub mod records;
pub mod register_stream_consumer;
pub mod resource_tags;
pub mod retention_period;
pub mod split_shard;
pub mod stream_tags;
pub mod subscribe_to_shard;
pub mod update_max_record_size;
pub mod update_shard_count;
pub mod update_stream_mode;
