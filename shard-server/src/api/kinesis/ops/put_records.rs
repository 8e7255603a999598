//! PutRecords: up to 500 records and 5 MiB in one call, results in request order. The admitted
//! records are appended in one durable batch; with throughput limits on, records over their
//! shard's limit fail one by one (ErrorCode, ErrorMessage, FailedRecordCount) as in Kinesis.

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shardline_proto::sequence::SequenceNumber;

use crate::api::kinesis::codec::Blob;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::ops::records::{check_entry, to_put_entry, EntryFields};
use crate::api::kinesis::stream_ref;
use crate::api::kinesis::validate::Violations;
use crate::metrics::PutOp;
use crate::node::Node;

/// Most records in one call.
pub const MAX_RECORDS: usize = 500;
/// Most bytes (partition keys plus data) in one call.
pub const MAX_REQUEST_BYTES: usize = 5 << 20;

/// The request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Records>,
    dry_run: Option<bool>,
}

/// The `Records` list as decoded: the first [`MAX_RECORDS`] entries, and how many there were.
/// Entries past the limit are skipped as they are read, never kept, so a huge list costs
/// decode time proportional to the body and no memory beyond it (the call is refused anyway).
#[derive(Debug, Default)]
struct Records {
    kept: Vec<RequestEntry>,
    len: usize,
}

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bounded;
        impl<'de> Visitor<'de> for Bounded {
            type Value = Records;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records, A::Error> {
                let mut records =
                    Records { kept: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_RECORDS)), len: 0 };
                loop {
                    let more = if records.len < MAX_RECORDS {
                        seq.next_element::<RequestEntry>()?.map(|entry| records.kept.push(entry)).is_some()
                    } else {
                        seq.next_element::<IgnoredAny>()?.is_some()
                    };
                    if !more {
                        return Ok(records);
                    }
                    records.len += 1;
                }
            }
        }
        deserializer.deserialize_seq(Bounded)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestEntry {
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    data: Option<Blob>,
}

/// The response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    failed_record_count: u32,
    records: Vec<ResultEntry>,
    /// Sent only for encrypted streams, as Kinesis sends it (Shardline encrypts none).
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
}

impl Response {
    /// About the length of the encoded answer: ~110 bytes per stored record's entry.
    pub fn encoded_len_hint(&self) -> usize {
        64 + self.records.len() * 112
    }
}

/// One record's outcome: where it landed, or why it was refused (the others still land).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResultEntry {
    #[serde(rename_all = "PascalCase")]
    Stored {
        #[serde(serialize_with = "digits")]
        sequence_number: SequenceNumber,
        shard_id: String,
    },
    #[serde(rename_all = "PascalCase")]
    Failed { error_code: &'static str, error_message: String },
}

/// Writes a sequence number's digits straight into the answer.
fn digits<S: Serializer>(number: &SequenceNumber, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(number)
}

/// How Kinesis shows a record list in a validation message: each entry by its Java object name.
/// Lists longer than [`MAX_SHOWN_RECORDS`] (only an attack sends them) are summarised.
fn shown_records(len: usize) -> String {
    if len > MAX_SHOWN_RECORDS {
        return format!("[{len} records]");
    }
    let entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
    format!("[{}]", vec![entry; len].join(", "))
}

/// Longest record list shown entry by entry in a validation message.
const MAX_SHOWN_RECORDS: usize = 1000;

impl Request {
    /// Puts the records.
    pub async fn apply(self, node: &Node) -> Result<Response, ApiError> {
        // Members are checked in the model's order, records first: with more than ten
        // violations, the ten the service reports.
        let mut v = Violations::new();
        v.required("records", self.records.as_ref());
        if let Some(records) = &self.records {
            v.count("records", &shown_records(records.len), records.len, 1, MAX_RECORDS);
            for (i, record) in records.kept.iter().enumerate() {
                let fields = EntryFields {
                    partition_key: record.partition_key.as_deref(),
                    explicit_hash_key: record.explicit_hash_key.as_deref(),
                    data: record.data.as_ref(),
                };
                check_entry(&mut v, || format!("records.{}.member.", i + 1), &fields);
            }
        }
        stream_ref::validate(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()?;
        let name = stream_ref::resolve(node, self.stream_name, self.stream_arn)?;
        let records = self.records.unwrap_or_default().kept;
        let total: usize = records
            .iter()
            .map(|r| r.partition_key.as_ref().map_or(0, String::len) + r.data.as_ref().map_or(0, |d| d.0.len()))
            .sum();
        if total > MAX_REQUEST_BYTES {
            return Err(ApiError::invalid_argument(format!(
                "Records size exceeds 5 MB limit: the request holds {total} bytes of partition keys and data, the limit is {MAX_REQUEST_BYTES}."
            )));
        }
        let entries = records
            .into_iter()
            .map(|r| to_put_entry(r.partition_key, r.explicit_hash_key.as_deref(), r.data))
            .collect::<Result<Vec<_>, _>>()?;
        if self.dry_run == Some(true) {
            node.catalog().get(&name)?;
            return Err(ApiError::dry_run());
        }
        let offered = entries.len() as u64;
        let sizes: Vec<u64> = entries.iter().map(|e| (e.partition_key.len() + e.data.len()) as u64).collect();
        let started = std::time::Instant::now();
        let outcome = node.put(&name, entries).await;
        let (stored, bytes) = match &outcome {
            Ok(results) => results
                .iter()
                .zip(&sizes)
                .filter(|(r, _)| r.is_ok())
                .fold((0, 0), |(n, b), (_, size)| (n + 1, b + size)),
            Err(_) => (0, 0),
        };
        let throttled = if outcome.is_ok() { offered - stored } else { 0 };
        if node.has_stream(&name) {
            node.metrics().put(
                PutOp::PutRecords,
                &name,
                offered,
                stored,
                throttled,
                bytes,
                started.elapsed(),
                outcome.is_ok(),
            );
        }
        let results = outcome?;
        let mut failed_record_count = 0;
        let records = results
            .into_iter()
            .map(|outcome| match outcome {
                Ok(r) => ResultEntry::Stored { sequence_number: r.sequence_number, shard_id: r.shard_id },
                Err(err) => {
                    failed_record_count += 1;
                    let err = ApiError::from(err);
                    ResultEntry::Failed { error_code: err.code.wire().0, error_message: err.message }
                }
            })
            .collect();
        Ok(Response { failed_record_count, records, encryption_type: None })
    }
}
