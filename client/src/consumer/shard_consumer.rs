//! Processing one leased shard: fetch from the checkpoint, take KPL aggregates apart, hand
//! batches to the processor, and end with SHARD_END, a lost lease, or a shutdown.

use shardline_proto::v1 as pb;
use shardline_proto::v1::records_client::RecordsClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{Checkpointer, ConsumedRecord, Position, ProcessRecordsInput, Retrieval, ShardRecordProcessor};
use crate::producer::aggregation::deaggregate;

/// How a shard's processing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Read to its end and checkpointed SHARD_END.
    ShardEnd,
    /// The lease went to another worker.
    LeaseLost,
    /// The worker is shutting down.
    Shutdown,
}

pub(super) struct ShardConsumer<P> {
    pub processor: P,
    pub records: RecordsClient<Channel>,
    pub stream: String,
    pub shard_id: String,
    pub position: Position,
    pub checkpointer: Checkpointer,
    pub retrieval: Retrieval,
    /// Cancelled when the lease is lost.
    pub lost: CancellationToken,
    /// Cancelled when the worker shuts down.
    pub stop: CancellationToken,
    /// Kinesis client and consumer ARN, for enhanced fan-out.
    pub fan_out: Option<(aws_sdk_kinesis::Client, String)>,
    /// The application's name: a push subscription's consumer.
    pub application: String,
}

/// The first request for `position`, and how many sub-records of its first record to skip.
fn request(
    stream: &str,
    shard: &str,
    position: &Position,
    limit: u32,
) -> (pb::GetRecordsRequest, Option<(String, u64)>) {
    use pb::StartingPosition as S;
    let mut request =
        pb::GetRecordsRequest { stream_name: stream.into(), shard_id: shard.into(), limit, ..Default::default() };
    let mut skip = None;
    match position {
        Position::TrimHorizon | Position::ShardEnd => request.position = S::TrimHorizon.into(),
        Position::Latest => request.position = S::Latest.into(),
        Position::AtTimestamp(ms) => {
            request.position = S::AtTimestamp.into();
            request.timestamp_ms = i64::try_from(*ms).unwrap_or(i64::MAX);
        }
        Position::After { sequence_number, sub_sequence_number } => {
            request.sequence_number = sequence_number.clone();
            if *sub_sequence_number > 0 {
                // Resume inside an aggregate: read it again and skip what was checkpointed.
                request.position = S::AtSequenceNumber.into();
                skip = Some((sequence_number.clone(), *sub_sequence_number));
            } else {
                request.position = S::AfterSequenceNumber.into();
            }
        }
    }
    (request, skip)
}

/// Moves a request past what a response delivered: after its continuation sequence number.
fn advance(request: &mut pb::GetRecordsRequest, continuation: &str) {
    if !continuation.is_empty() {
        request.position = pb::StartingPosition::AfterSequenceNumber.into();
        request.sequence_number = continuation.to_owned();
    }
}

/// User records of a batch, with aggregates taken apart and already-processed sub-records of
/// the resume point skipped.
fn user_records(records: Vec<pb::Record>, skip: &mut Option<(String, u64)>) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    for record in records {
        let skip_through = match skip.take() {
            Some((seq, sub)) if seq == record.sequence_number => Some(sub),
            other => {
                *skip = other;
                None
            }
        };
        match deaggregate(&record.data) {
            Some(users) => {
                for (index, user) in users.into_iter().enumerate() {
                    let sub = index as u64;
                    if skip_through.is_some_and(|through| sub <= through) {
                        continue;
                    }
                    out.push(ConsumedRecord {
                        sequence_number: record.sequence_number.clone(),
                        sub_sequence_number: sub,
                        aggregated: true,
                        partition_key: user.partition_key,
                        data: user.data,
                        approximate_arrival_ms: record.approximate_arrival_timestamp_ms,
                    });
                }
            }
            None if skip_through.is_some() => {}
            None => out.push(ConsumedRecord {
                sequence_number: record.sequence_number,
                sub_sequence_number: 0,
                aggregated: false,
                partition_key: record.partition_key,
                data: record.data,
                approximate_arrival_ms: record.approximate_arrival_timestamp_ms,
            }),
        }
    }
    out
}

impl<P: ShardRecordProcessor> ShardConsumer<P> {
    pub(super) async fn run(mut self) -> Ending {
        self.processor.initialize(&self.shard_id, &self.position).await;
        let ending = match self.retrieval {
            Retrieval::Polling { idle, max_records } => self.poll(idle, max_records).await,
            Retrieval::Push => self.push().await,
            Retrieval::EnhancedFanOut => self.fan_out().await,
        };
        match ending {
            Ending::LeaseLost => self.processor.lease_lost().await,
            Ending::Shutdown => self.processor.shutdown_requested(&self.checkpointer).await,
            Ending::ShardEnd => {}
        }
        ending
    }

    /// Hands one response to the processor; returns the ending when the shard is done.
    async fn deliver(&mut self, response: pb::GetRecordsResponse, skip: &mut Option<(String, u64)>) -> Option<Ending> {
        if self.lost.is_cancelled() {
            return Some(Ending::LeaseLost);
        }
        let records = user_records(response.records, skip);
        if let Some(last) = records.last() {
            self.checkpointer.delivered(last.sequence_number.clone(), last.sub_sequence_number).await;
            let input = ProcessRecordsInput {
                records,
                millis_behind_latest: response.millis_behind_latest,
                checkpointer: &self.checkpointer,
            };
            self.processor.process_records(input).await;
            if self.lost.is_cancelled() {
                return Some(Ending::LeaseLost);
            }
        }
        if !response.child_shard_ids.is_empty() {
            self.processor.shard_ended(&self.checkpointer).await;
            if self.lost.is_cancelled() {
                return Some(Ending::LeaseLost);
            }
            return Some(Ending::ShardEnd);
        }
        None
    }

