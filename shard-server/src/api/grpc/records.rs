//! `shardline.v1.Records`: Put, PutRecords, GetRecords and Subscribe.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use shardline_proto::v1 as pb;
use shardline_proto::v1::records_client::RecordsClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::{from_error, invalid};
use crate::hash_range::parse_hash_key;
use crate::node::{Node, PutEntry, RecordsPage, StartingPosition, SubscriptionEvent};
use crate::peers::Peers;
use crate::sequence::{Position, SequenceNumber};
use crate::stream::parse_shard_id;

/// Most records in one PutRecords call, as Kinesis.
const MAX_BATCH_RECORDS: usize = 500;
/// Most partition key and data bytes in one PutRecords call, as Kinesis.
const MAX_BATCH_BYTES: usize = 5 << 20;
/// Longest partition key in characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The service over a node.
#[derive(Debug, Clone)]
pub struct RecordsService {
    node: Arc<Node>,
}

impl RecordsService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// The owner of the requested shard when another server holds it.
    fn owner(
        &self,
        request: &pb::GetRecordsRequest,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Option<Channel>, Status> {
        let Some(index) = parse_shard_id(&request.shard_id) else { return Ok(None) };
        super::forward_to(&self.node, self.node.shard_route(&request.stream_name, index), metadata)
    }
}

fn entry(record: pb::PutRecordEntry) -> Result<PutEntry, Status> {
    let chars = record.partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(invalid(format!("partition_key must have 1 to {MAX_PARTITION_KEY_CHARS} characters, has {chars}")));
    }
    let explicit_hash_key = match record.explicit_hash_key.as_deref() {
        Some(text) => Some(
            parse_hash_key(text)
                .ok_or_else(|| invalid(format!("explicit_hash_key {text} is not a decimal 128-bit number")))?,
        ),
        None => None,
    };
    Ok(PutEntry { partition_key: record.partition_key, explicit_hash_key, data: record.data })
}

fn start(kind: i32, sequence: &str, timestamp_ms: i64) -> Result<StartingPosition, Status> {
    let sequence_number = || {
        Position::parse(sequence)
            .ok_or_else(|| invalid(format!("sequence_number '{sequence}' is not a sequence number")))
    };
    Ok(match pb::StartingPosition::try_from(kind) {
        Ok(pb::StartingPosition::TrimHorizon) => StartingPosition::TrimHorizon,
        Ok(pb::StartingPosition::Latest) => StartingPosition::Latest,
        Ok(pb::StartingPosition::AtSequenceNumber) => StartingPosition::AtSequenceNumber(sequence_number()?),
        Ok(pb::StartingPosition::AfterSequenceNumber) => StartingPosition::AfterSequenceNumber(sequence_number()?),
        Ok(pb::StartingPosition::AtTimestamp) => StartingPosition::AtTimestamp(
            u64::try_from(timestamp_ms).map_err(|_| invalid("timestamp_ms must not be negative"))?,
        ),
        Ok(pb::StartingPosition::Unspecified) | Err(_) => return Err(invalid("position must be set")),
    })
}

fn record(seq: SequenceNumber, r: crate::shard::StoredRecord) -> pb::Record {
    pb::Record {
        sequence_number: seq.to_string(),
        approximate_arrival_timestamp_ms: i64::try_from(r.arrival_ms).unwrap_or(i64::MAX),
        partition_key: r.partition_key,
        data: r.data,
    }
}

fn page(page: RecordsPage) -> pb::GetRecordsResponse {
    let continuation = page.continuation.to_string();
    pb::GetRecordsResponse {
        child_shard_ids: page.child_shards.iter().map(|s| s.id()).collect(),
        records: page.records.into_iter().map(|(seq, r)| record(seq, r)).collect(),
        continuation_sequence_number: continuation,
        millis_behind_latest: i64::try_from(page.millis_behind_latest).unwrap_or(i64::MAX),
    }
}

