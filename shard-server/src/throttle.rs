//! Per-shard throughput limits, as provisioned Kinesis shards have them: 1 MiB/s and 1,000
//! records/s in, 2 MiB/s and 5 GetRecords calls/s out. Each limit is a token bucket holding one
//! second of its rate. Reads are charged after the fact, so one large GetRecords may drive the
//! byte bucket into debt and throttle the calls that follow until the debt is repaid, which is
//! how Kinesis documents it (a 10 MiB read blocks the shard's reads for the next seconds).

use std::sync::Mutex;

/// Bytes a shard accepts per second.
pub const WRITE_BYTES_PER_SEC: f64 = 1_048_576.0;
/// Records a shard accepts per second.
pub const WRITE_RECORDS_PER_SEC: f64 = 1_000.0;
/// Bytes a shard serves per second.
pub const READ_BYTES_PER_SEC: f64 = 2_097_152.0;
/// GetRecords calls a shard serves per second.
pub const READ_CALLS_PER_SEC: f64 = 5.0;

/// A token bucket refilled continuously at `rate` per second up to `rate` tokens.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at_ms: Option<u64>,
}

impl TokenBucket {
    /// A full bucket.
    pub const fn new(rate: f64) -> Self {
        Self { rate, tokens: rate, at_ms: None }
    }

    fn refill(&mut self, now_ms: u64) {
        if let Some(at) = self.at_ms {
            let elapsed = now_ms.saturating_sub(at) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        }
        self.at_ms = Some(now_ms.max(self.at_ms.unwrap_or(0)));
    }

    /// Tokens available now.
    pub fn available(&mut self, now_ms: u64) -> f64 {
        self.refill(now_ms);
        self.tokens
    }

    /// Takes `n` tokens; the bucket may go into debt.
    pub fn charge(&mut self, n: f64, now_ms: u64) {
        self.refill(now_ms);
        self.tokens -= n;
    }
}

/// The four buckets of one shard.
#[derive(Debug)]
pub struct ShardThrottle {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    write_bytes: TokenBucket,
    write_records: TokenBucket,
    read_bytes: TokenBucket,
    read_calls: TokenBucket,
}

impl Default for ShardThrottle {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(Buckets {
                write_bytes: TokenBucket::new(WRITE_BYTES_PER_SEC),
                write_records: TokenBucket::new(WRITE_RECORDS_PER_SEC),
                read_bytes: TokenBucket::new(READ_BYTES_PER_SEC),
                read_calls: TokenBucket::new(READ_CALLS_PER_SEC),
            }),
        }
    }
}

impl ShardThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits one record of `bytes` (partition key plus data), or refuses it untouched.
    pub fn admit_write(&self, bytes: usize, now_ms: u64) -> bool {
        let mut b = self.lock();
        let bytes = bytes as f64;
        if b.write_records.available(now_ms) < 1.0 || b.write_bytes.available(now_ms) < bytes {
            return false;
        }
        b.write_records.charge(1.0, now_ms);
        b.write_bytes.charge(bytes, now_ms);
        true
    }

    /// Admits one GetRecords call, or refuses it: the call rate and any byte debt both count.
    pub fn admit_read(&self, now_ms: u64) -> bool {
        let mut b = self.lock();
        if b.read_calls.available(now_ms) < 1.0 || b.read_bytes.available(now_ms) <= 0.0 {
            return false;
        }
        b.read_calls.charge(1.0, now_ms);
        true
    }

    /// Charges the bytes a GetRecords call returned.
    pub fn charge_read(&self, bytes: usize, now_ms: u64) {
        self.lock().read_bytes.charge(bytes as f64, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_limited_by_records_and_bytes_per_second() {
        let throttle = ShardThrottle::default();
        let admitted = (0..1500).filter(|_| throttle.admit_write(10, 0)).count();
        assert_eq!(admitted, 1000, "1,000 records a second");
        assert!(!throttle.admit_write(10, 0));
        assert!(throttle.admit_write(10, 1), "one record refilled per millisecond");
        assert!(!throttle.admit_write(10, 1));
        let fresh = ShardThrottle::default();
        assert!(fresh.admit_write(1 << 20, 0), "one MiB fits a full bucket");
        assert!(!fresh.admit_write(1, 0));
        assert!(fresh.admit_write(1000, 1000));
    }

    #[test]
    fn a_large_read_blocks_reads_until_its_debt_is_repaid() {
        let throttle = ShardThrottle::default();
        assert_eq!((0..10).filter(|_| throttle.admit_read(0)).count(), 5, "five calls a second");
        assert!(throttle.admit_read(1000));
        throttle.charge_read(10 << 20, 1000);
        // 10 MiB against 2 MiB/s: about four seconds of debt beyond the full bucket.
        assert!(!throttle.admit_read(4000));
        assert!(throttle.admit_read(5100));
    }
}
