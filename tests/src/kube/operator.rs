//! The `shardline-operator` binary as a process against the harness apiserver: started, killed
//! with SIGKILL (a crash) and started again, as a Deployment's pod would be.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use super::ControlPlane;

/// A running operator process.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    kubeconfig: PathBuf,
    namespace: String,
    /// Leader-election identity (a pod name); the same across restarts, as a pod's is.
    identity: String,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_endpoint: String,
    _dir: tempfile::TempDir,
}

/// Path of the operator binary, built next to `shard-server`.
pub fn binary() -> anyhow::Result<PathBuf> {
    let binary = crate::server_binary()?.with_file_name("shardline-operator");
    anyhow::ensure!(binary.exists(), "{} is missing; run cargo build --workspace --all-targets", binary.display());
    Ok(binary)
}

impl Operator {
    /// Starts the operator for `plane` as admin, leader-election identity `operator-0`;
    /// `reshard_pause_ms` holds each reshard step between freezing and resharding.
    pub fn start(plane: &ControlPlane, reshard_pause_ms: u64) -> anyhow::Result<Self> {
        Self::start_as(plane, None, reshard_pause_ms)
    }

    /// Starts a further replica (as admin) under leader-election identity `identity`.
    pub fn start_replica(plane: &ControlPlane, identity: &str) -> anyhow::Result<Self> {
        let mut operator = Self::prepare(plane, None, identity)?;
        operator.spawn(0)?;
        Ok(operator)
    }

    /// Starts the operator authenticating with a ServiceAccount's token, its leader lease in
    /// that account's namespace (`(token, namespace)`), or as admin with the lease in `default`.
    pub fn start_as(
        plane: &ControlPlane,
        account: Option<(&str, &str)>,
        reshard_pause_ms: u64,
    ) -> anyhow::Result<Self> {
        let mut operator = Self::prepare(plane, account, "operator-0")?;
        operator.spawn(reshard_pause_ms)?;
        Ok(operator)
    }

    /// The kubeconfig and settings of an operator not started yet.
    fn prepare(plane: &ControlPlane, account: Option<(&str, &str)>, identity: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let namespace = match account {
            Some((token, namespace)) => {
                plane.kubeconfig_with_token(&kubeconfig, token)?;
                namespace
            }
            None => {
                plane.kubeconfig(&kubeconfig)?;
                "default"
            }
        };
        Ok(Self {
            child: None,
            kubeconfig,
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            metrics_endpoint: String::new(),
            _dir: dir,
        })
    }

    /// Starts the process again after [`Operator::kill`].
    pub fn spawn(&mut self, reshard_pause_ms: u64) -> anyhow::Result<()> {
        let mut child = Command::new(binary()?)
            .args(["--metrics-listen", "127.0.0.1:0", "--image", "shardline/shard-server:test"])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("SHARDLINE_RESHARD_PAUSE_MS", reshard_pause_ms.to_string())
            .env("POD_NAME", &self.identity)
            .env("POD_NAMESPACE", &self.namespace)
            .env("RUST_LOG", std::env::var("SHARDLINE_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning shardline-operator")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading the operator's first line")?;
        let Some(endpoint) = line.trim().strip_prefix("shardline-operator metrics on ") else {
            let _ = child.kill();
            bail!("unexpected first line from shardline-operator: {line:?}");
        };
        self.metrics_endpoint = endpoint.to_owned();
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
