//! Retry delays after failed reconciles: doubling per consecutive failure of the same object,
//! from half a second up to a minute, and forgotten once the object reconciles again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First delay.
const FIRST: Duration = Duration::from_millis(500);
/// Longest delay.
const LONGEST: Duration = Duration::from_secs(60);

/// Consecutive failures per object key (`kind/namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_owned()).or_default();
        let delay = FIRST.saturating_mul(1u32 << (*count).min(16)).min(LONGEST);
        *count = count.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after a successful pass.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_a_minute_and_reset_on_success() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| backoff.failed("stream/a/b").as_millis() as u64).collect();
        assert_eq!(&delays[..4], &[500, 1000, 2000, 4000]);
        assert_eq!(delays[9], 60_000);
        assert_eq!(backoff.failed("stream/a/c"), FIRST, "per object");
        backoff.succeeded("stream/a/b");
        assert_eq!(backoff.failed("stream/a/b"), FIRST);
    }
}
