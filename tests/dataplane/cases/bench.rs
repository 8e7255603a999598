//! `shardctl bench` end to end against a real server, small: every acknowledged record is read
//! back, `--efo` receives every record through SubscribeToShard, and `--consumers` processes
//! every record through workers.

use shardline_tests::{shardctl_binary, Server};

#[tokio::test]
async fn bench_reads_back_everything_and_measures_fan_out() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let output = tokio::process::Command::new(shardctl_binary()?)
        .args(["bench", "--endpoint", &server.endpoint, "--shards", "2", "--duration", "1s", "--producers", "2"])
        .args(["--batch", "50", "--single-puts", "20", "--record-size", "64", "--efo", "--efo-records", "50", "--json"])
        .args(["--consumers", "2", "--consumer-records", "50", "--producer-records", "500"])
        .output()
        .await?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(summary["read_matches_acknowledged"], true, "{summary}");
    assert!(summary["records_acknowledged"].as_u64().unwrap_or(0) > 0);
    assert_eq!(summary["efo_latency"]["calls"], 50, "{summary}");
    assert!(summary["efo_latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX) < 1000.0, "{summary}");
    assert!(summary["producer_records_per_second"]["aggregated"].as_f64().unwrap_or(0.0) > 0.0, "{summary}");
    // At least once: a record may be processed twice, never skipped.
    assert!(summary["consumer_latency"]["calls"].as_u64().unwrap_or(0) >= 50, "{summary}");
    Ok(())
}
