//! Sequence numbers. A record's sequence number encodes its shard and its position in that
//! shard's log, as a decimal string of fixed width with no leading zero:
//!
//! ```text
//! 4 SSSSSSSSSSSS CCCCCCCCCCCCCCCCCCCC
//! | shard index  per-shard counter (20 digits)
//! version (12 digits)
//! ```
//!
//! Numbers therefore increase strictly within a shard, are unique within a stream, and every
//! shard created later (a reshard's children get higher indexes) numbers above its parents.
//! Fixed width makes string order equal numeric order.

use std::fmt;

const VERSION_DIGIT: u8 = b'4';
const SHARD_DIGITS: usize = 12;
const COUNTER_DIGITS: usize = 20;
/// Length of every sequence number Shardline issues.
pub const LEN: usize = 1 + SHARD_DIGITS + COUNTER_DIGITS;

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber {
    /// Index of the shard (the number in `shardId-000000000007`).
    pub shard: u32,
    /// Position in the shard's log; records start at 1, 0 is the shard's starting number.
    pub counter: u64,
}

impl SequenceNumber {
    /// A sequence number of `shard` at `counter`.
    pub const fn new(shard: u32, counter: u64) -> Self {
        Self { shard, counter }
    }

    /// Parses a sequence number issued by Shardline; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != LEN || bytes[0] != VERSION_DIGIT || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let shard = text[1..1 + SHARD_DIGITS].parse::<u64>().ok()?;
        let counter = text[1 + SHARD_DIGITS..].parse::<u64>().ok()?;
        Some(Self { shard: u32::try_from(shard).ok()?, counter })
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "4{:012}{:020}", self.shard, self.counter)
    }
}

/// True when `text` has the shape Kinesis allows for a sequence number: `0|[1-9]\d{0,128}`.
pub fn is_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.len() <= 128 && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_fixed_width() {
        for (shard, counter) in [(0, 0), (0, 1), (7, 42), (u32::MAX, u64::MAX)] {
            let seq = SequenceNumber::new(shard, counter);
            let text = seq.to_string();
            assert_eq!(text.len(), LEN);
            assert!(is_well_formed(&text));
            assert_eq!(SequenceNumber::parse(&text), Some(seq));
        }
    }

    #[test]
    fn string_order_is_numeric_order() {
        let a = SequenceNumber::new(0, 9).to_string();
        let b = SequenceNumber::new(0, 10).to_string();
        let c = SequenceNumber::new(1, 0).to_string();
        assert!(a < b && b < c);
        let numbers: Vec<u128> = [a, b, c].iter().filter_map(|s| s.parse().ok()).collect();
        assert_eq!(numbers.len(), 3);
        assert!(numbers[0] < numbers[1] && numbers[1] < numbers[2]);
    }

    #[test]
    fn rejects_foreign_numbers() {
        assert_eq!(SequenceNumber::parse("0"), None);
        assert_eq!(SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898"), None);
        assert_eq!(SequenceNumber::parse("5000000000000000000000000000000000"), None);
        assert_eq!(SequenceNumber::parse("400000000000a00000000000000000000"), None);
        assert!(!is_well_formed("01"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("12a"));
    }
}
