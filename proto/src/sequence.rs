//! Sequence numbers in Kinesis' layout. A Kinesis sequence number is a 56-digit decimal whose
//! binary form (version 2 of the layout, 188 bits) is, from the most significant end:
//!
//! ```text
//! bits  4  the digit 2
//!      36  the shard's creation time, epoch seconds
//!       4  the shard index's low 4 bits
//!      64  the record's position in the shard (the top bit always 0)
//!       8  zero (in the numbers Shardline issues)
//!      36  the record's arrival time, epoch seconds
//!      32  the shard index
//!       4  the layout version, 2
//! ```
//!
//! (as the reference emulator kinesalite reverse-engineered it from the service). Within a shard
//! everything above the position is fixed, so numbers increase strictly with the position,
//! whatever the clock does; every number has 56 digits, so string order is numeric order; and
//! the shard index is recoverable. Numbers of the older layouts (versions 0 and 1), which AWS
//! still accepts as `SequenceNumberForOrdering`, are read by [`Position::parse`] as the service
//! reads them.
//! Shardline's own earlier layout (`4` + 12-digit shard + 20-digit counter) is still read, so
//! checkpoints stored before the change keep working.

use std::fmt;

use ethnum::U256;

/// Digits of every sequence number Shardline issues.
pub const LEN: usize = 56;
/// Digits of a number in Shardline's earlier layout.
const LEGACY_LEN: usize = 33;
/// The largest position a number can hold (63 bits).
pub const MAX_COUNTER: u64 = i64::MAX as u64;
/// Shard creation times at or after this many epoch seconds are refused, as Kinesis refuses
/// them (the field has room for more, the service does not accept them).
const MAX_CREATED_SECS: u64 = 16_025_175_000;
/// Epoch seconds a 36-bit field holds.
const SECONDS_MASK: u64 = (1 << 36) - 1;

/// A record's (or a shard boundary's) sequence number; ordered as the numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SequenceNumber {
    /// When the shard was created, epoch seconds.
    pub shard_created_secs: u64,
    /// Index of the shard (the number in `shardId-000000000007`).
    pub shard: u32,
    /// Position in the shard's log; records start at 1, 0 is the shard's starting number.
    pub counter: u64,
    /// When the record arrived, epoch seconds (the shard's creation for its boundaries).
    pub arrival_secs: u64,
}

/// What a sequence number given by a client says, in whichever layout it was written: the
/// shard index it encodes, the position, and where it can have come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The shard index the number encodes (negative in numbers whose index field has its top
    /// bit set, which Kinesis reads as negative).
    pub shard: i64,
    /// Position in the shard's log (0 for the older layouts, which Shardline never issued).
    pub counter: u64,
    /// The layout the number was written in.
    pub layout: Layout,
}

/// The layouts of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Kinesis' current layout (version 2), as Shardline issues it.
    Current {
        /// When the shard was created, epoch seconds.
        shard_created_secs: u64,
        /// When the record arrived, epoch seconds.
        arrival_secs: u64,
    },
    /// Kinesis' version 1, which Shardline never issued.
    Version1 {
        /// When the record arrived, epoch seconds.
        arrival_secs: u64,
    },
    /// Kinesis' version 0 (the oldest, and any small number), which Shardline never issued.
    Version0,
    /// Shardline's own earlier layout, which did not record the shard's creation.
    Earlier,
}

impl SequenceNumber {
    /// The number of `counter` in `shard` (created at `shard_created_ms`), arrived at
    /// `arrival_ms`.
    pub const fn new(shard: u32, shard_created_ms: u64, counter: u64, arrival_ms: u64) -> Self {
        Self { shard_created_secs: shard_created_ms / 1000, shard, counter, arrival_secs: arrival_ms / 1000 }
    }

    /// The number's value.
    fn value(&self) -> U256 {
        let created = U256::from(self.shard_created_secs & SECONDS_MASK);
        let shard = U256::from(self.shard);
        let low_nibble = U256::from(self.shard & 0xf);
        let counter = U256::from(self.counter & MAX_COUNTER);
        let arrival = U256::from(self.arrival_secs & SECONDS_MASK);
        (U256::from(2u8) << 184u32)
            | (created << 148u32)
            | (low_nibble << 144u32)
            | (counter << 80u32)
            | (arrival << 36u32)
            | (shard << 4u32)
            | U256::from(2u8)
    }

    /// Parses a number in Kinesis' current layout; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let value = decimal(text)?;
        if text.len() != LEN || value >> 184u32 != U256::from(2u8) || field(value, 0, 4) != 2 {
            return None;
        }
        let fields = Version2::read(value)?;
        let shard = u32::try_from(fields.index).ok()?;
        // The shard index's two copies agree. (The byte between position and time is not
        // always zero in the service's numbers.)
        if fields.index_low_bits != u64::from(shard & 0xf) || shard > i32::MAX as u32 {
            return None;
        }
        Some(Self {
            shard_created_secs: fields.shard_created_secs,
            shard,
            counter: fields.counter,
            arrival_secs: fields.arrival_secs,
        })
    }

    /// The position this number names.
    pub const fn position(&self) -> Position {
        Position {
            shard: self.shard as i64,
            counter: self.counter,
            layout: Layout::Current { shard_created_secs: self.shard_created_secs, arrival_secs: self.arrival_secs },
        }
    }
}

