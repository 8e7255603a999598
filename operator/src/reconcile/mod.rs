//! The controllers: level-triggered reconcilers for `Stream` and `Consumer`, their shared
//! context (client, event recorder, metrics) and typed errors. A failure is retried with
//! backoff, reported as an event and a condition, and never crashes the operator.

pub mod consumer;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use shardline_proto::auth::BearerToken;

use crate::children::{self, KINESIS_PORT};
use crate::crd::stream::Stream;
use crate::decide::Member;
use crate::fleet::FleetError;
use crate::metrics::Metrics;
use crate::placement::{self, Server};

/// Field manager of everything the operator applies.
pub const MANAGER: &str = "shardline-operator";

/// A reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A shard-server call failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The resource cannot be acted on as written.
    #[error("{0}")]
    Invalid(String),
    /// A lease or record call to a shard-server failed.
    #[error("shard-server call {call}: {status}")]
    Data {
        /// The call.
        call: &'static str,
        /// Its status.
        status: Box<tonic::Status>,
    },
}

/// What the reconcilers share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Image of the shard-server pods.
    pub image: String,
    /// Event recorder.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// The PodDisruptionBudget resource the cluster serves (policy/v1 or v1beta1).
    pub disruption_budget: ApiResource,
    /// Zones for Streams that name none (empty: no zone constraint).
    pub default_zones: Vec<String>,
    /// Storage class for Streams that name none (`None`: the cluster default).
    pub default_storage_class: Option<String>,
    /// On-demand streams: the last rate sample and the shard count chosen from it.
    pub autoscaler: std::sync::Mutex<std::collections::HashMap<String, (crate::autoscale::Sample, u32)>>,
    /// Retry delays after failures.
    pub backoff: crate::backoff::Backoff,
    /// Pause inside a reshard step, between freezing and resharding (0 in production; tests
    /// use it to stop the operator mid-step).
    pub reshard_pause: Duration,
}

impl Context {
    /// The open-shard count an on-demand stream (`key`) should have, given a new `sample`, its
    /// `open` shards now and its declared `minimum`: unchanged until a sample spans enough time
    /// for a rate.
    pub fn on_demand_target(&self, key: &str, sample: crate::autoscale::Sample, open: u32, minimum: u32) -> u32 {
        use crate::autoscale;
        let mut samples = self.autoscaler.lock().unwrap_or_else(|p| p.into_inner());
        let Some((earlier, chosen)) = samples.get(key).copied() else {
            let chosen = open.max(minimum);
            samples.insert(key.to_owned(), (sample, chosen));
            return chosen;
        };
        if sample.at_ms < earlier.at_ms + autoscale::MIN_SPAN_MS {
            return chosen;
        }
        let next = match autoscale::rates(&earlier, &sample) {
            Some((records, bytes)) => {
                let next = autoscale::target(open, minimum, records, bytes);
                if next != chosen {
                    tracing::info!(
                        key,
                        records_per_s = records,
                        bytes_per_s = bytes,
                        from = chosen,
                        to = next,
                        "on-demand capacity changes"
                    );
                }
                next
            }
            None => chosen,
        };
        samples.insert(key.to_owned(), (sample, next));
        next
    }

    /// `stream` with the operator's defaults filled in where its spec leaves them out.
    pub fn with_defaults(&self, stream: &crate::crd::stream::Stream) -> crate::crd::stream::Stream {
        let mut stream = stream.clone();
        if stream.spec.zones.is_empty() {
            stream.spec.zones.clone_from(&self.default_zones);
        }
        if stream.spec.storage.storage_class_name.is_none() {
            stream.spec.storage.storage_class_name.clone_from(&self.default_storage_class);
        }
        stream
    }

    /// Publishes an event about `object`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, object: &K, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(cause = %err, reason, "cannot publish event");
        }
    }
}

/// The shard-servers `stream` wants (placed over its zones) and those of them whose pods are
/// Ready, with their addresses (pod IP and Kinesis port).
pub async fn stream_servers(client: &Client, stream: &Stream) -> Result<(Vec<Server>, Vec<Member>), ReconcileError> {
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    let wanted = placement::servers(name, &stream.spec.zones, stream.spec.servers_per_zone);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods.list(&ListParams::default().labels(&children::selector(stream))).await?;
    let ready = wanted
        .iter()
        .filter_map(|server| {
            let pod = listed.items.iter().find(|p| p.metadata.name.as_deref() == Some(server.name.as_str()))?;
            if pod.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let status = pod.status.as_ref()?;
            let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
            let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
            ready.then(|| Member {
                id: server.name.clone(),
                address: format!("{ip}:{KINESIS_PORT}"),
                zone: server.zone.clone(),
            })
        })
        .collect();
    Ok((wanted, ready))
}

/// The internal token of `stream`'s servers, from its Secret; a new random one if the Secret
/// does not exist yet (created once, owned by the stream, never rewritten).
pub async fn stream_token(client: &Client, stream: &Stream) -> Result<BearerToken, ReconcileError> {
    use rand::RngCore as _;
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = children::token_secret_name(stream);
    let secret = match secrets.get_opt(&name).await? {
        Some(secret) => secret,
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            match secrets.create(&PostParams::default(), &children::token_secret(stream, &token)).await {
                Ok(created) => created,
                // Another reconcile (the Consumer's) created it first: use that one.
                Err(kube::Error::Api(status)) if status.code == 409 => secrets.get(&name).await?,
                Err(err) => return Err(err.into()),
            }
        }
    };
    let token = secret
        .data
        .as_ref()
        .and_then(|data| data.get(children::TOKEN_KEY))
        .and_then(|value| std::str::from_utf8(&value.0).ok())
        .map(str::trim)
        .and_then(BearerToken::new)
        .ok_or_else(|| ReconcileError::Invalid(format!("Secret {name} holds no usable `{}`", children::TOKEN_KEY)))?;
    Ok(token)
}

/// Writes `status` of `object` with server-side apply, as the operator's field manager. The
/// whole status: an apply that leaves fields out removes them.
pub async fn apply_status<K>(client: &Client, object: &K, status: &impl serde::Serialize) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    let name = object.meta().name.as_deref().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Now as RFC 3339 and as ms since the epoch.
pub fn now() -> (String, u64) {
    let now = k8s_openapi::jiff::Timestamp::now();
    (now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), u64::try_from(now.as_millisecond()).unwrap_or(0))
}

/// The controllers' error policy: counts the failure and retries `object` after its backoff.
pub fn retry_later<K: Resource<DynamicType = ()>>(object: Arc<K>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let kind = K::kind(&());
    ctx.metrics.failed(&kind.to_lowercase());
    let key = key(object.as_ref());
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(object = %key, cause = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The backoff key of an object.
pub fn key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}
