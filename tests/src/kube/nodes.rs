//! A real Kubernetes 1.20 cluster on this one machine: the harness's control plane plus
//! kube-controller-manager and kube-scheduler, and three real nodes — each its own containerd
//! (runc, CNI bridge) and kubelet, labelled with a zone of its own — as
//! `../shared/real-kubernetes.md` describes. Pods run as real containers from images built
//! `FROM scratch` (`scripts/scratch-images.sh`) and imported into every node; nothing here
//! starts a pod's process itself, so a pod spec a kubelet cannot run fails the test that
//! needs it.
//!
//! Networking: the apiserver and the nodes' IPs are addresses on one host bridge
//! ([`BRIDGE`], 10.255.0.0/24), each node's pods get a /24 of 10.244.0.0/16 on a CNI bridge of
//! their own, and the host routes between them, so the test process, the pods and the
//! apiserver reach one another by pod IP. There is no kube-proxy and no cluster DNS: clients
//! use pod IPs, and in-cluster clients are pointed at the apiserver's bridge address
//! (`KUBERNETES_SERVICE_HOST`). Volumes: the harness binds every pending claim to a hostPath
//! PersistentVolume of its own (reclaim policy Retain), as a provisioner would.
//!
//! One cluster runs on a machine at a time (a file lock); what a killed run left behind is
//! cleaned up by the next.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::{binaries, install_script, ControlPlane};

/// The zones, one node each (`node-a` in `zone-a`, …).
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// The host bridge carrying the apiserver's and the nodes' addresses.
pub const BRIDGE: &str = "slk8s0";
/// The apiserver's address (on [`BRIDGE`]), which pods reach too.
pub const APISERVER_ADDRESS: &str = "10.255.0.1";
/// The tag of the images the harness builds.
pub const IMAGE_TAG: &str = "dev";
/// The shard-server image the nodes hold.
pub const SHARD_SERVER_IMAGE: &str = "localhost/shardline/shard-server";
/// The operator image the nodes hold.
pub const OPERATOR_IMAGE: &str = "localhost/shardline/shardline-operator";
/// cgroup v1 controllers each node gets a root in.
const CGROUP_CONTROLLERS: [&str; 9] =
    ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"];

/// The directory a cluster keeps everything in; fixed, so that the next run finds what a
/// killed one left.
fn root() -> PathBuf {
    std::env::temp_dir().join("shardline-nodes")
}

/// Node `index`'s name, address and pod subnet's third octet.
fn node_name(index: usize) -> String {
    format!("node-{}", ZONES[index].trim_start_matches("zone-"))
}

fn node_address(index: usize) -> String {
    format!("10.255.0.{}", index + 2)
}

fn cni_bridge(index: usize) -> String {
    format!("slcni{index}")
}

