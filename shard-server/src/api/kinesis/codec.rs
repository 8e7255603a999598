//! The two wire formats of the Kinesis API, JSON 1.1 and CBOR 1.1, over one request model:
//! bodies into typed requests, responses and errors into bodies, plus the wire types that need
//! care. Blobs are base64 strings in JSON and byte strings in CBOR; timestamps are epoch
//! seconds (with fraction) in JSON and, as the AWS SDKs write them, tag 1 over epoch
//! milliseconds in CBOR.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{ApiError, ErrorCode};

/// Content type of JSON 1.1 requests and responses.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Content type of CBOR 1.1 requests and responses.
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";
/// CBOR's tag for epoch-based date/time.
const CBOR_EPOCH_TAG: u64 = 1;

/// The format a request arrived in; its answer leaves in the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `application/x-amz-json-1.1`.
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

impl Wire {
    /// The response content type.
    pub const fn content_type(self) -> &'static str {
        match self {
            Wire::Json => JSON_CONTENT_TYPE,
            Wire::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// Checks that a request body is one well-formed object (a CBOR map), as Kinesis does
    /// before it looks at the operation; anything else is a bare `SerializationException`.
    pub fn check_object(self, body: &[u8]) -> Result<(), ApiError> {
        let well_formed = self.opens_object(body)
            && match self {
                Wire::Json => serde_json::from_slice::<de::IgnoredAny>(body).is_ok(),
                Wire::Cbor => ciborium::from_reader::<de::IgnoredAny, _>(body).is_ok(),
            };
        if well_formed {
            Ok(())
        } else {
            Err(ApiError::bare(ErrorCode::Serialization))
        }
    }

    /// True when the body's first item opens an object (a CBOR map, major type 5).
    fn opens_object(self, body: &[u8]) -> bool {
        match self {
            Wire::Json => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
            Wire::Cbor => body.first().is_some_and(|b| b >> 5 == 5),
        }
    }

    /// Decodes a request body into an operation's request, converting values as Kinesis
    /// converts them ([`super::coral`]). A body that is not one well-formed object is the bare
    /// `SerializationException` of [`Wire::check_object`], found in the same single pass.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        if !self.opens_object(body) {
            return Err(ApiError::bare(ErrorCode::Serialization));
        }
        match self {
            Wire::Json => decode(body),
            Wire::Cbor => ciborium::from_reader(body).map_err(|err| match err {
                ciborium::de::Error::Semantic(_, message) => ApiError::serialization(message),
                _ => ApiError::bare(ErrorCode::Serialization),
            }),
        }
    }

    /// Encodes a response body.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, ApiError> {
        self.encode_sized(value, SMALL_ANSWER_BYTES)
    }

    /// Encodes a response body of about `capacity` bytes into a buffer made that large at once
    /// (a GetRecords answer of 10 MiB would otherwise be copied about twice as it grows).
    pub fn encode_sized<T: Serialize>(self, value: &T, capacity: usize) -> Result<Vec<u8>, ApiError> {
        match self {
            Wire::Json => encode_into(value, Vec::with_capacity(capacity)),
            Wire::Cbor => {
                let mut out = Vec::with_capacity(capacity);
                ciborium::into_writer(value, &mut out).map_err(|err| {
                    tracing::error!(cause = %err, "response encoding failed");
                    ApiError::internal()
                })?;
                Ok(out)
            }
        }
    }

    /// The body of an error answer: `__type`, and the message under the key Kinesis uses
    /// for that error (none when the message is empty, as Kinesis sends some errors).
    pub fn error_body(self, code: ErrorCode, message: &str) -> Vec<u8> {
        let (kind, _) = code.wire();
        let mut shape = std::collections::BTreeMap::new();
        shape.insert("__type", kind);
        if !message.is_empty() {
            shape.insert(code.message_key(), message);
        }
        self.encode(&shape).unwrap_or_default()
    }
}

/// Decodes a JSON request body with Kinesis' conversions ([`super::coral`]).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if !Wire::Json.opens_object(body) {
        return Err(ApiError::bare(ErrorCode::Serialization));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let refused = |err: serde_json::Error| {
        if !err.is_data() {
            // Not well-formed JSON (or trailing bytes after the object).
            return ApiError::bare(ErrorCode::Serialization);
        }
        // serde_json appends the position; Kinesis' messages have none.
        let text = err.to_string();
        let position = format!(" at line {} column {}", err.line(), err.column());
        ApiError::serialization(text.strip_suffix(&position).unwrap_or(&text))
    };
    let request = super::coral::deserialize(&mut json).map_err(refused)?;
    json.end().map_err(refused)?;
    Ok(request)
}

/// Encodes a JSON response body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    encode_into(value, Vec::with_capacity(SMALL_ANSWER_BYTES))
}

/// The buffer an answer of unknown size starts with (as `serde_json::to_vec` starts).
const SMALL_ANSWER_BYTES: usize = 128;

