//! Where shardctl connects, shared by its subcommands, and how it prints.

use crate::output::out;
use clap::Args;
use serde::Serialize;

/// Endpoint and output options.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Shard-server (Kinesis and gRPC) endpoint.
    #[arg(long, global = true, env = "SHARDLINE_ENDPOINT", default_value = "http://127.0.0.1:4567")]
    pub endpoint: String,
    /// Region to sign Kinesis requests for.
    #[arg(long, global = true, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    /// A Kinesis client for the endpoint.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        shardline::kinesis::client(&self.endpoint, &self.region)
    }

    /// Prints `value` as JSON, or `table` for humans.
    pub fn print<T: Serialize>(&self, value: &T, table: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json {
            out!("{}", serde_json::to_string_pretty(value)?);
        } else {
            table(value);
        }
        Ok(())
    }
}

/// A Kinesis SDK error as one readable line: the error code and message when the service sent
/// them, the transport failure otherwise.
pub fn explain<E>(err: &aws_sdk_kinesis::error::SdkError<E>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            aws_sdk_kinesis::error::ProvideErrorMetadata::code(service).unwrap_or("Error"),
            aws_sdk_kinesis::error::ProvideErrorMetadata::message(service).unwrap_or_default()
        ),
        None => aws_sdk_kinesis::error::DisplayErrorContext(err).to_string(),
    }
}

/// Prints rows under a header with columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}
