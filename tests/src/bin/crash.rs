//! The crash test's long mode: `crash --cycles 200` kills a standalone shard-server with
//! SIGKILL under load that many times, then checks that no acknowledged record was lost,
//! duplicated or reordered. Uses `$SHARDLINE_SERVER_BIN` or the shard-server built beside it.

use std::time::Instant;

use anyhow::Context as _;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut cycles = 200usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cycles" => cycles = args.next().context("--cycles needs a number")?.parse().context("--cycles")?,
            "-h" | "--help" => {
                println!("usage: crash [--cycles N]   (default 200)");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; usage: crash [--cycles N]"),
        }
    }
    let started = Instant::now();
    let report = shardline_tests::crash::sigkill_cycles(cycles, &|done| {
        if done % 10 == 0 || done == cycles {
            eprintln!("{done}/{cycles} kills, {:.0} s", started.elapsed().as_secs_f64());
        }
    })
    .await?;
    println!(
        "crash: {} kills, {} records acknowledged, {} stored, 0 lost, 0 duplicated, 0 out of order ({:.0} s)",
        report.kills,
        report.acknowledged,
        report.stored,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
