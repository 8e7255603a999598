//! Pagination tokens (`NextToken`): opaque to clients, carrying where a listing stopped and
//! when the token was issued, so that Kinesis' 300-second token lifetime can be enforced, and
//! sealed with the server's secret (as shard iterators are), so no client can forge one.

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use crate::iterator::IteratorCodec;

/// How long a NextToken stays valid, as in Kinesis.
pub const NEXT_TOKEN_TTL_MS: u64 = 300_000;
/// How far in the future a token's issue time may lie (clock steps between servers).
const FUTURE_SKEW_MS: u64 = 60_000;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    issued_ms: u64,
    at: T,
}

/// Encodes a position issued at `now_ms`, sealed by `codec`.
pub fn issue<T: Serialize>(codec: &IteratorCodec, position: &T, now_ms: u64) -> Result<String, ApiError> {
    let json = super::codec::encode(&Envelope { issued_ms: now_ms, at: position })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(codec.seal(&json)))
}

/// Decodes a token, refusing malformed, forged, future and expired ones.
pub fn redeem<T: DeserializeOwned>(codec: &IteratorCodec, token: &str, now_ms: u64) -> Result<T, ApiError> {
    let invalid = || ApiError::invalid_argument("Invalid NextToken.");
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let json = codec.open(&sealed).ok_or_else(invalid)?;
    let envelope: Envelope<T> = serde_json::from_slice(json).map_err(|_| invalid())?;
    if envelope.issued_ms > now_ms.saturating_add(FUTURE_SKEW_MS) {
        return Err(invalid());
    }
    if now_ms.saturating_sub(envelope.issued_ms) > NEXT_TOKEN_TTL_MS {
        return Err(ApiError::new(
            ErrorCode::ExpiredNextToken,
            format!(
                "The timestamp of the NextToken has expired. NextToken was issued {} ms ago.",
                now_ms - envelope.issued_ms
            ),
        ));
    }
    Ok(envelope.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_expires() {
        let codec = IteratorCodec::new([7; 32], 1);
        let token = issue(&codec, &("orders".to_owned(), 7u32), 1_000).expect("issue");
        let at: (String, u32) = redeem(&codec, &token, 1_000 + NEXT_TOKEN_TTL_MS).expect("redeem");
        assert_eq!(at, ("orders".to_owned(), 7));
        let err = redeem::<(String, u32)>(&codec, &token, 1_001 + NEXT_TOKEN_TTL_MS).expect_err("expired");
        assert_eq!(err.code, ErrorCode::ExpiredNextToken);
        let err = redeem::<(String, u32)>(&codec, "garbage!", 0).expect_err("invalid");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn forged_and_future_tokens_are_refused() {
        let codec = IteratorCodec::new([7; 32], 1);
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"issued_ms":9223372036854775808,"at":["orders",7]}"#);
        let err = redeem::<(String, u32)>(&codec, &forged, 1_000).expect_err("unsealed");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        let other = IteratorCodec::new([8; 32], 1);
        let foreign = issue(&other, &("orders".to_owned(), 7u32), 1_000).expect("issue");
        assert!(redeem::<(String, u32)>(&codec, &foreign, 1_000).is_err(), "another server's secret");
        let future = issue(&codec, &("orders".to_owned(), 7u32), u64::MAX / 2).expect("issue");
        let err = redeem::<(String, u32)>(&codec, &future, 1_000).expect_err("issued in the future");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }
}