impl Position {
    /// Reads a number in any layout Kinesis has issued (as the service reads them) or in
    /// Shardline's earlier one; `None` for a number Kinesis would call invalid.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(earlier) = Self::parse_earlier(text) {
            return Some(earlier);
        }
        let mut value = decimal(text)?;
        let pow = |bits: u32| U256::ONE << bits;
        // Kinesis reads a small number as if it had the version 0 marker bit.
        if value < pow(124) {
            value += pow(124);
        }
        let field = |shift: u32, bits: u32| field(value, shift, bits);
        if value < pow(129) {
            // Version 0: `1`, 36 bits of shard creation, 72 bits, a 16-bit shard index.
            if field(88, 36) >= MAX_CREATED_SECS {
                return None;
            }
            return Some(Self { shard: field(0, 16) as i64, counter: 0, layout: Layout::Version0 });
        }
        if value <= pow(185) || value >= pow(185) + pow(184) {
            return None;
        }
        match field(0, 4) {
            // Version 1: … 36 bits of arrival, 56 random bits, an 8-bit index, the shard.
            1 => Some(Self {
                shard: field(4, 32) as i64,
                counter: 0,
                layout: Layout::Version1 { arrival_secs: field(100, 36) },
            }),
            2 => {
                let fields = Version2::read(value)?;
                // An index field with its top bit set reads as negative.
                let index = fields.index;
                let shard = if index >= 1 << 31 { index as i64 - (1i64 << 32) } else { index as i64 };
                let layout = Layout::Current {
                    shard_created_secs: fields.shard_created_secs,
                    arrival_secs: fields.arrival_secs,
                };
                Some(Self { shard, counter: fields.counter, layout })
            }
            _ => None,
        }
    }

    /// A number in Shardline's earlier layout: `4`, a 12-digit shard, a 20-digit counter.
    fn parse_earlier(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != LEGACY_LEN || bytes[0] != b'4' || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let shard = text[1..13].parse::<u32>().ok()?;
        let counter = text[13..].parse::<u64>().ok()?;
        Some(Self { shard: i64::from(shard), counter, layout: Layout::Earlier })
    }

    /// When the record arrived, epoch seconds, where the layout records it.
    pub const fn arrival_secs(&self) -> Option<u64> {
        match self.layout {
            Layout::Current { arrival_secs, .. } | Layout::Version1 { arrival_secs } => Some(arrival_secs),
            Layout::Version0 | Layout::Earlier => None,
        }
    }
}

/// `bits` bits of `value` from bit `shift` up (at most 64).
fn field(value: U256, shift: u32, bits: u32) -> u64 {
    ((value >> shift) & ((U256::ONE << bits) - 1)).as_u64()
}

/// The fields of a version-2 number, as the module documentation lays them out.
struct Version2 {
    shard_created_secs: u64,
    index_low_bits: u64,
    counter: u64,
    arrival_secs: u64,
    index: u64,
}

impl Version2 {
    /// The fields of `value`, if the service would accept them: the position's top bit clear
    /// and the creation time below the service's limit.
    fn read(value: U256) -> Option<Self> {
        let fields = Self {
            shard_created_secs: field(value, 148, 36),
            index_low_bits: field(value, 144, 4),
            counter: field(value, 80, 64),
            arrival_secs: field(value, 36, 36),
            index: field(value, 4, 32),
        };
        (fields.counter <= MAX_COUNTER && fields.shard_created_secs < MAX_CREATED_SECS).then_some(fields)
    }
}

/// The shard id Kinesis names an encoded index by (`shardId--02147483648` for a negative one).
pub fn shard_name(index: i64) -> String {
    if index < 0 {
        format!("shardId--{:011}", index.unsigned_abs())
    } else {
        format!("shardId-{index:012}")
    }
}

impl SequenceNumber {
    /// The fields in the order of their significance in the number.
    fn significance(&self) -> (u64, u32, u64, u64, u32) {
        let secs = |s: u64| s & SECONDS_MASK;
        (
            secs(self.shard_created_secs),
            self.shard & 0xf,
            self.counter & MAX_COUNTER,
            secs(self.arrival_secs),
            self.shard,
        )
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.significance().cmp(&other.significance())
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    /// Writes the 56 digits from three 19-digit chunks: three 256-bit divisions instead of
    /// one per digit (a PutRecords answer formats 500 of these).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut rest = self.value();
        let mut chunks = [0u64; 4];
        let mut n = 0;
        while rest >= U256::from(CHUNK) && n < chunks.len() {
            chunks[n] = (rest % U256::from(CHUNK)).as_u64();
            rest /= U256::from(CHUNK);
            n += 1;
        }
        write!(f, "{}", rest.as_u64())?;
        for chunk in chunks[..n].iter().rev() {
            write!(f, "{chunk:019}")?;
        }
        Ok(())
    }
}

