//! Retry timing: exponential backoff with full jitter, and which failures are worth a retry.

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt` (1 = the first retry): a random point in
/// `[0, min(max, base · 2^(attempt-1))]`, so retrying producers spread out.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20))).min(max);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=micros))
}

/// True for Kinesis error codes that a later attempt may get past.
pub fn is_retryable(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ThrottlingException"
            | "LimitExceededException"
            | "KMSThrottlingException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..100 {
            assert!(backoff(1, base, max) <= base);
            assert!(backoff(3, base, max) <= base * 4);
            assert!(backoff(30, base, max) <= max);
        }
        assert!(is_retryable("ProvisionedThroughputExceededException"));
        assert!(!is_retryable("ResourceNotFoundException"));
    }
}