fn encode_into<T: Serialize>(value: &T, mut out: Vec<u8>) -> Result<Vec<u8>, ApiError> {
    serde_json::to_writer(&mut out, value).map_err(|err| {
        tracing::error!(cause = %err, "response encoding failed");
        ApiError::internal()
    })?;
    Ok(out)
}

/// Binary data, base64 on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64-encoded string or a byte string")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Blob, D::Error> {
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(self)
                } else {
                    deserializer.deserialize_byte_buf(self)
                }
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(bytes))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                decode_base64(text).map(Blob).map_err(E::custom)
            }
        }
        deserializer.deserialize_newtype_struct(super::coral::BLOB, BlobVisitor)
    }
}

/// Longest piece of a refused blob quoted back in the error.
const QUOTED_BLOB_CHARS: usize = 4096;

/// Decodes a blob's base64 text, refusing what Kinesis refuses with its words: a length that
/// is not a multiple of 4, a character outside the alphabet (or padding followed by data), and
/// a last character whose unused bits are set.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let refuse = |why: String| {
        let quoted: String = text.chars().take(QUOTED_BLOB_CHARS).collect();
        format!("'{quoted}' can not be converted to a Blob: {why}")
    };
    if !text.len().is_multiple_of(4) {
        return Err(refuse(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            text.len()
        )));
    }
    // What decodes is valid by every rule below; only a refusal needs telling apart.
    // base64-simd's STANDARD refuses exactly what the rules below refuse (padding required,
    // unused bits zero), at several times the speed: a PutRecords call decodes 5 MiB at most.
    if let Ok(bytes) = base64_simd::STANDARD.decode_to_vec(text.as_bytes()) {
        return Ok(bytes);
    }
    let bytes = text.as_bytes();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    let misplaced = bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| !alphabet(b) || (b == b'=' && bytes.get(i + 1).is_some_and(|&next| next != b'=')));
    if let Some((i, _)) = misplaced {
        let shown = text[i..].chars().next().unwrap_or_default();
        return Err(refuse(format!("Invalid Base64 character: '{shown}'")));
    }
    // Kinesis' spelling.
    Err(refuse("Invalid last non-pad Base64 character dectected".to_owned()))
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64_simd::STANDARD.encode_to_string(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

/// A point in time, epoch seconds (with fraction) on the wire, milliseconds inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch seconds")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Timestamp, D::Error> {
                if deserializer.is_human_readable() {
                    return deserializer.deserialize_f64(self);
                }
                // CBOR: integers are epoch milliseconds (what the AWS SDKs send), floats seconds.
                let value = ciborium::tag::Captured::<ciborium::Value>::deserialize(deserializer)?.1;
                match value {
                    ciborium::Value::Integer(ms) => {
                        let ms = i128::from(ms);
                        u64::try_from(ms)
                            .map(Timestamp)
                            .map_err(|_| de::Error::custom(format!("{ms} is not a valid timestamp")))
                    }
                    ciborium::Value::Float(seconds) => self.visit_f64(seconds),
                    _ => Err(de::Error::custom("a timestamp must be a number")),
                }
            }
            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Timestamp, E> {
                if !seconds.is_finite() || seconds < 0.0 {
                    return Err(E::custom(format!("{seconds} is not a valid timestamp")));
                }
                // Saturating float-to-int conversion; timestamps beyond u64 ms are clamped.
                Ok(Timestamp((seconds * 1000.0).round() as u64))
            }
            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(seconds.saturating_mul(1000)))
            }
            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Timestamp, E> {
                u64::try_from(seconds)
                    .map_err(|_| E::custom(format!("{seconds} is not a valid timestamp")))
                    .and_then(|seconds| self.visit_u64(seconds))
            }
        }
        deserializer.deserialize_newtype_struct(super::coral::TIMESTAMP, TimestampVisitor)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<u64, CBOR_EPOCH_TAG>(self.0).serialize(serializer)
        }
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

    #[derive(Debug, Serialize)]
    struct Out {
        #[serde(rename = "Data")]
        data: Blob,
        #[serde(rename = "At")]
        at: Timestamp,
    }

    #[test]
    fn cbor_carries_blobs_as_bytes_and_timestamps_as_tagged_milliseconds() {
        let body = Wire::Cbor.encode(&Out { data: Blob(b"hi".to_vec()), at: Timestamp(1_500) }).expect("encode");
        let value: ciborium::Value = ciborium::from_reader(body.as_slice()).expect("cbor");
        let map = value.as_map().expect("map");
        assert_eq!(map[0].1, ciborium::Value::Bytes(b"hi".to_vec()));
        assert_eq!(map[1].1, ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer(1_500.into()))));
        let probe: Probe = Wire::Cbor.decode(&body).expect("decode");
        assert_eq!((probe.data, probe.at), (Some(Blob(b"hi".to_vec())), Some(Timestamp(1_500))));
        let err = Wire::Cbor.decode::<Probe>(&[0x80]).expect_err("an array is not a request");
        assert_eq!(err.code, ErrorCode::Serialization);
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
