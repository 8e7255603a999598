//! Enhanced fan-out on the node: consumer registration and the push subscription that
//! SubscribeToShard serves.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::{Node, StartingPosition, MAX_GET_RECORDS_BYTES};
use crate::consumer::{self, ConsumerDef, ConsumerStatus, SlotRefusal, SubscriptionSlot, MAX_CONSUMERS_PER_STREAM};
use crate::error::{Error, Result};
use crate::sequence::SequenceNumber;
use crate::shard::{self, ReadLimits, StoredRecord};
use crate::stream::{ShardDef, Stream, StreamStatus};

/// Room taken in the subscription buffer before a read: the most one event can hold.
const READ_ROOM: u32 = MAX_GET_RECORDS_BYTES as u32;
/// Longest quiet period before an empty event tells the client where it stands.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Records per pushed event at most.
const EVENT_RECORDS: usize = 10_000;
/// Events a subscription holds read ahead of its client.
const EVENTS_AHEAD: usize = 1;

/// A consumer with the stream it belongs to.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    /// The consumer.
    pub consumer: ConsumerDef,
    /// Its ARN.
    pub arn: String,
    /// Stream name.
    pub stream_name: String,
    /// Stream ARN.
    pub stream_arn: String,
}

/// One event of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionEvent {
    /// Records, possibly none.
    pub records: Vec<(SequenceNumber, StoredRecord)>,
    /// Where a new subscription continues (AFTER this sequence number... as Kinesis: use it
    /// with AT/AFTER_SEQUENCE_NUMBER).
    pub continuation: SequenceNumber,
    /// How far behind the tip the subscription is.
    pub millis_behind_latest: u64,
    /// Children of the shard once it has been read to its end (the last event).
    pub child_shards: Vec<ShardDef>,
    /// This event's share of the server's subscription buffer, freed when the event (or what
    /// holds it until the client has taken it) is dropped.
    pub room: Option<Arc<OwnedSemaphorePermit>>,
}

impl Node {
    fn consumer_view(&self, stream: &Stream, consumer: &ConsumerDef) -> ConsumerView {
        let stream_arn = self.stream_arn(&stream.name);
        ConsumerView {
            arn: consumer.arn(&stream_arn),
            consumer: consumer.clone(),
            stream_name: stream.name.clone(),
            stream_arn,
        }
    }

    fn consumer_not_found(&self, what: &str) -> Error {
        Error::ResourceNotFound(format!("Consumer {what} under account {} not found.", self.config.account_id))
    }

    /// Registers a consumer; it turns ACTIVE after the transition time.
    pub fn register_consumer(self: &Arc<Self>, stream_name: &str, name: &str) -> Result<ConsumerView> {
        let stream = self.catalog.get(stream_name)?;
        let now = self.now_ms();
        let account = self.config.account_id.clone();
        let mut created = None;
        self.catalog.update(&stream, |def| {
            if !def.status.is_serving() {
                return Err(Error::StreamNotActive { name: def.name.clone(), account: account.clone(), status: def.status.as_str() });
            }
            if def.consumers.iter().any(|c| c.name == name) {
                return Err(Error::ResourceInUse(format!(
                    "Consumer {name} under stream {} under account {account} already exists.",
                    def.name
                )));
            }
            if def.consumers.len() >= MAX_CONSUMERS_PER_STREAM {
                return Err(Error::LimitExceeded(format!(
                    "Stream {} under account {account} already has {MAX_CONSUMERS_PER_STREAM} registered consumers, the most allowed.",
                    def.name
                )));
            }
            let consumer = ConsumerDef { name: name.to_owned(), created_at_ms: now, status: ConsumerStatus::Creating };
            def.consumers.push(consumer.clone());
            created = Some(consumer);
            Ok(())
        })?;
        let consumer = created.ok_or_else(|| self.consumer_not_found(name))?;
        self.schedule_consumer_transition(stream.clone(), consumer.name.clone());
        Ok(self.consumer_view(&stream, &consumer))
    }