/// The value of a decimal of Kinesis' sequence number shape (`0|[1-9]\d{0,128}`) that fits in
/// 256 bits.
fn decimal(text: &str) -> Option<U256> {
    if !is_well_formed(text) || text.len() > 77 {
        return None;
    }
    U256::from_str_radix(text, 10).ok()
}

/// True when `text` has the shape Kinesis allows for a sequence number: `0|[1-9]\d{0,128}`.
pub fn is_well_formed(text: &str) -> bool {
    match text.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.len() <= 128 && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_the_values_decimal() {
        let shards = [0, 1, 15, 16, 4095, u32::MAX];
        let counters = [0, 1, 9_999_999_999_999_999_999 % MAX_COUNTER, MAX_COUNTER];
        for shard in shards {
            for counter in counters {
                for (created, arrival) in [(0, 0), (1_400_000_000_000, 1_700_000_000_999), (u64::MAX, u64::MAX)] {
                    let seq = SequenceNumber::new(shard, created, counter, arrival);
                    assert_eq!(seq.to_string(), seq.value().to_string(), "{seq:?}");
                }
            }
        }
    }

    /// A sequence number the real service issued (from the Kinesis documentation).
    const FROM_AWS: &str = "49590338271490256608559692538361571095921575989136588898";

    #[test]
    fn round_trips_at_fixed_width() {
        for (shard, created, counter, arrival) in [
            (0, 0, 0, 0),
            (0, 1_700_000_000_000, 1, 1_700_000_000_500),
            (7, 1, 42, 9),
            (i32::MAX as u32, 1, MAX_COUNTER, 1),
        ] {
            let seq = SequenceNumber::new(shard, created, counter, arrival);
            let text = seq.to_string();
            assert_eq!(text.len(), LEN, "{text}");
            assert!(is_well_formed(&text));
            assert_eq!(SequenceNumber::parse(&text), Some(seq));
            assert_eq!(Position::parse(&text), Some(seq.position()));
        }
    }

    #[test]
    fn matches_the_layout_kinesis_uses() {
        // shardId-000000000001 created at 1400000000 s, position 5, arrived 1400000100 s.
        let text = SequenceNumber::new(1, 1_400_000_000_000, 5, 1_400_000_100_000).to_string();
        let hex = format!("{:x}", U256::from_str_radix(&text, 10).expect("decimal"));
        assert_eq!(hex, format!("2{:09x}1{:016x}00{:09x}{:08x}2", 1_400_000_000u64, 5, 1_400_000_100u64, 1));
        let aws = SequenceNumber::parse(FROM_AWS).expect("the service's own number parses");
        assert_eq!((aws.shard, aws.shard_created_secs, aws.arrival_secs), (6, 1_542_776_258, 1_545_084_650));
    }

    #[test]
    fn order_follows_the_position_whatever_the_clock() {
        let (early_seq, later_seq) =
            (SequenceNumber::new(3, 1_000, 9, 5_000_000), SequenceNumber::new(3, 1_000, 10, 1_000));
        assert!(early_seq < later_seq);
        let (early, later) = (early_seq.to_string(), later_seq.to_string());
        assert!(early < later);
        assert!(U256::from_str_radix(&early, 10).ok() < U256::from_str_radix(&later, 10).ok());
    }

    #[test]
    fn reads_the_earlier_layout_and_refuses_foreign_numbers() {
        let legacy = format!("4{:012}{:020}", 3, 100);
        assert_eq!(Position::parse(&legacy), Some(Position { shard: 3, counter: 100, layout: Layout::Earlier }));
        assert_eq!(SequenceNumber::parse(&legacy), None);
        for text in ["01", "", "12a", &"9".repeat(56), &"9".repeat(130)] {
            assert_eq!(Position::parse(text), None, "{text}");
        }
    }

    fn hex(digits: &str) -> String {
        U256::from_str_radix(digits, 16).expect("hex").to_string()
    }

    #[test]
    fn reads_every_layout_as_kinesis_reads_it() {
        // Small numbers are version 0 with a 16-bit shard index.
        assert_eq!(Position::parse("5").map(|p| (p.shard, p.layout)), Some((5, Layout::Version0)));
        let version_1 = Position::parse(&hex("20000000000000000000000000000000000000000000001")).expect("v1");
        assert_eq!(version_1.layout, Layout::Version1 { arrival_secs: 0 });
        let negative = Position::parse(&hex("20000000000000000000000000000000000000800000002")).expect("v2");
        assert_eq!((negative.shard, shard_name(negative.shard)), (-2_147_483_648, "shardId--02147483648".to_owned()));
        for refused in [
            "20000000000000000000000000000000000000000000000",
            "20000000000000000000000000000000000000000000003",
            "30000000000000000000000000000000000000000000001",
            "1ffffffffff7fffffffffffffff000000000007fffffff2",
            "20000000000800000000000000000000000000000000002",
            "13bb2cc3d80000000000000000000000",
            "2ffffffffff7fffffffffffffff000000000007fffffff2",
        ] {
            assert_eq!(Position::parse(&hex(refused)), None, "{refused}");
        }
        assert!(!is_well_formed("01") && !is_well_formed("") && !is_well_formed("12a"));
    }
}
