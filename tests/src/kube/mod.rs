//! A real Kubernetes control plane for the operator tests: Debian's etcd and a kube-apiserver
//! 1.20 built by `scripts/kubernetes.sh`, started as local processes on free ports with a
//! token for an admin user, RBAC, and a service-account key pair made with openssl; and
//! [`Cluster`], the same control plane with a controller-manager, a scheduler and three real
//! nodes (kubelet + containerd) in three zones.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub mod nodes;

pub use nodes::Cluster;

/// The admin user's bearer token.
const TOKEN: &str = "shardline-test-admin-token";

fn free_port(address: &str) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((address, 0))?.local_addr()?.port())
}

/// Runs `scripts/kubernetes.sh` once per test process; the directory with the binaries.
pub fn binaries() -> anyhow::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| install_script("kubernetes.sh", &[])).clone().map_err(anyhow::Error::msg)
}

/// Runs `scripts/NAME ARGS`, which installs or builds something (once) and prints its
/// directory last.
fn install_script(name: &str, args: &[&str]) -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name);
    let output =
        Command::new("bash").arg(script).args(args).stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("scripts/{name} failed: {}", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(text.lines().last().unwrap_or_default().trim()))
}

/// A running etcd and kube-apiserver, stopped on drop.
pub struct ControlPlane {
    etcd: Child,
    apiserver: Child,
    /// `https://ADDRESS:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ControlPlane {
    /// Starts etcd and the apiserver on 127.0.0.1 and waits until the apiserver is ready.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1")
    }

    /// Starts etcd (on 127.0.0.1) and the apiserver on `address`, which pods can reach when it
    /// is a node bridge's, and waits until the apiserver is ready.
    pub fn start_on(address: &str) -> anyhow::Result<Self> {
        let bin = binaries()?;
        let dir = tempfile::tempdir()?;
        let (client_port, peer_port, api_port) =
            (free_port("127.0.0.1")?, free_port("127.0.0.1")?, free_port(address)?);
        let etcd = Command::new(bin.join("etcd"))
            .args(["--data-dir", &dir.path().join("etcd").display().to_string()])
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client_port}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client_port}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd")?;
        let key = dir.path().join("sa.key");
        let public = dir.path().join("sa.pub");
        let ok = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()?
            .success()
            && Command::new("openssl")
                .args(["rsa", "-in"])
                .arg(&key)
                .arg("-pubout")
                .arg("-out")
                .arg(&public)
                .stderr(Stdio::null())
                .status()?
                .success();
        if !ok {
            bail!("openssl could not make the service-account key pair");
        }
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, format!("{TOKEN},admin,admin,system:masters\n"))?;
        let apiserver = Command::new(bin.join("kube-apiserver"))
            .args(["--etcd-servers", &format!("http://127.0.0.1:{client_port}")])
            .args(["--bind-address", address, "--advertise-address", address])
            .args(["--secure-port", &api_port.to_string(), "--insecure-port", "0"])
            .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
            .arg(format!("--token-auth-file={}", tokens.display()))
            .args(["--authorization-mode", "RBAC"])
            .arg(format!("--service-account-key-file={}", public.display()))
            .arg(format!("--service-account-signing-key-file={}", key.display()))
            .args(["--service-account-issuer", "https://kubernetes.default.svc"])
            .args(["--service-cluster-ip-range", "10.96.0.0/24"])
            .args(["--kubelet-preferred-address-types", "InternalIP,Hostname"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("apiserver.log"))?)
            .spawn()
            .context("starting kube-apiserver")?;
        let plane = Self { etcd, apiserver, url: format!("https://{address}:{api_port}"), dir };
        plane.wait_ready()?;
        Ok(plane)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new("curl")
                .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {TOKEN}")])
                .arg(format!("{}/readyz", self.url))
                .output()
                .map(|o| o.stdout == b"200")
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("kube-apiserver at {} not ready within 60 s", self.url);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The service-account signing key (for the controller-manager's token controller).
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.path().join("sa.key")
    }

    /// The apiserver's self-signed serving certificate with its CA (the root CA that pods'
    /// service-account volumes carry as `ca.crt`).
    pub fn serving_certificate(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    /// Writes a kubeconfig for the admin user (what the operator process reads via KUBECONFIG).
    pub fn kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        self.kubeconfig_with_token(path, TOKEN)
    }

    /// Writes a kubeconfig authenticating with `token` (e.g. a ServiceAccount's).
    pub fn kubeconfig_with_token(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: harness\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: harness\n  context:\n    cluster: harness\n    user: admin\n    namespace: default\ncurrent-context: harness\n",
            self.url
        );
        std::fs::write(path, text)?;
        Ok(())
    }

    /// A kube client for the admin user.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = kube::Config::new(self.url.parse()?);
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(TOKEN.to_owned().into());
        Ok(kube::Client::try_from(config)?)
    }
}

/// Applies every CRD in `crds/` and waits until each is Established.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &kube::api::PatchParams::apply("shardline-tests").force(), &kube::api::Patch::Apply(&crd))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let current = crds.get(&name).await?;
            let established = current
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} never became Established");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Runs `scripts/helm-tools.sh` once per test process; the directory holding `helm` and `kubectl`.
pub fn helm_tools() -> anyhow::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| install_script("helm-tools.sh", &[])).clone().map_err(anyhow::Error::msg)
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/shardline")
}

/// Runs `helm ARGS` and returns its stdout, or fails with its stderr.
pub fn helm(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(helm_tools()?.join("helm")).args(args).output().context("running helm")?;
    if !output.status.success() {
        bail!("helm {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs `kubectl ARGS` against `plane` with `stdin`, and returns its stdout, or fails with its
/// stderr.
pub fn kubectl(plane: &ControlPlane, args: &[&str], stdin: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("kubeconfig");
    plane.kubeconfig(&config)?;
    let mut child = Command::new(helm_tools()?.join("kubectl"))
        .args(args)
        .env("KUBECONFIG", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    child.stdin.take().context("no stdin")?.write_all(stdin.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}
