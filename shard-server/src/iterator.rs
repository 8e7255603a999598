//! Shard iterators: opaque, authenticated, expiring tokens naming a position in a shard.
//!
//! A token is the base64 of `version · stream id · shard · position · issued-at · stream name ·
//! HMAC-SHA256`, keyed with a per-server secret kept in the data directory, so a client can
//! neither forge nor alter one, and one from a deleted stream of the same name is recognised.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long an iterator stays valid, as in Kinesis.
pub const ITERATOR_TTL_MS: u64 = 5 * 60 * 1000;
/// How far in the future an issue time may lie (clock skew between servers).
const FUTURE_SKEW_MS: u64 = 60 * 1000;
const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const FIXED_LEN: usize = 1 + 8 + 4 + 8 + 8 + 1;

/// A decoded shard iterator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIterator {
    /// Internal id of the stream (never reused).
    pub stream_id: u64,
    /// Name of the stream.
    pub stream_name: String,
    /// Shard index.
    pub shard: u32,
    /// Counter of the next record to read.
    pub position: u64,
    /// When the iterator was issued, ms since the epoch.
    pub issued_at_ms: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IteratorError {
    /// Not a token this server issued, or altered.
    #[error("Invalid ShardIterator.")]
    Invalid,
    /// Issued longer ago than the time-to-live.
    #[error(
        "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl_ms} milliseconds.",
        format_ms(*.issued_at_ms),
        format_ms(*.now_ms)
    )]
    Expired {
        /// Issue time.
        issued_at_ms: u64,
        /// Time of the refused use.
        now_ms: u64,
        /// The time-to-live in force.
        ttl_ms: u64,
    },
}

/// A time as Kinesis writes it in messages (Java's `Date.toString` in UTC):
/// `Wed Dec 02 18:50:00 UTC 2026`.
fn format_ms(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    // `Wed, 02 Dec 2026 18:50:00 GMT`
    let http = httpdate::fmt_http_date(time);
    let pieces: Vec<&str> = http.trim_end_matches(" GMT").split([',', ' ']).filter(|p| !p.is_empty()).collect();
    match pieces.as_slice() {
        [weekday, day, month, year, clock] => format!("{weekday} {month} {day} {clock} UTC {year}"),
        _ => http,
    }
}

/// Encodes and checks iterators with one server secret.
#[derive(Clone)]
pub struct IteratorCodec {
    secret: [u8; 32],
    ttl_ms: u64,
}

impl std::fmt::Debug for IteratorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IteratorCodec").field("ttl_ms", &self.ttl_ms).finish_non_exhaustive()
    }
}

impl IteratorCodec {
    /// A codec with `secret` whose iterators live `ttl_ms`.
    pub fn new(secret: [u8; 32], ttl_ms: u64) -> Self {
        Self { secret, ttl_ms }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// `body` followed by its MAC under the server secret (for other opaque tokens, such as
    /// NextToken).
    pub fn seal(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(body);
        let mut sealed = body.to_vec();
        sealed.extend_from_slice(&mac.finalize().into_bytes());
        sealed
    }

    /// The body of a [`IteratorCodec::seal`]ed token, if its MAC is this server's.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let body_len = sealed.len().checked_sub(MAC_LEN)?;
        let (body, tag) = sealed.split_at(body_len);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).ok()?;
        Some(body)
    }

    /// The opaque token for `iterator`.
    pub fn encode(&self, iterator: &ShardIterator) -> String {
        let name = iterator.stream_name.as_bytes();
        let mut bytes = Vec::with_capacity(FIXED_LEN + name.len() + MAC_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&iterator.stream_id.to_be_bytes());
        bytes.extend_from_slice(&iterator.shard.to_be_bytes());
        bytes.extend_from_slice(&iterator.position.to_be_bytes());
        bytes.extend_from_slice(&iterator.issued_at_ms.to_be_bytes());
        // Stream names are at most 128 bytes, so the length fits.
        bytes.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(name);
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Decodes `token` and checks its authenticity and age at `now_ms`.
    pub fn decode(&self, token: &str, now_ms: u64) -> Result<ShardIterator, IteratorError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| IteratorError::Invalid)?;
        if bytes.len() < FIXED_LEN + MAC_LEN || bytes[0] != VERSION {
            return Err(IteratorError::Invalid);
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| IteratorError::Invalid)?;
        let iterator = fields(body)?;
        let issued_at_ms = iterator.issued_at_ms;
        if issued_at_ms > now_ms.saturating_add(FUTURE_SKEW_MS) {
            return Err(IteratorError::Invalid);
        }
        if now_ms.saturating_sub(issued_at_ms) > self.ttl_ms {
            return Err(IteratorError::Expired { issued_at_ms, now_ms, ttl_ms: self.ttl_ms });
        }
        Ok(iterator)
    }
}

