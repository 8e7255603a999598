//! `shardctl`: the Shardline command line.

mod bench;
mod connection;
mod leases;
mod output;
mod put;
mod streams;
mod tail;

use clap::{Parser, Subcommand};

/// Shardline's command line.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, delete, scale streams and set their retention.
    Stream(streams::StreamArgs),
    /// Put records from arguments or stdin lines.
    Put(put::PutArgs),
    /// Print the records a stream holds.
    Get(tail::ReadArgs),
    /// Follow a stream, printing records as they arrive.
    Tail(tail::ReadArgs),
    /// Show consumer applications' leases.
    Leases(leases::LeasesArgs),
    /// Measure ingest, PutRecord latency and read-back against any Kinesis-compatible endpoint.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Stream(args) => streams::run(args).await,
        Command::Put(args) => put::run(args).await,
        Command::Get(args) => tail::run(args, false).await,
        Command::Tail(args) => tail::run(args, true).await,
        Command::Leases(args) => leases::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
