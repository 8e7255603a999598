//! The `shardctl` subcommands against a real server, through their JSON output.

use shardline_tests::{shardctl_binary, Server};

async fn shardctl(server: &Server, args: &[&str], stdin: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(shardctl_binary()?)
        .args(args)
        .args(["--endpoint", &server.endpoint, "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut input = child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await?;
    }
    drop(input);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(output.status.success(), "shardctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout)?;
    // `get` prints one JSON object per line; everything else one document.
    match serde_json::from_str(&text) {
        Ok(value) => Ok(value),
        Err(_) => Ok(serde_json::Value::Array(text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?)),
    }
}

#[tokio::test]
async fn shardctl_manages_streams_puts_reads_and_lists_leases() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let created = shardctl(&server, &["stream", "create", "cli", "--shards", "2"], None).await?;
    assert_eq!(created["status"], "ACTIVE");
    let listed = shardctl(&server, &["stream", "list"], None).await?;
    assert_eq!(listed[0]["name"], "cli");

    let put = shardctl(&server, &["put", "cli", "--partition-key", "k"], Some("one\ntwo\nthree\n")).await?;
    assert_eq!(put.as_array().map(Vec::len), Some(3));
    let args = shardctl(&server, &["put", "cli", "--aggregate", "four", "five"], None).await?;
    assert_eq!(args[1]["data"], "five");
    let got = shardctl(&server, &["get", "cli"], None).await?;
    let mut data: Vec<String> =
        got.as_array().into_iter().flatten().map(|l| l["data"].as_str().unwrap_or_default().to_owned()).collect();
    data.sort();
    assert_eq!(data, vec!["five", "four", "one", "three", "two"], "aggregates are taken apart");

    let scaled = shardctl(&server, &["stream", "scale", "cli", "--shards", "4"], None).await?;
    assert_eq!((scaled["from"].as_i64(), scaled["to"].as_i64()), (Some(2), Some(4)));
    let described = shardctl(&server, &["stream", "describe", "cli"], None).await?;
    assert_eq!(described["stream"]["open_shards"], 4);
    assert!(described["shards"].as_array().is_some_and(|s| s.len() > 4), "closed parents are listed too");
    let retention = shardctl(&server, &["stream", "retention", "cli", "--hours", "48"], None).await?;
    assert_eq!(retention["retention_hours"], 48);

    let leases = shardctl(&server, &["leases", "list", "app", "--stream", "cli"], None).await?;
    assert!(leases.as_array().is_some_and(|l| !l.is_empty()));
    assert_eq!(leases[0]["checkpoint"], "TRIM_HORIZON");

    let failed = tokio::process::Command::new(shardctl_binary()?)
        .args(["stream", "describe", "missing", "--endpoint", &server.endpoint])
        .output()
        .await?;
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("ResourceNotFoundException"), "a clear error");
    Ok(())
}

/// `shardctl get … | head -n 1`: the reader goes away after one line, and shardctl stops
/// quietly with status 0 (no panic on the closed pipe), as Unix tools do.
#[tokio::test]
async fn shardctl_stops_quietly_when_its_reader_closes_the_pipe() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    shardctl(&server, &["stream", "create", "pipe", "--shards", "1"], None).await?;
    let lines: String = (0..2000).map(|i| format!("record-{i}-{}\n", "x".repeat(100))).collect();
    shardctl(&server, &["put", "pipe", "--partition-key", "k"], Some(&lines)).await?;
    let script = format!(
        "set -o pipefail; {} get pipe --endpoint {} | head -n 1",
        shardctl_binary()?.display(),
        server.endpoint
    );
    let output = tokio::process::Command::new("bash").args(["-c", &script]).output().await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "shardctl failed on the closed pipe: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
    Ok(())
}
