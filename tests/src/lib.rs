//! Harness for cross-component tests: starts real `shard-server` processes on 127.0.0.1 with a
//! temporary data directory, and builds independent clients for them (`aws-sdk-kinesis`, and a
//! raw HTTP client for requests no SDK would send).

pub mod crash;
pub mod kube;
pub mod netns;
pub mod replicated;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::StreamStatus;
use shardline_proto::auth::BearerToken;

/// The internal token cluster-mode test servers are given.
pub const TEST_TOKEN: &str = "test-internal-token-0123456789abcdef0123456789abcdef";

/// A channel to a server's internal port that sends its token.
pub type Internal = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>;

/// Region the test servers use.
pub const REGION: &str = "us-east-1";
/// Account the test servers use.
pub const ACCOUNT: &str = "123456789012";

/// Path of the `shard-server` binary: `$SHARDLINE_SERVER_BIN`, or the one cargo built next to
/// this test binary (`make test` builds every workspace binary first). When it is missing it is
/// built with the same workspace-wide flags, so no dependency is compiled a second time.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("SHARDLINE_SERVER_BIN") {
                return Ok(PathBuf::from(path));
            }
            // Tests run from target/<profile>/deps/ and this crate's binaries from
            // target/<profile>/, where the other binaries sit.
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let beside = exe.parent().ok_or("unexpected test binary location")?;
            let dir = if beside.join("shard-server").exists() || !beside.ends_with("deps") {
                beside
            } else {
                beside.parent().ok_or("unexpected test binary location")?
            };
            let binary = dir.join("shard-server");
            if !binary.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace")?;
                let mut args = vec!["build", "--quiet", "--workspace", "--all-targets"];
                if dir.ends_with("release") {
                    args.push("--release");
                }
                let status = Command::new(cargo)
                    .args(&args)
                    .current_dir(workspace)
                    .status()
                    .map_err(|e| format!("cannot run cargo: {e}"))?;
                if !status.success() || !binary.exists() {
                    return Err(format!("building {} failed: {status}", binary.display()));
                }
            }
            Ok(binary)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Path of the `shardctl` binary, built next to `shard-server`.
pub fn shardctl_binary() -> anyhow::Result<PathBuf> {
    let binary = server_binary()?.with_file_name("shardctl");
    anyhow::ensure!(binary.exists(), "{} is missing; run cargo build --workspace --all-targets", binary.display());
    Ok(binary)
}

/// A running `shard-server --standalone` process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_endpoint: String,
    /// `http://127.0.0.1:PORT` of the internal services (`Cluster`, `Admin`).
    pub internal_endpoint: String,
    /// The internal token the server accepts.
    pub token: String,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    /// The network namespace it runs in (`ip netns exec`), if any.
    namespace: Option<String>,
}

impl Server {
    /// Starts a server on a fresh temporary data directory (kept until `dir` drops).
    pub fn start(dir: &tempfile::TempDir, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_at(None, dir.path(), extra_args, "127.0.0.1:0")
    }

    /// Starts a standalone server on `data_dir` (created by the server if missing).
    pub fn start_at_dir(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_at(None, data_dir, extra_args, "127.0.0.1:0")
    }

    /// Starts a `shard-server --cluster --server-id ID` on `data_dir`, listening on `listen`.
    pub fn start_cluster(data_dir: &Path, id: &str, listen: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_cluster_in(None, data_dir, id, listen, extra_args)
    }

    /// Starts a `shard-server --cluster --server-id ID` on `data_dir` in network namespace
    /// `namespace` (or this one), listening on `listen`.
    pub fn start_cluster_in(
        namespace: Option<&str>,
        data_dir: &Path,
        id: &str,
        listen: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--cluster", "--server-id", id];
        args.extend_from_slice(extra_args);
        Self::start_at(namespace, data_dir, &args, listen)
    }

