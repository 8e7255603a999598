//! What one server's Raft stream can carry to another: any bytes as a `RaftBatch` (prost), each
//! envelope's message as a raft-rs `Message` (protobuf 2), and every entry a message carries as
//! the shard log stores it: refused or accepted without a panic, and a stored entry reads back
//! as the entry it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use shard_server::replication::{decode, storage};
use shardline_proto::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::RaftBatch::decode(data) else { return };
    let Ok((_, envelopes)) = decode(batch) else { return };
    for envelope in envelopes {
        for entry in envelope.message.get_entries() {
            if let Ok(stored) = storage::to_log_entry(entry) {
                let back = storage::from_log_entry(stored).expect("a stored entry reads back");
                assert_eq!((back.index, back.term, &back.data), (entry.index, entry.term, &entry.data));
            }
        }
    }
});