/// Runs a command to completion; fails with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command whose failure does not matter (clean-up of what may not exist).
fn try_run(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Kills every process whose command line mentions `marker` (e.g. a node's directory), and
/// every process in the node cgroups.
fn kill_leftovers(marker: &str) {
    try_run("pkill", &["-KILL", "-f", marker]);
    for index in 0..ZONES.len() {
        for controller in ["pids", "memory", "freezer"] {
            let dir = Path::new("/sys/fs/cgroup").join(controller).join(node_name(index));
            for procs in walk(&dir).into_iter().filter(|p| p.ends_with("cgroup.procs")) {
                for pid in std::fs::read_to_string(&procs).unwrap_or_default().split_whitespace() {
                    try_run("kill", &["-KILL", pid]);
                }
            }
        }
    }
}

/// Every file and directory under `dir`, deepest first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

/// Removes the node cgroups (after their processes are gone), deepest first.
fn remove_cgroups() {
    for index in 0..ZONES.len() {
        for controller in CGROUP_CONTROLLERS {
            let dir = Path::new("/sys/fs/cgroup").join(controller).join(node_name(index));
            for _ in 0..50 {
                for path in walk(&dir).into_iter().filter(|p| p.is_dir()) {
                    let _ = std::fs::remove_dir(path);
                }
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Takes down what a cluster (this one or a killed earlier one) set up on the machine.
fn tear_down(root: &Path) {
    kill_leftovers(&root.display().to_string());
    std::thread::sleep(Duration::from_millis(300));
    kill_leftovers(&root.display().to_string());
    remove_cgroups();
    for index in 0..ZONES.len() {
        try_run("ip", &["link", "del", &cni_bridge(index)]);
    }
    try_run("ip", &["link", "del", BRIDGE]);
}

/// A running node: containerd and kubelet in a mount namespace of their own.
struct NodeProcess {
    child: Child,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // The process group: the kubelet and its containerd.
        let group = self.child.id().to_string();
        try_run("kill", &["-KILL", "--", &format!("-{group}")]);
        let _ = self.child.wait();
    }
}

/// A cluster with three nodes, torn down on drop.
pub struct Cluster {
    /// The apiserver and etcd.
    pub plane: ControlPlane,
    controllers: Vec<Child>,
    nodes: Vec<NodeProcess>,
    provisioner: CancellationToken,
    root: PathBuf,
    _lock: File,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.provisioner.cancel();
        self.nodes.clear();
        for child in &mut self.controllers {
            let _ = child.kill();
            let _ = child.wait();
        }
        tear_down(&self.root);
    }
}

impl Cluster {
    /// Builds the images, starts the control plane, the controllers and three nodes, and
    /// waits until every node is Ready.
    pub async fn start() -> anyhow::Result<Self> {
        let mut cluster = tokio::task::spawn_blocking(Self::start_processes).await??;
        let client = cluster.plane.client()?;
        cluster.provisioner = provision_volumes(client.clone(), cluster.root.join("volumes"));
        let nodes: Api<Node> = Api::all(client);
        let started = Instant::now();
        loop {
            let ready = nodes
                .list(&Default::default())
                .await?
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready == ZONES.len() {
                return Ok(cluster);
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("{ready} of {} nodes Ready after 120 s; logs in {}", ZONES.len(), cluster.root.display());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn start_processes() -> anyhow::Result<Self> {
        let root = root();
        std::fs::create_dir_all(std::env::temp_dir())?;
        let lock = File::create(std::env::temp_dir().join("shardline-nodes.lock"))?;
        lock.lock().context("locking the node cluster")?;
        tear_down(&root);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        let bin = binaries()?;
        let images = build_images(&root.join("images"))?;

        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("enabling IP forwarding (needs root)")?;
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        for address in std::iter::once(APISERVER_ADDRESS.to_owned()).chain((0..ZONES.len()).map(node_address)) {
            run("ip", &["addr", "add", &format!("{address}/32"), "dev", BRIDGE])?;
        }
        run("ip", &["link", "set", BRIDGE, "up"])?;

        let plane = ControlPlane::start_on(APISERVER_ADDRESS)?;
        let kubeconfig = root.join("admin.kubeconfig");
        plane.kubeconfig(&kubeconfig)?;
        let log = |name: &str| File::create(root.join(name));
        let controller_manager = Command::new(bin.join("kube-controller-manager"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--service-account-private-key-file={}", plane.service_account_key().display()))
            .arg(format!("--root-ca-file={}", plane.serving_certificate().display()))
            .args(["--leader-elect=false", "--port=0", "--secure-port=0", "--use-service-account-credentials=false"])
            .stdout(Stdio::null())
            .stderr(log("controller-manager.log")?)
            .spawn()
            .context("starting kube-controller-manager")?;
        let scheduler = Command::new(bin.join("kube-scheduler"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
            .stdout(Stdio::null())
            .stderr(log("scheduler.log")?)
            .spawn()
            .context("starting kube-scheduler")?;
        let mut cluster = Self {
            plane,
            controllers: vec![controller_manager, scheduler],
            nodes: Vec::new(),
            provisioner: CancellationToken::new(),
            root: root.clone(),
            _lock: lock,
        };
        for index in 0..ZONES.len() {
            let node = start_node(&root, &bin, &kubeconfig, index, &images)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// The admin kubeconfig (what `kubectl` and `helm` use from the host).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }

    /// `localhost/shardline/shard-server:dev`.
    pub fn shard_server_image() -> String {
        format!("{SHARD_SERVER_IMAGE}:{IMAGE_TAG}")
    }

    /// `localhost/shardline/shardline-operator:dev`.
    pub fn operator_image() -> String {
        format!("{OPERATOR_IMAGE}:{IMAGE_TAG}")
    }

    /// The directory backing claim `claim` of `namespace` (kept after the claim is deleted).
    pub fn volume_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.root.join("volumes").join(format!("{namespace}-{claim}"))
    }

    /// The apiserver's port (in-cluster clients use it with [`APISERVER_ADDRESS`]).
    pub fn apiserver_port(&self) -> anyhow::Result<u16> {
        let port = self.plane.url.rsplit(':').next().context("no port in the apiserver URL")?;
        Ok(port.parse()?)
    }

    /// The image archives built for this cluster (shard-server, operator).
    pub fn image_archives(&self) -> [PathBuf; 2] {
        let dir = self.root.join("images");
        [dir.join("shard-server.tar"), dir.join("shardline-operator.tar")]
    }
}

/// Builds the shard-server and operator images from the binaries next to the test's
/// `shard-server` and returns the archives to import (with the pause image).
fn build_images(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bin_dir = crate::server_binary()?.parent().context("no binary directory")?.to_owned();
    let out_text = out.display().to_string();
    install_script("scratch-images.sh", &[&bin_dir.display().to_string(), &out_text, IMAGE_TAG])
        .map_err(anyhow::Error::msg)?;
    Ok(vec![binaries()?.join("pause.tar"), out.join("shard-server.tar"), out.join("shardline-operator.tar")])
}

/// Writes node `index`'s containerd, CNI and kubelet configuration and starts it.
fn start_node(
    root: &Path,
    bin: &Path,
    kubeconfig: &Path,
    index: usize,
    images: &[PathBuf],
) -> anyhow::Result<NodeProcess> {
    let name = node_name(index);
    let dir = root.join(&name);
    for sub in ["containerd", "state", "cni", "ipam", "kubelet", "certs", "log/pods", "log/containers"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let socket = dir.join("containerd.sock");
    let config = containerd_config(&dir, &socket)?;
    std::fs::write(dir.join("containerd.toml"), config)?;
    let cni = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": format!("shardline-{name}"),
        "plugins": [{
            "type": "bridge",
            "bridge": cni_bridge(index),
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "dataDir": dir.join("ipam"),
                "ranges": [[{ "subnet": format!("10.244.{index}.0/24") }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
            },
        }],
    });
    std::fs::write(dir.join("cni/10-bridge.conflist"), serde_json::to_vec_pretty(&cni)?)?;
    let address = node_address(index);
    let kubelet_config = format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\naddress: {address}\nhealthzBindAddress: {address}\nport: 10250\nreadOnlyPort: 0\nauthentication:\n  anonymous: {{enabled: true}}\n  webhook: {{enabled: false}}\nauthorization: {{mode: AlwaysAllow}}\ncgroupDriver: cgroupfs\ncgroupRoot: /{name}\nfailSwapOn: false\nnodeStatusUpdateFrequency: 4s\nsyncFrequency: 10s\nserializeImagePulls: false\nimageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 99\nevictionHard: {{memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}\n"
    );
    std::fs::write(dir.join("kubelet.yaml"), kubelet_config)?;
    // The node's cgroup root, in every v1 controller (cpuset needs its parent's cpus and mems).
    for controller in CGROUP_CONTROLLERS {
        let parent = Path::new("/sys/fs/cgroup").join(controller);
        if !parent.exists() {
            continue;
        }
        let cgroup = parent.join(&name);
        std::fs::create_dir_all(&cgroup).with_context(|| format!("creating {}", cgroup.display()))?;
        if controller == "cpuset" {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                std::fs::write(cgroup.join(file), std::fs::read_to_string(parent.join(file))?)?;
            }
        }
    }
    // containerd and the kubelet share a private mount namespace whose /var/log/pods (and
    // /var/log/containers) are this node's own: a kubelet deletes pod logs it does not know.
    let script = r#"
set -e
N="$1"; shift
mkdir -p /var/log/pods /var/log/containers
mount --bind "$N/log/pods" /var/log/pods
mount --bind "$N/log/containers" /var/log/containers
containerd --config "$N/containerd.toml" >"$N/containerd.log" 2>&1 &
for i in $(seq 300); do [ -S "$N/containerd.sock" ] && break; sleep 0.1; done
while [ "$1" != "--" ]; do
  ctr --address "$N/containerd.sock" -n k8s.io images import "$1" >/dev/null
  shift
done
shift
exec "$@" >"$N/kubelet.log" 2>&1
"#;
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "bash", "-c", script, "node"]).arg(&dir);
    command.args(images).arg("--");
    command
        .arg(bin.join("kubelet"))
        .arg(format!("--config={}", dir.join("kubelet.yaml").display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--container-runtime=remote")
        .arg(format!("--container-runtime-endpoint=unix://{}", socket.display()))
        .arg(format!("--hostname-override={name}"))
        .arg(format!("--node-ip={address}"))
        .arg(format!("--node-labels=topology.kubernetes.io/zone={}", ZONES[index]))
        .arg(format!("--root-dir={}", dir.join("kubelet").display()))
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .arg("--pod-infra-container-image=k8s.gcr.io/pause:3.2");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(dir.join("node.log"))?)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(NodeProcess { child })
}

/// containerd's default configuration with this node's paths, the local pause image, the
/// CNI directories, and the oom_score_adj restriction this VM needs.
fn containerd_config(dir: &Path, socket: &Path) -> anyhow::Result<String> {
    let default = run("containerd", &["config", "default"])?;
    let mut out = String::new();
    let mut section = String::new();
    for line in default.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        let replaced = match (section.as_str(), key) {
            (_, "root") if section.is_empty() => format!("root = \"{}\"", dir.join("containerd").display()),
            (_, "state") if section.is_empty() => format!("state = \"{}\"", dir.join("state").display()),
            ("[grpc]", "address") => format!("  address = \"{}\"", socket.display()),
            (_, "sandbox_image") => "    sandbox_image = \"k8s.gcr.io/pause:3.2\"".to_owned(),
            (_, "restrict_oom_score_adj") => "    restrict_oom_score_adj = true".to_owned(),
            (_, "bin_dir") => "      bin_dir = \"/usr/lib/cni\"".to_owned(),
            (_, "conf_dir") => format!("      conf_dir = \"{}\"", dir.join("cni").display()),
            (_, "path") if section == "[plugins.\"io.containerd.internal.v1.opt\"]" => {
                format!("    path = \"{}\"", dir.join("opt").display())
            }
            _ => line.to_owned(),
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    ensure!(out.contains("restrict_oom_score_adj = true"), "containerd's default config changed shape");
    Ok(out)
}

/// Binds every pending claim to a hostPath PersistentVolume of its own under `dir` (owned by
/// the pods' user, 0700), until cancelled.
fn provision_volumes(client: kube::Client, dir: PathBuf) -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
        let volumes: Api<PersistentVolume> = Api::all(client);
        while !token.is_cancelled() {
            if let Ok(list) = claims.list(&Default::default()).await {
                for claim in list.items {
                    if let Err(err) = provision(&volumes, &claim, &dir).await {
                        eprintln!("provisioner: {err:#}");
                    }
                }
            }
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    });
    stop
}

async fn provision(volumes: &Api<PersistentVolume>, claim: &PersistentVolumeClaim, dir: &Path) -> anyhow::Result<()> {
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.volume_name.is_some() || claim.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let volume_name = format!("pv-{namespace}-{name}");
    if volumes.get_opt(&volume_name).await?.is_some() {
        return Ok(());
    }
    let path = dir.join(format!("{namespace}-{name}"));
    std::fs::create_dir_all(&path)?;
    std::os::unix::fs::chown(&path, Some(65532), Some(65532))?;
    std::fs::set_permissions(&path, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700))?;
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").map(|q| q.0.clone()))
        .unwrap_or_else(|| "1Gi".into());
    let volume: PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": { "name": volume_name },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class_name.unwrap_or_default(),
            "hostPath": { "path": path, "type": "Directory" },
            "claimRef": { "namespace": namespace, "name": name, "uid": claim.metadata.uid },
        },
    }))?;
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The namespace the chart is installed in.
pub const OPERATOR_NAMESPACE: &str = "shardline-system";

impl Cluster {
    /// Installs the Helm chart as a user would (`helm template` with the CRDs, applied), with
    /// the images this cluster holds and `replicas` operator replicas; the in-cluster client
    /// reaches the apiserver at its bridge address (no kube-proxy routes the `kubernetes`
    /// Service). Waits until every operator pod is Ready.
    pub async fn install_chart(&self, replicas: u32) -> anyhow::Result<()> {
        let values = format!(
            "operator:\n  replicas: {replicas}\n  image: {{repository: {OPERATOR_IMAGE}, tag: {IMAGE_TAG}, pullPolicy: Never}}\n  logLevel: info\n  env:\n    - {{name: KUBERNETES_SERVICE_HOST, value: \"{APISERVER_ADDRESS}\"}}\n    - {{name: KUBERNETES_SERVICE_PORT, value: \"{}\"}}\nshardServer:\n  image: {{repository: {SHARD_SERVER_IMAGE}, tag: {IMAGE_TAG}}}\n",
            self.apiserver_port()?
        );
        let file = self.root.join("values.yaml");
        std::fs::write(&file, values)?;
        super::kubectl(&self.plane, &["create", "namespace", OPERATOR_NAMESPACE], "")?;
        let chart = super::chart_dir().display().to_string();
        let rendered = super::helm(&[
            "template",
            "shardline",
            &chart,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--include-crds",
            "-f",
            &file.display().to_string(),
        ])?;
        super::kubectl(&self.plane, &["apply", "--server-side", "-f", "-"], &rendered)?;
        self.wait_operator_pods(replicas as usize).await?;
        Ok(())
    }

    /// Waits until exactly `count` operator pods exist, every one Ready; their names.
    pub async fn wait_operator_pods(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let pods: Api<Pod> = Api::namespaced(self.plane.client()?, OPERATOR_NAMESPACE);
        let started = Instant::now();
        loop {
            let list = pods.list(&Default::default()).await?.items;
            let ready: Vec<String> =
                list.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect();
            if list.len() == count && ready.len() == count {
                return Ok(ready);
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("{} of {count} operator pods Ready after 120 s: {}", ready.len(), describe_pods(&list));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Where a Ready pod serves port `port`: `http://POD_IP:PORT`; `None` while it is not Ready.
    pub async fn pod_endpoint(&self, namespace: &str, pod: &str, port: u16) -> anyhow::Result<Option<String>> {
        let pods: Api<Pod> = Api::namespaced(self.plane.client()?, namespace);
        let Some(pod) = pods.get_opt(pod).await? else { return Ok(None) };
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        Ok(ip.filter(|_| is_ready(&pod)).map(|ip| format!("http://{ip}:{port}")))
    }

    /// The zone of the node pod `pod` runs on.
    pub async fn pod_zone(&self, namespace: &str, pod: &str) -> anyhow::Result<Option<String>> {
        let client = self.plane.client()?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let nodes: Api<Node> = Api::all(client);
        let Some(node) = pods.get(pod).await?.spec.and_then(|s| s.node_name) else { return Ok(None) };
        let labels = nodes.get(&node).await?.metadata.labels.unwrap_or_default();
        Ok(labels.get("topology.kubernetes.io/zone").cloned())
    }

    /// The containers' last log lines of every pod in `namespace`, for failure messages.
    pub fn logs(&self, namespace: &str) -> String {
        super::kubectl(
            &self.plane,
            &[
                "logs",
                "-n",
                namespace,
                "--all-containers",
                "--tail=20",
                "-l",
                "app.kubernetes.io/managed-by",
                "--prefix",
            ],
            "",
        )
        .unwrap_or_else(|e| format!("(no logs: {e})"))
    }
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One line per pod: name, phase and why a container waits or ended.
pub fn describe_pods(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let reasons: Vec<String> = status
                .container_statuses
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.state)
                .filter_map(|s| {
                    s.waiting
                        .map(|w| format!("waiting: {} {}", w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
                        .or(s
                            .terminated
                            .map(|t| format!("terminated: {} ({})", t.reason.unwrap_or_default(), t.exit_code)))
                })
                .collect();
            format!(
                "{} {} {}",
                p.metadata.name.clone().unwrap_or_default(),
                status.phase.unwrap_or_default(),
                reasons.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
