//! The `Stream` reconciler: applies the stream's StatefulSets, Services and budget, waits for
//! its shard-servers, then takes the one next step [`decide`] names (create, catch a server up,
//! reshard one UpdateShardCount step, apply settings), and writes the status with server-side
//! apply. Deletion runs through the finalizer: the servers release the stream's data, then the
//! objects and volumes go.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalized};
use kube::{Resource, ResourceExt};
use shardline_proto::v1 as pb;
use tracing::Instrument;

use super::{apply_status, now, stream_servers, stream_token, Context, ReconcileError, MANAGER};
use crate::autoscale;
use crate::children;
use crate::crd::stream::{Phase, Stream, StreamMode, ThroughputLimits};
use crate::decide::{self, decide, Action as Step, Desired};
use crate::fleet::Fleet;
use crate::status::{self, Observed};

/// The finalizer that lets the operator delete a stream's data before the resource goes.
pub const FINALIZER: &str = "streams.shardline.io/cleanup";
/// How often a settled stream is looked at again.
const SETTLED_REQUEUE: Duration = Duration::from_secs(30);
/// How often an on-demand stream's write rate is sampled.
const ON_DEMAND_REQUEUE: Duration = Duration::from_secs(5);
/// How soon a stream in the middle of a change is looked at again.
const BUSY_REQUEUE: Duration = Duration::from_millis(500);

