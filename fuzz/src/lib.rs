//! What the fuzz targets share: one in-memory node per fuzzing process, with a stream to act
//! on, on a runtime the targets block on.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use shard_server::clock::ManualClock;
use shard_server::store::MemoryEngine;
use shard_server::stream::{NewStream, StreamMode};
use shard_server::{Config, Node};

/// The stream the fuzzed requests can find (two shards).
pub const STREAM: &str = "fuzzed";

/// The process's runtime and node.
pub fn node() -> &'static (tokio::runtime::Runtime, Arc<Node>) {
    static NODE: OnceLock<(tokio::runtime::Runtime, Arc<Node>)> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let node = runtime.block_on(async {
            let mut config = Config::new("/nonexistent-fuzz-data-dir");
            config.stream_transition = Duration::ZERO;
            config.retention_check_interval = Duration::from_secs(3600);
            let clock = Arc::new(ManualClock::new(1_700_000_000_000));
            let node = Node::open_with(config, Arc::new(MemoryEngine::new()), shard_server::journal::Journal::in_memory(), clock)
                .expect("node");
            let stream = NewStream {
                name: STREAM.into(),
                shard_count: 2,
                mode: StreamMode::Provisioned,
                max_record_size_kib: 1024,
                tags: Default::default(),
            };
            node.create_stream(stream).expect("stream");
            node
        });
        (runtime, node)
    })
}