/// The stream and shard a token names, without checking it: enough for a cluster server to
/// send the request to the shard's owner, which issued the token and checks it.
pub fn peek(token: &str) -> Option<(String, u32)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
    if bytes.len() < FIXED_LEN + MAC_LEN || bytes[0] != VERSION {
        return None;
    }
    let iterator = fields(&bytes[..bytes.len() - MAC_LEN]).ok()?;
    Some((iterator.stream_name, iterator.shard))
}

/// The fields of a token's body (everything before the MAC).
fn fields(body: &[u8]) -> Result<ShardIterator, IteratorError> {
    let u64_at = |at: usize| -> Result<u64, IteratorError> {
        let raw: [u8; 8] = body.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or(IteratorError::Invalid)?;
        Ok(u64::from_be_bytes(raw))
    };
    let stream_id = u64_at(1)?;
    let shard_raw: [u8; 4] = body.get(9..13).and_then(|s| s.try_into().ok()).ok_or(IteratorError::Invalid)?;
    let position = u64_at(13)?;
    let issued_at_ms = u64_at(21)?;
    let name_len = usize::from(*body.get(29).ok_or(IteratorError::Invalid)?);
    let name = body.get(FIXED_LEN..FIXED_LEN + name_len).ok_or(IteratorError::Invalid)?;
    if FIXED_LEN + name_len != body.len() {
        return Err(IteratorError::Invalid);
    }
    let stream_name = String::from_utf8(name.to_vec()).map_err(|_| IteratorError::Invalid)?;
    Ok(ShardIterator { stream_id, stream_name, shard: u32::from_be_bytes(shard_raw), position, issued_at_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_kinesis_writes_them() {
        assert_eq!(format_ms(1_796_237_400_000), "Wed Dec 02 18:50:00 UTC 2026");
        assert_eq!(format_ms(0), "Thu Jan 01 00:00:00 UTC 1970");
    }

    fn sample() -> ShardIterator {
        ShardIterator {
            stream_id: 7,
            stream_name: "orders".into(),
            shard: 3,
            position: 1234,
            issued_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trips_and_fits_kinesis_length() {
        let codec = IteratorCodec::new([9; 32], ITERATOR_TTL_MS);
        let token = codec.encode(&sample());
        assert!(token.len() <= 512);
        assert_eq!(codec.decode(&token, 1_700_000_000_000), Ok(sample()));
        let long = ShardIterator { stream_name: "x".repeat(128), ..sample() };
        let token = codec.encode(&long);
        assert!(token.len() <= 512);
        assert_eq!(codec.decode(&token, 1_700_000_000_000), Ok(long));
    }

    #[test]
    fn expires_after_ttl() {
        let codec = IteratorCodec::new([9; 32], ITERATOR_TTL_MS);
        let token = codec.encode(&sample());
        let issued = sample().issued_at_ms;
        assert!(codec.decode(&token, issued + ITERATOR_TTL_MS).is_ok());
        let err = codec.decode(&token, issued + ITERATOR_TTL_MS + 1);
        assert!(matches!(err, Err(IteratorError::Expired { .. })));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("tolerated delay of 300000 milliseconds"), "{message}");
    }

    #[test]
    fn rejects_tampering_and_foreign_secrets() {
        let codec = IteratorCodec::new([9; 32], ITERATOR_TTL_MS);
        let token = codec.encode(&sample());
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(&token).unwrap_or_default();
        bytes[20] ^= 1; // the position
        let tampered = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(codec.decode(&tampered, sample().issued_at_ms), Err(IteratorError::Invalid));
        let other = IteratorCodec::new([8; 32], ITERATOR_TTL_MS);
        assert_eq!(other.decode(&token, sample().issued_at_ms), Err(IteratorError::Invalid));
        for junk in ["", "abc", "!!!!", &token[..token.len() - 4]] {
            assert_eq!(codec.decode(junk, sample().issued_at_ms), Err(IteratorError::Invalid));
        }
    }

    #[test]
    fn rejects_issue_times_far_in_the_future() {
        let codec = IteratorCodec::new([9; 32], ITERATOR_TTL_MS);
        let token = codec.encode(&sample());
        assert_eq!(codec.decode(&token, sample().issued_at_ms - 2 * FUTURE_SKEW_MS), Err(IteratorError::Invalid));
    }
}
