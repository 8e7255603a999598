//! The 128-bit hash key space: MD5 of a partition key as an unsigned integer, ranges of it
//! owned by shards, and the even split Kinesis uses when a stream is created.

use md5::{Digest, Md5};

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HashRange {
    /// First hash key in the range.
    #[serde(with = "decimal")]
    pub start: u128,
    /// Last hash key in the range (inclusive).
    #[serde(with = "decimal")]
    pub end: u128,
}

impl HashRange {
    /// The whole key space.
    pub const FULL: HashRange = HashRange { start: 0, end: u128::MAX };

    /// True when `key` falls inside the range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Splits the whole key space into `count` contiguous ranges exactly as Kinesis does on
    /// CreateStream: every range is `floor(2^128 / count)` keys wide and the last one absorbs
    /// the remainder.
    pub fn split_evenly(count: u32) -> Vec<HashRange> {
        let count = u128::from(count.max(1));
        if count == 1 {
            return vec![Self::FULL];
        }
        // floor(2^128 / count) without representing 2^128.
        let width = u128::MAX / count + u128::from(u128::MAX % count == count - 1);
        (0..count)
            .map(|i| HashRange { start: width * i, end: if i + 1 == count { u128::MAX } else { width * (i + 1) - 1 } })
            .collect()
    }
}

/// The hash key of a partition key: MD5 of its UTF-8 bytes, read as a big-endian integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Parses a decimal hash key; `None` when it is not a decimal number below 2^128.
pub fn parse_hash_key(text: &str) -> Option<u128> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u128>().ok()
}

/// Serde support for 128-bit integers written as decimal strings, as Kinesis does.
pub mod decimal {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    /// Writes the number as a decimal string.
    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// Reads a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_hash_key(&text).ok_or_else(|| D::Error::custom("not a 128-bit decimal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_owns_everything() {
        assert_eq!(HashRange::split_evenly(1), vec![HashRange::FULL]);
    }

    #[test]
    fn splits_match_kinesis() {
        // Kinesis' ranges for a 3-shard stream.
        let ranges = HashRange::split_evenly(3);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[0].end.to_string(), "113427455640312821154458202477256070484");
        assert_eq!(ranges[1].start.to_string(), "113427455640312821154458202477256070485");
        assert_eq!(ranges[1].end.to_string(), "226854911280625642308916404954512140969");
        assert_eq!(ranges[2].start.to_string(), "226854911280625642308916404954512140970");
        assert_eq!(ranges[2].end, u128::MAX);
        // Powers of two divide 2^128 exactly.
        let ranges = HashRange::split_evenly(4);
        assert_eq!(ranges[1].start, 1u128 << 126);
        assert_eq!(ranges[3].start, 3u128 << 126);
    }

    #[test]
    fn splits_are_contiguous_and_cover_the_space() {
        for count in [1, 2, 3, 5, 7, 64, 100, 1000] {
            let ranges = HashRange::split_evenly(count);
            assert_eq!(ranges.len(), count as usize);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[ranges.len() - 1].end, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end + 1, pair[1].start);
            }
        }
    }

    #[test]
    fn md5_routing_matches_known_digests() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        let ranges = HashRange::split_evenly(4);
        let owner = ranges.iter().position(|r| r.contains(hash_key("a")));
        assert_eq!(owner, Some(0));
        let owner = ranges.iter().position(|r| r.contains(hash_key("")));
        assert_eq!(owner, Some(3));
    }

    #[test]
    fn hash_keys_parse_only_in_range() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(parse_hash_key(&u128::MAX.to_string()), Some(u128::MAX));
        assert_eq!(parse_hash_key("340282366920938463463374607431768211456"), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key("1e5"), None);
        assert_eq!(parse_hash_key(""), None);
    }
}
