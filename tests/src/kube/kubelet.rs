//! The harness's stand-in for kubelets and the StatefulSet controller, which a bare apiserver
//! lacks: for every pod the StatefulSets of the namespace ask for, it creates the Pod object,
//! starts a real `shard-server --cluster --server-id POD` on its own loopback address
//! (127.0.0.N, Kinesis port 4567, as a pod IP would be) and marks the Pod Ready with that IP.
//! Pods no StatefulSet wants any more are stopped and deleted. Data directories outlive their
//! pods, so tests can look at what a deleted stream left behind.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, ServiceAccount, Volume,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::Server;

/// What the kubelet runs.
#[derive(Debug, Default)]
struct Node {
    servers: HashMap<String, Server>,
    addresses: BTreeMap<String, String>,
}

/// A loopback address no other pod of this test process has (tests run side by side).
fn next_address() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("127.0.{}.{}", n / 250, 2 + n % 250)
}

/// A running kubelet loop, stopped (with every server) on drop.
pub struct Kubelet {
    node: Arc<Mutex<Node>>,
    stop: CancellationToken,
    data: tempfile::TempDir,
}

impl Kubelet {
    /// Starts playing the nodes of `namespace`.
    pub fn start(client: kube::Client, namespace: &str) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let node = Arc::new(Mutex::new(Node::default()));
        let stop = CancellationToken::new();
        let (task_node, task_stop, root) = (node.clone(), stop.clone(), data.path().to_owned());
        let namespace = namespace.to_owned();
        tokio::spawn(async move {
            while !task_stop.is_cancelled() {
                if let Err(err) = sync(&client, &namespace, &task_node, &root).await {
                    eprintln!("kubelet: {err:#}");
                }
                tokio::select! {
                    _ = task_stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Ok(Self { node, stop, data })
    }

    /// `http://ADDRESS` of pod `name`, once it runs.
    pub fn endpoint(&self, pod: &str) -> Option<String> {
        let node = self.node.lock().unwrap_or_else(|p| p.into_inner());
        node.servers.get(pod).map(|s| s.endpoint.clone())
    }

    /// Names of the pods running now.
    pub fn pods(&self) -> Vec<String> {
        let node = self.node.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = node.servers.keys().cloned().collect();
        names.sort();
        names
    }

    /// The data directory pod `name` uses (kept after the pod is gone).
    pub fn data_dir(&self, pod: &str) -> PathBuf {
        self.data.path().join(pod)
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.cancel();
        let mut node = self.node.lock().unwrap_or_else(|p| p.into_inner());
        node.servers.clear();
    }
}

/// The pods the namespace's StatefulSets want, with the set each belongs to.
fn wanted(sets: &[StatefulSet]) -> BTreeMap<String, StatefulSet> {
    let mut pods = BTreeMap::new();
    for set in sets {
        let name = set.metadata.name.clone().unwrap_or_default();
        let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        for ordinal in 0..replicas {
            pods.insert(format!("{name}-{ordinal}"), set.clone());
        }
    }
    pods
}

async fn sync(
    client: &kube::Client,
    namespace: &str,
    node: &Arc<Mutex<Node>>,
    root: &std::path::Path,
) -> anyhow::Result<()> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    // Pods need their namespace's default ServiceAccount, which the controller-manager (absent
    // here) would make.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if accounts.get_opt("default").await?.is_none() {
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta { name: Some("default".into()), ..Default::default() },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err.into()),
        }
    }
    let live: Vec<StatefulSet> = sets
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let wanted = wanted(&live);
    // A Pod object deleted (or being deleted) stops its server; a wanted one is then started
    // again on the same data, as a StatefulSet's replacement pod would be.
    let objects: Vec<String> = pods
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    let gone: Vec<String> = {
        let node = node.lock().unwrap_or_else(|p| p.into_inner());
        node.servers.keys().filter(|name| !objects.contains(name)).cloned().collect()
    };
    for name in gone {
        let server = node.lock().unwrap_or_else(|p| p.into_inner()).servers.remove(&name);
        drop(server);
        let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
    }
    let running: Vec<String> = node.lock().unwrap_or_else(|p| p.into_inner()).servers.keys().cloned().collect();
    for name in running.iter().filter(|n| !wanted.contains_key(*n)) {
        let server = node.lock().unwrap_or_else(|p| p.into_inner()).servers.remove(name);
        drop(server);
        let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
    }
    for (name, set) in &wanted {
        if running.contains(name) {
            continue;
        }
        let ip = {
            let mut node = node.lock().unwrap_or_else(|p| p.into_inner());
            node.addresses.entry(name.clone()).or_insert_with(next_address).clone()
        };
        let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let mut spec = template.spec.unwrap_or_default();
        spec.node_name = Some("harness-node".into());
        // As the StatefulSet controller does: one claim per template, mounted by the pod.
        let claims = set.spec.as_ref().and_then(|s| s.volume_claim_templates.clone()).unwrap_or_default();
        let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        for claim in claims {
            let volume = claim.metadata.name.clone().unwrap_or_default();
            let claim_name = format!("{volume}-{name}");
            let mut made = claim.clone();
            made.metadata.name = Some(claim_name.clone());
            made.metadata.namespace = Some(namespace.to_owned());
            match claims_api.create(&PostParams::default(), &made).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(err) => return Err(err.into()),
            }
            spec.volumes.get_or_insert_with(Vec::new).push(Volume {
                name: volume,
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name, read_only: None }),
                ..Default::default()
            });
        }
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                labels: template.metadata.and_then(|m| m.labels),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        };
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            // The old object is still going away; next pass.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(err.into()),
        }
        let data_dir = root.join(name);
        let (id, listen) = (name.clone(), format!("{ip}:4567"));
        let server = tokio::task::spawn_blocking(move || Server::start_cluster(&data_dir, &id, &listen, &[])).await??;
        let status = serde_json::json!({
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{ "ip": ip }],
                "conditions": [
                    { "type": "Ready", "status": "True" },
                    { "type": "ContainersReady", "status": "True" },
                ],
            }
        });
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        node.lock().unwrap_or_else(|p| p.into_inner()).servers.insert(name.clone(), server);
    }
    Ok(())
}
