//! The JSON 1.1 codec: request bodies into typed requests, responses into bodies, plus the
//! Kinesis wire types that need care: blobs (base64 strings) and timestamps (epoch seconds).

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ApiError;

/// Decodes a request body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Kinesis requests are JSON objects; refuse arrays and scalars before serde sees them.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(ApiError::serialization("The request body must be a JSON object.")),
        None => return Err(ApiError::serialization("The request body is empty; a JSON object is required.")),
    }
    serde_json::from_slice(body).map_err(|err| ApiError::serialization(err.to_string()))
}

/// Encodes a response body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|err| {
        tracing::error!(cause = %err, "response encoding failed");
        ApiError::internal()
    })
}

/// Binary data, base64 on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl Visitor<'_> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64-encoded string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(Blob)
                    .map_err(|err| E::custom(format!("'{}' can not be converted to a Blob: {err}", preview(text))))
            }
        }
        deserializer.deserialize_str(BlobVisitor)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

fn preview(text: &str) -> String {
    text.chars().take(64).collect()
}

/// A point in time, epoch seconds (with fraction) on the wire, milliseconds inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(de::Error::custom(format!("{seconds} is not a valid timestamp")));
        }
        // Saturating float-to-int conversion; timestamps beyond u64 ms are clamped.
        Ok(Timestamp((seconds * 1000.0).round() as u64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kinesis::error::ErrorCode;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(rename = "Data")]
        data: Option<Blob>,
        #[serde(rename = "At")]
        at: Option<Timestamp>,
    }

    #[test]
    fn blobs_and_timestamps_decode() {
        let probe: Probe = decode(br#"{"Data":"aGVsbG8=","At":1700000000.123,"Extra":[1,2]}"#).expect("decode");
        assert_eq!(probe.data, Some(Blob(b"hello".to_vec())));
        assert_eq!(probe.at, Some(Timestamp(1_700_000_000_123)));
        assert_eq!(encode(&Blob(b"hello".to_vec())).expect("encode"), br#""aGVsbG8=""#);
        assert_eq!(encode(&Timestamp(1_500)).expect("encode"), b"1.5");
    }

    #[test]
    fn bad_bodies_are_serialization_errors() {
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"[]",
            b"42",
            br#"{"Data":"not base64!"}"#,
            br#"{"Data":5}"#,
            br#"{"At":"yesterday"}"#,
            br#"{"At":-1}"#,
        ] {
            let err = decode::<Probe>(body).expect_err("must fail");
            assert_eq!(err.code, ErrorCode::Serialization, "{}", String::from_utf8_lossy(body));
        }
    }
}
