//! On-demand capacity (`streamMode: ON_DEMAND`): the operator samples how many records and bytes
//! a stream's servers have appended, and sizes the stream so its write rate uses at most half of
//! Kinesis' per-shard capacity (1,000 records/s and 1 MiB/s per shard). It grows as soon as the
//! rate needs more shards and shrinks only once the rate would fit in half the shards, never
//! below `spec.shards`. Pure: the reconciler keeps the samples and runs the reshard steps.

use shardline_proto::v1 as pb;

/// Records per second one shard takes in.
pub const RECORDS_PER_SHARD: f64 = 1000.0;
/// Bytes per second one shard takes in.
pub const BYTES_PER_SHARD: f64 = 1024.0 * 1024.0;
/// Share of capacity an on-demand stream aims to use.
const UTILISATION: f64 = 0.5;
/// Most shards the operator scales a stream to.
pub const MAX_SHARDS: u32 = 10_000;
/// Shortest span two samples must cover to give a rate.
pub const MIN_SPAN_MS: u64 = 5_000;

/// Records and bytes a stream's servers had appended at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Sum of every shard's last sequence counter (records ever appended).
    pub records: u64,
    /// Bytes appended since the servers started.
    pub bytes: u64,
}

impl Sample {
    /// The sample the servers' states give at `at_ms`: the shards each owns, and each
    /// replicated shard once, as its most advanced replica reports it.
    pub fn of(states: &[pb::ClusterStateResponse], at_ms: u64) -> Self {
        let owned = states.iter().flat_map(|s| &s.owned);
        let (records, bytes) = owned
            .fold((0u64, 0u64), |(r, b), p| (r.saturating_add(p.last_counter), b.saturating_add(p.appended_bytes)));
        let mut replicated: std::collections::BTreeMap<u32, (u64, u64)> = std::collections::BTreeMap::new();
        for replica in states.iter().flat_map(|s| &s.replicas) {
            let seen = replicated.entry(replica.index).or_default();
            *seen = (seen.0.max(replica.last_counter), seen.1.max(replica.appended_bytes));
        }
        let (records, bytes) = replicated.values().fold((records, bytes), |(r, b), (counter, appended)| {
            (r.saturating_add(*counter), b.saturating_add(*appended))
        });
        Self { at_ms, records, bytes }
    }
}

/// Records/s and bytes/s between two samples; `None` when they span too little time or a
/// counter went back (a server restarted).
pub fn rates(earlier: &Sample, later: &Sample) -> Option<(f64, f64)> {
    let span = later.at_ms.checked_sub(earlier.at_ms).filter(|&span| span >= MIN_SPAN_MS)?;
    let records = later.records.checked_sub(earlier.records)?;
    let bytes = later.bytes.checked_sub(earlier.bytes)?;
    let seconds = span as f64 / 1000.0;
    Some((records as f64 / seconds, bytes as f64 / seconds))
}

/// The open-shard count for `records_per_s` and `bytes_per_s`, given `open` shards now and a
/// floor of `minimum`.
pub fn target(open: u32, minimum: u32, records_per_s: f64, bytes_per_s: f64) -> u32 {
    let by_records = records_per_s / (RECORDS_PER_SHARD * UTILISATION);
    let by_bytes = bytes_per_s / (BYTES_PER_SHARD * UTILISATION);
    let need = by_records.max(by_bytes).ceil().clamp(1.0, f64::from(MAX_SHARDS)) as u32;
    let need = need.max(minimum.max(1));
    if need > open || need.saturating_mul(2) <= open {
        need
    } else {
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_a_span_and_counters_that_only_grow() {
        let a = Sample { at_ms: 0, records: 1000, bytes: 10_000 };
        let b = Sample { at_ms: 10_000, records: 21_000, bytes: 2_010_000 };
        assert_eq!(rates(&a, &b), Some((2000.0, 200_000.0)));
        assert_eq!(rates(&a, &Sample { at_ms: 1000, ..b }), None, "too short");
        assert_eq!(rates(&b, &Sample { at_ms: 20_000, bytes: 0, ..b }), None, "a server restarted");
    }

    #[test]
    fn grows_at_half_capacity_and_shrinks_only_below_a_quarter() {
        assert_eq!(target(1, 1, 2500.0, 0.0), 5, "2,500 records/s at 50 % of 1,000 per shard");
        assert_eq!(target(1, 1, 0.0, 3.0 * 1024.0 * 1024.0), 6, "3 MiB/s at 50 % of 1 MiB/s");
        assert_eq!(target(4, 1, 1500.0, 0.0), 4, "3 needed, 4 kept: not yet below half");
        assert_eq!(target(8, 1, 1500.0, 0.0), 3, "3 needed, 8 is more than double");
        assert_eq!(target(8, 4, 0.0, 0.0), 4, "never below the declared shards");
        assert_eq!(target(2, 1, 1e12, 0.0), MAX_SHARDS);
    }
}