    /// Finds a consumer by ARN, or by stream and name.
    pub fn consumer(&self, arn: Option<&str>, stream_name: Option<&str>, name: Option<&str>) -> Result<ConsumerView> {
        let (stream_name, name, created_s) = match arn {
            Some(arn) => {
                let (stream_arn, name, created_s) =
                    consumer::parse_arn(arn).ok_or_else(|| self.consumer_not_found(arn))?;
                let stream_name =
                    stream_arn.rsplit_once(":stream/").map(|(_, n)| n).ok_or_else(|| self.consumer_not_found(arn))?;
                (stream_name, name, Some(created_s))
            }
            None => match (stream_name, name) {
                (Some(stream), Some(name)) => (stream, name, None),
                _ => {
                    return Err(Error::InvalidArgument(
                        "Either ConsumerARN or both StreamARN and ConsumerName must be provided.".into(),
                    ))
                }
            },
        };
        let stream = self.catalog.get(stream_name).map_err(|_| self.consumer_not_found(arn.unwrap_or(name)))?;
        let def = stream.def();
        let consumer = def
            .consumers
            .iter()
            .find(|c| c.name == name && created_s.is_none_or(|s| s == c.created_at_ms / 1000))
            .ok_or_else(|| self.consumer_not_found(arn.unwrap_or(name)))?;
        Ok(self.consumer_view(&stream, consumer))
    }

    /// Every consumer of a stream, in registration order.
    pub fn consumers(&self, stream_name: &str) -> Result<Vec<ConsumerView>> {
        let stream = self.catalog.get(stream_name)?;
        let def = stream.def();
        Ok(def.consumers.iter().map(|c| self.consumer_view(&stream, c)).collect())
    }

    /// Starts deregistering a consumer: DELETING now, gone after the transition time.
    pub fn deregister_consumer(self: &Arc<Self>, view: &ConsumerView) -> Result<()> {
        let stream = self.catalog.get(&view.stream_name)?;
        self.catalog.update(&stream, |def| {
            if let Some(c) = def.consumers.iter_mut().find(|c| c.name == view.consumer.name) {
                c.status = ConsumerStatus::Deleting;
            }
            Ok(())
        })?;
        self.schedule_consumer_transition(stream, view.consumer.name.clone());
        Ok(())
    }

    /// CREATING → ACTIVE, DELETING → gone, after the transition time.
    pub(crate) fn schedule_consumer_transition(self: &Arc<Self>, stream: Arc<Stream>, name: String) {
        self.after_transition(move |node| async move {
            let done = node.catalog.update(&stream, |def| {
                match def.consumers.iter().position(|c| c.name == name).map(|i| (i, def.consumers[i].status)) {
                    Some((i, ConsumerStatus::Creating)) => def.consumers[i].status = ConsumerStatus::Active,
                    Some((i, ConsumerStatus::Deleting)) => {
                        def.consumers.remove(i);
                    }
                    _ => {}
                }
                Ok(())
            });
            if let Err(err) = done {
                tracing::warn!(stream = %stream.name, consumer = %name, cause = %err, "consumer transition skipped");
            }
        });
    }

    /// Opens a push subscription of an ACTIVE consumer to one shard. Events arrive on the
    /// returned channel as soon as records are durable, a heartbeat after [`HEARTBEAT`] of
    /// quiet, and the channel closes after the configured lifetime (5 minutes), at the shard's end, or
    /// at shutdown. A second subscription of the same consumer to the same shard is refused
    /// while the first is open.
    pub fn subscribe(
        self: &Arc<Self>,
        consumer_arn: &str,
        shard: &str,
        start: StartingPosition,
    ) -> Result<mpsc::Receiver<Result<SubscriptionEvent>>> {
        let view = self.consumer(Some(consumer_arn), None, None)?;
        self.subscribe_as(&view, shard, start)
    }