/// One reconcile pass of `stream`.
pub async fn reconcile(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _pass = ctx.metrics.start("stream");
    let namespace = stream.namespace().ok_or_else(|| ReconcileError::Invalid("Stream without a namespace".into()))?;
    let api: Api<Stream> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = stream.name_any();
    let key = super::key(stream.as_ref());
    let span = tracing::info_span!("reconcile", stream = %name, %namespace);
    finalizer(&api, FINALIZER, stream, |event| async {
        match event {
            Finalized::Apply(stream) => apply(&ctx.with_defaults(&stream), &ctx).await,
            Finalized::Cleanup(stream) => cleanup(&ctx.with_defaults(&stream), &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|err| ReconcileError::Finalizer(err.to_string()))
    .inspect(|_| ctx.backoff.succeeded(&key))
}

fn desired(stream: &Stream) -> Desired {
    Desired {
        stream: stream.name_any(),
        shards: stream.spec.shards,
        retention_hours: stream.spec.retention_hours,
        replication_factor: stream.spec.replication_factor,
        throughput_limits: match stream.spec.throughput_limits {
            ThroughputLimits::ServerDefault => None,
            ThroughputLimits::On => Some(true),
            ThroughputLimits::Off => Some(false),
        },
    }
}

async fn apply_children(stream: &Stream, ctx: &Context, namespace: &str) -> Result<(), ReconcileError> {
    let ssa = PatchParams::apply(MANAGER).force();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    for set in children::stateful_sets(stream, &ctx.image) {
        sets.patch(&set.name_any(), &ssa, &Patch::Apply(&set)).await?;
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    for service in children::services(stream) {
        services.patch(&service.name_any(), &ssa, &Patch::Apply(&service)).await?;
    }
    let budgets: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &ctx.disruption_budget);
    let budget = children::disruption_budget(stream, &ctx.disruption_budget.api_version);
    budgets.patch(&stream.name_any(), &ssa, &Patch::Apply(&budget)).await?;
    Ok(())
}

/// Runs the next step; returns the servers' states after it and whether the stream is settled.
async fn step(
    stream: &Stream,
    ctx: &Context,
    fleet: &Fleet,
    plan: &mut Vec<u32>,
    wanted_shards: &mut u32,
) -> Result<(Vec<pb::ClusterStateResponse>, bool), ReconcileError> {
    let mut wanted = desired(stream);
    let states = fleet.states(&wanted.stream).await?;
    let (_, now_ms) = now();
    if stream.spec.stream_mode == StreamMode::OnDemand {
        if let Some(latest) = decide::latest(&states) {
            let sample = autoscale::Sample::of(&states, now_ms);
            let open = decide::open_shards(latest);
            wanted.shards = ctx.on_demand_target(&super::key(stream), sample, open, stream.spec.shards);
        }
    }
    *wanted_shards = wanted.shards;
    let action = decide(&wanted, fleet.members(), &states, now_ms);
    let all: Vec<String> = fleet.members().iter().map(|m| m.id.clone()).collect();
    match action {
        Step::Steady => return Ok((states, true)),
        Step::Create(layout) => {
            fleet.assign(&layout, &all).await?;
            let note = format!("Created with {} shards on {} shard-servers", wanted.shards, all.len());
            tracing::info!(stream = %wanted.stream, "{note}");
            ctx.event(stream, false, "Created", note).await;
        }
        Step::Assign { layout, to, reason } => {
            fleet.assign(&layout, &to).await?;
            let note = format!("Layout epoch {} assigned to {}", layout.epoch, to.join(", "));
            tracing::info!(stream = %wanted.stream, reason, "{note}");
            ctx.event(stream, false, reason, note).await;
        }
        Step::Reshard { epoch, target, plan: steps } => {
            *plan = steps;
            let latest = decide::latest(&states).cloned().unwrap_or_default();
            let open = decide::open_shards(&latest);
            let home_id = latest.servers.first().map(|s| s.id.clone()).unwrap_or_default();
            let home = fleet
                .members()
                .iter()
                .find(|m| m.id == home_id)
                .cloned()
                .ok_or_else(|| ReconcileError::Invalid(format!("home shard-server {home_id} is not ready")))?;
            let endings = fleet.freeze(&wanted.stream, epoch).await?;
            if !ctx.reshard_pause.is_zero() {
                tokio::time::sleep(ctx.reshard_pause).await;
            }
            let next = fleet.reshard(&home, &wanted.stream, epoch, target, endings).await?;
            let others: Vec<String> = all.iter().filter(|id| **id != home.id).cloned().collect();
            fleet.assign(&next, &others).await?;
            let note = format!("Resharded from {open} to {target} open shards (epoch {})", next.epoch);
            tracing::info!(stream = %wanted.stream, "{note}");
            ctx.event(stream, false, "Resharded", note).await;
            plan.remove(0);
        }
    }
    let states = fleet.states(&wanted.stream).await?;
    Ok((states, false))
}

async fn apply(stream: &Stream, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let token = stream_token(&ctx.client, stream).await?;
    apply_children(stream, ctx, &namespace).await?;
    let (wanted, members) = stream_servers(&ctx.client, stream).await?;
    let ready = members.len();
    let fleet = Fleet::new(members, token);
    let mut plan = Vec::new();
    let mut failure = None;
    let mut wanted_shards = stream.spec.shards;
    let (states, settled) = if ready == wanted.len() {
        match step(stream, ctx, &fleet, &mut plan, &mut wanted_shards).await {
            Ok(done) => done,
            Err(err) => {
                let message = err.to_string();
                ctx.event(stream, true, "StepFailed", message.clone()).await;
                failure = Some(message);
                (fleet.states(&name).await.unwrap_or_default(), false)
            }
        }
    } else {
        // Report what the ready servers hold while the others start.
        (fleet.states(&name).await.unwrap_or_default(), false)
    };
    let layout = decide::latest(&states).cloned();
    if plan.is_empty() {
        if let Some(layout) = &layout {
            plan = crate::reshard::plan(decide::open_shards(layout), wanted_shards);
        }
    }
    let (now_text, _) = now();
    let observed = Observed {
        layout: layout.as_ref(),
        states: &states,
        ready_servers: ready,
        wanted_servers: wanted.len(),
        wanted_shards,
        plan,
        deleting: false,
        failure: failure.clone(),
        generation: stream.meta().generation,
        now: &now_text,
        endpoint: children::endpoint(stream),
        selector: children::selector(stream),
    };
    let next = status::build(stream.status.as_ref(), &observed);
    if stream.status.as_ref() != Some(&next) {
        apply_status(&ctx.client, stream, &next).await?;
    }
    if let Some(failure) = failure {
        return Err(ReconcileError::Invalid(failure));
    }
    let settled_requeue =
        if stream.spec.stream_mode == StreamMode::OnDemand { ON_DEMAND_REQUEUE } else { SETTLED_REQUEUE };
    Ok(Action::requeue(if settled { settled_requeue } else { BUSY_REQUEUE }))
}

async fn cleanup(stream: &Stream, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    if stream.status.as_ref().and_then(|s| s.phase) != Some(Phase::Deleting) {
        let mut deleting = stream.status.clone().unwrap_or_default();
        deleting.phase = Some(Phase::Deleting);
        apply_status(&ctx.client, stream, &deleting).await?;
    }
    let (_, members) = stream_servers(&ctx.client, stream).await?;
    let released = members.len();
    if released > 0 {
        Fleet::new(members, stream_token(&ctx.client, stream).await?).release(&name).await?;
    }
    let selector = children::selector(stream);
    let gone = |result: Result<_, kube::Error>| match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    };
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    for set in children::stateful_sets(stream, &ctx.image) {
        gone(sets.delete(&set.name_any(), &DeleteParams::default()).await.map(|_| ()))?;
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for service in children::services(stream) {
        gone(services.delete(&service.name_any(), &DeleteParams::default()).await.map(|_| ()))?;
    }
    let budgets: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ctx.disruption_budget);
    gone(budgets.delete(&name, &DeleteParams::default()).await.map(|_| ()))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    claims.delete_collection(&DeleteParams::default(), &ListParams::default().labels(&selector)).await?;
    let note = format!("Stream data released on {released} shard-servers; servers, services and volumes deleted");
    tracing::info!(stream = %name, "{note}");
    ctx.event(stream, false, "Deleted", note).await;
    Ok(Action::await_change())
}
