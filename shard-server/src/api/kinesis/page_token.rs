//! Pagination tokens (`NextToken`): opaque to clients, carrying where a listing stopped and
//! when the token was issued, so that Kinesis' 300-second token lifetime can be enforced.

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};

/// How long a NextToken stays valid, as in Kinesis.
pub const NEXT_TOKEN_TTL_MS: u64 = 300_000;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    issued_ms: u64,
    at: T,
}

/// Encodes a position issued at `now_ms`.
pub fn issue<T: Serialize>(position: &T, now_ms: u64) -> Result<String, ApiError> {
    let json = super::codec::encode(&Envelope { issued_ms: now_ms, at: position })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a token, refusing malformed and expired ones.
pub fn redeem<T: DeserializeOwned>(token: &str, now_ms: u64) -> Result<T, ApiError> {
    let invalid = || ApiError::invalid_argument("Invalid NextToken.");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let envelope: Envelope<T> = serde_json::from_slice(&json).map_err(|_| invalid())?;
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
        let token = issue(&("orders".to_owned(), 7u32), 1_000).expect("issue");
        let at: (String, u32) = redeem(&token, 1_000 + NEXT_TOKEN_TTL_MS).expect("redeem");
        assert_eq!(at, ("orders".to_owned(), 7));
        let err = redeem::<(String, u32)>(&token, 1_001 + NEXT_TOKEN_TTL_MS).expect_err("expired");
        assert_eq!(err.code, ErrorCode::ExpiredNextToken);
        let err = redeem::<(String, u32)>("garbage!", 0).expect_err("invalid");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }
}