    /// [`Node::subscribe`] for a consumer already looked up (in cluster mode, on the stream's
    /// home server: see [`Node::consumer_anywhere`]).
    pub fn subscribe_as(
        self: &Arc<Self>,
        view: &ConsumerView,
        shard: &str,
        start: StartingPosition,
    ) -> Result<mpsc::Receiver<Result<SubscriptionEvent>>> {
        let opened = self.open_subscription(view, shard, start);
        self.metrics.subscribe(&view.stream_name, opened.is_ok());
        opened
    }

    fn open_subscription(
        self: &Arc<Self>,
        view: &ConsumerView,
        shard: &str,
        start: StartingPosition,
    ) -> Result<mpsc::Receiver<Result<SubscriptionEvent>>> {
        let consumer_arn = view.arn.as_str();
        if view.consumer.status != ConsumerStatus::Active {
            return Err(Error::ResourceInUse(format!(
                "Consumer {consumer_arn} under account {} is not ACTIVE, instead in state {}.",
                self.config.account_id,
                view.consumer.status.as_str()
            )));
        }
        let stream = self.readable_stream(&view.stream_name)?;
        let (index, position) = self.resolve_start(&stream, shard, start)?;
        // Requests are relayed to a shard's owner: served here only if this is it.
        super::next_hop(self.route_in(&stream.def(), index), super::Hop::Forwarded)?;
        let slot = self.subscription_slot(self.subscriptions.take(&view.arn, index), &view.arn, index)?;
        Ok(self.start_push(stream, index, position, slot))
    }

    /// Follows one shard for an application without a registered consumer (the gRPC
    /// Subscribe call), by SubscribeToShard's rules but for one: one subscription per
    /// application and shard, ending after the subscription lifetime, counted in the server's
    /// cap; a newer one replaces the open one (the lease's new holder must not wait for the
    /// old holder to notice it lost the lease).
    pub fn follow(
        self: &Arc<Self>,
        stream_name: &str,
        shard: &str,
        start: StartingPosition,
        application: &str,
    ) -> Result<mpsc::Receiver<Result<SubscriptionEvent>>> {
        if application.is_empty() {
            return Err(Error::InvalidArgument(
                "Subscribe needs the consumer: the application's name, one subscription per application and shard."
                    .into(),
            ));
        }
        let stream = self.readable_stream(stream_name)?;
        let (index, position) = self.resolve_start(&stream, shard, start)?;
        let subscriber = format!("grpc:{stream_name}/{application}");
        let slot = self.subscription_slot(self.subscriptions.replace(&subscriber, index), application, index)?;
        Ok(self.start_push(stream, index, position, slot))
    }

    fn subscription_slot(
        &self,
        taken: std::result::Result<SubscriptionSlot, SlotRefusal>,
        shown: &str,
        shard: u32,
    ) -> Result<SubscriptionSlot> {
        taken.map_err(|refusal| match refusal {
            SlotRefusal::Taken => Error::ResourceInUse(format!(
                "Another active subscription exists for consumer {shown} and shard {}.",
                crate::stream::shard_id(shard)
            )),
            SlotRefusal::Full => Error::LimitExceeded(format!(
                "This server has {} subscriptions open, the most it allows; retry later.",
                self.subscriptions.max()
            )),
        })
    }

    fn start_push(
        self: &Arc<Self>,
        stream: Arc<Stream>,
        index: u32,
        position: u64,
        slot: SubscriptionSlot,
    ) -> mpsc::Receiver<Result<SubscriptionEvent>> {
        let (sender, receiver) = mpsc::channel(EVENTS_AHEAD);
        let node = self.clone();
        let deadline = tokio::time::Instant::now() + self.config.subscription_lifetime;
        self.tasks.spawn(async move { node.push_events(stream, index, position, slot, deadline, sender).await });
        receiver
    }