    async fn poll(&mut self, idle: std::time::Duration, max_records: u32) -> Ending {
        let (mut request, mut skip) = request(&self.stream, &self.shard_id, &self.position, max_records);
        loop {
            let response = tokio::select! {
                _ = self.lost.cancelled() => return Ending::LeaseLost,
                _ = self.stop.cancelled() => return Ending::Shutdown,
                response = self.records.get_records(request.clone()) => response,
            };
            let response = match response {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    tracing::warn!(shard = %self.shard_id, cause = %status, "GetRecords failed; retrying");
                    tokio::time::sleep(idle).await;
                    continue;
                }
            };
            let empty = response.records.is_empty();
            advance(&mut request, &response.continuation_sequence_number);
            if let Some(ending) = self.deliver(response, &mut skip).await {
                return ending;
            }
            if empty {
                tokio::select! {
                    _ = self.lost.cancelled() => return Ending::LeaseLost,
                    _ = self.stop.cancelled() => return Ending::Shutdown,
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        }
    }

    /// Kinesis enhanced fan-out: `SubscribeToShard` from the current position, subscribed
    /// again when a subscription ends (every five minutes).
    async fn fan_out(&mut self) -> Ending {
        use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
        let Some((client, consumer_arn)) = self.fan_out.clone() else { return Ending::Shutdown };
        let (mut request, mut skip) = request(&self.stream, &self.shard_id, &self.position, 10_000);
        loop {
            let start = match pb::StartingPosition::try_from(request.position) {
                Ok(pb::StartingPosition::Latest) => {
                    StartingPosition::builder().r#type(ShardIteratorType::Latest).build()
                }
                Ok(pb::StartingPosition::AtTimestamp) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from_millis(request.timestamp_ms))
                    .build(),
                Ok(pb::StartingPosition::AtSequenceNumber) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AtSequenceNumber)
                    .sequence_number(&request.sequence_number)
                    .build(),
                Ok(pb::StartingPosition::AfterSequenceNumber) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(&request.sequence_number)
                    .build(),
                _ => StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build(),
            };
            let Ok(start) = start else { return Ending::Shutdown };
            let subscribed = client
                .subscribe_to_shard()
                .consumer_arn(&consumer_arn)
                .shard_id(&self.shard_id)
                .starting_position(start)
                .send();
            let mut subscription = tokio::select! {
                _ = self.lost.cancelled() => return Ending::LeaseLost,
                _ = self.stop.cancelled() => return Ending::Shutdown,
                subscribed = subscribed => match subscribed {
                    Ok(subscription) => subscription,
                    Err(err) => {
                        tracing::warn!(shard = %self.shard_id, cause = %aws_sdk_kinesis::error::DisplayErrorContext(&err), "SubscribeToShard failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            loop {
                let event = tokio::select! {
                    _ = self.lost.cancelled() => return Ending::LeaseLost,
                    _ = self.stop.cancelled() => return Ending::Shutdown,
                    event = subscription.event_stream.recv() => event,
                };
                let Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) = event else { break };
                let response = pb::GetRecordsResponse {
                    records: event
                        .records()
                        .iter()
                        .map(|r| pb::Record {
                            sequence_number: r.sequence_number().to_owned(),
                            approximate_arrival_timestamp_ms: r
                                .approximate_arrival_timestamp()
                                .map_or(0, |t| t.to_millis().unwrap_or(0)),
                            partition_key: r.partition_key().unwrap_or_default().to_owned(),
                            data: r.data().as_ref().to_vec(),
                        })
                        .collect(),
                    continuation_sequence_number: event.continuation_sequence_number().to_owned(),
                    millis_behind_latest: event.millis_behind_latest(),
                    child_shard_ids: event.child_shards().iter().map(|c| c.shard_id().to_owned()).collect(),
                };
                advance(&mut request, &response.continuation_sequence_number);
                if let Some(ending) = self.deliver(response, &mut skip).await {
                    return ending;
                }
            }
        }
    }

    async fn push(&mut self) -> Ending {
        let (mut request, mut skip) = request(&self.stream, &self.shard_id, &self.position, 10_000);
        request.consumer.clone_from(&self.application);
        loop {
            let mut events = match self.records.subscribe(request.clone()).await {
                Ok(stream) => stream.into_inner(),
                Err(status) => {
                    tracing::warn!(shard = %self.shard_id, cause = %status, "Subscribe failed; retrying");
                    tokio::select! {
                        _ = self.lost.cancelled() => return Ending::LeaseLost,
                        _ = self.stop.cancelled() => return Ending::Shutdown,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => continue,
                    }
                }
            };
            loop {
                let event = tokio::select! {
                    _ = self.lost.cancelled() => return Ending::LeaseLost,
                    _ = self.stop.cancelled() => return Ending::Shutdown,
                    event = events.message() => event,
                };
                let Ok(Some(event)) = event else { break };
                advance(&mut request, &event.continuation_sequence_number);
                if let Some(ending) = self.deliver(event, &mut skip).await {
                    return ending;
                }
            }
        }
    }
}
