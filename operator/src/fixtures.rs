//! Test fixtures shared by the pure modules' unit tests.

use shardline_proto::v1 as pb;

/// A layout at `epoch` with `closed` closed shards then `open` open ones, owned round-robin by
/// `servers` (`(id, address)`); children name shard 0 as their parent.
pub fn layout(epoch: u64, open: usize, closed: usize, servers: &[(&str, &str)]) -> pb::StreamLayout {
    let shard = |i: usize, is_closed: bool| pb::ShardLayout {
        index: u32::try_from(i).unwrap_or_default(),
        starting_hash_key: "0".into(),
        ending_hash_key: "1".into(),
        ending_counter: is_closed.then_some(5),
        parent: (i >= closed && closed > 0).then_some(0),
        owner: servers.get(i % servers.len().max(1)).map(|s| s.0.to_owned()).unwrap_or_default(),
        ..Default::default()
    };
    pb::StreamLayout {
        stream_name: "s".into(),
        epoch,
        servers: servers
            .iter()
            .map(|(id, address)| pb::ClusterServer {
                id: (*id).into(),
                address: (*address).into(),
                ..Default::default()
            })
            .collect(),
        shards: (0..closed).map(|i| shard(i, true)).chain((closed..closed + open).map(|i| shard(i, false))).collect(),
        retention_hours: 24,
        ..Default::default()
    }
}