fn event(event: SubscriptionEvent) -> pb::GetRecordsResponse {
    pb::GetRecordsResponse {
        child_shard_ids: event.child_shards.iter().map(|s| s.id()).collect(),
        records: event.records.into_iter().map(|(seq, r)| record(seq, r)).collect(),
        continuation_sequence_number: event.continuation.to_string(),
        millis_behind_latest: i64::try_from(event.millis_behind_latest).unwrap_or(i64::MAX),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::GetRecordsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::records_server::Records for RecordsService {
    async fn put(&self, request: Request<pb::PutRecordRequest>) -> Result<Response<pb::PutRecordResult>, Status> {
        let request = request.into_inner();
        let record = entry(request.record.ok_or_else(|| invalid("record must be set"))?)?;
        let mut results = self.node.put(&request.stream_name, vec![record]).await.map_err(from_error)?;
        let result = results.pop().ok_or_else(|| Status::internal("no result"))?.map_err(from_error)?;
        Ok(Response::new(pb::PutRecordResult {
            shard_id: result.shard_id,
            sequence_number: result.sequence_number.to_string(),
            ..Default::default()
        }))
    }

    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Result<Response<pb::PutRecordsResponse>, Status> {
        let hop = super::hop(request.metadata());
        let request = request.into_inner();
        if request.records.is_empty() || request.records.len() > MAX_BATCH_RECORDS {
            return Err(invalid(format!(
                "records must hold 1 to {MAX_BATCH_RECORDS} entries, holds {}",
                request.records.len()
            )));
        }
        let bytes: usize = request.records.iter().map(|r| r.partition_key.len() + r.data.len()).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "records hold {bytes} bytes of keys and data; the limit is {MAX_BATCH_BYTES}"
            )));
        }
        let entries = request.records.into_iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        let results = self.node.put_from(&request.stream_name, entries, hop).await.map_err(from_error)?;
        let mut failed_record_count = 0;
        let records = results
            .into_iter()
            .map(|outcome| match outcome {
                Ok(r) => pb::PutRecordResult {
                    shard_id: r.shard_id,
                    sequence_number: r.sequence_number.to_string(),
                    ..Default::default()
                },
                Err(err) => {
                    failed_record_count += 1;
                    let status = from_error(err);
                    let error_code = status
                        .metadata()
                        .get(super::ERROR_TYPE_METADATA)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    pb::PutRecordResult { error_code, error_message: status.message().to_owned(), ..Default::default() }
                }
            })
            .collect();
        Ok(Response::new(pb::PutRecordsResponse { failed_record_count, records }))
    }

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Result<Response<pb::GetRecordsResponse>, Status> {
        if let Some(channel) = self.owner(request.get_ref(), request.metadata())? {
            return RecordsClient::new(channel).get_records(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let position = start(request.position, &request.sequence_number, request.timestamp_ms)?;
        let limit = match request.limit {
            0 => 10_000,
            n @ 1..=10_000 => n as usize,
            n => return Err(invalid(format!("limit must be between 1 and 10000, is {n}"))),
        };
        let token = self.node.shard_iterator(&request.stream_name, &request.shard_id, position).map_err(from_error)?;
        let node = self.node.clone();
        let read = tokio::task::spawn_blocking(move || node.get_records(&token, limit))
            .await
            .map_err(|err| Status::internal(err.to_string()))?
            .map_err(from_error)?;
        Ok(Response::new(page(read)))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        if let Some(channel) = self.owner(request.get_ref(), request.metadata())? {
            let events = RecordsClient::new(channel).subscribe(Peers::request(request.into_inner())).await?;
            return Ok(Response::new(Box::pin(events.into_inner())));
        }
        let request = request.into_inner();
        let position = start(request.position, &request.sequence_number, request.timestamp_ms)?;
        let events = self
            .node
            .follow(&request.stream_name, &request.shard_id, position, &request.consumer)
            .map_err(from_error)?;
        // Each event's share of the subscription buffer is held until the next one is asked
        // for, so what waits in the transport for a slow client is counted too.
        let stream = futures_util::stream::unfold((events, None), |(mut events, held)| async move {
            drop(held);
            let next = events.recv().await?;
            let room = next.as_ref().ok().and_then(|e| e.room.clone());
            Some((next.map(event).map_err(from_error), (events, room)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
