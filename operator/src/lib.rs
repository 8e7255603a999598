//! The Shardline operator: reconciles `Stream` and `Consumer` resources into shard-servers (built in the operator issue).
