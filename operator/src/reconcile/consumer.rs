//! The `Consumer` reconciler: makes sure the application's lease rows exist for every shard of
//! its stream (the worker finds them there), and reports each shard's owner, checkpoint and lag,
//! refreshed every few seconds. Deleting the resource deletes the application's lease rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalized};
use kube::{Resource, ResourceExt};
use shardline_proto::v1 as pb;
use shardline_proto::v1::leases_client::LeasesClient;
use shardline_proto::v1::records_client::RecordsClient;
use tracing::Instrument;

use super::{apply_status, now, stream_servers, stream_token, Context, ReconcileError};
use crate::crd::condition::{self, Condition};
use crate::crd::consumer::{Consumer, InitialPosition};
use crate::crd::stream::Stream;
use crate::decide;
use crate::fleet::Fleet;
use crate::lag::{self, Tip};

/// The finalizer that deletes the application's leases before the resource goes.
pub const FINALIZER: &str = "consumers.shardline.io/cleanup";
/// How often lag is refreshed.
const REFRESH: Duration = Duration::from_secs(3);

/// One reconcile pass of `consumer`.
pub async fn reconcile(consumer: Arc<Consumer>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _pass = ctx.metrics.start("consumer");
    let namespace =
        consumer.namespace().ok_or_else(|| ReconcileError::Invalid("Consumer without a namespace".into()))?;
    let api: Api<Consumer> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = super::key(consumer.as_ref());
    let span = tracing::info_span!("reconcile", consumer = %consumer.name_any(), %namespace);
    finalizer(&api, FINALIZER, consumer, |event| async {
        match event {
            Finalized::Apply(consumer) => apply(&consumer, &ctx).await,
            Finalized::Cleanup(consumer) => cleanup(&consumer, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|err| ReconcileError::Finalizer(err.to_string()))
    .inspect(|_| ctx.backoff.succeeded(&key))
}

/// The stream's Ready servers and its layout, or why there are none.
async fn servers(consumer: &Consumer, ctx: &Context) -> Result<Result<Fleet, (&'static str, String)>, ReconcileError> {
    let namespace = consumer.namespace().unwrap_or_default();
    let streams: Api<Stream> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(stream) = streams.get_opt(&consumer.spec.stream).await? else {
        return Ok(Err(("StreamNotFound", format!("Stream {} does not exist in {namespace}", consumer.spec.stream))));
    };
    let (_, members) = stream_servers(&ctx.client, &ctx.with_defaults(&stream)).await?;
    if members.is_empty() {
        return Ok(Err(("ServersNotReady", format!("No shard-server of stream {} is ready", consumer.spec.stream))));
    }
    let token = stream_token(&ctx.client, &stream).await?;
    Ok(Ok(Fleet::new(members, token)))
}

/// A channel to a shard-server's Kinesis port for `call`, with deadlines: a server that never
/// answers fails the reconcile (retried with backoff) instead of hanging it.
async fn data_channel(endpoint: &str, call: &'static str) -> Result<tonic::transport::Channel, ReconcileError> {
    let unavailable = |err: tonic::transport::Error| data_error(call)(tonic::Status::unavailable(err.to_string()));
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(unavailable)?
        .connect_timeout(DATA_CONNECT_TIMEOUT)
        .timeout(DATA_CALL_TIMEOUT)
        .connect()
        .await
        .map_err(unavailable)
}

/// How long connecting to a shard-server for lag and lease calls may take.
const DATA_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long one such call may take.
const DATA_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn data_error(call: &'static str) -> impl FnOnce(tonic::Status) -> ReconcileError {
    move |status| ReconcileError::Data { call, status: Box::new(status) }
}

/// Milliseconds between the first record after `checkpoint` and the shard's tip.
async fn millis_behind(endpoint: &str, stream: &str, lease: &pb::Lease, tip: Tip) -> Result<u64, ReconcileError> {
    use pb::checkpoint::Kind;
    let checkpoint = lease.checkpoint.clone().unwrap_or_default();
    let (position, sequence_number, timestamp_ms) = match Kind::try_from(checkpoint.kind).unwrap_or(Kind::Unspecified) {
        Kind::SequenceNumber => (pb::StartingPosition::AfterSequenceNumber, checkpoint.sequence_number, 0),
        Kind::AtTimestamp => (pb::StartingPosition::AtTimestamp, String::new(), checkpoint.timestamp_ms),
        Kind::TrimHorizon | Kind::Unspecified => (pb::StartingPosition::TrimHorizon, String::new(), 0),
        Kind::Latest | Kind::ShardEnd => return Ok(0),
    };
    let mut records = RecordsClient::new(data_channel(endpoint, "GetRecords").await?);
    let page = records
        .get_records(pb::GetRecordsRequest {
            stream_name: stream.to_owned(),
            shard_id: lease.lease_key.clone(),
            position: position.into(),
            sequence_number,
            timestamp_ms,
            limit: 1,
            ..Default::default()
        })
        .await
        .map_err(data_error("GetRecords"))?
        .into_inner();
    Ok(page.records.first().map_or(0, |r| {
        tip.last_arrival_ms.saturating_sub(u64::try_from(r.approximate_arrival_timestamp_ms).unwrap_or(0))
    }))
}

async fn apply(consumer: &Consumer, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = consumer.namespace().unwrap_or_default();
    let mut status = consumer.status.clone().unwrap_or_default();
    let (now_text, _) = now();
    let ready = |ok: bool, reason: &str, message: String| Condition {
        kind: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: now_text.clone(),
        observed_generation: consumer.meta().generation,
    };
    match servers(consumer, ctx).await? {
        Err((reason, message)) => condition::set(&mut status.conditions, ready(false, reason, message)),
        Ok(fleet) => {
            let stream = consumer.spec.stream.as_str();
            let first =
                fleet.members().first().ok_or_else(|| ReconcileError::Invalid("no ready shard-server".into()))?;
            let endpoint = format!("http://{}", first.address);
            let initial = pb::Checkpoint {
                kind: match consumer.spec.initial_position {
                    InitialPosition::TrimHorizon => pb::checkpoint::Kind::TrimHorizon,
                    InitialPosition::Latest => pb::checkpoint::Kind::Latest,
                }
                .into(),
                ..Default::default()
            };
            let mut leases_client = LeasesClient::new(data_channel(&endpoint, "ListLeases").await?);
            let leases = leases_client
                .list_leases(pb::ListLeasesRequest {
                    application: consumer.spec.application_name.clone(),
                    stream_name: stream.to_owned(),
                    initial_position: Some(initial),
                })
                .await
                .map_err(data_error("ListLeases"))?
                .into_inner()
                .leases;
            let states = fleet.states(stream).await?;
            let mut tips: HashMap<u32, Tip> = states
                .iter()
                .flat_map(|s| &s.owned)
                .map(|p| (p.index, Tip { last_counter: p.last_counter, last_arrival_ms: p.last_arrival_ms }))
                .collect();
            // A replicated shard's tip: its most advanced replica's last committed record.
            for replica in states.iter().flat_map(|s| &s.replicas) {
                let tip = tips.entry(replica.index).or_default();
                if replica.last_counter > tip.last_counter {
                    *tip = Tip { last_counter: replica.last_counter, last_arrival_ms: replica.last_arrival_ms };
                }
            }
            let open = decide::latest(&states).map_or(0, decide::open_shards);
            let mut shards = Vec::with_capacity(leases.len());
            let mut lag_millis = 0;
            for lease in &leases {
                let index = lease.lease_key.strip_prefix("shardId-").and_then(|d| d.parse::<u32>().ok());
                let tip = index.and_then(|i| tips.get(&i)).copied().unwrap_or_default();
                let line = lag::progress(lease, tip);
                if line.lag_records > 0 {
                    lag_millis = lag_millis.max(millis_behind(&endpoint, stream, lease, tip).await?);
                }
                shards.push(line);
            }
            status.lag_records = shards.iter().map(|s| s.lag_records).sum();
            status.lag_millis = lag_millis;
            ctx.metrics.consumer_lag(&namespace, &consumer.name_any(), status.lag_records, lag_millis);
            status.shards = shards;
            let message =
                format!("{} leases over {open} open shards; {} records behind", leases.len(), status.lag_records);
            condition::set(&mut status.conditions, ready(true, "LeasesReady", message));
        }
    }
    status.observed_generation = consumer.meta().generation;
    if consumer.status.as_ref() != Some(&status) {
        apply_status(&ctx.client, consumer, &status).await?;
    }
    Ok(Action::requeue(REFRESH))
}

async fn cleanup(consumer: &Consumer, ctx: &Context) -> Result<Action, ReconcileError> {
    ctx.metrics.forget_consumer(&consumer.namespace().unwrap_or_default(), &consumer.name_any());
    let Ok(fleet) = servers(consumer, ctx).await? else {
        // The stream (and with it the lease table) is gone already.
        return Ok(Action::await_change());
    };
    let states = fleet.states(&consumer.spec.stream).await?;
    let home = decide::latest(&states).and_then(|l| l.servers.first()).map(|s| s.address.clone());
    let Some(home) = home else { return Ok(Action::await_change()) };
    let mut leases = LeasesClient::new(data_channel(&format!("http://{home}"), "DeleteApplication").await?);
    let deleted = leases
        .delete_application(pb::DeleteApplicationRequest { application: consumer.spec.application_name.clone() })
        .await
        .map_err(data_error("DeleteApplication"))?
        .into_inner()
        .deleted;
    ctx.event(
        consumer,
        false,
        "Deleted",
        format!("{deleted} lease rows of application {} deleted", consumer.spec.application_name),
    )
    .await;
    Ok(Action::await_change())
}
