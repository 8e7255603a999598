//! Resharding as pure changes to a stream's shard map: split one shard at a hash key, merge two
//! adjacent shards, or reach a target count by uniform scaling. Nothing here does I/O; the node
//! applies a change in order with appends (through the appender), so the ending counter given
//! for each closing parent is exactly the last durable record in it.
//!
//! Children always get higher indices than their parents, and a sequence number leads with its
//! shard index, so every child record sorts after every parent record.

use crate::error::{Error, Result};
use crate::hash_range::HashRange;
use crate::stream::{ShardDef, StreamDef};

/// Largest target of UpdateShardCount relative to the open shard count.
pub const MAX_SCALE_UP_FACTOR: u32 = 2;
/// Scaling operations allowed per stream in a rolling 24 hours.
pub const MAX_SCALINGS_PER_DAY: usize = 10;
/// The rolling window of [`MAX_SCALINGS_PER_DAY`].
pub const SCALING_WINDOW_MS: u64 = 24 * 3_600_000;

/// One resharding request, already resolved to shard indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Split a shard; the right child starts at `at`.
    Split {
        /// The parent.
        shard: u32,
        /// NewStartingHashKey.
        at: u128,
    },
    /// Merge two adjacent shards.
    Merge {
        /// ShardToMerge.
        shard: u32,
        /// AdjacentShardToMerge.
        adjacent: u32,
    },
    /// UpdateShardCount with UNIFORM_SCALING.
    Scale {
        /// TargetShardCount.
        target: u32,
    },
}

impl Change {
    /// How many open shards the change adds (negative when it removes some).
    pub fn open_shard_delta(&self, def: &StreamDef) -> i64 {
        match *self {
            Change::Split { .. } => 1,
            Change::Merge { .. } => -1,
            Change::Scale { target } => i64::from(target) - def.open_shards().count() as i64,
        }
    }
}

/// Checks `change` against the shard map as Kinesis does, without changing anything.
pub fn validate(def: &StreamDef, change: Change, account: &str, now_ms: u64) -> Result<()> {
    match change {
        Change::Split { shard, at } => {
            let parent = open_shard(def, shard, account)?;
            let range = parent.hash_range;
            if at <= range.start.saturating_add(1) || at >= range.end {
                return Err(Error::InvalidArgument(format!(
                    "NewStartingHashKey {at} used in SplitShard() on shard {} in stream {} under account {account} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    parent.id(),
                    def.name,
                    range.start,
                    range.end
                )));
            }
            Ok(())
        }
        Change::Merge { shard, adjacent } => {
            let first = open_shard(def, shard, account)?;
            let second = open_shard(def, adjacent, account)?;
            // Kinesis merges a shard with the one right above it: ShardToMerge's range must end
            // where AdjacentShardToMerge's begins.
            if first.hash_range.end.checked_add(1) != Some(second.hash_range.start) {
                return Err(Error::InvalidArgument(format!(
                    "Shards {} and {} in stream {} under account {account} are not an adjacent pair of shards eligible for merging",
                    first.id(),
                    second.id(),
                    def.name
                )));
            }
            Ok(())
        }
        Change::Scale { target } => {
            let open = def.open_shards().count() as u64;
            let target_u64 = u64::from(target);
            if target_u64 > open * u64::from(MAX_SCALE_UP_FACTOR) {
                return Err(Error::InvalidArgument(format!(
                    "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {open} Target shard count: {target}"
                )));
            }
            if target_u64 * 2 < open {
                return Err(Error::InvalidArgument(format!(
                    "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {open} Target shard count: {target}"
                )));
            }
            let recent = def.scalings_ms.iter().filter(|&&at| at + SCALING_WINDOW_MS > now_ms).count();
            if recent >= MAX_SCALINGS_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "Stream {} under account {account} has already been scaled {recent} times in the last 24 hours; the limit is {MAX_SCALINGS_PER_DAY}.",
                    def.name
                )));
            }
            Ok(())
        }
    }
}

fn open_shard<'a>(def: &'a StreamDef, index: u32, account: &str) -> Result<&'a ShardDef> {
    let shard = def.shard(index).ok_or_else(|| Error::CouldNotFindShard {
        shard_id: crate::stream::shard_id(index),
        stream: def.name.clone(),
        account: account.to_owned(),
    })?;
    if !shard.is_open() {
        return Err(Error::InvalidArgument(format!(
            "Shard {} in stream {} under account {account} has already been merged or split, and thus is not eligible for merging or splitting.",
            shard.id(),
            def.name
        )));
    }
    Ok(shard)
}