    async fn push_events(
        self: Arc<Self>,
        stream: Arc<Stream>,
        shard: u32,
        mut position: u64,
        slot: SubscriptionSlot,
        deadline: tokio::time::Instant,
        sender: mpsc::Sender<Result<SubscriptionEvent>>,
    ) {
        let Some(log) = stream.log(shard) else { return };
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        let mut first = true;
        loop {
            let appended = log.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let last = log.last_counter.load(Ordering::Acquire);
            let (retention_ms, ending, shard_def) = {
                let def = stream.def();
                let Some(shard_def) = def.shard(shard).cloned() else { return };
                (def.retention_ms(), shard_def.ending_counter, shard_def)
            };
            let now = self.now_ms();
            if position <= last || first {
                first = false;
                // Room in the subscription buffer for the largest read, before reading.
                let room = tokio::select! {
                    room = self.subscription_buffer.clone().acquire_many_owned(READ_ROOM) => match room {
                        Ok(room) => room,
                        Err(_) => return,
                    },
                    () = self.shutdown.cancelled() => return,
                    () = slot.ended().cancelled() => return,
                    () = sender.closed() => return,
                    () = &mut expired => return,
                };
                let journal = self.catalog.journal().clone();
                let index = log.index.clone();
                let limits = ReadLimits {
                    max_records: EVENT_RECORDS,
                    max_bytes: MAX_GET_RECORDS_BYTES,
                    expired_before_ms: now.saturating_sub(retention_ms),
                };
                let read =
                    tokio::task::spawn_blocking(move || shard::read(&journal, &index, position, last, limits)).await;
                let slice = match read {
                    Ok(Ok(slice)) => slice,
                    Ok(Err(err)) => {
                        let _ = sender.try_send(Err(err));
                        return;
                    }
                    Err(_) => return,
                };
                position = slice.next_position;
                let at_end = ending.is_some_and(|end| position > end);
                let millis_behind_latest = match slice.next_arrival_ms {
                    Some(arrival) if position <= last => now.saturating_sub(arrival),
                    _ => 0,
                };
                let child_shards = if at_end { stream.def().children(shard).cloned().collect() } else { Vec::new() };
                let bytes: u64 = slice.records.iter().map(|r| (r.data.len() + r.partition_key.len()) as u64).sum();
                let records = slice.records.len() as u64;
                let mut room = room;
                let kept = usize::try_from(bytes).unwrap_or(usize::MAX).clamp(1, room.num_permits());
                drop(room.split(room.num_permits() - kept));
                self.metrics.subscribe_event(&stream.name, records, bytes, millis_behind_latest);
                let enabled = stream.def().shard_level_metrics.clone();
                let read = crate::metrics::Read { records, bytes, iterator_age_ms: millis_behind_latest };
                self.metrics.shard_outgoing(&stream.name, &crate::stream::shard_id(shard), read, &enabled);
                let event = SubscriptionEvent {
                    continuation: shard_def.sequence(
                        position.saturating_sub(1),
                        slice.records.last().map_or(shard_def.created_at_ms, |r| r.arrival_ms),
                    ),
                    records: slice
                        .records
                        .into_iter()
                        .map(|r| (shard_def.sequence(r.counter, r.arrival_ms), r))
                        .collect(),
                    millis_behind_latest,
                    child_shards,
                    room: Some(Arc::new(room)),
                };
                // A client that takes nothing holds this task here: it must still see shutdown
                // and the end of the subscription's lifetime.
                let sent = tokio::select! {
                    sent = sender.send(Ok(event)) => sent.is_ok(),
                    () = self.shutdown.cancelled() => false,
                    () = slot.ended().cancelled() => false,
                    () = &mut expired => false,
                };
                if !sent || at_end {
                    return;
                }
                if position <= log.last_counter.load(Ordering::Acquire) {
                    continue;
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = slot.ended().cancelled() => return,
                _ = sender.closed() => return,
                _ = &mut expired => return,
                _ = &mut appended => {}
                _ = tokio::time::sleep(HEARTBEAT) => { first = true; }
            }
            if stream.is_deleted() || stream.def().status == StreamStatus::Deleting {
                return;
            }
        }
    }
}
