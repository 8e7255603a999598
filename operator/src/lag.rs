//! A consumer application's lag, from its lease rows and the shard logs' progress. Pure.

use shardline_proto::v1 as pb;

use crate::crd::consumer::ShardProgress;

/// Where a shard's log stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tip {
    /// Counter of the last durable record.
    pub last_counter: u64,
    /// Its arrival time, ms since the epoch.
    pub last_arrival_ms: u64,
}

/// The per-shard position a Shardline sequence number encodes.
pub fn counter_of(sequence_number: &str) -> Option<u64> {
    use shardline_proto::sequence::{Layout, Position};
    let position = Position::parse(sequence_number)?;
    matches!(position.layout, Layout::Current { .. } | Layout::Earlier).then_some(position.counter)
}

/// Records of the shard not yet checkpointed by the application.
pub fn records_behind(checkpoint: Option<&pb::Checkpoint>, tip: Tip) -> u64 {
    use pb::checkpoint::Kind;
    let Some(checkpoint) = checkpoint else { return tip.last_counter };
    match Kind::try_from(checkpoint.kind).unwrap_or(Kind::Unspecified) {
        Kind::ShardEnd | Kind::Latest => 0,
        Kind::SequenceNumber => {
            counter_of(&checkpoint.sequence_number).map_or(tip.last_counter, |at| tip.last_counter.saturating_sub(at))
        }
        Kind::TrimHorizon | Kind::AtTimestamp | Kind::Unspecified => tip.last_counter,
    }
}

/// A human-readable checkpoint.
pub fn describe(checkpoint: Option<&pb::Checkpoint>) -> String {
    use pb::checkpoint::Kind;
    match checkpoint.map(|c| (Kind::try_from(c.kind).unwrap_or(Kind::Unspecified), c)) {
        Some((Kind::SequenceNumber, c)) => c.sequence_number.clone(),
        Some((Kind::ShardEnd, _)) => "SHARD_END".into(),
        Some((Kind::Latest, _)) => "LATEST".into(),
        Some((Kind::AtTimestamp, c)) => format!("AT_TIMESTAMP {}", c.timestamp_ms),
        Some((Kind::TrimHorizon, _)) | Some((Kind::Unspecified, _)) | None => "TRIM_HORIZON".into(),
    }
}

/// One lease's progress line.
pub fn progress(lease: &pb::Lease, tip: Tip) -> ShardProgress {
    ShardProgress {
        shard_id: lease.lease_key.clone(),
        owner: lease.lease_owner.clone(),
        checkpoint: describe(lease.checkpoint.as_ref()),
        lag_records: records_behind(lease.checkpoint.as_ref(), tip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: pb::checkpoint::Kind, sequence: &str) -> pb::Checkpoint {
        pb::Checkpoint { kind: kind.into(), sequence_number: sequence.into(), ..Default::default() }
    }

    #[test]
    fn lag_counts_records_after_the_checkpoint() {
        use pb::checkpoint::Kind;
        let tip = Tip { last_counter: 120, last_arrival_ms: 0 };
        let sequence = shardline_proto::sequence::SequenceNumber::new(3, 1_000, 100, 2_000).to_string();
        assert_eq!(counter_of(&sequence), Some(100));
        assert_eq!(counter_of(&format!("4{:012}{:020}", 3, 100)), Some(100));
        assert_eq!(records_behind(Some(&at(Kind::SequenceNumber, &sequence)), tip), 20);
        assert_eq!(records_behind(Some(&at(Kind::TrimHorizon, "")), tip), 120);
        assert_eq!(records_behind(Some(&at(Kind::ShardEnd, "")), tip), 0);
        assert_eq!(records_behind(None, tip), 120);
        assert_eq!(describe(Some(&at(Kind::ShardEnd, ""))), "SHARD_END");
        assert_eq!(counter_of("12"), None);
    }
}
