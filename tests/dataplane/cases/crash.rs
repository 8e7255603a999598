//! Crash safety: concurrent producers, the server killed with SIGKILL at random moments, and
//! afterwards every acknowledged record readable exactly once, in acknowledgement order, with
//! sequence numbers that keep increasing across the crashes (see `shardline_tests::crash`;
//! its binary runs the long mode, `crash --cycles 200`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() -> anyhow::Result<()> {
    let report = shardline_tests::crash::sigkill_cycles(4, &|_| {}).await?;
    eprintln!("crash test: {} acknowledged, {} stored, {} kills", report.acknowledged, report.stored, report.kills);
    Ok(())
}