/// Applies a validated change. `ending` gives the counter of the last durable record of each
/// open shard; shards created and closed within one change (the short-lived shards of uniform
/// scaling) end at counter 0, before their first record.
pub fn apply(def: &mut StreamDef, change: Change, ending: &dyn Fn(u32) -> u64, now_ms: u64) {
    let first_new = def.shards.len();
    let mut map = ShardMap { def, ending, now_ms, first_new };
    match change {
        Change::Split { shard, at } => {
            map.split(shard, at);
        }
        Change::Merge { shard, adjacent } => {
            map.merge(shard, adjacent);
        }
        Change::Scale { target } => {
            map.scale(target);
            map.def.scalings_ms.retain(|&at| at + SCALING_WINDOW_MS > now_ms);
            map.def.scalings_ms.push(now_ms);
        }
    }
}

struct ShardMap<'a> {
    def: &'a mut StreamDef,
    ending: &'a dyn Fn(u32) -> u64,
    now_ms: u64,
    /// Shards at or past this position were created by this change.
    first_new: usize,
}

impl ShardMap<'_> {
    /// When the change from `parents` to their children happens. Sequence numbers lead with
    /// their shard's creation second, so children created within a parent's second are dated
    /// the next one: their numbers then follow every one of their parents'. The parents close
    /// at the same time, so no moment is left without an open shard for a hash key.
    fn handover(&self, parents: &[u32]) -> u64 {
        let after_parents = parents
            .iter()
            .filter_map(|&p| self.def.shard(p))
            .map(|p| (p.created_at_ms / 1000 + 1) * 1000)
            .max()
            .unwrap_or_default();
        self.now_ms.max(after_parents)
    }

    fn close(&mut self, index: u32, at_ms: u64) -> HashRange {
        let position = usize::try_from(index).unwrap_or(usize::MAX);
        // A short-lived shard of this change never took a record: it ends before its first.
        let counter = if position >= self.first_new { 0 } else { (self.ending)(index) };
        match self.def.shards.get_mut(position) {
            Some(shard) => {
                shard.ending_counter = Some(counter);
                shard.closed_at_ms = Some(at_ms);
                shard.hash_range
            }
            None => HashRange::FULL,
        }
    }

    fn open(&mut self, range: HashRange, parent: u32, adjacent_parent: Option<u32>, at_ms: u64) -> u32 {
        let index = u32::try_from(self.def.shards.len()).unwrap_or(u32::MAX);
        self.def.shards.push(ShardDef {
            index,
            hash_range: range,
            parent: Some(parent),
            adjacent_parent,
            created_at_ms: at_ms,
            ending_counter: None,
            closed_at_ms: None,
        });
        index
    }

    /// Returns the (left, right) children.
    fn split(&mut self, shard: u32, at: u128) -> (u32, u32) {
        let when = self.handover(&[shard]);
        let range = self.close(shard, when);
        let left = self.open(HashRange { start: range.start, end: at - 1 }, shard, None, when);
        let right = self.open(HashRange { start: at, end: range.end }, shard, None, when);
        (left, right)
    }

    fn merge(&mut self, shard: u32, adjacent: u32) -> u32 {
        let when = self.handover(&[shard, adjacent]);
        let a = self.close(shard, when);
        let b = self.close(adjacent, when);
        let range = HashRange { start: a.start.min(b.start), end: a.end.max(b.end) };
        self.open(range, shard, Some(adjacent), when)
    }

    /// Reaches `target` evenly sized open shards: first split every open shard at each target
    /// boundary inside it, then merge the pieces of each target range left to right.
    fn scale(&mut self, target: u32) {
        let targets = HashRange::split_evenly(target);
        for boundary in targets.iter().skip(1).map(|r| r.start) {
            let owner =
                self.def.open_shards().find(|s| s.hash_range.contains(boundary)).map(|s| (s.index, s.hash_range));
            if let Some((index, range)) = owner {
                if range.start != boundary {
                    self.split(index, boundary);
                }
            }
        }
        for range in targets {
            let mut pieces: Vec<(u128, u32)> = self
                .def
                .open_shards()
                .filter(|s| range.contains(s.hash_range.start))
                .map(|s| (s.hash_range.start, s.index))
                .collect();
            pieces.sort_unstable();
            let mut pieces = pieces.into_iter().map(|(_, index)| index);
            let Some(mut merged) = pieces.next() else { continue };
            for next in pieces {
                merged = self.merge(merged, next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stream::{StreamMode, StreamStatus};

    fn def(shards: u32) -> StreamDef {
        StreamDef {
            id: 1,
            name: "s".into(),
            status: StreamStatus::Active,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            created_at_ms: 0,
            max_record_size_kib: 1024,
            shards: HashRange::split_evenly(shards)
                .into_iter()
                .zip(0..)
                .map(|(hash_range, index)| ShardDef {
                    index,
                    hash_range,
                    parent: None,
                    adjacent_parent: None,
                    created_at_ms: 0,
                    ending_counter: None,
                    closed_at_ms: None,
                })
                .collect(),
            tags: BTreeMap::new(),
            scalings_ms: Vec::new(),
            shard_level_metrics: Default::default(),
            throughput_limits: None,
            consumers: Vec::new(),
            placement: None,
        }
    }

    fn open_ranges(def: &StreamDef) -> Vec<HashRange> {
        let mut ranges: Vec<_> = def.open_shards().map(|s| s.hash_range).collect();
        ranges.sort_by_key(|r| r.start);
        ranges
    }

    fn assert_covers_key_space(def: &StreamDef) {
        let ranges = open_ranges(def);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(u128::MAX));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end + 1, pair[1].start, "gap or overlap in {ranges:?}");
        }
        for shard in &def.shards {
            for parent in shard.parent.iter().chain(shard.adjacent_parent.iter()) {
                assert!(*parent < shard.index, "a parent's index is below its child's");
                assert!(!def.shard(*parent).expect("parent").is_open(), "parents are closed");
            }
        }
    }

    #[test]
    fn split_closes_the_parent_at_its_last_record() {
        let mut d = def(1);
        let at = 1u128 << 127;
        validate(&d, Change::Split { shard: 0, at }, "1", 0).expect("valid");
        apply(&mut d, Change::Split { shard: 0, at }, &|_| 41, 5);
        assert_eq!(d.shards[0].ending_counter, Some(41));
        assert_eq!(d.shards[1].hash_range, HashRange { start: 0, end: at - 1 });
        assert_eq!(d.shards[2].hash_range, HashRange { start: at, end: u128::MAX });
        assert_eq!(d.shards[2].parent, Some(0));
        assert_covers_key_space(&d);
        let again = validate(&d, Change::Split { shard: 0, at }, "1", 0);
        assert!(matches!(again, Err(Error::InvalidArgument(ref m)) if m.contains("already been merged or split")));
    }

    #[test]
    fn split_keys_must_fall_strictly_inside() {
        let d = def(2);
        let end = d.shards[0].hash_range.end;
        for at in [0, 1, end] {
            assert!(validate(&d, Change::Split { shard: 0, at }, "1", 0).is_err(), "{at}");
        }
        assert!(validate(&d, Change::Split { shard: 0, at: 2 }, "1", 0).is_ok());
        assert!(matches!(
            validate(&d, Change::Split { shard: 9, at: 2 }, "1", 0),
            Err(Error::CouldNotFindShard { .. })
        ));
    }

    #[test]
    fn merge_needs_adjacent_open_shards() {
        let mut d = def(3);
        assert!(validate(&d, Change::Merge { shard: 0, adjacent: 2 }, "1", 0).is_err());
        assert!(validate(&d, Change::Merge { shard: 1, adjacent: 0 }, "1", 0).is_err(), "the lower shard comes first");
        validate(&d, Change::Merge { shard: 0, adjacent: 1 }, "1", 0).expect("adjacent");
        apply(&mut d, Change::Merge { shard: 0, adjacent: 1 }, &|i| u64::from(i) + 10, 5);
        let child = &d.shards[3];
        assert_eq!((child.parent, child.adjacent_parent), (Some(0), Some(1)));
        assert_eq!(child.hash_range.start, 0);
        assert_eq!(d.shards[1].ending_counter, Some(11));
        assert_covers_key_space(&d);
    }

    #[test]
    fn uniform_scaling_reaches_even_ranges_through_splits_and_merges() {
        for (from, to) in [(1, 2), (2, 4), (4, 2), (3, 5), (5, 3), (5, 4), (7, 10), (10, 5), (6, 6)] {
            let mut d = def(from);
            validate(&d, Change::Scale { target: to }, "1", 0).expect("valid");
            apply(&mut d, Change::Scale { target: to }, &|_| 3, 7);
            assert_eq!(open_ranges(&d), HashRange::split_evenly(to), "{from} -> {to}");
            assert_covers_key_space(&d);
            assert_eq!(d.scalings_ms, vec![7]);
        }
    }

    #[test]
    fn closed_shards_are_listed_until_retention_has_passed() {
        let mut d = def(1);
        apply(&mut d, Change::Split { shard: 0, at: 1 << 100 }, &|_| 5, 1_000);
        let listed = |d: &StreamDef, now| d.listed_shards(now).map(|s| s.index).collect::<Vec<_>>();
        assert_eq!(listed(&d, 1_000 + d.retention_ms() - 1), vec![0, 1, 2]);
        assert_eq!(listed(&d, 1_000 + d.retention_ms()), vec![1, 2]);
    }

    #[test]
    fn scaling_bounds_and_rate_are_enforced() {
        let mut d = def(4);
        assert!(matches!(validate(&d, Change::Scale { target: 9 }, "1", 0), Err(Error::InvalidArgument(_))));
        assert!(matches!(validate(&d, Change::Scale { target: 1 }, "1", 0), Err(Error::InvalidArgument(_))));
        d.scalings_ms = vec![0; MAX_SCALINGS_PER_DAY];
        assert!(matches!(validate(&d, Change::Scale { target: 5 }, "1", 1), Err(Error::LimitExceeded(_))));
        assert!(validate(&d, Change::Scale { target: 5 }, "1", SCALING_WINDOW_MS).is_ok());
    }
}
