//! `shardctl stream …`: create, list, describe, delete, scale and set retention.

use crate::output::out;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::types::{ScalingType, StreamMode, StreamModeDetails, StreamStatus};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::connection::{explain, table, Connection};

/// Stream administration.
#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream and wait until it is ACTIVE.
    Create {
        /// Stream name.
        name: String,
        /// Shards (provisioned mode).
        #[arg(long, default_value_t = 1)]
        shards: i32,
        /// On-demand capacity mode instead.
        #[arg(long)]
        on_demand: bool,
    },
    /// List streams.
    List,
    /// Show a stream and its shards.
    Describe {
        /// Stream name.
        name: String,
    },
    /// Delete a stream.
    Delete {
        /// Stream name.
        name: String,
        /// Also deregister its enhanced fan-out consumers.
        #[arg(long)]
        force: bool,
    },
    /// Change the number of shards (uniform scaling) and wait until it is done.
    Scale {
        /// Stream name.
        name: String,
        /// Target shard count.
        #[arg(long)]
        shards: i32,
    },
    /// Set the retention period in hours (24..8760).
    Retention {
        /// Stream name.
        name: String,
        /// Hours.
        #[arg(long)]
        hours: i32,
    },
}

#[derive(Debug, Serialize)]
struct StreamRow {
    name: String,
    status: String,
    mode: String,
    open_shards: i32,
    retention_hours: i32,
}

#[derive(Debug, Serialize)]
struct ShardRow {
    shard_id: String,
    parents: Vec<String>,
    starting_hash_key: String,
    ending_hash_key: String,
    open: bool,
}

#[derive(Debug, Serialize)]
struct Description {
    stream: StreamRow,
    arn: String,
    consumers: i32,
    shards: Vec<ShardRow>,
}

async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str, what: &str) -> anyhow::Result<()> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg}")?);
    spinner.set_message(format!("{what} {name}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        spinner.tick();
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(explain(&e)))?;
        if summary.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active) {
            spinner.finish_and_clear();
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not become ACTIVE within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn row(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<(StreamRow, String, i32)> {
    let out =
        client.describe_stream_summary().stream_name(name).send().await.map_err(|e| anyhow::anyhow!(explain(&e)))?;
    let s = out.stream_description_summary().context("no summary")?;
    Ok((
        StreamRow {
            name: s.stream_name().to_owned(),
            status: s.stream_status().as_str().to_owned(),
            mode: s.stream_mode_details().map(|m| m.stream_mode().as_str().to_owned()).unwrap_or_default(),
            open_shards: s.open_shard_count(),
            retention_hours: s.retention_period_hours(),
        },
        s.stream_arn().to_owned(),
        s.consumer_count().unwrap_or(0),
    ))
}

fn stream_table(rows: &[StreamRow]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.status.clone(),
                r.mode.clone(),
                r.open_shards.to_string(),
                r.retention_hours.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "MODE", "SHARDS", "RETENTION(h)"], &rows);
}

/// Runs a stream subcommand.
pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let connection = args.connection;
    let client = connection.kinesis();
    let fail = |e: String| anyhow::anyhow!(e);
    match args.command {
        StreamCommand::Create { name, shards, on_demand } => {
            let mut request = client.create_stream().stream_name(&name);
            request = if on_demand {
                request.stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build()?)
            } else {
                request.shard_count(shards)
            };
            request.send().await.map_err(|e| fail(explain(&e)))?;
            wait_active(&client, &name, "creating").await?;
            let (stream, _, _) = row(&client, &name).await?;
            connection.print(&stream, |s| stream_table(std::slice::from_ref(s)))
        }
        StreamCommand::List => {
            let mut names = Vec::new();
            let mut token = None;
            loop {
                let out = client.list_streams().set_next_token(token).send().await.map_err(|e| fail(explain(&e)))?;
                names.extend(out.stream_names().iter().cloned());
                match (out.has_more_streams(), out.next_token()) {
                    (true, Some(next)) => token = Some(next.to_owned()),
                    _ => break,
                }
            }
            let mut rows = Vec::new();
            for name in names {
                rows.push(row(&client, &name).await?.0);
            }
            connection.print(&rows, |rows| stream_table(rows))
        }
        StreamCommand::Describe { name } => {
            let (stream, arn, consumers) = row(&client, &name).await?;
            let listed = client.list_shards().stream_name(&name).send().await.map_err(|e| fail(explain(&e)))?;
            let shards = listed
                .shards()
                .iter()
                .map(|s| ShardRow {
                    shard_id: s.shard_id().to_owned(),
                    parents: s
                        .parent_shard_id()
                        .into_iter()
                        .chain(s.adjacent_parent_shard_id())
                        .map(str::to_owned)
                        .collect(),
                    starting_hash_key: s.hash_key_range().map(|r| r.starting_hash_key().to_owned()).unwrap_or_default(),
                    ending_hash_key: s.hash_key_range().map(|r| r.ending_hash_key().to_owned()).unwrap_or_default(),
                    open: s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()),
                })
                .collect();
            let description = Description { stream, arn, consumers, shards };
            connection.print(&description, |d| {
                stream_table(std::slice::from_ref(&d.stream));
                out!("\nARN {}  consumers {}\n", d.arn, d.consumers);
                let rows: Vec<Vec<String>> = d
                    .shards
                    .iter()
                    .map(|s| {
                        vec![
                            s.shard_id.clone(),
                            if s.open { "open".into() } else { "closed".into() },
                            s.parents.join(","),
                            s.starting_hash_key.clone(),
                            s.ending_hash_key.clone(),
                        ]
                    })
                    .collect();
                table(&["SHARD", "STATE", "PARENTS", "STARTING HASH KEY", "ENDING HASH KEY"], &rows);
            })
        }
        StreamCommand::Delete { name, force } => {
            client
                .delete_stream()
                .stream_name(&name)
                .enforce_consumer_deletion(force)
                .send()
                .await
                .map_err(|e| fail(explain(&e)))?;
            connection.print(&serde_json::json!({ "deleted": name }), |_| out!("deleting {name}"))
        }
        StreamCommand::Scale { name, shards } => {
            let out = client
                .update_shard_count()
                .stream_name(&name)
                .target_shard_count(shards)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
                .map_err(|e| fail(explain(&e)))?;
            wait_active(&client, &name, "resharding").await?;
            let result = serde_json::json!({
                "stream": name,
                "from": out.current_shard_count(),
                "to": out.target_shard_count(),
            });
            connection.print(&result, |_| {
                out!(
                    "{name}: {} → {} shards",
                    out.current_shard_count().unwrap_or(0),
                    out.target_shard_count().unwrap_or(0)
                )
            })
        }
        StreamCommand::Retention { name, hours } => {
            let (stream, _, _) = row(&client, &name).await?;
            if hours >= stream.retention_hours {
                client
                    .increase_stream_retention_period()
                    .stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .map_err(|e| fail(explain(&e)))?;
            } else {
                client
                    .decrease_stream_retention_period()
                    .stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .map_err(|e| fail(explain(&e)))?;
            }
            let result = serde_json::json!({ "stream": name, "retention_hours": hours });
            connection.print(&result, |_| out!("{name}: retention {} h → {hours} h", stream.retention_hours))
        }
    }
}
