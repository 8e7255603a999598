//! The internal services (`Cluster`, `Admin`) answer only on the internal port and only to
//! callers with the internal token: an unauthenticated client that reaches a server can no
//! longer hand its shards to a foreign address, delete its streams, or administer it. A
//! cluster server will not start without a token; a standalone one makes its own, private.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use shardline_proto::auth::BearerToken;
use shardline_proto::v1 as pb;
use shardline_proto::v1::admin_client::AdminClient;
use shardline_proto::v1::cluster_client::ClusterClient;
use shardline_tests::{create_active_stream, server_binary, Server};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

async fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(endpoint.to_owned())?.connect().await?)
}

fn create(name: &str) -> pb::CreateStreamRequest {
    pb::CreateStreamRequest { stream_name: name.into(), shard_count: 1 }
}

#[tokio::test]
async fn admin_needs_the_internal_port_and_its_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    assert!(server.internal_endpoint.starts_with("http://127.0.0.1:"), "{}", server.internal_endpoint);

    // The Kinesis port does not serve Admin or Cluster at all.
    let public = channel(&server.endpoint).await?;
    let refused = AdminClient::new(public.clone()).create_stream(create("public")).await.expect_err("public admin");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    let refused = ClusterClient::new(public)
        .release(pb::ReleaseRequest { stream_name: "public".into() })
        .await
        .expect_err("public cluster");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    // The internal port: no token, a wrong one, a prefix of the right one: all refused.
    let internal = channel(&server.internal_endpoint).await?;
    let refused = AdminClient::new(internal.clone()).create_stream(create("anonymous")).await.expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    for wrong in ["0".repeat(64), server.token[..server.token.len() - 1].to_owned(), format!("{}0", server.token)] {
        let token = BearerToken::new(&wrong).expect("ascii");
        let mut admin = AdminClient::new(InterceptedService::new(internal.clone(), token));
        let refused = admin.create_stream(create("forged")).await.expect_err("wrong token");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let client = server.client();
    let listed = client.list_streams().send().await?;
    assert!(listed.stream_names().is_empty(), "nothing refused was done: {:?}", listed.stream_names());

    // With the token it works.
    AdminClient::new(server.internal().await?).create_stream(create("granted")).await?;
    assert_eq!(client.list_streams().send().await?.stream_names(), ["granted"]);

    // The generated token is the server user's alone.
    let mode = std::fs::metadata(dir.path().join("internal-token"))?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    Ok(())
}

#[tokio::test]
async fn an_unauthenticated_caller_cannot_take_or_release_a_cluster_servers_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start_cluster(dir.path(), "own-0-0", "127.0.0.1:0", &["--stream-transition-ms", "0"])?;
    let layout = |epoch, address: &str| pb::StreamLayout {
        stream_name: "owned".into(),
        epoch,
        servers: vec![pb::ClusterServer { id: "own-0-0".into(), address: address.to_owned(), ..Default::default() }],
        retention_hours: 24,
        initial_shard_count: 1,
        initial_owners: vec!["own-0-0".into()],
        ..Default::default()
    };
    ClusterClient::new(server.internal().await?)
        .assign(pb::AssignRequest { layout: Some(layout(1, server.address())) })
        .await?;
    let client = server.client();
    shardline_tests::wait_for_status(&client, "owned", aws_sdk_kinesis::types::StreamStatus::Active).await?;

    // The attack: a higher epoch pointing the shard at a foreign address, then Release.
    let mut intruder = ClusterClient::new(channel(&server.internal_endpoint).await?);
    let refused = intruder
        .assign(pb::AssignRequest { layout: Some(layout(9, "203.0.113.9:4567")) })
        .await
        .expect_err("unauthenticated assign");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = intruder
        .release(pb::ReleaseRequest { stream_name: "owned".into() })
        .await
        .expect_err("unauthenticated release");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The shard is still served here, and the stream still exists.
    let put = client
        .put_record()
        .stream_name("owned")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new("still here"))
        .send()
        .await?;
    assert_eq!(put.shard_id(), "shardId-000000000000");
    Ok(())
}

/// Runs `shard-server ARGS` and returns its exit status and standard error.
fn run_server(args: &[&str]) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let out = Command::new(server_binary()?).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    Ok((out.status, String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[test]
fn a_cluster_server_will_not_start_without_a_real_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let common = ["--cluster", "--server-id", "s-0-0", "--data-dir", data, "--listen", "127.0.0.1:0"];
    let tail = ["--metrics-listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"];
    let (status, stderr) = run_server(&[&common[..], &tail[..]].concat())?;
    assert!(!status.success());
    assert!(stderr.contains("--internal-token-file"), "{stderr}");
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "secret\n")?;
    let weak_flag = ["--internal-token-file", weak.to_str().expect("utf-8")];
    let (status, stderr) = run_server(&[&common[..], &tail[..], &weak_flag[..]].concat())?;
    assert!(!status.success());
    assert!(stderr.contains("at least 32"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn the_standalone_token_survives_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&dir, &[])?;
    let before = server.token.clone();
    create_active_stream(&server.client(), "kept", 1).await?;
    server.restart()?;
    assert_eq!(server.token, before);
    AdminClient::new(server.internal().await?)
        .describe_stream(pb::DescribeStreamRequest { stream_name: "kept".into() })
        .await?;
    Ok(())
}
