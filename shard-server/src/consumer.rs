//! Enhanced fan-out consumers: their registration on a stream (CREATING → ACTIVE, DELETING →
//! gone), their ARNs, and the rule of one subscription per consumer and shard at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};

/// Consumers one stream may have registered.
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;

/// Kinesis' consumer status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumerStatus {
    /// Being registered.
    Creating,
    /// Ready for SubscribeToShard.
    Active,
    /// Being deregistered.
    Deleting,
}

impl ConsumerStatus {
    /// The Kinesis spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
    }
}

/// A registered consumer as the stream definition records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerDef {
    /// Name, unique within the stream.
    pub name: String,
    /// Registration time, ms since the epoch; its seconds end the ARN, so a consumer registered
    /// again under the same name gets a new ARN.
    pub created_at_ms: u64,
    /// Status.
    pub status: ConsumerStatus,
}

impl ConsumerDef {
    /// The consumer's ARN under the stream ARN `stream_arn`.
    pub fn arn(&self, stream_arn: &str) -> String {
        format!("{stream_arn}/consumer/{}:{}", self.name, self.created_at_ms / 1000)
    }
}

/// The parts of a consumer ARN: `(stream ARN, consumer name, creation seconds)`.
pub fn parse_arn(arn: &str) -> Option<(&str, &str, u64)> {
    let (stream_arn, rest) = arn.split_once("/consumer/")?;
    let (name, seconds) = rest.rsplit_once(':')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return None;
    }
    Some((stream_arn, name, seconds.parse().ok()?))
}

/// The subscriptions open now, one at most per (subscriber, shard), and at most `max` in all.
/// A subscriber is a consumer ARN (SubscribeToShard) or a stream and application (gRPC
/// Subscribe).
#[derive(Debug)]
pub struct Subscriptions {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<(String, u32), (u64, CancellationToken)>>,
}

/// Holds a subscription slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SubscriptionSlot {
    subscriptions: Arc<Subscriptions>,
    key: (String, u32),
    id: u64,
    ended: CancellationToken,
}

impl SubscriptionSlot {
    /// Cancelled when a newer subscription of the same subscriber to the same shard replaced
    /// this one.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }
}

/// Why a subscription cannot open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The subscriber has one open on the shard already.
    Taken,
    /// The server holds as many subscriptions as it may.
    Full,
}

impl Subscriptions {
    /// At most `max` subscriptions at once.
    pub fn new(max: usize) -> Self {
        Self { max, next_id: AtomicU64::new(0), open: Mutex::new(HashMap::new()) }
    }

    /// The most subscriptions open at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes the slot of `subscriber` on `shard`; refused while one is open (SubscribeToShard's
    /// rule).
    pub fn take(self: &Arc<Self>, subscriber: &str, shard: u32) -> Result<SubscriptionSlot, SlotRefusal> {
        self.open_slot(subscriber, shard, false)
    }

    /// Takes the slot of `subscriber` on `shard`, ending the one open there if any: the newer
    /// subscription (a lease's new holder) wins, and there is still only one.
    pub fn replace(self: &Arc<Self>, subscriber: &str, shard: u32) -> Result<SubscriptionSlot, SlotRefusal> {
        self.open_slot(subscriber, shard, true)
    }

    fn open_slot(
        self: &Arc<Self>,
        subscriber: &str,
        shard: u32,
        replace: bool,
    ) -> Result<SubscriptionSlot, SlotRefusal> {
        let key = (subscriber.to_owned(), shard);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match open.get(&key) {
            Some((_, ended)) if replace => ended.cancel(),
            Some(_) => return Err(SlotRefusal::Taken),
            None if open.len() >= self.max => return Err(SlotRefusal::Full),
            None => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ended = CancellationToken::new();
        open.insert(key.clone(), (id, ended.clone()));
        Ok(SubscriptionSlot { subscriptions: self.clone(), key, id, ended })
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut open = self.subscriptions.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A replaced slot's place belongs to its replacement now.
        if open.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            open.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip_and_slots_are_exclusive() {
        let consumer =
            ConsumerDef { name: "app".into(), created_at_ms: 1_700_000_000_123, status: ConsumerStatus::Active };
        let stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
        let arn = consumer.arn(stream_arn);
        assert_eq!(arn, "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/app:1700000000");
        assert_eq!(parse_arn(&arn), Some((stream_arn, "app", 1_700_000_000)));
        assert_eq!(parse_arn("arn:aws:kinesis:us-east-1:123456789012:stream/s"), None);
        let subscriptions = Arc::new(Subscriptions::new(2));
        let slot = subscriptions.take(&arn, 0).expect("free");
        assert_eq!(subscriptions.take(&arn, 0).err(), Some(SlotRefusal::Taken));
        let other = subscriptions.take(&arn, 1).expect("another shard");
        assert_eq!(subscriptions.take(&arn, 2).err(), Some(SlotRefusal::Full), "two at most");
        drop(slot);
        assert!(subscriptions.take(&arn, 0).is_ok());
        let held = subscriptions.take(&arn, 0).expect("free again");
        assert_eq!(subscriptions.replace("grpc:s/app", 5).err(), Some(SlotRefusal::Full), "a new one still counts");
        drop((held, other));
        let first = subscriptions.replace("grpc:s/app", 5).expect("room");
        let second = subscriptions.replace("grpc:s/app", 5).expect("replaces");
        assert!(first.ended().is_cancelled() && !second.ended().is_cancelled());
        drop(first);
        assert_eq!(subscriptions.take("grpc:s/app", 5).err(), Some(SlotRefusal::Taken), "the replacement holds it");
    }
}