    /// The server process's peak resident memory (`VmHWM`) in bytes.
    pub fn peak_memory_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.child.as_ref().map(Child::id).context("the server is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM")?;
        Ok(kib * 1024)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `host:port` of the Kinesis endpoint.
    pub fn address(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// A channel to the internal port whose calls carry the token.
    pub async fn internal(&self) -> anyhow::Result<Internal> {
        let channel = tonic::transport::Endpoint::from_shared(self.internal_endpoint.clone())?.connect().await?;
        let token = BearerToken::new(&self.token).context("token is not ASCII")?;
        Ok(tonic::service::interceptor::InterceptedService::new(channel, token))
    }

    fn start_at(namespace: Option<&str>, data_dir: &Path, extra_args: &[&str], listen: &str) -> anyhow::Result<Self> {
        let mut command = match namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(server_binary()?);
                command
            }
            None => Command::new(server_binary()?),
        };
        let cluster = extra_args.contains(&"--cluster");
        if !cluster {
            command.arg("--standalone");
        }
        // A cluster server is given its token, as the operator's pods are; a standalone one
        // creates its own in its data directory.
        let token_file = if cluster && !extra_args.contains(&"--internal-token-file") {
            let path = data_dir.with_extension("internal-token");
            std::fs::write(&path, format!("{TEST_TOKEN}\n"))?;
            command.arg("--internal-token-file").arg(&path);
            path
        } else {
            data_dir.join("internal-token")
        };
        command.arg("--data-dir").arg(data_dir);
        command.args(["--listen", listen, "--metrics-listen", "127.0.0.1:0"]);
        if !extra_args.contains(&"--internal-listen") {
            command.args(["--internal-listen", "127.0.0.1:0"]);
        }
        command.args(["--account-id", ACCOUNT, "--region", REGION]);
        if !extra_args.contains(&"--stream-transition-ms") {
            command.args(["--stream-transition-ms", "100"]);
        }
        let mut child = command
            .args(extra_args)
            .env("RUST_LOG", std::env::var("SHARDLINE_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning shard-server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("reading the endpoint line")?;
        let mut metrics_line = String::new();
        reader.read_line(&mut metrics_line).context("reading the metrics line")?;
        let mut internal_line = String::new();
        reader.read_line(&mut internal_line).context("reading the internal line")?;
        let (Some(endpoint), Some(metrics_endpoint), Some(internal_endpoint)) = (
            line.trim().strip_prefix("shard-server listening on "),
            metrics_line.trim().strip_prefix("shard-server metrics on "),
            internal_line.trim().strip_prefix("shard-server internal on "),
        ) else {
            let _ = child.kill();
            bail!("unexpected first lines from shard-server: {line:?} {metrics_line:?} {internal_line:?}");
        };
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading {}", token_file.display()))?
            .trim()
            .to_owned();
        Ok(Self {
            endpoint: endpoint.to_owned(),
            metrics_endpoint: metrics_endpoint.to_owned(),
            internal_endpoint: internal_endpoint.to_owned(),
            token,
            child: Some(child),
            data_dir: data_dir.to_owned(),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            namespace: namespace.map(str::to_owned),
        })
    }

    /// An `aws-sdk-kinesis` client for this server.
    pub fn client(&self) -> aws_sdk_kinesis::Client {
        kinesis_client(&self.endpoint)
    }

    /// Kills the process with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs (it was not killed or stopped by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends the process signal `name` (`STOP`, `CONT`, …).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.as_ref().map(Child::id).context("the server is not running")?;
        let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed: {status}");
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status()?;
            let status = child.wait()?;
            if !status.success() {
                bail!("shard-server exited with {status} after SIGTERM");
            }
        }
        Ok(())
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let listen = self.endpoint.trim_start_matches("http://").to_owned();
        let args: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::start_at(self.namespace.as_deref(), &self.data_dir, &args, &listen) {
                Ok(mut fresh) => {
                    self.child = fresh.child.take();
                    self.metrics_endpoint = fresh.metrics_endpoint.clone();
                    self.internal_endpoint = fresh.internal_endpoint.clone();
                    self.token = fresh.token.clone();
                    return Ok(());
                }
                // The port can linger for a moment after a kill.
                Err(err) if Instant::now() < deadline => {
                    eprintln!("restart retry: {err:#}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// An `aws-sdk-kinesis` client for any endpoint, with static test credentials.
pub fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A client that makes each call once: the SDK retries throttling errors by itself, which
/// would hide them from tests that count them.
pub fn kinesis_client_without_retries(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = kinesis_client(endpoint)
        .config()
        .to_builder()
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// The value of one sample in a server's `/metrics` text, e.g.
/// `shardline_kinesis_incoming_records_total{stream="s"}`; 0 when absent.
pub async fn metric(server: &Server, sample: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(&server.metrics_endpoint).await?.text().await?;
    Ok(text.lines().find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0))
}

/// Creates a stream and waits until it is ACTIVE.
pub async fn create_active_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) -> anyhow::Result<()> {
    client.create_stream().stream_name(name).shard_count(shards).send().await?;
    wait_for_status(client, name, StreamStatus::Active).await
}

/// Polls DescribeStreamSummary until the stream reaches `status`.
pub async fn wait_for_status(client: &aws_sdk_kinesis::Client, name: &str, status: StreamStatus) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let summary = client.describe_stream_summary().stream_name(name).send().await?;
        let current = summary.stream_description_summary().map(|s| s.stream_status().clone());
        if current.as_ref() == Some(&status) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stream {name} still {current:?}, wanted {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw Kinesis request: `(HTTP status, parsed JSON body or Null)`.
pub async fn raw_request(
    endpoint: &str,
    target: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let request =
        reqwest::Client::new().post(endpoint).header("X-Amz-Target", target).header("Content-Type", content_type);
    let response = signed(request).body(body).send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes)? };
    Ok((status, json))
}

/// A sequence number Shardline issued, ordered as the numbers are; panics on anything else.
pub fn seq(text: &str) -> shardline_proto::sequence::SequenceNumber {
    shardline_proto::sequence::SequenceNumber::parse(text).unwrap_or_else(|| panic!("not a sequence number: {text}"))
}

/// A request with the headers of a SigV4 signature (the Kinesis port refuses unsigned
/// requests; signatures are not verified).
pub fn signed(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=any/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
        .header("X-Amz-Date", "20260101T000000Z")
}

/// A raw JSON 1.1 Kinesis call to `Kinesis_20131202.<op>`.
pub async fn raw_call(
    endpoint: &str,
    op: &str,
    body: impl Into<reqwest::Body>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    raw_request(endpoint, &format!("Kinesis_20131202.{op}"), "application/x-amz-json-1.1", body).await
}

/// The error type (`__type`) of a raw response, or "" when there is none.
pub fn error_type(json: &serde_json::Value) -> &str {
    json.get("__type").and_then(|t| t.as_str()).unwrap_or_default()
}

/// The Kinesis error code of an SDK error, or a marker when it is not a service error.
pub fn code<E: aws_sdk_kinesis::error::ProvideErrorMetadata>(err: &aws_sdk_kinesis::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no service error>").to_owned()
}

/// The message of an SDK service error, or "".
pub fn message<E: aws_sdk_kinesis::error::ProvideErrorMetadata>(err: &aws_sdk_kinesis::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.message()).unwrap_or_default().to_owned()
}

/// The hash key ranges of a stream's open shards, as `(shard id, start, end)`.
pub async fn shard_ranges(client: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<Vec<(String, u128, u128)>> {
    let shards = client.list_shards().stream_name(stream).send().await?;
    shards
        .shards()
        .iter()
        .filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()))
        .map(|s| {
            let range = s.hash_key_range().context("no hash key range")?;
            Ok((s.shard_id().to_owned(), range.starting_hash_key().parse()?, range.ending_hash_key().parse()?))
        })
        .collect()
}

