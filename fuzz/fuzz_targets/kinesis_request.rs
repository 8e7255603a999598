//! A Kinesis request body in either wire format, for any operation, through the whole request
//! path (decode, validate, act) on an in-memory node: it must answer, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shard_server::api::kinesis::codec::Wire;
use shard_server::api::kinesis::{dispatch, Answer, Operation, TARGET_PREFIX};

/// Every served operation, by wire name.
const OPERATIONS: [&str; 31] = [
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
];

fuzz_target!(|data: &[u8]| {
    let [selector, op, body @ ..] = data else { return };
    let wire = if selector & 1 == 0 { Wire::Json } else { Wire::Cbor };
    let name = OPERATIONS[usize::from(*op) % OPERATIONS.len()];
    let Ok(operation) = Operation::from_target(Some(&format!("{TARGET_PREFIX}{name}"))) else {
        panic!("{name} is served");
    };
    let (runtime, node) = shardline_fuzz::node();
    let answered = runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), dispatch(operation, wire, body, node)).await
    });
    match answered {
        Err(_) => panic!("{name} did not answer within 10 s"),
        Ok(Ok(Answer::Body(bytes))) => {
            // What the server answers must decode in the wire it was asked in.
            if !bytes.is_empty() && wire == Wire::Json {
                assert!(std::str::from_utf8(&bytes).is_ok(), "{name} answered non-UTF-8 JSON");
            }
        }
        Ok(Ok(_)) | Ok(Err(_)) => {}
    }
});
