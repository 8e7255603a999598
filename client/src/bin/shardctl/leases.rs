//! `shardctl leases list APP --stream S`: an application's lease table.

use clap::{Args, Subcommand};
use serde::Serialize;
use shardline_proto::v1 as pb;
use shardline_proto::v1::leases_client::LeasesClient;

use crate::connection::{table, Connection};

/// Consumer applications' leases.
#[derive(Debug, Args)]
pub struct LeasesArgs {
    #[command(subcommand)]
    command: LeasesCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum LeasesCommand {
    /// List an application's leases on a stream (leases for new shards are created as workers
    /// would create them).
    List {
        /// Application name.
        application: String,
        /// Stream name.
        #[arg(long)]
        stream: String,
    },
}

#[derive(Debug, Serialize)]
struct Row {
    shard_id: String,
    owner: Option<String>,
    counter: u64,
    checkpoint: String,
    parents: Vec<String>,
    children: Vec<String>,
}

fn checkpoint(c: Option<&pb::Checkpoint>) -> String {
    use pb::checkpoint::Kind;
    let Some(c) = c else { return String::new() };
    match Kind::try_from(c.kind) {
        Ok(Kind::SequenceNumber) if c.sub_sequence_number > 0 => {
            format!("{}/{}", c.sequence_number, c.sub_sequence_number)
        }
        Ok(Kind::SequenceNumber) => c.sequence_number.clone(),
        Ok(Kind::TrimHorizon) => "TRIM_HORIZON".into(),
        Ok(Kind::Latest) => "LATEST".into(),
        Ok(Kind::AtTimestamp) => format!("AT_TIMESTAMP {}", c.timestamp_ms),
        Ok(Kind::ShardEnd) => "SHARD_END".into(),
        Ok(Kind::Unspecified) | Err(_) => "?".into(),
    }
}

/// Runs a leases subcommand.
pub async fn run(args: LeasesArgs) -> anyhow::Result<()> {
    let LeasesCommand::List { application, stream } = args.command;
    let mut client = LeasesClient::connect(args.connection.endpoint.clone()).await?;
    let request = pb::ListLeasesRequest { application, stream_name: stream, initial_position: None };
    let leases = client.list_leases(request).await.map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    let rows: Vec<Row> = leases
        .into_inner()
        .leases
        .iter()
        .map(|l| Row {
            shard_id: l.lease_key.clone(),
            owner: l.lease_owner.clone(),
            counter: l.lease_counter,
            checkpoint: checkpoint(l.checkpoint.as_ref()),
            parents: l.parent_shard_ids.clone(),
            children: l.child_shard_ids.clone(),
        })
        .collect();
    args.connection.print(&rows, |rows| {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.shard_id.clone(),
                    r.owner.clone().unwrap_or_else(|| "-".into()),
                    r.counter.to_string(),
                    r.checkpoint.clone(),
                    r.parents.join(","),
                ]
            })
            .collect();
        table(&["SHARD", "OWNER", "COUNTER", "CHECKPOINT", "PARENTS"], &rows);
    })
}