/// The shard that owns `partition_key`, computed independently of the server: MD5 as a
/// big-endian 128-bit integer, looked up in the ranges.
pub fn expected_shard(ranges: &[(String, u128, u128)], partition_key: &str) -> String {
    use md5::{Digest, Md5};
    let hash = u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into());
    ranges
        .iter()
        .find(|(_, start, end)| *start <= hash && hash <= *end)
        .map(|(id, _, _)| id.clone())
        .unwrap_or_default()
}

/// Every record of one shard from TRIM_HORIZON to the tip, as `(sequence number, key, data)`.
pub async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
) -> anyhow::Result<Vec<(String, String, Vec<u8>)>> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await?
        .shard_iterator
        .context("no iterator")?;
    let mut out = Vec::new();
    loop {
        let page = client.get_records().shard_iterator(&iterator).send().await?;
        let empty = page.records().is_empty();
        out.extend(page.records().iter().map(|r| {
            (
                r.sequence_number().to_owned(),
                r.partition_key().unwrap_or_default().to_owned(),
                r.data().as_ref().to_vec(),
            )
        }));
        match page.next_shard_iterator() {
            Some(next) if !(empty && page.millis_behind_latest() == Some(0)) => iterator = next.to_owned(),
            _ => return Ok(out),
        }
    }
}
