//! A `shardline.v1` request message as a peer sends it (protobuf bytes), for any method of the
//! Records, Leases and Admin services, decoded and handed to the service on an in-memory node:
//! it is answered or refused with a status, never a panic or a hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use shard_server::api::grpc::admin::AdminService;
use shard_server::api::grpc::leases::LeasesService;
use shard_server::api::grpc::records::RecordsService;
use shard_server::Node;
use shardline_proto::v1 as pb;
use shardline_proto::v1::admin_server::Admin;
use shardline_proto::v1::leases_server::Leases;
use shardline_proto::v1::records_server::Records;
use tonic::Request;

/// Decodes `body` as `M` and calls `$call` with it; a message that does not decode is the
/// transport's refusal and ends the case.
macro_rules! call {
    ($body:expr, $m:ty, |$request:ident| $call:expr) => {{
        let Ok(message) = <$m>::decode($body) else { return Ok(()) };
        let $request = Request::new(message);
        $call.await.map(|_| ())
    }};
}

async fn run(node: &Arc<Node>, method: u8, body: &[u8]) -> Result<(), tonic::Status> {
    let records = RecordsService::new(node.clone());
    let leases = LeasesService::new(node.clone());
    let admin = AdminService::new(node.clone());
    match method % 17 {
        0 => call!(body, pb::PutRecordRequest, |r| records.put(r)),
        1 => call!(body, pb::PutRecordsRequest, |r| records.put_records(r)),
        2 => call!(body, pb::GetRecordsRequest, |r| records.get_records(r)),
        3 => call!(body, pb::GetRecordsRequest, |r| records.subscribe(r)),
        4 => call!(body, pb::ListLeasesRequest, |r| leases.list_leases(r)),
        5 => call!(body, pb::UpdateLeaseRequest, |r| leases.take_lease(r)),
        6 => call!(body, pb::UpdateLeaseRequest, |r| leases.renew_lease(r)),
        7 => call!(body, pb::UpdateLeaseRequest, |r| leases.evict_lease(r)),
        8 => call!(body, pb::CheckpointRequest, |r| leases.checkpoint(r)),
        9 => call!(body, pb::CreateStreamRequest, |r| admin.create_stream(r)),
        10 => call!(body, pb::DeleteStreamRequest, |r| admin.delete_stream(r)),
        11 => call!(body, pb::DescribeStreamRequest, |r| admin.describe_stream(r)),
        12 => call!(body, pb::SplitShardRequest, |r| admin.split_shard(r)),
        13 => call!(body, pb::MergeShardsRequest, |r| admin.merge_shards(r)),
        14 => call!(body, pb::UpdateShardCountRequest, |r| admin.update_shard_count(r)),
        15 => call!(body, pb::SetRetentionRequest, |r| admin.set_retention(r)),
        _ => call!(body, pb::SetThroughputLimitsRequest, |r| admin.set_throughput_limits(r)),
    }
}

fuzz_target!(|data: &[u8]| {
    let [method, body @ ..] = data else { return };
    let (runtime, node) = shardline_fuzz::node();
    let answered = runtime
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(10), run(node, *method, body)).await });
    assert!(answered.is_ok(), "method {method} did not answer within 10 s");
});
